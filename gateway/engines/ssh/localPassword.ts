// The one-time local password of `sluice connect --local-password` for ssh: the CLI sends only
// its SHA-256 with the tunnel request, and the gateway's ssh server (the one end that sees the
// local client's login) accepts a `password` login whose digest matches, and no other method.
import { createHash, timingSafeEqual } from 'node:crypto';

/** Whether `password` is the one whose SHA-256 is `digest`, compared in constant time. */
export function localPasswordMatches(digest: Buffer, password: string): boolean {
  const given = createHash('sha256').update(password, 'utf8').digest();
  return given.length === digest.length && timingSafeEqual(given, digest);
}

/** How many wrong passwords one connection may try before the gateway ends it (OpenSSH asks three times). */
export const LOCAL_PASSWORD_ATTEMPTS = 3;
