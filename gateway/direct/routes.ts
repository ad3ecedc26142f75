// The credentials' HTTP API (docs/direct.md): `POST /v1/connections/NAME/credentials` issues a
// short-lived password for the direct PostgreSQL listener, `POST /v1/credentials/ID/renew` gives
// a still-valid one a full lifetime again, `POST /v1/credentials/ID/revoke` ends it. Only the
// identity a credential was issued to may renew or revoke it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { CredentialExpiry, DirectCredential } from '../../src/api/contract.js';
import type { Authenticator } from '../auth/authenticate.js';
import { bearerServiceTokenHash } from '../auth/serviceTokens.js';
import { authenticateOrRefuse, sendError, sendJson } from '../http.js';
import type { Connection, Identity } from '../model.js';
import type { Store } from '../store/types.js';
import { issueCredential } from './credentials.js';

export interface CredentialRoutesDeps {
  readonly store: Store;
  readonly authenticate: Authenticator;
  readonly log: Logger;
  readonly ttlMs: number;
  /** Where clients reach the direct listener (host as in the gateway's URL); undefined: no listener. */
  readonly listener: () => { host: string; port: number } | undefined;
  /** The named connection if `who` may use it, else the refusal (as the rest of the API answers it). */
  readonly findAllowed: (name: string, who: Identity) => { connection: Connection } | { refusal: { status: 403 | 404; code: 'forbidden' | 'not_found'; message: string } };
}

const issuePath = /^\/v1\/connections\/([^/]+)\/credentials$/;
const ownPath = /^\/v1\/credentials\/([^/]+)\/(renew|revoke)$/;

/** Returns a handler that answers the credential paths and returns false for others. */
export function createCredentialRoutes(deps: CredentialRoutesDeps): (req: IncomingMessage, res: ServerResponse, path: string) => Promise<boolean> {
  return async (req, res, path) => {
    const issue = issuePath.exec(path);
    const own = ownPath.exec(path);
    if (!issue && !own) return false;
    if (req.method !== 'POST') {
      sendJson(res, 405, { error: { code: 'bad_request', message: `${req.method} is not supported on ${path}; use POST` } }, { allow: 'POST' });
      return true;
    }
    // The request carries no body worth reading; drain it so the connection can be reused.
    req.resume();
    const who = await authenticateOrRefuse(deps.authenticate, req, res, deps.log);
    if (who === undefined) return true;
    if (issue) await issueFor(decodeURIComponent(issue[1] as string), who, req, res, deps);
    else if (own) await manage(decodeURIComponent(own[1] as string), own[2] as 'renew' | 'revoke', who, res, deps);
    return true;
  };
}

async function issueFor(name: string, who: Identity, req: IncomingMessage, res: ServerResponse, deps: CredentialRoutesDeps): Promise<void> {
  const found = deps.findAllowed(name, who);
  if ('refusal' in found) return sendError(res, found.refusal.status, found.refusal.code, found.refusal.message);
  const { connection } = found;
  if (connection.type !== 'postgres') return sendError(res, 400, 'bad_request', `connection "${name}" is ${connection.type}: direct mode serves PostgreSQL connections; use \`sluice connect ${name}\``);
  const listener = deps.listener();
  if (listener === undefined) return sendError(res, 404, 'not_found', `this gateway has no direct PostgreSQL listener (listeners.postgres is not set); use \`sluice connect ${name}\``);
  const tokenHash = who.kind === 'service' ? bearerServiceTokenHash(req.headers.authorization) : undefined;
  const issued = await issueCredential(deps.store, who, name, deps.ttlMs, tokenHash);
  // The id, never the password: the log must not hold a usable credential.
  deps.log.info({ who: who.name, connection: name, credential: issued.id, expiresAt: issued.expiresAt.toISOString() }, 'direct credential issued');
  const body: DirectCredential = {
    id: issued.id,
    connection: name,
    host: listener.host,
    port: listener.port,
    database: connection.target.database,
    user: name,
    password: issued.password,
    expiresAt: issued.expiresAt.toISOString(),
  };
  sendJson(res, 201, body);
}

async function manage(id: string, action: 'renew' | 'revoke', who: Identity, res: ServerResponse, deps: CredentialRoutesDeps): Promise<void> {
  const gone = `you have no ${action === 'renew' ? 'valid ' : ''}credential ${id} (unknown, ${action === 'renew' ? 'expired, ' : ''}revoked, or another identity's); run \`sluice dsn NAME\` for a new one`;
  if (action === 'revoke') {
    if (!(await deps.store.revokeDirectCredential(id, who.subject))) return sendError(res, 404, 'not_found', gone);
    deps.log.info({ who: who.name, credential: id }, 'direct credential revoked');
    return sendJson(res, 200, { id, expiresAt: new Date().toISOString() } satisfies CredentialExpiry);
  }
  const now = new Date();
  const expiresAt = new Date(now.getTime() + deps.ttlMs);
  if (!(await deps.store.renewDirectCredential(id, who.subject, expiresAt, now))) return sendError(res, 404, 'not_found', gone);
  sendJson(res, 200, { id, expiresAt: expiresAt.toISOString() } satisfies CredentialExpiry);
}
