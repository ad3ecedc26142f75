// The gateway process: one HTTP(S) server carrying the JSON API, the embedded dev IdP (when
// configured) and the tunnel upgrades that hand client streams to protocol engines.
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Agent, fetch as undiciFetch } from 'undici';
import { LOCAL_PASSWORD_HEADER, paths, PURPOSE_HEADER, SESSION_HEADER, TUNNEL_PROTOCOL, type AuthConfig, type ConnectionInfo, type ErrorCode, type Me } from '../src/api/contract.js';
import { AuthError, createAuthenticator, type Authenticator } from './auth/authenticate.js';
import type { GatewayConfig } from './config/load.js';
import { createDevIdp, type DevIdp } from './dev/idp.js';
import { engineEntryFor, engineFor, useStateDir } from './engines/registry.js';
import type { Connection, Identity } from './model.js';
import type { SessionContext, SessionTermination } from './engines/types.js';
import type { GatewaySessionAudit } from './sessionAudit.js';
import { createExecRoute } from './exec/routes.js';
import { authenticateOrRefuse, refuseUpgrade, sendError, sendJson } from './http.js';
import { createAuditRoutes } from './audit/routes.js';
import { startAudit, type AuditService } from './audit/service.js';
import { createReviewRoutes } from './reviews/routes.js';
import { createWebhookNotifier } from './reviews/notify.js';
import { createReviewService, type ReviewService } from './reviews/service.js';
import { openStore } from './store/open.js';
import type { Store } from './store/types.js';
import { loadTls, type TlsMaterial } from './tls.js';
import { parseLocalPasswordDigest, tunnelOrigin } from './clientText.js';
import { RevocationWatch, SessionLimiter } from './tunnelLimits.js';
import { httpCaller, type Caller } from './caller.js';
import { startDirectListener, type DirectListener } from './direct/listener.js';
import { CredentialRefused } from './direct/credentials.js';
import { UpstreamSpares, type SpareOwner } from './engines/postgres/upstreamSpares.js';
import { createCredentialRoutes } from './direct/routes.js';

export interface Gateway {
  /** The URL clients use (with the real port when `listen` asked for port 0). */
  readonly url: string;
  readonly tls: TlsMaterial | undefined;
  readonly store: Store;
  readonly audit: AuditService;
  readonly reviews: ReviewService;
  readonly devIdp: DevIdp | undefined;
  /** The direct PostgreSQL listener's port (listeners.postgres), when it is on. */
  readonly directPort: number | undefined;
  close(): Promise<void>;
}

const DEV_IDP_PREFIX = '/dev-idp';

/** Refuses a session before it starts: an HTTP error on a response or on an upgrade's socket. */
export type Refuse = (status: number, code: ErrorCode, message: string) => void;

/** How a session asks to be admitted (admitSession in startGateway). */
export interface AdmitOptions {
  readonly kind: 'tunnel' | 'exec' | 'direct';
  readonly origin: string | undefined;
  readonly purpose: 'session' | 'cancel';
  /** Record refused logins in the audit trail, with this protocol and the code `code(status)` for an HTTP-style status. */
  readonly auditRefusals?: { readonly protocol: string; readonly code: (status: number) => string };
}

/** Who a refused login is recorded as when its credential names nobody (an unknown password). */
const UNAUTHENTICATED: Identity = Object.freeze({ subject: 'unauthenticated', name: 'unauthenticated', groups: [], kind: 'human' });

/** A session the gateway admitted (see admitSession in startGateway). */
export interface Admission {
  readonly id: string;
  readonly who: Identity;
  readonly connection: Connection;
  /** Aborted by the gateway's shutdown, or with a SessionTermination when its credential (service token, direct password) is revoked. */
  readonly signal: AbortSignal;
  /** The engine's context for the session (its audit session is open, not yet started). */
  readonly context: SessionContext<GatewaySessionAudit>;
  /** Whom a backend opened for this session may serve again (exec's spares: upstreamSpares.ts). */
  readonly owner: SpareOwner;
  /** Gives back the session's slot and stops watching its token (idempotent). */
  done(): void;
}

export async function startGateway(config: GatewayConfig, log: Logger): Promise<Gateway> {
  const tls = config.tls === false ? undefined : await loadTls(config.tls, config.stateDir, [config.listen.host]);
  useStateDir(config.stateDir);
  const store = await openStore(config.store, config.audit.durability);
  let audit: AuditService;
  try {
    audit = await startAudit({ store, ingestThread: config.store, settings: config.audit, log });
  } catch (err) {
    await store.close();
    throw err;
  }
  const { limits } = config;
  // A client must finish TLS and its request headers within headersTimeoutMs, and the rest of the
  // request within requestTimeoutMs (Node's defaults, 120 s for the TLS handshake and 60 s for the
  // headers checked only every 30 s, let a silent client hold a socket for minutes). Neither
  // applies once a tunnel is upgraded: Node stops tracking the socket as an HTTP request then.
  const timeouts = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs),
    connectionsCheckingInterval: Math.min(1_000, Math.max(50, Math.floor(limits.headersTimeoutMs / 4))),
  };
  const server: Server = tls ? createHttpsServer({ cert: tls.cert, key: tls.key, handshakeTimeout: limits.headersTimeoutMs, ...timeouts }) : createHttpServer(timeouts);
  server.keepAliveTimeout = 5_000;

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.listen.port, config.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await audit.close();
    await store.close();
    throw new Error(`cannot listen on ${config.listen.host}:${config.listen.port}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  // Listening starts before the routes exist (the dev IdP needs the real port): a request that
  // arrives meanwhile would otherwise never be answered.
  const starting = (_req: IncomingMessage, res: ServerResponse) => sendError(res, 503, 'unavailable', 'the gateway is starting; retry');
  const startingUpgrade = (_req: IncomingMessage, socket: Duplex) => refuseUpgrade(socket, 503, 'unavailable', 'the gateway is starting; retry');
  server.on('request', starting);
  server.on('upgrade', startingUpgrade);
  const port = (server.address() as AddressInfo).port;
  const url = config.listen.port === 0 ? config.url.replace(/:0$/, `:${port}`) : config.url;

  let devIdp: DevIdp | undefined;
  let issuer: string;
  if (config.identity.kind === 'dev') {
    issuer = `${url}${DEV_IDP_PREFIX}`;
    devIdp = await createDevIdp({
      issuer,
      audience: config.identity.audience,
      clientId: config.identity.clientId,
      users: config.identity.users.map((u) => ({ ...u, groups: [...u.groups] })),
      accessTokenTtlSeconds: config.identity.accessTokenTtlSeconds,
      stateDir: config.stateDir,
      logger: log.child({ component: 'dev-idp' }),
    });
  } else {
    issuer = config.identity.issuer;
  }

  // The embedded IdP is reached over this very server; trust exactly our own certificate.
  const selfFetch = tls && devIdp ? ownCaFetch(tls.cert) : undefined;
  const authenticate = createAuthenticator({
    issuer,
    audience: config.identity.audience,
    groupsClaim: config.identity.groupsClaim,
    store,
    ...(selfFetch ? { fetch: selfFetch } : {}),
  });
  const authConfig: AuthConfig = {
    issuer,
    clientId: config.identity.clientId,
    audience: config.identity.audience,
    scopes: [...config.identity.scopes],
    ...(config.identity.kind === 'oidc' && config.identity.audienceParameter ? { audienceParameter: config.identity.audienceParameter } : {}),
  };
  const tunnels = new Set<AbortController>();
  const sessionLimiter = new SessionLimiter(limits.sessionsPerIdentity);
  const revocations = new RevocationWatch(store, limits.revocationCheckMs, log);
  const auditRoutes = createAuditRoutes({ audit, store, authenticate, log, url });
  const reviews = createReviewService({
    log,
    readers: config.audit.readers,
    ...(config.notify ? { onEvent: createWebhookNotifier({ url: config.notify.webhook, log }) } : {}),
  });
  const reviewRoutes = createReviewRoutes({ reviews, authenticate });
  let direct: DirectListener | undefined;
  const clientHost = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const credentialRoutes = createCredentialRoutes({
    store,
    authenticate,
    log,
    ttlMs: config.credentialTtlMs,
    listener: () => (direct !== undefined ? { host: clientHost, port: direct.port } : undefined),
    findAllowed: (name, who) => findAllowed(name, who),
  });
  const spares = new UpstreamSpares({ idleMs: limits.execSpareIdleMs, log: log.child({ component: 'exec-spares' }) });
  const execRoute = createExecRoute({
    spares,
    admit: (req, name, refuse) => admitSession(httpCaller(req, authenticate), name, refuse, { kind: 'exec', origin: 'exec', purpose: 'session' }),
    reviews,
    log,
  });

  server.off('request', starting);
  server.off('upgrade', startingUpgrade);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (devIdp?.handle(req, res)) return;
    void handleApi(req, res).catch((err: unknown) => {
      log.error({ err }, 'request failed');
      if (!res.headersSent) sendError(res, 500, 'internal', 'internal error');
      else res.destroy();
    });
  });

  async function handleApi(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    // Review decisions and exec are the API's only POSTs; their routes check methods themselves.
    if (await reviewRoutes(req, res, path)) return;
    if (await credentialRoutes(req, res, path)) return;
    const exec = /^\/v1\/connections\/([^/]+)\/exec$/.exec(path);
    if (exec) return execRoute(req, res, decodeURIComponent(exec[1] as string));
    if (req.method !== 'GET') return sendError(res, 405, 'bad_request', `${req.method} is not supported on ${path}`);
    if (path === paths.health) return sendJson(res, audit.healthy ? 200 : 503, { status: audit.healthy ? 'ok' : 'degraded', audit: audit.healthy ? 'ok' : 'unavailable' });
    if (path === paths.authConfig) return sendJson(res, 200, authConfig);
    if (await auditRoutes(req, res, path)) return;
    const one = /^\/v1\/connections\/([^/]+)$/.exec(path);
    if (path === paths.me || path === paths.connections || one) {
      const who = await authenticateOrRefuse(authenticate, req, res, log);
      if (who === undefined) return;
      if (path === paths.me) return sendJson(res, 200, toMe(who));
      if (path === paths.connections) return sendJson(res, 200, { connections: config.connections.filter((c) => allowed(c, who)).map(toConnectionInfo) });
      const found = findAllowed(decodeURIComponent(one?.[1] ?? ''), who);
      if ('refusal' in found) return sendError(res, found.refusal.status, found.refusal.code, found.refusal.message);
      return sendJson(res, 200, toConnectionInfo(found.connection));
    }
    if (/^\/v1\/connections\/[^/]+\/tunnel$/.test(path)) return sendError(res, 426, 'upgrade_required', `this endpoint needs "Upgrade: ${TUNNEL_PROTOCOL}"`);
    sendError(res, 404, 'not_found', `no such endpoint: ${path}`);
  }

  /** The named connection if `who` may use it; else the refusal (404 lists what they may use). */
  function findAllowed(name: string, who: Identity): { connection: Connection } | { refusal: { status: 403 | 404; code: 'forbidden' | 'not_found'; message: string } } {
    const connection = config.connections.find((c) => c.name === name);
    if (!connection) {
      const visible = config.connections.filter((c) => allowed(c, who)).map((c) => c.name);
      return { refusal: { status: 404, code: 'not_found', message: `no connection named "${name}"; you may use: ${visible.join(', ') || '(none)'}` } };
    }
    if (!allowed(connection, who)) {
      return { refusal: { status: 403, code: 'forbidden', message: `${who.name} may not use connection "${name}" (it needs one of the groups: ${connection.allow.groups.join(', ')})` } };
    }
    return { connection };
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void handleTunnel(req, socket, head).catch((err: unknown) => {
      log.error({ err }, 'tunnel failed');
      socket.destroy();
    });
  });

  async function handleTunnel(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', (err) => log.debug({ err }, 'tunnel socket error'));
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const m = /^\/v1\/connections\/([^/]+)\/tunnel$/.exec(path);
    if (!m) return refuseUpgrade(socket, 404, 'not_found', `no such endpoint: ${path}`);
    if ((req.headers.upgrade ?? '').toLowerCase() !== TUNNEL_PROTOCOL) {
      return refuseUpgrade(socket, 400, 'bad_request', `unsupported upgrade protocol; expected "${TUNNEL_PROTOCOL}"`);
    }
    const cancelOnly = req.headers[PURPOSE_HEADER] === 'cancel';
    const digest = parseLocalPasswordDigest(req.headers[LOCAL_PASSWORD_HEADER]);
    if (digest === null) return refuseUpgrade(socket, 400, 'bad_request', `invalid ${LOCAL_PASSWORD_HEADER} header: expected "sha256:" and 64 hex digits`);
    const admitted = await admitSession(httpCaller(req, authenticate), decodeURIComponent(m[1] as string), (status, code, message) => refuseUpgrade(socket, status, code, message), {
      kind: 'tunnel',
      origin: tunnelOrigin(req.headers['sluice-origin']),
      purpose: cancelOnly ? 'cancel' : 'session',
    });
    if (admitted === undefined) return;
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${TUNNEL_PROTOCOL}\r\nconnection: Upgrade\r\n${SESSION_HEADER}: ${admitted.id}\r\n\r\n`);
    if (head.length > 0) socket.unshift(head);
    try {
      await engineFor(admitted.connection).handle(socket, { ...admitted.context, ...(cancelOnly ? { cancelOnly } : {}), ...(digest ? { localPasswordDigest: digest } : {}) }, admitted.signal);
    } finally {
      admitted.done();
      socket.destroy();
    }
  }

  /**
   * What every session (a tunnel or an exec) goes through before it starts: authentication, the
   * connection's groups, a writable audit trail, the per-identity session limit. Refusals go to
   * `refuse` (and are logged; one over the limit is recorded as a refused session). Admitted, the
   * session has its audit session, an abort signal that the gateway's shutdown and the revocation
   * of its service token fire, and its slot; `done()` gives them back.
   */
  async function admitSession(caller: Caller, name: string, refuse: Refuse, opts: AdmitOptions): Promise<Admission | undefined> {
    let who: Identity;
    try {
      who = await caller.identify();
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      log.info({ code: err.code }, '%s refused: %s', opts.kind, err.message);
      // The identity a refused direct password was issued to, when it is one the gateway issued.
      recordRefusal(caller, opts, name, err instanceof CredentialRefused ? err.owner : undefined, err.status, err.message);
      refuse(err.status, err.code, err.message);
      return undefined;
    }
    const found = findAllowed(name, who);
    if ('refusal' in found) {
      log.info({ connection: name, who: who.name }, '%s refused: %s', opts.kind, found.refusal.message);
      recordRefusal(caller, opts, name, who, found.refusal.status, found.refusal.message);
      refuse(found.refusal.status, found.refusal.code, found.refusal.message);
      return undefined;
    }
    const { connection } = found;
    // Fail closed: nothing may cross the gateway unrecorded.
    if (!audit.healthy) {
      log.warn({ connection: name, who: who.name }, '%s refused: the audit store cannot be written', opts.kind);
      refuse(503, 'unavailable', 'the gateway cannot write its audit trail right now; new sessions are refused until it can');
      return undefined;
    }
    const { origin } = opts;
    if (origin === undefined) {
      refuse(400, 'bad_request', 'invalid sluice-origin header: expected a short lower-case word such as "connect"');
      return undefined;
    }
    const release = sessionLimiter.acquire(who.subject, opts.purpose);
    const id = `s_${randomBytes(9).toString('base64url')}`;
    if (release === undefined) {
      refuseTooMany(caller, refuse, opts.kind, id, who, connection, origin);
      return undefined;
    }
    const sessionLog = log.child({ session: id, connection: name, who: who.name });
    const { clientAddress } = caller;
    const sessionAudit = audit.openSession({ id, connection: name, protocol: connection.type, identity: who, origin, clientAddress, record: connection.record });
    const abort = new AbortController();
    tunnels.add(abort);
    const tokenHash = who.kind === 'service' ? caller.serviceTokenHash() : undefined;
    const credentialId = caller.directCredentialId?.();
    const end = (why: SessionTermination): void => abort.abort(why);
    const unwatchToken = tokenHash !== undefined ? revocations.watch({ kind: 'token', hash: tokenHash }, who.name, end) : undefined;
    const unwatchDirect = credentialId !== undefined ? revocations.watch({ kind: 'direct', id: credentialId }, who.name, end) : undefined;
    const sessionReviews = reviews.forSession({ sessionId: id, identity: who, connection: name });
    // SessionContext.policy is the SQL policy; an ssh connection's engine reads its own from the connection.
    const policy = connection.type === 'postgres' && connection.policy ? { policy: connection.policy } : {};
    const credential = tokenHash !== undefined ? ({ kind: 'token', hash: tokenHash } as const) : credentialId !== undefined ? ({ kind: 'direct', id: credentialId } as const) : undefined;
    const owner: SpareOwner = {
      subject: who.subject,
      ...(credential !== undefined
        ? { credential: credential.kind === 'token' ? `token:${credential.hash}` : `direct:${credential.id}`, watch: (revoked: () => void) => revocations.watch(credential, who.name, () => revoked()) }
        : {}),
    };
    let done = false;
    return {
      id,
      who,
      connection,
      owner,
      signal: abort.signal,
      context: { id, identity: who, connection, audit: sessionAudit, log: sessionLog, connectTimeoutMs: config.connectTimeoutMs, limits: config.limits, reviews: sessionReviews, ...policy },
      done() {
        if (done) return;
        done = true;
        unwatchToken?.();
        unwatchDirect?.();
        release();
        tunnels.delete(abort);
      },
    };
  }

  /**
   * Records a refused login as a session that ended refused, for callers whose refusals are
   * audited (`opts.auditRefusals`: the direct listener, where a login is a password guess). The
   * identity is the one the credential belongs to when known, else UNAUTHENTICATED; the connection
   * name is the one asked for, cut to PostgreSQL's 63 bytes. Never the password: refusal messages
   * carry none.
   */
  function recordRefusal(caller: Caller, opts: AdmitOptions, name: string, who: Identity | undefined, status: number, message: string): void {
    const audited = opts.auditRefusals;
    if (audited === undefined || !audit.healthy) return;
    const connection = config.connections.find((c) => c.name === name);
    const id = `s_${randomBytes(9).toString('base64url')}`;
    const asked = Buffer.from(name, 'utf8').subarray(0, 63).toString('utf8');
    const refused = audit.openSession({ id, connection: asked, protocol: connection?.type ?? audited.protocol, identity: who ?? UNAUTHENTICATED, origin: opts.origin ?? opts.kind, clientAddress: caller.clientAddress, ...(connection ? { record: connection.record } : {}) });
    refused.onSessionStart({ target: connection ? engineEntryFor(connection).describeTarget(connection) : '', clientUser: asked });
    refused.onSessionEnd({ status: 'error', code: audited.code(status), message, bytesFromClient: 0, bytesToClient: 0 });
  }

  /** 429 for a session over the identity's limit; recorded as a session that ended refused. */
  function refuseTooMany(caller: Caller, refuse: Refuse, kind: string, id: string, who: Identity, connection: Connection, origin: string): void {
    const message = `${who.name} already has ${sessionLimiter.limit} open sessions, the most one identity may hold (limits.sessionsPerIdentity); close one and retry`;
    log.warn({ connection: connection.name, who: who.name }, '%s refused: %s', kind, message);
    const refused = audit.openSession({ id, connection: connection.name, protocol: connection.type, identity: who, origin, clientAddress: caller.clientAddress, record: connection.record });
    const entry = engineEntryFor(connection);
    refused.onSessionStart({ target: entry.describeTarget(connection), clientUser: '' });
    refused.onSessionEnd({ status: 'error', ...(entry.tooManySessionsCode !== undefined ? { code: entry.tooManySessionsCode } : {}), message, bytesFromClient: 0, bytesToClient: 0 });
    refuse(429, 'too_many_sessions', message);
  }

  const directAt = config.listeners.postgres;
  if (directAt !== undefined && tls !== undefined) {
    try {
      direct = await startDirectListener({
        ...directAt,
        tls,
        store,
        log,
        admit: (caller, name, refuse, opts) => admitSession(caller, name, refuse, opts),
        authenticationTimeoutMs: limits.authenticationTimeoutMs,
        unauthenticatedConnections: limits.unauthenticatedConnections,
        connectTimeoutMs: config.connectTimeoutMs,
      });
    } catch (err) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await devIdp?.close();
      await audit.close();
      await store.close();
      throw err;
    }
    log.info({ host: directAt.host, port: direct.port }, 'postgres listener on %s:%d', directAt.host, direct.port);
  }
  log.info({ url, issuer, fingerprint: tls?.fingerprint }, 'sluice-gateway listening');
  return {
    url,
    tls,
    store,
    audit,
    reviews,
    devIdp,
    directPort: direct?.port,
    async close() {
      revocations.close();
      spares.close();
      for (const t of tunnels) t.abort();
      await direct?.close();
      // Held statements fail (cancelled) rather than wait for a decision nobody can make now.
      reviews.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await devIdp?.close();
      await audit.close();
      await store.close();
    },
  };
}

function allowed(c: Connection, who: Identity): boolean {
  return c.allow.groups.some((g) => who.groups.includes(g));
}

function toMe(who: Identity): Me {
  return {
    subject: who.subject,
    name: who.name,
    ...(who.email ? { email: who.email } : {}),
    groups: [...who.groups],
    kind: who.kind,
    ...(who.expiresAt ? { expiresAt: new Date(who.expiresAt * 1000).toISOString() } : {}),
  };
}

function toConnectionInfo(c: Connection): ConnectionInfo {
  return engineEntryFor(c).connectionInfo(c);
}


function ownCaFetch(ca: string): typeof fetch {
  const dispatcher = new Agent({ connect: { ca } });
  return ((input: string | URL, init?: RequestInit) => undiciFetch(input, { ...(init as object), dispatcher })) as unknown as typeof fetch;
}

export type { Authenticator, Caller };
