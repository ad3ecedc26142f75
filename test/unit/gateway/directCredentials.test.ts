// Direct-listener credentials against a real (in-memory SQLite) store: what is stored, and every
// way a presented password is refused, with the message the client will read.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkCredential, hashCredential, issueCredential } from '../../../gateway/direct/credentials.js';
import { AuthError } from '../../../gateway/auth/authenticate.js';
import { hashServiceToken } from '../../../gateway/auth/serviceTokens.js';
import type { Identity } from '../../../gateway/model.js';
import { openSqliteStore } from '../../../gateway/store/sqlite.js';
import type { Store } from '../../../gateway/store/types.js';

const ALICE: Identity = { subject: 'user:alice', name: 'alice@example.com', email: 'alice@example.com', groups: ['eng'], kind: 'human', expiresAt: 1 };
let store: Store;

beforeEach(() => {
  store = openSqliteStore(':memory:');
});
afterEach(async () => {
  await store.close();
});

const refusal = async (p: Promise<unknown>) => {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AuthError);
  return err as AuthError;
};

describe('direct credentials', () => {
  it('stores only the hash, and gives back the identity it was issued to (without the bearer token\'s expiry)', async () => {
    const c = await issueCredential(store, ALICE, 'pg-prod', 60_000, undefined);
    expect(c.password).toMatch(/^slp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    const rec = await store.findDirectCredential(c.id);
    expect(rec?.hash).toBe(hashCredential(c.password));
    expect(JSON.stringify(rec)).not.toContain(c.password.slice(-43));
    const holder = await checkCredential(store, c.password, 'pg-prod');
    expect(holder.identity).toEqual({ subject: 'user:alice', name: 'alice@example.com', email: 'alice@example.com', groups: ['eng'], kind: 'human' });
  });

  it('refuses garbage, a tampered secret, an expired, a revoked and another connection\'s password', async () => {
    const c = await issueCredential(store, ALICE, 'pg-prod', 60_000, undefined);
    for (const bad of ['', 'hunter2', `${c.password}x`, c.password.slice(0, -1) + (c.password.endsWith('A') ? 'B' : 'A')]) {
      const e = await refusal(checkCredential(store, bad, 'pg-prod'));
      expect(e.status).toBe(401);
      expect(e.message).toContain('run `sluice dsn pg-prod` again');
      expect(e.message).not.toContain(bad || '\0');
    }
    const wrong = await refusal(checkCredential(store, c.password, 'pg-other'));
    expect(wrong.status).toBe(403);
    expect(wrong.message).toContain('issued for connection "pg-prod", not "pg-other"');
    const expired = await refusal(checkCredential(store, c.password, 'pg-prod', Date.now() + 61_000));
    expect(expired.code).toBe('token_expired');
    expect(await store.revokeDirectCredential(c.id, ALICE.subject)).toBe(true);
    const revoked = await refusal(checkCredential(store, c.password, 'pg-prod'));
    expect(revoked.code).toBe('token_revoked');
  });

  it('a service token\'s credential dies with the token', async () => {
    await store.createServiceToken({ name: 'ci', hash: hashServiceToken('slc_x'), groups: ['eng'], expiresAt: null });
    const ci: Identity = { subject: 'token:ci', name: 'ci', groups: ['eng'], kind: 'service' };
    const c = await issueCredential(store, ci, 'pg-prod', 60_000, hashServiceToken('slc_x'));
    expect((await checkCredential(store, c.password, 'pg-prod')).tokenHash).toBe(hashServiceToken('slc_x'));
    await store.revokeServiceToken('ci');
    const e = await refusal(checkCredential(store, c.password, 'pg-prod'));
    expect(e.message).toContain('the service token "ci" this credential was issued to was revoked');
  });
});
