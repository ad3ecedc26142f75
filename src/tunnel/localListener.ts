// The local end of `sluice connect`: a loopback listener where every accepted client gets its
// own tunnel stream to the gateway. The connection type's local side (localSide.ts) runs first —
// PostgreSQL's reads the client's startup packet, to report refusals in PostgreSQL's own terms;
// ssh's does nothing — and after that bytes are piped untouched.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContext } from 'node:tls';
import type { Endpoint } from '../api/endpoint.js';
import type { CredentialSource } from '../auth/credentials.js';
import { CliError } from '../errors.js';
import { dialTunnel } from './dial.js';
import { localSideFor, type LocalSide } from './localSide.js';

const DEFAULT_STARTUP_TIMEOUT_MS = 10_000;

export interface TunnelStats {
  open: number;
  total: number;
  bytesUp: number;
  bytesDown: number;
  /** The gateway's session id for each client that got through, oldest first. */
  sessionIds?: string[];
}

export interface LocalListener {
  readonly host: string;
  readonly port: number;
  readonly stats: TunnelStats;
  close(): Promise<void>;
}

export interface ListenOptions {
  endpoint: Endpoint;
  credentials: CredentialSource;
  connection: string;
  /** The connection's type (ConnectionInfo.type): selects the local side. */
  type: string;
  host: string;
  port: number;
  /** When the requested port is taken, try the following ones (the default port only). */
  fallbackToNextFree: boolean;
  localPassword?: string;
  /** The local certificate (localCert.ts): offered to clients that ask for TLS on the local hop. */
  tls?: SecureContext;
  /**
   * Time a local client has to send its startup packet (and the local password), for types whose
   * local side reads first: a client that sends half of one is closed then, as PostgreSQL's
   * authentication_timeout does. Default 10 s.
   */
  startupTimeoutMs?: number;
  /** Told of each client that could not be connected (the message also goes to that client). */
  onClientError(message: string): void;
}

/** How many of the latest session ids the stats keep. */
const MAX_SESSION_IDS = 20;

export async function listenLocal(opts: ListenOptions): Promise<LocalListener> {
  const side = localSideFor(opts.type);
  const stats: TunnelStats = { open: 0, total: 0, bytesUp: 0, bytesDown: 0, sessionIds: [] };
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true }, (client) => {
    sockets.add(client);
    stats.open++;
    stats.total++;
    client.once('close', () => {
      sockets.delete(client);
      stats.open--;
    });
    void serveClient(client, side, opts, stats, sockets).catch(() => client.destroy());
  });
  const port = await listenWithFallback(server, opts);
  return {
    host: opts.host,
    port,
    stats,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function serveClient(client: Socket, side: LocalSide, opts: ListenOptions, stats: TunnelStats, sockets: Set<Socket>): Promise<void> {
  client.on('error', () => client.destroy());
  // Destroying the socket fails the pending read below, which ends this client.
  const startupTimer = side.readsFirst
    ? setTimeout(() => {
        opts.onClientError('a local client did not send its startup packet in time; closed');
        client.destroy();
      }, opts.startupTimeoutMs ?? DEFAULT_STARTUP_TIMEOUT_MS)
    : undefined;
  let opening;
  try {
    opening = await side.open(client, opts.localPassword, opts.tls);
  } finally {
    clearTimeout(startupTimer);
  }
  if (opening === undefined) return;
  // After a TLS handshake the conversation goes on over the TLS socket; the accepted socket
  // under it is closed with it, so the listener's count and close() see one client.
  const local = opening.client ?? client;
  if (local !== client) local.once('close', () => client.destroy());
  let tunnel;
  try {
    const token = await opts.credentials.token();
    tunnel = await dialTunnel(opts.endpoint, opts.connection, token, 'connect', opening.purpose, opening.headers);
  } catch (err) {
    const message = err instanceof CliError ? err.message : String(err);
    opts.onClientError(message);
    side.refuse(local, opening, err, message);
    return;
  }
  const upstream = tunnel.socket;
  if (local.destroyed || client.destroyed) {
    // The client left while the tunnel was being opened (a byte-relay side never reads first):
    // its 'close' has already fired, so nothing below would ever end the tunnel.
    upstream.destroy();
    return;
  }
  if (tunnel.sessionId && stats.sessionIds) {
    // The most recent ones only: a tunnel may serve clients for days.
    stats.sessionIds.push(tunnel.sessionId);
    if (stats.sessionIds.length > MAX_SESSION_IDS) stats.sessionIds.shift();
  }
  sockets.add(upstream as Socket);
  upstream.once('close', () => sockets.delete(upstream as Socket));
  if (opening.firstBytes.length > 0) upstream.write(opening.firstBytes);
  stats.bytesUp += opening.firstBytes.length;
  await relay(local, upstream, stats);
}

/**
 * Moves bytes both ways until either side closes. Plain 'data' handlers rather than pipe(): one
 * listener per chunk counts and forwards it (pipe plus a counting listener was two), and
 * backpressure is the same pause-until-drain pipe() does.
 */
function relay(local: Duplex, upstream: Duplex, stats: TunnelStats): Promise<void> {
  const forward = (from: Duplex, to: Duplex, count: (n: number) => void) => {
    const resume = () => from.resume();
    from.on('data', (d: Buffer) => {
      count(d.length);
      if (!to.write(d)) {
        from.pause();
        to.once('drain', resume);
      }
    });
  };
  forward(local, upstream, (n) => (stats.bytesUp += n));
  forward(upstream, local, (n) => (stats.bytesDown += n));
  local.on('error', () => local.destroy());
  upstream.on('error', () => local.destroy());
  // A half-close is passed on, as pipe() does; a full close ends the other side below.
  local.once('end', () => upstream.end());
  upstream.once('end', () => local.end());
  local.resume();
  return new Promise<void>((resolve) => {
    let closed = 0;
    const done = () => ++closed === 2 && resolve();
    local.once('close', () => {
      upstream.destroy();
      done();
    });
    upstream.once('close', () => {
      local.end();
      done();
    });
  });
}

async function listenWithFallback(server: Server, opts: ListenOptions): Promise<number> {
  const attempts = opts.fallbackToNextFree ? 20 : 1;
  for (let i = 0; i < attempts; i++) {
    const port = opts.port === 0 ? 0 : opts.port + i;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, opts.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      return (server.address() as AddressInfo).port;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EADDRINUSE' || i === attempts - 1) {
        throw new CliError(
          code === 'EADDRINUSE'
            ? opts.fallbackToNextFree
              ? `ports ${opts.port}-${opts.port + attempts - 1} on ${opts.host} are all in use; pass --port`
              : `port ${opts.port} on ${opts.host} is already in use; pick another with --port`
            : `cannot listen on ${opts.host}:${port}: ${code ?? String(err)}`,
        );
      }
    }
  }
  throw new CliError('unreachable');
}
