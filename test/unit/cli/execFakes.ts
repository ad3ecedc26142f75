// Fakes for `sluice exec` unit tests: buffers for stdout/stderr (optionally slow, to exercise
// backpressure), a clock the test advances, a gateway client yielding scripted events, and `run`,
// which calls runExec and turns its error into the exit code and `sluice: …` line as main does.
import { Readable, Writable } from 'node:stream';
import type { ExecEvent, ExecRequest } from '../../../src/api/contract.js';
import type { ExecClient } from '../../../src/api/exec.js';
import { runExec, type ExecOptions } from '../../../src/commands/exec.js';
import type { Stdin } from '../../../src/commands/exec/input.js';
import { CliError, exitCodeFor } from '../../../src/errors.js';
import type { Clock } from '../../../src/factory.js';

export class BufferStream extends Writable {
  text = '';
  /** Newlines written so far. */
  lines = 0;
  isTTY: boolean;
  constructor(opts: { isTTY?: boolean; highWaterMark?: number; slow?: boolean } = {}) {
    super({ highWaterMark: opts.highWaterMark ?? 16 * 1024, decodeStrings: false });
    this.isTTY = opts.isTTY ?? false;
    this.slow = opts.slow ?? false;
  }
  private readonly slow: boolean;
  // tty.WriteStream's cursor methods, which spinners call on a terminal.
  readonly columns = 80;
  cursorTo(_x: number, _y?: number | (() => void), cb?: () => void): boolean {
    (typeof _y === 'function' ? _y : cb)?.();
    return true;
  }
  moveCursor(_dx: number, _dy: number, cb?: () => void): boolean {
    cb?.();
    return true;
  }
  clearLine(_dir: number, cb?: () => void): boolean {
    cb?.();
    return true;
  }
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const text = chunk.toString();
    this.text += text;
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) this.lines++;
    if (this.slow) setImmediate(cb);
    else cb();
  }
}

export class FakeClock implements Clock {
  t = 1_000_000;
  private timers: { at: number; resolve: () => void }[] = [];
  now(): number {
    return this.t;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer = { at: this.t + ms, resolve };
      this.timers.push(timer);
      signal?.addEventListener(
        'abort',
        () => {
          this.timers = this.timers.filter((x) => x !== timer);
          reject(signal.reason);
        },
        { once: true },
      );
    });
  }
  /** Moves time on and lets every sleeper that is due run. */
  async advance(ms: number): Promise<void> {
    this.t += ms;
    const due = this.timers.filter((x) => x.at <= this.t);
    this.timers = this.timers.filter((x) => x.at > this.t);
    for (const x of due) x.resolve();
    await settle();
  }
}

/** Lets pending promise callbacks and I/O callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

export function stdinOf(text: string | undefined): Stdin {
  if (text === undefined) return Object.assign(Readable.from([]), { isTTY: true });
  return Readable.from([Buffer.from(text)]);
}

type Script = readonly ExecEvent[] | ((request: ExecRequest, signal: AbortSignal) => AsyncIterable<ExecEvent>);

export interface FakeExec extends ExecClient {
  readonly calls: { name: string; request: ExecRequest }[];
}

/** An ExecClient answering with `script`; iteration stops with the signal's reason on abort, as undici's body does. */
export function fakeExec(script: Script, refuse?: CliError): FakeExec {
  const calls: FakeExec['calls'] = [];
  return {
    calls,
    async exec(name, request, signal) {
      calls.push({ name, request });
      if (refuse) throw refuse;
      const source = typeof script === 'function' ? script(request, signal) : script;
      return (async function* () {
        for await (const ev of source) {
          if (signal.aborted) throw signal.reason;
          yield ev;
        }
      })();
    },
  };
}

/** Resolves when `signal` aborts (rejecting with its reason) or `p` settles. */
export function until<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    p.then(resolve, reject);
  });
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  calls: FakeExec['calls'];
}

export interface RunSetup {
  client: FakeExec;
  stdin?: string;
  stdoutTTY?: boolean;
  stderrTTY?: boolean;
  clock?: FakeClock;
  signal?: AbortSignal;
  stdout?: BufferStream;
  stderr?: BufferStream;
}

export const OPTS: ExecOptions = { name: 'pg-prod', input: 'select 1', json: false, wait: true };

export async function run(opts: Partial<ExecOptions>, setup: RunSetup): Promise<RunResult> {
  const stdout = setup.stdout ?? new BufferStream({ isTTY: setup.stdoutTTY ?? false });
  const stderr = setup.stderr ?? new BufferStream({ isTTY: setup.stderrTTY ?? false });
  const io = { stdout, stderr, env: {}, stdin: stdinOf(setup.stdin) };
  let code = 0;
  try {
    await runExec({ ...OPTS, ...opts }, { io, clock: setup.clock ?? new FakeClock(), exec: setup.client, ...(setup.signal ? { signal: setup.signal } : {}) });
  } catch (err) {
    stderr.write(`sluice: ${(err as Error).message}\n`);
    code = exitCodeFor(err);
  }
  await settle();
  return { code, stdout: stdout.text, stderr: stderr.text, calls: setup.client.calls };
}

export const col = (name: string, type = 'text', typeOid = 25) => ({ name, type, typeOid });
