// Gateway-issued service tokens for automation (`slc_…`). The value is shown once; only its
// SHA-256 is stored, so a copy of the store grants nothing.
import { createHash, randomBytes } from 'node:crypto';
import type { Store } from '../store/types.js';
import { parseDuration as parseProductDuration } from '../../src/duration.js';

export const SERVICE_TOKEN_PREFIX = 'slc_';

export function hashServiceToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** The SHA-256 of the service token in an Authorization header that has already authenticated. */
export function bearerServiceTokenHash(authorization: string | undefined): string {
  return hashServiceToken(/^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1] ?? '');
}

/** Creates a token and returns its value (the only time it exists outside the caller's hands). */
export async function createServiceToken(store: Store, t: { name: string; groups: string[]; ttlMs: number | null }, now = Date.now()): Promise<string> {
  // 32 random bytes: a 256-bit secret, base64url so it survives shells and headers unquoted.
  const token = SERVICE_TOKEN_PREFIX + randomBytes(32).toString('base64url');
  await store.createServiceToken({
    name: t.name,
    hash: hashServiceToken(token),
    groups: t.groups,
    expiresAt: t.ttlMs === null ? null : new Date(now + t.ttlMs),
  });
  return token;
}

/** `--ttl`: a duration in the product's one syntax (src/duration.ts), e.g. `90d`, or `never`; returns ms (null for never). */
export function parseDuration(text: string): number | null {
  if (text === 'never') return null;
  const ms = parseProductDuration(text);
  if (ms === undefined) throw new Error(`invalid duration "${text}": expected a number and a unit (s, m, h, d, w), e.g. 90d, or "never"`);
  if (ms <= 0) throw new Error(`invalid duration "${text}": must be greater than zero`);
  return ms;
}
