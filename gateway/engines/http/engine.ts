// The http engine: each tunnel is one client connection carrying HTTP/1.1 requests, which the
// shared proxy core (gateway/httpProxy/) parses and forwards to the connection's service over
// verified TLS; this engine supplies the meaning through the core's hooks (hooks.ts): the path as
// policy judges it, block/review/mask rules, the held credentials, and the audit record. Upstream
// connection pools are kept per connection, shared by its sessions (keep-alive to the service).
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { createHttpProxy } from '../../httpProxy/proxy.js';
import { clientTimeouts } from '../../httpProxy/types.js';
import { createUpstream, type Upstream } from '../../httpProxy/upstream.js';
import type { HttpConnection } from '../../model.js';
import { SessionTermination, type Engine, type SessionContext } from '../types.js';
import { createHttpHooks } from './hooks.js';

/** Bytes of each request and response body kept in the record. */
export const BODY_SAMPLE_BYTES = 1024;

export function createHttpEngine(): Engine {
  const upstreams = new Map<string, Upstream>();
  const upstreamFor = (c: HttpConnection, connectTimeoutMs: number): Upstream => {
    const key = `${c.name}\0${c.target.url}\0${createHash('sha256').update(c.target.ca ?? '').digest('hex')}\0${connectTimeoutMs}`;
    let up = upstreams.get(key);
    if (up === undefined) {
      up = createUpstream({ url: c.target.url, ...(c.target.ca !== undefined ? { ca: c.target.ca } : {}), connectTimeoutMs });
      upstreams.set(key, up);
    }
    return up;
  };
  return {
    handle: (client, session, signal) => handleSession(client, session, signal, upstreamFor(session.connection as HttpConnection, session.connectTimeoutMs)),
  };
}

async function handleSession(client: Duplex, session: SessionContext, signal: AbortSignal, upstream: Upstream): Promise<void> {
  const connection = session.connection as HttpConnection;
  const { audit } = session;
  audit.onSessionStart({ target: connection.target.url });
  const hooks = createHttpHooks({ session, connection, signal });
  const proxy = createHttpProxy({ upstream, hooks, sampleBytes: BODY_SAMPLE_BYTES, ...clientTimeouts(session.limits) });
  let totals = { requests: 0, bytesFromClient: 0, bytesToClient: 0 };
  let failure: string | undefined;
  try {
    totals = await proxy.handle(client, signal);
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
    session.log.warn({ err }, 'http session failed');
  }
  const reason: unknown = signal.reason;
  if (signal.aborted && reason instanceof SessionTermination) failure = reason.message;
  audit.onSessionEnd({ status: failure === undefined ? 'ok' : 'error', ...(failure ? { message: failure } : {}), bytesFromClient: totals.bytesFromClient, bytesToClient: totals.bytesToClient });
}
