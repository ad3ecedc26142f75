// The direct PostgreSQL listener (docs/direct.md): standard clients connect to the gateway itself,
// with no `sluice connect` in between. It answers SSLRequest with 'S' (and PostgreSQL 17's direct
// TLS, ALPN `postgresql`), GSSENCRequest with 'N', refuses a plaintext startup, routes a
// CancelRequest by its key, and authenticates the client with a cleartext password over that TLS:
// a short-lived credential the gateway issued (credentials.ts). The startup's user name names the
// connection. Admission is the gateway's one admitSession (groups, session limit, audit health,
// service-token revocation), and everything after it is the postgres engine, which receives the
// client's StartupMessage as if it had read it itself and completes the startup with AuthenticationOk.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { ErrorCode } from '../../src/api/contract.js';
import { CANCEL_REQUEST_CODE, decodeFirstMessage, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE } from '../engines/postgres/codec/frontend.js';
import { encodeErrorResponse } from '../engines/postgres/codec/backend.js';
import { PgProtocolError } from '../engines/postgres/codec/wire.js';
import { engineFor, postgresEngine } from '../engines/registry.js';
import type { Caller } from '../caller.js';
import type { Admission, AdmitOptions, Refuse } from '../server.js';
import type { Store } from '../store/types.js';
import type { TlsMaterial } from '../tls.js';
import { checkCredential, type CredentialHolder } from './credentials.js';
import { encodeCleartextPasswordRequest, encodeStartup, MessageReader } from './wire.js';

export type Admit = (caller: Caller, name: string, refuse: Refuse, opts: AdmitOptions) => Promise<Admission | undefined>;

export interface DirectListenerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMaterial;
  readonly store: Store;
  readonly admit: Admit;
  readonly log: Logger;
  /** Time a client has from connecting to being admitted (limits.authenticationTimeoutMs). */
  readonly authenticationTimeoutMs: number;
  /** Connections that may wait at once between accept and admission (limits.unauthenticatedConnections). */
  readonly unauthenticatedConnections: number;
  readonly connectTimeoutMs: number;
}

export interface DirectListener {
  readonly port: number;
  close(): Promise<void>;
}

/** TLS record type of a handshake: the first byte of a direct-TLS ClientHello. */
const TLS_HANDSHAKE = 0x16;
const NEEDS_TLS = 'the Sluice gateway accepts PostgreSQL clients over TLS only: connect with sslmode=require or sslmode=verify-full (`sluice dsn NAME` prints a connection string that does)';

/** What a refusal's HTTP status means in PostgreSQL's terms. */
const SQLSTATE_OF: Record<number, string> = { 400: '08P01', 401: '28P01', 403: '28000', 404: '28000', 429: '53300', 503: '57P03' };

export async function startDirectListener(o: DirectListenerOptions): Promise<DirectListener> {
  const log = o.log.child({ listener: 'postgres' });
  // One context for every client: building it (parsing the key and certificate) per connection
  // would add that to every connection's setup.
  const context = createSecureContext({ cert: o.tls.cert, key: o.tls.key });
  const sockets = new Set<Socket>();
  // Connections not yet admitted: each may cost a TLS handshake and a store look-up, and none has
  // proved who it is, so they are capped apart from admitted sessions (which have their own limit
  // per identity). Over the cap a connection is refused before anything of it is read.
  const unauthenticated = new Set<Socket>();
  const server: Server = createServer((raw) => {
    raw.on('error', (err: NodeJS.ErrnoException) => log.debug({ code: err.code }, 'direct client socket error'));
    if (unauthenticated.size >= o.unauthenticatedConnections) {
      log.warn({ limit: o.unauthenticatedConnections }, 'direct client refused: too many connections waiting to authenticate');
      // In clear: a client's SSLRequest reads this 'E' as the server's refusal, as it reads PostgreSQL's own.
      raw.end(encodeErrorResponse({ severity: 'FATAL', sqlstate: '53300', message: `too many connections are waiting to authenticate on this gateway's PostgreSQL listener (limits.unauthenticatedConnections: ${o.unauthenticatedConnections}); retry in a moment` }));
      raw.resume();
      return;
    }
    sockets.add(raw);
    unauthenticated.add(raw);
    raw.once('close', () => {
      sockets.delete(raw);
      unauthenticated.delete(raw);
    });
    raw.setNoDelay(true);
    void serve(raw, o, context, log, () => unauthenticated.delete(raw)).catch((err: unknown) => {
      if (err instanceof PgProtocolError) {
        log.info({ code: err.code }, `direct client refused: ${err.message}`);
      } else {
        log.debug({ err }, 'direct client dropped');
      }
      raw.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    throw new Error(`cannot listen on ${o.host}:${o.port} (listeners.postgres): ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  });
  const sweep = setInterval(() => void o.store.deleteExpiredDirectCredentials(new Date(Date.now() - 86_400_000)).catch(() => undefined), 600_000);
  sweep.unref();
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      clearInterval(sweep);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** One client, from its first byte to the engine (or a refusal). */
async function serve(raw: Socket, o: DirectListenerOptions, context: SecureContext, log: Logger, admitted: () => void): Promise<void> {
  // A client that is not admitted in time is refused, as PostgreSQL's authentication_timeout does;
  // it is told why on whichever layer it speaks by then (none while TLS is half done).
  let secure: TLSSocket | undefined;
  let handshaking = false;
  const timer = setTimeout(() => {
    log.info({ timeoutMs: o.authenticationTimeoutMs }, 'direct client refused: not authenticated in time');
    const refusal = encodeErrorResponse({ severity: 'FATAL', sqlstate: '08P01', message: `the client did not authenticate within ${o.authenticationTimeoutMs} ms (limits.authenticationTimeoutMs)` });
    const layer = secure ?? (handshaking ? undefined : raw);
    if (layer !== undefined) layer.end(refusal);
    // Whatever it answered, the slot is given back now and the socket goes soon after.
    admitted();
    setTimeout(() => raw.destroy(), 1_000).unref();
    if (layer === undefined) raw.destroy();
  }, o.authenticationTimeoutMs);
  try {
    const tls = await negotiate(raw, o, context, log, (h) => (handshaking = h));
    secure = tls;
    if (tls !== undefined) await authenticate(tls, raw, o, log, () => {
      clearTimeout(timer);
      admitted();
    });
  } finally {
    clearTimeout(timer);
  }
}

/** Reads the plaintext part: the TLS socket once TLS is up, or undefined when the client is done (a cancel, a refusal). */
async function negotiate(raw: Socket, o: DirectListenerOptions, context: SecureContext, log: Logger, handshaking: (on: boolean) => void): Promise<TLSSocket | undefined> {
  const reader = new MessageReader(raw);
  for (let negotiations = 0; negotiations < 3; negotiations++) {
    if ((await reader.need(1))[0] === TLS_HANDSHAKE) {
      raw.unshift(reader.release());
      handshaking(true);
      return startTls(raw, context, true);
    }
    const { body } = await reader.untyped();
    const code = body.readInt32BE(0);
    if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
      // Bytes sent before the answer would be read in clear across the TLS switch: refused, as PostgreSQL does.
      if (reader.pending > 0) throw new PgProtocolError('malformed', 'unexpected data after SSLRequest');
      if (code === GSSENC_REQUEST_CODE) {
        raw.write('N');
        continue;
      }
      reader.release();
      raw.write('S');
      handshaking(true);
      return startTls(raw, context, false);
    }
    if (code === CANCEL_REQUEST_CODE) {
      // libpq's PQcancel (psql's Ctrl-C) sends its CancelRequest unencrypted, like PostgreSQL accepts it.
      await cancel(body, o, log);
      raw.end();
      return undefined;
    }
    decodeFirstMessage(body);
    log.info('direct client refused: plaintext startup');
    raw.end(encodeErrorResponse({ severity: 'FATAL', sqlstate: '28000', message: NEEDS_TLS }));
    return undefined;
  }
  throw new PgProtocolError('malformed', 'too many encryption requests before the startup packet');
}

async function startTls(raw: Socket, secureContext: SecureContext, direct: boolean): Promise<TLSSocket> {
  const tls = new TLSSocket(raw, { isServer: true, secureContext, ALPNProtocols: ['postgresql'] });
  await new Promise<void>((resolve, reject) => {
    tls.once('secure', resolve);
    tls.once('error', reject);
  });
  // PostgreSQL 17 accepts direct TLS only with ALPN `postgresql`, so that the connection cannot be
  // a cross-protocol attack from a client that meant another service.
  if (direct && tls.alpnProtocol !== 'postgresql') {
    tls.destroy();
    throw new PgProtocolError('malformed', 'direct TLS without ALPN "postgresql"');
  }
  tls.on('error', () => undefined);
  return tls;
}

async function cancel(body: Buffer, o: DirectListenerOptions, log: Logger): Promise<void> {
  const m = decodeFirstMessage(body);
  if (m.kind === 'cancel') await postgresEngine().cancelByKey(m.pid, m.secret, { log, timeoutMs: o.connectTimeoutMs });
}

/** Inside TLS: the StartupMessage (or a CancelRequest), the password, admission, then the engine. */
async function authenticate(tls: TLSSocket, raw: Socket, o: DirectListenerOptions, log: Logger, started: () => void): Promise<void> {
  const reader = new MessageReader(tls);
  const { body } = await reader.untyped();
  const m = decodeFirstMessage(body);
  if (m.kind === 'cancel') {
    await cancel(body, o, log);
    tls.end();
    return;
  }
  if (m.kind !== 'startup') throw new PgProtocolError('malformed', 'an encryption request inside TLS');
  const fatal = (sqlstate: string, message: string): void => void tls.end(encodeErrorResponse({ severity: 'FATAL', sqlstate, message }));
  const name = m.params.get('user') ?? '';
  if (name === '') return fatal('28000', 'no user name in the startup packet: the user name is the Sluice connection\'s name (run `sluice dsn NAME`)');
  tls.write(encodeCleartextPasswordRequest());
  const password = await reader.password();

  let holder: CredentialHolder | undefined;
  const caller: Caller = {
    clientAddress: raw.remoteAddress ?? 'unknown',
    async identify() {
      holder = await checkCredential(o.store, password, name);
      return holder.identity;
    },
    serviceTokenHash: () => holder?.tokenHash,
    directCredentialId: () => holder?.id,
  };
  const refuse: Refuse = (status: number, _code: ErrorCode, message: string) => fatal(SQLSTATE_OF[status] ?? 'XX000', message);
  const admitted = await o.admit(caller, name, refuse, { kind: 'direct', origin: 'direct', purpose: 'session', auditRefusals: { protocol: 'postgres', code: (status) => SQLSTATE_OF[status] ?? 'XX000' } });
  if (admitted === undefined) return;
  const { connection } = admitted;
  if (connection.type !== 'postgres') {
    // Credentials are issued for PostgreSQL connections only: this one changed type since.
    const message = `connection "${name}" is not a PostgreSQL connection: use \`sluice connect ${name}\``;
    admitted.context.audit.onSessionStart({ target: '', clientUser: name });
    admitted.context.audit.onSessionEnd({ status: 'error', code: '28000', message, bytesFromClient: 0, bytesToClient: 0 });
    admitted.done();
    return fatal('28000', message);
  }
  // libpq's default database is the user name, i.e. the connection's: that means its own database.
  const params = [...m.params].filter(([k, v]) => !(k === 'database' && v === name && !connection.databases.includes(v) && connection.target.database !== v));
  const startup = encodeStartup((m.major << 16) | m.minor, params);
  tls.unshift(Buffer.concat([startup, reader.release()]));
  // From here the session is the engine's: its own timeouts apply, and the gateway's shutdown
  // ends it through the admission's signal (with a FATAL) rather than by destroying the socket.
  started();
  // release() paused the stream; the engine reads with a 'data' listener, which does not undo an
  // explicit pause. It attaches that listener synchronously, before the resumed flow's first tick.
  tls.resume();
  try {
    await engineFor(connection).handle(tls, { ...admitted.context, keyOnlyCancel: true }, admitted.signal);
  } finally {
    admitted.done();
    tls.destroy();
  }
}
