// Who asks the gateway to open a session (admitSession in server.ts), however they presented
// themselves: an HTTP request's bearer token (a tunnel, an exec) or a direct listener's password.
import type { IncomingMessage } from 'node:http';
import type { Authenticator } from './auth/authenticate.js';
import { bearerServiceTokenHash } from './auth/serviceTokens.js';
import type { Identity } from './model.js';

/**
 * Who asks to open a session, however they presented themselves: an HTTP request's bearer token,
 * or a direct listener's password.
 */
export interface Caller {
  readonly clientAddress: string;
  /** The caller's identity. @throws AuthError when the credential is refused. */
  identify(): Promise<Identity>;
  /** After identify(): the SHA-256 of the service token whose revocation must end the session. */
  serviceTokenHash(): string | undefined;
  /** After identify(): the id of the direct credential (docs/direct.md) whose revocation must end the session. */
  directCredentialId?(): string | undefined;
}

/** The Caller of an HTTP request (a tunnel upgrade, an exec). */
export function httpCaller(req: IncomingMessage, authenticate: Authenticator): Caller {
  let kind: Identity['kind'] | undefined;
  return {
    clientAddress: req.socket.remoteAddress ?? 'unknown',
    async identify() {
      const who = await authenticate(req.headers.authorization);
      kind = who.kind;
      return who;
    },
    serviceTokenHash: () => (kind === 'service' ? bearerServiceTokenHash(req.headers.authorization) : undefined),
  };
}
