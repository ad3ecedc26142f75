// The gateway as commands see it: one object bound to an endpoint and a credential source, so a
// command asks `gateway.connections()` and never handles tokens. A refused SLUICE_TOKEN is
// reported as that variable's problem, since the user may not know it is set.
import type { CredentialSource } from '../auth/credentials.js';
import { AuthError } from '../errors.js';
import { createAuditClient, type SessionQuery } from './audit.js';
import { createGatewayClient, requestJson, sendRequest } from './client.js';
import { credentialExpiry, directCredential, paths } from './contract.js';
import type { AuthConfig, ConnectionInfo, ConnectionList, CredentialExpiry, DirectCredential, Me, ReviewInfo, SessionDetail, SessionList } from './contract.js';
import type { Endpoint } from './endpoint.js';
import { createReviewsClient } from './reviews.js';

export interface ReviewsApi {
  list(opts: { all: boolean }): Promise<ReviewInfo[]>;
  get(id: string): Promise<ReviewInfo>;
  approve(id: string, reason?: string): Promise<ReviewInfo>;
  reject(id: string, reason: string): Promise<ReviewInfo>;
}

export interface AuditApi {
  sessions(q: SessionQuery): Promise<SessionList>;
  session(id: string): Promise<SessionDetail>;
  exportTrail(scope: { session?: string; since?: string }): Promise<AsyncIterable<Uint8Array>>;
  /** Needs no token: anyone may fetch the key that verifies the trail. */
  publicKey(): Promise<string>;
}

/** Short-lived passwords for the gateway's direct PostgreSQL listener (docs/direct.md). */
export interface DirectCredentialsApi {
  issue(connection: string): Promise<DirectCredential>;
  renew(id: string): Promise<CredentialExpiry>;
  revoke(id: string): Promise<void>;
}

export interface Gateway {
  /** Normalised base URL. */
  readonly url: string;
  /** For the tunnel (dispatcher) and the identity provider (fetch with the gateway's CA). */
  readonly endpoint: Endpoint;
  readonly credentials: CredentialSource;
  authConfig(): Promise<AuthConfig>;
  /** Who the gateway says the caller is; `token` checks a token not yet stored (login). */
  me(token?: string): Promise<Me>;
  connections(): Promise<ConnectionList>;
  /** One connection: the gateway tells 403 (not yours) apart from 404 (no such). */
  connection(name: string): Promise<ConnectionInfo>;
  readonly reviews: ReviewsApi;
  readonly audit: AuditApi;
  readonly direct: DirectCredentialsApi;
}

export function bindGateway(endpoint: Endpoint, credentials: CredentialSource): Gateway {
  const api = createGatewayClient(endpoint);
  const reviews = createReviewsClient(endpoint);
  const audit = createAuditClient(endpoint);
  const authed = async <T>(call: (token: string) => Promise<T>): Promise<T> => {
    const token = await credentials.token();
    try {
      return await call(token);
    } catch (err) {
      throw explainRefusal(err, credentials);
    }
  };
  return {
    url: endpoint.url,
    endpoint,
    credentials,
    authConfig: () => api.authConfig(),
    me: (token) => (token !== undefined ? api.me(token) : authed((t) => api.me(t))),
    connections: () => authed((t) => api.connections(t)),
    connection: (name) => authed((t) => api.connection(t, name)),
    reviews: {
      list: (opts) => authed((t) => reviews.list(t, opts)),
      get: (id) => authed((t) => reviews.get(t, id)),
      approve: (id, reason) => authed((t) => reviews.approve(t, id, reason)),
      reject: (id, reason) => authed((t) => reviews.reject(t, id, reason)),
    },
    audit: {
      sessions: (q) => authed((t) => audit.sessions(t, q)),
      session: (id) => authed((t) => audit.session(t, id)),
      exportTrail: (scope) => authed((t) => audit.exportTrail(t, scope)),
      publicKey: () => audit.publicKey(),
    },
    direct: {
      issue: (name) => authed((t) => requestJson(endpoint, paths.credentials(name), directCredential, { token: t, body: {} })),
      renew: (id) => authed((t) => requestJson(endpoint, paths.credentialRenew(id), credentialExpiry, { token: t, body: {} })),
      revoke: (id) => authed(async (t) => void (await sendRequest(endpoint, paths.credentialRevoke(id), { token: t, body: {} })).body?.cancel()),
    },
  };
}

/**
 * A 401 means the token itself was refused. When it came from SLUICE_TOKEN the user may have
 * forgotten the variable is set (and wonder why their login is ignored): name it, and say what to do.
 */
export function explainRefusal(err: unknown, credentials: Pick<CredentialSource, 'kind'>): unknown {
  if (err instanceof AuthError && err.status === 401 && credentials.kind === 'env') {
    return new AuthError(`the token in SLUICE_TOKEN was refused: ${err.message}; unset it to use your login, or create a new service token`, 401);
  }
  return err;
}
