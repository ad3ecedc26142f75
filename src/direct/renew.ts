// Keeps a direct-listener credential valid while a command runs (`sluice connect --direct`): the
// command's environment holds one password for its whole life, so instead of a new password the
// gateway moves the same one's expiry forward, each time half of its lifetime has passed.
import type { CredentialExpiry, DirectCredential } from '../api/contract.js';
import type { Clock } from '../factory.js';

/** A failed renewal is retried this soon (while the credential is still valid). */
const RETRY_MS = 5_000;

/** Renews `c` until `signal` aborts; `warn` hears of failed renewals. Resolves once stopped. */
export async function keepRenewed(
  c: DirectCredential,
  renew: (id: string) => Promise<CredentialExpiry>,
  clock: Clock,
  signal: AbortSignal,
  warn: (message: string) => void,
): Promise<void> {
  const issuedAt = clock.now();
  let expiresAt = Date.parse(c.expiresAt);
  const lifetime = Math.max(1_000, expiresAt - issuedAt);
  let wait = lifetime / 2;
  while (!signal.aborted) {
    try {
      await clock.sleep(wait, signal);
    } catch {
      return;
    }
    try {
      expiresAt = Date.parse((await renew(c.id)).expiresAt);
      wait = lifetime / 2;
    } catch (err) {
      const left = expiresAt - clock.now();
      warn(`could not renew the credential (${(err as Error).message}); ${left > 0 ? `it expires in ${Math.ceil(left / 1000)} s` : 'it has expired: new connections will be refused'}`);
      wait = Math.max(250, Math.min(RETRY_MS, left / 2));
    }
  }
}
