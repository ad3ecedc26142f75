// The local exec agent (`sluice agent start`): a per-user process that keeps warm keep-alive TLS
// connections to one gateway and relays `sluice exec` requests to it over a unix socket, like ssh's
// ControlMaster. What a short exec pays for is the TLS client's start (root store, handshake) and
// module loading; here they are paid once. The agent holds no identity: each request carries the
// Authorization the CLI read for that call, which is passed on and forgotten, so a new login takes
// effect at the next exec. It relays only the exec endpoint, streams the answer back with pipe()'s
// backpressure (a million rows never sit here), and logs one line per request without headers.
import { appendFileSync, chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, request as httpRequest, Agent as HttpAgent, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { AGENT_HEADER, AGENT_UNREACHABLE } from '../api/exec.js';
import { unsafe, type AgentTarget } from './socket.js';

export interface AgentOptions extends AgentTarget {
  socketPath: string;
  /** Exit after this long without a request. */
  idleMs: number;
  /** One line per event; never given a header or a body. */
  log: (line: string) => void;
}

export interface RunningAgent {
  /** Resolves once the agent has stopped (idle, `stop` request or close()). */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

/** The agent's own requests, on the socket only. */
export const AGENT_PATHS = { status: '/-/agent/status', stop: '/-/agent/stop' } as const;

/** The exec endpoint: the only gateway path relayed. */
const EXEC_PATH = /^\/v1\/connections\/[^/?#]+\/exec$/;
/** The gateway's input limit (16 MiB of SQL) as JSON, with room for escaping. */
const MAX_BODY_BYTES = 40 * 1024 * 1024;
/** Headers passed on to the gateway; everything else the CLI sends stays here. */
const FORWARDED = ['authorization', 'content-type', 'accept'] as const;
/** Errors of reaching the gateway that, before the TCP connection is up, prove nothing was sent. */
const CONNECT_FAILED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']);
/** Certificate checks fail in the handshake, before Node writes the request. */
const TLS_VERIFY_FAILED = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/;

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const { socketPath, log } = opts;
  prepareDirectory(dirname(socketPath));
  await clearStaleSocket(socketPath);

  const url = new URL(opts.url);
  const tls = url.protocol === 'https:';
  // keepAlive: the point of the agent. The gateway closes idle connections after 5 s and says so
  // in its Keep-Alive header, which Node's agent honours, so a request is not sent on a socket the
  // gateway is closing (and one that is gets retried, below).
  const upstreamAgent = tls ? new HttpsAgent({ keepAlive: true, ...(opts.ca !== undefined ? { ca: opts.ca } : {}) }) : new HttpAgent({ keepAlive: true });
  const send = tls ? httpsRequest : httpRequest;

  let active = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  const started = Date.now();
  let served = 0;
  let stopping: Promise<void> | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));

  const armIdle = () => {
    clearTimeout(idleTimer);
    // Once stopping, no timer may hold the process open: the last response's close lands here too.
    if (active === 0 && !stopping) idleTimer = setTimeout(() => void stop('idle'), opts.idleMs);
  };

  const server = createServer((req, res) => {
    active++;
    clearTimeout(idleTimer);
    const begun = Date.now();
    res.once('close', () => {
      active--;
      log(`${req.method ?? '?'} ${req.url ?? '?'} ${res.statusCode} ${Date.now() - begun}ms${res.writableFinished ? '' : ' (closed early)'}`);
      armIdle();
    });
    handle(req, res).catch((err: unknown) => {
      log(`error ${(err as NodeJS.ErrnoException).code ?? 'unknown'}`);
      if (!res.headersSent) reply(res, 500, { error: { code: 'agent_error', message: 'the local agent failed' } });
      else res.destroy();
    });
  });
  // A request may wait for hours on a review or a long statement; the agent never times it out.
  server.requestTimeout = 0;
  server.headersTimeout = 10_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.url === AGENT_PATHS.status && req.method === 'GET') {
      return reply(res, 200, { pid: process.pid, gateway: opts.url, startedAt: new Date(started).toISOString(), served, active: active - 1, idleMs: opts.idleMs });
    }
    if (req.url === AGENT_PATHS.stop && req.method === 'POST') {
      reply(res, 200, { stopping: true });
      return void stop('stop request');
    }
    if (req.method !== 'POST' || !EXEC_PATH.test(req.url ?? '')) {
      return reply(res, 404, { error: { code: 'not_found', message: 'the sluice agent relays only exec requests' } });
    }
    served++;
    const body = await readBody(req);
    if (body === undefined) return reply(res, 413, { error: { code: 'too_large', message: 'the exec request is too large' } });
    relay(req, res, body, true);
  }

  function relay(req: IncomingMessage, res: ServerResponse, body: Buffer, mayRetry: boolean): void {
    const headers: Record<string, string | number> = { 'content-length': body.length };
    for (const h of FORWARDED) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    const upstream = send(new URL(req.url as string, url), { method: 'POST', headers, agent: upstreamAgent });
    let answered = false;
    // Whether the TCP connection came up: after that, only a certificate failure proves the
    // request was not written (an ETIMEDOUT or EHOSTUNREACH may come from a live connection).
    let connected = false;
    upstream.once('socket', (socket) => {
      if (!socket.connecting) connected = true;
      else socket.once('connect', () => (connected = true));
    });
    // The CLI went away (Ctrl-C, its own --timeout, a closed pipe): drop the gateway's request too,
    // which is how the gateway learns to cancel the statement or the review.
    const onClientGone = () => {
      if (!res.writableFinished) upstream.destroy();
    };
    res.once('close', onClientGone);
    upstream.once('response', (up) => {
      answered = true;
      const out: Record<string, string> = {};
      const type = up.headers['content-type'];
      if (type) out['content-type'] = type;
      res.writeHead(up.statusCode ?? 502, out);
      up.pipe(res);
      up.once('error', () => res.destroy());
      up.once('aborted', () => res.destroy());
    });
    upstream.once('error', (err: NodeJS.ErrnoException) => {
      res.off('close', onClientGone);
      if (answered || res.destroyed) return res.destroy();
      const code = err.code ?? 'unknown';
      // A kept-alive socket the gateway closed just as this request went out: the gateway read
      // nothing, so sending again is safe (what Node's own docs advise for reusedSocket).
      if (mayRetry && upstream.reusedSocket && code === 'ECONNRESET') {
        log(`retry on a fresh connection (${code})`);
        return relay(req, res, body, false);
      }
      log(`upstream error ${code}`);
      if ((!connected && CONNECT_FAILED.has(code)) || TLS_VERIFY_FAILED.test(code)) {
        res.writeHead(502, { [AGENT_HEADER]: AGENT_UNREACHABLE, 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ error: { code: 'unreachable', message: `the agent cannot reach ${opts.url} (${code})` } }));
      }
      // Sent, but no answer: whether it ran is unknown, so the CLI must not send it again.
      res.destroy();
    });
    upstream.end(body);
  }

  function stop(why: string): Promise<void> {
    stopping ??= (async () => {
      log(`stopping: ${why}`);
      clearTimeout(idleTimer);
      await new Promise<void>((r) => {
        server.close(() => r());
        // Requests in flight finish; idle keep-alive clients are not waited for.
        server.closeIdleConnections();
      });
      upstreamAgent.destroy();
      try {
        unlinkSync(socketPath);
      } catch {
        // Already gone (removed by hand, or by a newer agent's stale-socket cleanup).
      }
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

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A log writer appending to `file` (0600); write failures are ignored rather than fatal to relaying. */
export function fileLog(file: string): (line: string) => void {
  return (line) => {
    try {
      appendFileSync(file, `${new Date().toISOString()} ${line}\n`, { mode: 0o600 });
    } catch {
      // A full disk must not stop execs that would otherwise work.
    }
  };
}
