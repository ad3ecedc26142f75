// The streams and environment a command runs with. Commands receive this instead of touching
// `process` so tests can run them with buffers and a synthetic environment.
export interface Io {
  /** Read only by commands that take input (`exec`, `audit verify -`), as an async iterable of chunks. */
  readonly stdin: AsyncIterable<Buffer | string> & { readonly isTTY?: boolean };
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  readonly env: NodeJS.ProcessEnv;
  /**
   * The directory relative paths (-f FILE, --ca, SLUICE_CONFIG_DIR) are read from: the caller's,
   * when the agent runs a command for it; process.cwd() when absent.
   */
  readonly cwd?: string;
}

export function processIo(): Io {
  return {
    // Touching process.stdin opens it: only commands that read input (exec, audit verify -) do.
    get stdin() {
      return process.stdin;
    },
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
  };
}

/** Writes one line for humans (stderr): notices, prompts, progress. */
export function say(io: Io, line: string): void {
  io.stderr.write(line + '\n');
}

/** Writes one line of data (stdout): what scripts consume. */
export function print(io: Io, line: string): void {
  io.stdout.write(line + '\n');
}
