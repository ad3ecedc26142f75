// The local exec agent (`sluice agent start`): a per-user process, like ssh's ControlMaster, that
// keeps warm keep-alive TLS connections to one gateway and runs `sluice exec` for the CLI. The CLI
// is then a dumb pipe (src/agent/client.ts): it sends its command line, working directory, the
// environment an exec depends on and which of its streams are terminals, and relays the agent's
// stdout, stderr and exit code; the agent runs the same runExec as the full CLI. What a short exec
// pays for — Node loading the CLI, the TLS client's start and handshake — is paid here once.
//
// The agent holds no identity: each exec uses the token of its caller, read for that exec alone
// (SLUICE_TOKEN from the caller's environment, or the login in the caller's token file, which this
// process may read because it runs as the same user, whose 0700 directory and 0600 socket are the
// only way in) and forgotten when it ends, so a new login takes effect at the next exec. It serves
// only callers whose gateway, CA and config directory resolve to this agent, logs one line per
// exec with no input, header or token, and streams results with backpressure end to end (a million
// rows never sit here).
import { appendFileSync, chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { connect, createServer, type Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import { finished } from 'node:stream/promises';
import { planAgentExec, parseFastArgs } from '../commands/exec/fast.js';
import type { Io } from '../io.js';
import { Frame, frame, frameReader, FORWARDED_ENV, PROTOCOL_VERSION, type ExecHello } from './client.js';
import { FrameStdin, FrameWritable } from './clientStreams.js';
import { unsafe, type AgentTarget } from './socket.js';

export interface AgentOptions extends AgentTarget {
  socketPath: string;
  /** Exit after this long without a request. */
  idleMs: number;
  /** One line per event; never given a token, a header or the input. */
  log: (line: string) => void;
}

export interface RunningAgent {
  /** Resolves once the agent has stopped (idle, `stop` request or close()). */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

export interface AgentStatus {
  pid: number;
  gateway: string;
  startedAt: string;
  served: number;
  active: number;
  idleMs: number;
}

/**
 * Variables by which the full CLI would trust the gateway differently than this process does (it
 * was started with the environment it then had): a caller whose values differ goes direct.
 */
const TRUST_ENV = ['NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS', 'NODE_TLS_REJECT_UNAUTHORIZED', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'OPENSSL_CONF'] as const;
/**
 * What yocto-spinner and Node's colour detection read from the process environment rather than
 * from the stream: on a terminal, the review spinner would be drawn for this process's values.
 */
const TERMINAL_ENV = ['TERM', 'CI', 'COLORTERM', 'FORCE_COLOR', 'NO_COLOR', 'NODE_DISABLE_COLORS', 'TMUX', 'TERM_PROGRAM', 'WT_SESSION'] as const;

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const { log } = opts;
  const socketPath = resolve(opts.socketPath);
  prepareDirectory(dirname(socketPath));
  await clearStaleSocket(socketPath);
  const pinned = { url: opts.url, ...(opts.ca !== undefined ? { ca: opts.ca } : {}), socketPath };

  // keepAlive: the point of the agent. The gateway closes idle connections after 5 s and says so
  // in its Keep-Alive header, which Node's agent honours, so a request is not sent on a socket the
  // gateway is closing (and one that is gets retried: src/api/exec.ts).
  const pool = new URL(opts.url).protocol === 'https:' ? new HttpsAgent({ keepAlive: true, ...(opts.ca !== undefined ? { ca: opts.ca } : {}) }) : new HttpAgent({ keepAlive: true });

  let active = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  const started = Date.now();
  let served = 0;
  let stopping: Promise<void> | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));

  const armIdle = () => {
    clearTimeout(idleTimer);
    // Once stopping, no timer may hold the process open: the last connection's close lands here too.
    if (active === 0 && !stopping) idleTimer = setTimeout(() => void stop('idle'), opts.idleMs);
  };

  const server = createServer((conn) => {
    active++;
    clearTimeout(idleTimer);
    conn.on('error', () => {});
    conn.once('close', () => {
      active--;
      armIdle();
    });
    let onFrame: ((type: number, payload: Buffer) => void) | undefined;
    const read = frameReader((type, payload) => {
      if (onFrame) return onFrame(type, payload);
      if (type === Frame.status) {
        const status: AgentStatus = { pid: process.pid, gateway: opts.url, startedAt: new Date(started).toISOString(), served, active: active - 1, idleMs: opts.idleMs };
        return void conn.end(frame(Frame.control, JSON.stringify(status)));
      }
      if (type === Frame.stop) {
        // The socket is gone once the answer is read: a new exec then goes direct.
        void stop('stop request');
        return void conn.end(frame(Frame.control, JSON.stringify({ stopping: true })));
      }
      if (type !== Frame.hello) return void conn.destroy();
      const hello = parseHello(payload);
      onFrame = () => {};
      void serve(conn, hello, (f) => (onFrame = f)).catch(() => conn.destroy());
    });
    conn.on('data', (chunk: Buffer) => {
      try {
        read(chunk);
      } catch {
        conn.destroy();
      }
    });
  });

  /** Runs one client's exec, or declines it; `listen` takes the client's later frames. */
  async function serve(conn: Socket, hello: ExecHello | undefined, listen: (f: (type: number, payload: Buffer) => void) => void): Promise<void> {
    const decline = (why: string) => {
      log(`declined: ${why}`);
      conn.end(frame(Frame.decline, why));
    };
    if (!hello) return decline('a request this agent does not understand');
    if (stopping) return decline('stopping');
    const mismatch = environmentMismatch(hello);
    if (mismatch) return decline(mismatch);

    const stdout = new FrameWritable(conn, Frame.stdout, { isTTY: hello.stdoutTTY, ...(hello.columns !== undefined ? { columns: hello.columns } : {}) });
    const stderr = new FrameWritable(conn, Frame.stderr, { isTTY: hello.stderrTTY, ...(hello.columns !== undefined ? { columns: hello.columns } : {}) });
    const stdin = new FrameStdin(conn, hello.stdinTTY);
    const io: Io = { stdin, stdout, stderr, env: hello.env, cwd: hello.cwd };
    const plan = await planAgentExec(hello.argv, io, pinned);
    if ('decline' in plan) return decline(plan.decline);
    if (stopping || conn.destroyed) return decline('stopping');

    // Ctrl-C in the client, or the client gone (killed, its pipe closed): either way the gateway's
    // request is dropped, which is how the gateway learns to cancel the statement or the review.
    const interrupt = new AbortController();
    const gone = () => {
      interrupt.abort();
      stdin.end();
      const epipe = Object.assign(new Error('the client went away'), { code: 'EPIPE' });
      stdout.destroy(epipe);
      stderr.destroy(epipe);
    };
    conn.once('close', gone);
    listen((type, payload) => {
      if (type === Frame.stdin) stdin.push(payload);
      else if (type === Frame.stdinEnd) stdin.end();
      else if (type === Frame.interrupt) interrupt.abort();
      else if (type === Frame.outputError) {
        const { stream, code } = parseOutputError(payload);
        (stream === 'stderr' ? stderr : stdout).destroy(Object.assign(new Error(`write ${code}`), { code }));
      }
    });
    served++;
    conn.write(frame(Frame.accept));
    const begun = Date.now();
    const code = await plan.run({ pool, signal: interrupt.signal });
    // Everything runExec wrote goes out before the exit code that ends the client.
    stdout.end();
    stderr.end();
    await Promise.all([finished(stdout), finished(stderr)]).catch(() => undefined);
    const name = parseFastArgs(hello.argv)?.name ?? '?';
    log(`exec ${JSON.stringify(name)} exit ${code} ${Date.now() - begun}ms${conn.destroyed ? ' (client gone)' : ''}`);
    conn.off('close', gone);
    conn.end(frame(Frame.exit, Buffer.from([code & 0xff])));
  }

  /** Why this agent would not run `hello` as the caller's own process would, or undefined. */
  function environmentMismatch(hello: ExecHello): string | undefined {
    const differs = (keys: readonly string[]) => keys.find((k) => (hello.env[k] ?? '') !== (process.env[k] ?? ''));
    const trust = differs(TRUST_ENV);
    if (trust) return `${trust} differs from the agent's`;
    const terminal = hello.stderrTTY ? differs(TERMINAL_ENV) : undefined;
    if (terminal) return `${terminal} differs from the agent's (a terminal)`;
    return undefined;
  }

  function stop(why: string): Promise<void> {
    stopping ??= (async () => {
      log(`stopping: ${why}`);
      clearTimeout(idleTimer);
      // First, before waiting for anything: whoever looks for an agent from now on finds none, and
      // a socket someone else puts at this path later is never removed by us.
      try {
        unlinkSync(socketPath);
      } catch {
        // Already gone (removed by hand).
      }
      // Execs in flight finish; the control clients (status, stop) close their connections.
      await new Promise<void>((r) => server.close(() => r()));
      pool.destroy();
      resolveClosed();
    })();
    return stopping;
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // The directory is 0700, so nobody else could reach the socket in the moment before this.
  chmodSync(socketPath, 0o600);
  log(`listening on ${socketPath} for ${opts.url} (pid ${process.pid})`);
  armIdle();
  return { closed, close: () => stop('closed') };
}

/** The client's request, or undefined when it is not one this agent's version understands. */
function parseHello(payload: Buffer): ExecHello | undefined {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  const h = v as Partial<ExecHello> | null;
  if (!h || typeof h !== 'object' || h.v !== PROTOCOL_VERSION) return undefined;
  if (!Array.isArray(h.argv) || !h.argv.every((a) => typeof a === 'string')) return undefined;
  if (typeof h.cwd !== 'string' || !h.cwd.startsWith('/')) return undefined;
  if (!h.env || typeof h.env !== 'object') return undefined;
  const env: Record<string, string> = {};
  for (const key of FORWARDED_ENV) {
    const value = (h.env as Record<string, unknown>)[key];
    if (typeof value === 'string') env[key] = value;
  }
  if (h.columns !== undefined && (typeof h.columns !== 'number' || !Number.isInteger(h.columns) || h.columns < 0)) return undefined;
  return {
    v: h.v,
    argv: h.argv,
    cwd: h.cwd,
    env,
    stdinTTY: h.stdinTTY === true,
    stdoutTTY: h.stdoutTTY === true,
    stderrTTY: h.stderrTTY === true,
    ...(h.columns !== undefined ? { columns: h.columns } : {}),
  };
}

function parseOutputError(payload: Buffer): { stream: 'stdout' | 'stderr'; code: string } {
  try {
    const v = JSON.parse(payload.toString('utf8')) as { stream?: unknown; code?: unknown };
    return { stream: v.stream === 'stderr' ? 'stderr' : 'stdout', code: typeof v.code === 'string' && /^[A-Z0-9_]{1,32}$/.test(v.code) ? v.code : 'EIO' };
  } catch {
    return { stream: 'stdout', code: 'EIO' };
  }
}

/** Creates the agent directory 0700, or refuses one that is not ours or is looser. */
function prepareDirectory(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const problem = unsafe(lstatSync(dir), 'directory', 0o700);
  if (problem) throw new Error(`refusing the agent directory ${dir}: ${problem}`);
}

/** Removes a socket no agent answers on; refuses to start beside a live one or over a non-socket. */
async function clearStaleSocket(socketPath: string): Promise<void> {
  let info;
  try {
    info = lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!info.isSocket()) throw new Error(`refusing to replace ${socketPath}: it is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new Error(`an agent is already listening on ${socketPath}`);
  unlinkSync(socketPath);
}

/** A log writer appending to `file` (0600); write failures are ignored rather than fatal to serving. */
export function fileLog(file: string): (line: string) => void {
  return (line) => {
    try {
      appendFileSync(file, `${new Date().toISOString()} ${line}\n`, { mode: 0o600 });
    } catch {
      // A full disk must not stop execs that would otherwise work.
    }
  };
}
