// The local end of `sluice connect`: a loopback listener where every accepted client gets its
// own tunnel stream to the gateway. For PostgreSQL the CLI reads only the client's startup packet
// (to report refusals in PostgreSQL's own terms); after that bytes are piped untouched. For ssh it
// reads nothing: the gateway's ssh server speaks first, so the bytes are relayed from the start.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Endpoint } from '../api/endpoint.js';
import type { CredentialSource } from '../auth/credentials.js';
import { AuthError, CliError, LimitError } from '../errors.js';
import { dialTunnel } from './dial.js';
import { checkLocalPassword, readLocalStartup, sendFatal } from './pgLocal.js';

const DEFAULT_STARTUP_TIMEOUT_MS = 10_000;

export interface TunnelStats {
  open: number;
  total: number;
  bytesUp: number;
  bytesDown: number;
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
  /** What the local client speaks: `postgres` (startup packet read locally) or `relay` (bytes only, e.g. ssh). */
  local?: 'postgres' | 'relay';
  host: string;
  port: number;
  /** When the requested port is taken, try the following ones (the default port only). */
  fallbackToNextFree: boolean;
  localPassword?: string;
  /**
   * Time a local client has to send its startup packet (and the local password): a client that
   * sends half of one is closed then, as PostgreSQL's authentication_timeout does. Default 10 s.
   */
  startupTimeoutMs?: number;
  /** Told of each client that could not be connected (the message also goes to that client). */
  onClientError(message: string): void;
}

export async function listenLocal(opts: ListenOptions): Promise<LocalListener> {
  const stats: TunnelStats = { open: 0, total: 0, bytesUp: 0, bytesDown: 0 };
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true }, (client) => {
    sockets.add(client);
    stats.open++;
    stats.total++;
    client.once('close', () => {
      sockets.delete(client);
      stats.open--;
    });
    void serveClient(client, opts, stats, sockets).catch(() => client.destroy());
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

async function serveClient(client: Socket, opts: ListenOptions, stats: TunnelStats, sockets: Set<Socket>): Promise<void> {
  client.on('error', () => client.destroy());
  if (opts.local === 'relay') return serveRelay(client, opts, stats, sockets);
  // Destroying the socket fails the pending read below, which ends this client.
  const startupTimer = setTimeout(() => {
    opts.onClientError('a local client did not send its startup packet in time; closed');
    client.destroy();
  }, opts.startupTimeoutMs ?? DEFAULT_STARTUP_TIMEOUT_MS);
  let startup;
  try {
    startup = await readLocalStartup(client);
    if (startup.kind === 'startup' && opts.localPassword !== undefined) {
      if (!(await checkLocalPassword(client, opts.localPassword))) {
        return sendFatal(client, '28P01', 'sluice connect: wrong local password (it was printed when `sluice connect` started)');
      }
    }
  } finally {
    clearTimeout(startupTimer);
  }
  let tunnel;
  try {
    const token = await opts.credentials.token();
    tunnel = await dialTunnel(opts.endpoint, opts.connection, token, 'connect', startup.kind === 'cancel' ? 'cancel' : 'session');
  } catch (err) {
    const message = err instanceof CliError ? err.message : String(err);
    opts.onClientError(message);
    // 53300 is PostgreSQL's own "too many connections": drivers and poolers know to back off.
    const sqlstate = err instanceof AuthError ? '28000' : err instanceof LimitError ? '53300' : '08006';
    if (startup.kind === 'startup') sendFatal(client, sqlstate, `sluice: ${message}`);
    else client.destroy();
    return;
  }
  relay(client, tunnel.socket, startup.bytes, stats, sockets);
  await bothClosed(client, tunnel.socket);
}

/** A client that speaks a protocol the CLI need not read (ssh): a tunnel per client, bytes relayed both ways. */
async function serveRelay(client: Socket, opts: ListenOptions, stats: TunnelStats, sockets: Set<Socket>): Promise<void> {
  // Hold the client's first bytes (an ssh client sends its banner at once) until the tunnel is up.
  client.pause();
  let tunnel;
  try {
    tunnel = await dialTunnel(opts.endpoint, opts.connection, await opts.credentials.token(), 'connect');
  } catch (err) {
    // No protocol-level way to tell an ssh client why: the reason goes to our stderr.
    opts.onClientError(err instanceof CliError ? err.message : String(err));
    client.destroy();
    return;
  }
  // The client may have gone while the tunnel was being opened.
  if (client.destroyed) return void tunnel.socket.destroy();
  relay(client, tunnel.socket, undefined, stats, sockets);
  await bothClosed(client, tunnel.socket);
}

function relay(client: Socket, upstream: Duplex, first: Buffer | undefined, stats: TunnelStats, sockets: Set<Socket>): void {
  sockets.add(upstream as Socket);
  upstream.once('close', () => sockets.delete(upstream as Socket));
  if (first) {
    upstream.write(first);
    stats.bytesUp += first.length;
  }
  client.on('data', (d: Buffer) => (stats.bytesUp += d.length));
  upstream.on('data', (d: Buffer) => (stats.bytesDown += d.length));
  upstream.on('error', () => client.destroy());
  client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
}

function bothClosed(client: Socket, upstream: Duplex): Promise<void> {
  return new Promise<void>((resolve) => {
    let closed = 0;
    const done = () => ++closed === 2 && resolve();
    client.once('close', () => {
      upstream.destroy();
      done();
    });
    upstream.once('close', () => {
      client.end();
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
