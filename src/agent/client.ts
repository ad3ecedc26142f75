// The `sluice exec` client when an agent runs: a dumb pipe to the warm agent (src/agent/server.ts),
// which parses the command line, resolves the gateway, reads the input and renders the answer with
// the same runExec as the full CLI. bin/sluice.js loads this file alone, before anything else: it
// imports node:net, node:fs and node:tty and nothing of ours, because a short exec's cost is Node's start
// plus what it loads, and every module, built-in or not, is paid on each call.
//
// It finds the agents of the caller's config directory by listing `<config dir>/agent/*.sock`
// (nothing to hash or parse), refuses any socket or directory that is not the user's own or is
// looser than 0600/0700, and asks each agent in turn. An agent serves only when the full CLI would
// have picked it — the same gateway URL and CA, resolved from this caller's flags, environment,
// settings and working directory — and otherwise declines; a decline, or any doubt before the agent
// accepted, returns undefined and bin/sluice.js runs the full CLI. Once accepted, stdout, stderr
// and the exit code are the agent's, byte for byte.
//
// The wire format is shared with the agent: frames of [type u8][length u32 BE][payload].
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { connect, type Socket } from 'node:net';
// isatty without opening process.stdin; node:tty is a small module over node:net, loaded anyway
// when stdout or stderr is a terminal.
import { isatty } from 'node:tty';

/** Bumped whenever a frame's meaning changes: an agent of another version declines. */
export const PROTOCOL_VERSION = 1;

/** Frame types. Client → agent below 0x10, agent → client from 0x10. */
export const Frame = {
  /** The exec request (JSON, {@link ExecHello}); the first frame of a connection. */
  hello: 0x01,
  stdin: 0x02,
  stdinEnd: 0x03,
  /** Ctrl-C in the client's terminal. */
  interrupt: 0x04,
  /** The client's stdout or stderr failed (JSON {stream, code}), e.g. EPIPE from `| head`. */
  outputError: 0x05,
  /** `sluice agent status` and `stop` (JSON answer in a {@link Frame.control} frame). */
  status: 0x06,
  stop: 0x07,
  /** This agent does not serve the request; nothing happened (text: why, for the agent's log). */
  decline: 0x11,
  /** The agent serves it: from here on the exec may reach the gateway. */
  accept: 0x12,
  stdout: 0x13,
  stderr: 0x14,
  /** The agent reads the input from stdin: start sending it. */
  readStdin: 0x15,
  /** The exit code (u8); the last frame. */
  exit: 0x16,
  control: 0x17,
} as const;

export const FRAME_HEADER_BYTES = 5;
/** The largest payload either side sends in one frame; larger writes are split. */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** The environment an exec depends on, forwarded to the agent; nothing else of it leaves the client. */
export const FORWARDED_ENV = [
  // Which gateway, CA, identity and config directory (src/api/gatewayTarget.ts, src/settings.ts).
  'SLUICE_GATEWAY',
  'SLUICE_CA',
  'SLUICE_TOKEN',
  'SLUICE_CONFIG_DIR',
  'HOME',
  'XDG_CONFIG_HOME',
  // How Node would verify the gateway: the agent serves only callers whose trust equals its own.
  'NODE_OPTIONS',
  'NODE_EXTRA_CA_CERTS',
  'NODE_TLS_REJECT_UNAUTHORIZED',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'OPENSSL_CONF',
  // What the review spinner on a terminal reads (yocto-spinner, Node's colour detection).
  'TERM',
  'CI',
  'COLORTERM',
  'FORCE_COLOR',
  'NO_COLOR',
  'NODE_DISABLE_COLORS',
  'TMUX',
  'TERM_PROGRAM',
  'WT_SESSION',
] as const;

/** What the client tells the agent about one `sluice exec`. */
export interface ExecHello {
  v: number;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  stdinTTY: boolean;
  stdoutTTY: boolean;
  stderrTTY: boolean;
  /** The terminal's width, where stdout or stderr is one. */
  columns?: number;
}

export function frame(type: number, payload: Buffer | string = ''): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  out[0] = type;
  out.writeUInt32BE(body.length, 1);
  body.copy(out, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Splits a byte stream into frames: `push` each chunk, `onFrame` is called for every complete one.
 * A declared length over `max` is an error before anything is buffered for it. Chunks of a frame
 * that spans reads are kept as a list and joined once, when the frame is complete.
 */
export function frameReader(onFrame: (type: number, payload: Buffer) => void, max = MAX_FRAME_BYTES): (chunk: Buffer) => void {
  let parts: Buffer[] = [];
  let buffered = 0;
  /** The total length of the frame being gathered, once its header is in. */
  let need = FRAME_HEADER_BYTES;
  return (chunk) => {
    parts.push(chunk);
    buffered += chunk.length;
    if (buffered < need) return;
    let buf = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, buffered);
    parts = [];
    buffered = 0;
    let at = 0;
    for (;;) {
      const left = buf.length - at;
      if (left < FRAME_HEADER_BYTES) {
        need = FRAME_HEADER_BYTES;
        break;
      }
      const length = buf.readUInt32BE(at + 1);
      if (length > max) throw new Error(`a frame of ${length} bytes is over the ${max}-byte limit`);
      if (left < FRAME_HEADER_BYTES + length) {
        need = FRAME_HEADER_BYTES + length;
        break;
      }
      onFrame(buf[at] as number, buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length));
      at += FRAME_HEADER_BYTES + length;
    }
    if (at < buf.length) {
      buf = buf.subarray(at);
      parts.push(buf);
      buffered = buf.length;
    }
  };
}

/** The agents' directory for this caller, as settingsPath (src/settings.ts) finds the config; undefined when unsure. */
export function agentDirOf(env: NodeJS.ProcessEnv, cwd: string, platform: string): string | undefined {
  const configDir = env.SLUICE_CONFIG_DIR;
  if (configDir) return `${configDir.startsWith('/') ? configDir : `${cwd}/${configDir}`}/agent`;
  // os.homedir() falls back to the password database without HOME: leave that to the full CLI.
  const home = env.HOME;
  if (!home) return undefined;
  if (platform === 'darwin') return `${home}/Library/Preferences/sluice/agent`;
  if (platform !== 'linux') return undefined;
  return `${env.XDG_CONFIG_HOME || `${home}/.config`}/sluice/agent`;
}

/** Why `info` is not a `kind` owned by `uid` with at most `mode`'s permissions, or undefined. */
export function unsafeEntry(info: Stats, kind: 'directory' | 'socket', mode: number, uid: number | undefined): string | undefined {
  const isKind = kind === 'directory' ? info.isDirectory() : info.isSocket();
  if (!isKind) return `not a ${kind}${info.isSymbolicLink() ? ' (a symbolic link)' : ''}`;
  if (uid !== undefined && info.uid !== uid) return `owned by uid ${info.uid}, not by this user (uid ${uid})`;
  const perms = info.mode & 0o777;
  if ((perms & ~mode) !== 0) return `mode ${perms.toString(8).padStart(4, '0')} is looser than ${mode.toString(8).padStart(4, '0')}`;
  return undefined;
}

/** The sockets to try, or undefined (no agent, or one not to trust: then after a warning on stderr). */
function candidateSockets(dir: string): string[] | undefined {
  const uid = process.getuid?.();
  let info: Stats;
  try {
    info = lstatSync(dir);
  } catch {
    return undefined;
  }
  const warn = (problem: string) => void process.stderr.write(`sluice: warning: not using the agent socket ${problem}; running the exec directly\n`);
  const dirProblem = unsafeEntry(info, 'directory', 0o700, uid);
  if (dirProblem) return void warn(`${dir}: ${dirProblem}`);
  const sockets: string[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.sock')) continue;
    const path = `${dir}/${name}`;
    let entry: Stats;
    try {
      entry = lstatSync(path);
    } catch {
      continue;
    }
    const problem = unsafeEntry(entry, 'socket', 0o600, uid);
    if (problem) return void warn(`${path}: ${problem}`);
    sockets.push(path);
  }
  return sockets;
}

/** The exit code of `sluice exec` run by an agent, or undefined: run the full CLI instead. */
export async function fastExec(argv: readonly string[]): Promise<number | undefined> {
  if (argv[0] !== 'exec') return undefined;
  const cwd = process.cwd();
  const dir = agentDirOf(process.env, cwd, process.platform);
  if (dir === undefined) return undefined;
  let sockets: string[] | undefined;
  try {
    sockets = candidateSockets(dir);
  } catch {
    return undefined;
  }
  if (!sockets || sockets.length === 0) return undefined;
  const env: Record<string, string> = {};
  for (const key of FORWARDED_ENV) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  const { stdout, stderr } = process;
  const hello: ExecHello = {
    v: PROTOCOL_VERSION,
    argv: [...argv],
    cwd,
    env,
    // process.stdin is not touched unless the agent asks for the input: opening it costs a few ms.
    stdinTTY: isatty(0),
    stdoutTTY: stdout.isTTY === true,
    stderrTTY: stderr.isTTY === true,
    ...(stdout.isTTY ? { columns: stdout.columns } : stderr.isTTY ? { columns: stderr.columns } : {}),
  };
  const request = frame(Frame.hello, JSON.stringify(hello));
  for (const path of sockets) {
    const code = await tryAgent(path, request);
    if (code !== undefined) return code;
  }
  return undefined;
}

/**
 * One agent: the exit code once it served the exec, undefined when it declined or went away before
 * accepting (nothing ran). After it accepted, a broken connection is a failed exec (exit 1): the
 * statement may have started, so it is never sent again.
 */
function tryAgent(path: string, request: Buffer): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket: Socket = connect(path);
    let accepted = false;
    let exitCode: number | undefined;
    let settled = false;
    let stdinOpen = false;
    let stdoutBroken = false;
    let firstInterrupt = 0;
    const { stdout, stderr } = process;

    const finish = (code: number | undefined) => {
      if (settled) return;
      settled = true;
      process.off('SIGINT', onSigint);
      stdout.off('error', onStdoutError);
      stderr.off('error', onStderrError);
      if (stdinOpen) {
        process.stdin.pause();
        process.stdin.destroy();
      }
      socket.destroy();
      resolve(code);
    };
    const send = (type: number, payload?: Buffer | string) => {
      if (!socket.destroyed) return socket.write(frame(type, payload));
      return true;
    };
    const onSigint = () => {
      // As the full CLI: the first Ctrl-C cancels cleanly (the agent drops the gateway request),
      // a second one a moment later ends at once, and the closed socket cancels it just the same.
      if (firstInterrupt !== 0 && Date.now() - firstInterrupt > 500) process.exit(130);
      if (firstInterrupt === 0) firstInterrupt = Date.now();
      send(Frame.interrupt);
    };
    const outputError = (stream: 'stdout' | 'stderr') => (err: NodeJS.ErrnoException) => {
      if (stream === 'stdout') stdoutBroken = true;
      send(Frame.outputError, JSON.stringify({ stream, code: err.code ?? 'EIO' }));
    };
    const onStdoutError = outputError('stdout');
    const onStderrError = outputError('stderr');

    const startStdin = () => {
      if (stdinOpen) return;
      stdinOpen = true;
      const input = process.stdin;
      input.on('data', (chunk: Buffer) => {
        let full = false;
        for (let at = 0; at < chunk.length; at += MAX_FRAME_BYTES) full = !send(Frame.stdin, chunk.subarray(at, at + MAX_FRAME_BYTES)) || full;
        if (full) {
          input.pause();
          socket.once('drain', () => input.resume());
        }
      });
      input.once('end', () => send(Frame.stdinEnd));
      input.once('error', () => send(Frame.stdinEnd));
    };

    // Our stdout is full (a slow reader): stop reading the agent, whose writes then wait in turn,
    // and so on up to the gateway's stream.
    const blocked = new Set<NodeJS.WriteStream>();
    const write = (stream: NodeJS.WriteStream, payload: Buffer) => {
      if (stream === stdout && stdoutBroken) return;
      if (!stream.write(payload) && !blocked.has(stream)) {
        blocked.add(stream);
        socket.pause();
        stream.once('drain', () => {
          blocked.delete(stream);
          if (blocked.size === 0) socket.resume();
        });
      }
    };

    const read = frameReader((type, payload) => {
      if (!accepted) {
        if (type === Frame.accept) {
          accepted = true;
          process.on('SIGINT', onSigint);
          stdout.on('error', onStdoutError);
          stderr.on('error', onStderrError);
          return;
        }
        // A decline, or anything else from something that is not our agent: nothing ran.
        return finish(undefined);
      }
      switch (type) {
        case Frame.stdout:
          return write(stdout, payload);
        case Frame.stderr:
          return write(stderr, payload);
        case Frame.readStdin:
          return startStdin();
        case Frame.exit:
          exitCode = payload[0] ?? 1;
          return finish(exitCode);
      }
    }, 64 * 1024 * 1024);

    socket.on('data', (chunk: Buffer) => {
      try {
        read(chunk);
      } catch {
        socket.destroy(new Error('the agent sent a malformed frame'));
      }
    });
    socket.once('connect', () => socket.write(request));
    socket.on('error', () => {});
    socket.once('close', () => {
      if (settled) return;
      if (!accepted) return finish(undefined);
      // Served, then cut off before its end: like a gateway connection that broke (src/api/exec.ts).
      stderr.write("sluice: the gateway's answer broke off: the local agent went away; statements before the break may have run (see `sluice sessions`)\n");
      finish(1);
    });
  });
}
