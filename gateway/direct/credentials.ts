// Short-lived passwords for the direct PostgreSQL listener (docs/direct.md). A credential is
// issued to one identity for one connection, lives `ttl` (renewable by its owner while it is
// still valid), and is revocable. The password is `slp_<id>_<secret>`: the id finds the record,
// the SHA-256 of the whole password is compared in constant time, and only that hash is stored,
// so a copy of the store grants nothing. Refusals never echo the password.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthError } from '../auth/authenticate.js';
import type { Identity } from '../model.js';
import type { DirectCredentialRecord, Store } from '../store/types.js';

export const CREDENTIAL_PREFIX = 'slp_';
const SHAPE = /^slp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export function hashCredential(password: string): string {
  return createHash('sha256').update(password).digest('hex');
}

/** What the issuer gets back, once: the password exists nowhere else. */
export interface IssuedCredential {
  readonly id: string;
  readonly password: string;
  readonly expiresAt: Date;
}

/**
 * Issues a credential for `who` on `connection`. `tokenHash`: the SHA-256 of the service token
 * that asked, so that revoking that token ends the sessions the credential opens.
 */
export async function issueCredential(store: Store, who: Identity, connection: string, ttlMs: number, tokenHash: string | undefined, now = Date.now()): Promise<IssuedCredential> {
  const id = randomBytes(8).toString('hex');
  // 32 random bytes: a 256-bit secret; base64url needs no quoting in a libpq string or a URL.
  const password = `${CREDENTIAL_PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
  const expiresAt = new Date(now + ttlMs);
  await store.createDirectCredential({ id, hash: hashCredential(password), subject: who.subject, identity: JSON.stringify(storedIdentity(who)), connection, tokenHash: tokenHash ?? null, expiresAt });
  return { id, password, expiresAt };
}

/** The credential's identity, as authenticated when it was issued. */
export interface CredentialHolder {
  readonly id: string;
  readonly identity: Identity;
  readonly tokenHash: string | undefined;
}

/**
 * A refused password. `owner` is the identity it was issued to when the password is one the
 * gateway issued (its hash matched) but is expired, revoked or for another connection, so the
 * refusal can be recorded under that identity; undefined for a password nobody was issued.
 */
export class CredentialRefused extends AuthError {
  constructor(
    status: 401 | 403,
    code: ConstructorParameters<typeof AuthError>[1],
    message: string,
    readonly owner: Identity | undefined,
  ) {
    super(status, code, message);
  }
}

/**
 * The identity a password was issued to, when it is valid for `connection` now.
 * @throws CredentialRefused (401 for an unknown, expired or revoked password; 403 for another connection's)
 */
export async function checkCredential(store: Store, password: string, connection: string, now = Date.now()): Promise<CredentialHolder> {
  const again = `run \`sluice dsn ${connection}\` again for a new one`;
  const unknown = new CredentialRefused(401, 'invalid_signature', `the password is not a credential this gateway issued (or it was deleted after it expired); ${again}`, undefined);
  const m = SHAPE.exec(password);
  if (!m) throw unknown;
  const rec = await store.findDirectCredential(m[1] as string);
  if (!rec || !sameHash(rec, password)) throw unknown;
  const identity = JSON.parse(rec.identity) as Identity;
  if (rec.revokedAt) throw new CredentialRefused(401, 'token_revoked', `this credential was revoked at ${rec.revokedAt.toISOString()}; ${again}`, identity);
  if (rec.expiresAt.getTime() <= now) throw new CredentialRefused(401, 'token_expired', `this credential expired at ${rec.expiresAt.toISOString()}; ${again}`, identity);
  if (rec.connection !== connection) {
    throw new CredentialRefused(403, 'forbidden', `this credential was issued for connection "${rec.connection}", not "${connection}"; use user=${rec.connection}, or run \`sluice dsn ${connection}\``, identity);
  }
  if (rec.tokenHash !== null) {
    // A credential is worth no more than the service token that asked for it.
    const token = await store.findServiceToken(rec.tokenHash);
    const dead = !token ? 'no longer exists' : token.revokedAt ? `was revoked at ${token.revokedAt.toISOString()}` : token.expiresAt && token.expiresAt.getTime() <= now ? `expired at ${token.expiresAt.toISOString()}` : undefined;
    if (dead !== undefined) throw new CredentialRefused(401, 'token_revoked', `the service token "${identity.name}" this credential was issued to ${dead}`, identity);
  }
  return { id: rec.id, identity, tokenHash: rec.tokenHash ?? undefined };
}

function sameHash(rec: DirectCredentialRecord, password: string): boolean {
  const stored = Buffer.from(rec.hash, 'hex');
  const presented = Buffer.from(hashCredential(password), 'hex');
  return stored.length === presented.length && timingSafeEqual(stored, presented);
}

function storedIdentity(who: Identity): Identity {
  // The bearer token's own expiry does not carry over: the credential has its own.
  return { subject: who.subject, name: who.name, ...(who.email !== undefined ? { email: who.email } : {}), groups: [...who.groups], kind: who.kind };
}
