// A tunnel's credential stays with the identity it started as, whatever the shared token store
// later holds: adopt the store only for the same subject, else renew in memory, else refuse.
import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../../src/api/endpoint.js';
import type { Me } from '../../../src/api/contract.js';
import { pinCredentials, tokenSubject } from '../../../src/auth/pinnedCredentials.js';
import type { StoredTokens, TokenStore } from '../../../src/auth/tokenStore.js';
import { AuthError } from '../../../src/errors.js';
import type { Io } from '../../../src/io.js';

const URL_ = 'https://gw.test';
const endpoint = { url: URL_ } as Endpoint;
const io = (env: NodeJS.ProcessEnv = {}): Io => ({ stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env });

/** An unsigned JWT-shaped token: only its `sub` matters here. */
const jwt = (sub: string, n: number) => `h.${Buffer.from(JSON.stringify({ sub, n })).toString('base64url')}.s`;
const nowS = () => Math.floor(Date.now() / 1000);
const tokens = (sub: string, n: number, expiresAt = nowS() + 300): StoredTokens => ({ accessToken: jwt(sub, n), refreshToken: `rt-${sub}-${n}`, expiresAt, issuer: 'https://idp', clientId: 'c' });

function memoryStore(initial: StoredTokens): TokenStore & { saves: number; value: StoredTokens | undefined } {
  const s = {
    kind: 'file' as const,
    location: 'memory',
    saves: 0,
    value: initial as StoredTokens | undefined,
    load: () => s.value,
    save: (_g: string, t: StoredTokens) => {
      s.saves++;
      s.value = t;
    },
    remove: () => ((s.value = undefined), true),
  };
  return s;
}

const whoIs = async (token: string): Promise<Me> => {
  const sub = tokenSubject(token) ?? `token:${token}`;
  return { subject: sub, name: sub, email: `${sub}@example.com`, groups: [], kind: 'human' };
};

describe('pinCredentials', () => {
  it('names the service token identity and always returns SLUICE_TOKEN', async () => {
    const pinned = await pinCredentials(io({ SLUICE_TOKEN: 'svc' }), endpoint, { whoIs, store: () => Promise.reject(new Error('no store expected')) });
    expect(pinned.kind).toBe('env');
    expect(pinned.identity.label).toBe('token:svc@example.com');
    expect(await pinned.token()).toBe('svc');
  });

  it('keeps its own token while fresh, even after another user logs in', async () => {
    const store = memoryStore(tokens('alice', 1));
    const pinned = await pinCredentials(io(), endpoint, { store: async () => store, whoIs, refresh: () => Promise.reject(new Error('no refresh expected')) });
    expect(pinned.identity).toEqual({ subject: 'alice', label: 'alice@example.com' });
    store.value = tokens('bob', 1);
    expect(tokenSubject(await pinned.token())).toBe('alice');
  });

  it('renews in memory, without touching the store, when the store holds another user', async () => {
    const store = memoryStore(tokens('alice', 1));
    let clock = Date.now();
    const refreshed: StoredTokens[] = [];
    const refresh = async (t: StoredTokens) => (refreshed.push(t), tokens(tokenSubject(t.accessToken) as string, 2, Math.floor(clock / 1000) + 300));
    const pinned = await pinCredentials(io(), endpoint, { store: async () => store, whoIs, refresh, now: () => clock });
    const bob = tokens('bob', 1);
    store.value = bob;
    clock += 3600_000;
    const t = await pinned.token();
    expect(tokenSubject(t)).toBe('alice');
    expect(refreshed.map((r) => r.refreshToken)).toEqual(['rt-alice-1']);
    expect(store.value).toBe(bob);
    expect(store.saves).toBe(0);
  });

  it('adopts a stored login of the same subject (renewed elsewhere) instead of its stale refresh token', async () => {
    const store = memoryStore(tokens('alice', 1));
    let clock = Date.now();
    const pinned = await pinCredentials(io(), endpoint, { store: async () => store, whoIs, now: () => clock, refresh: () => Promise.reject(new Error('rotated away')) });
    clock += 3600_000;
    const renewed = tokens('alice', 7, Math.floor(clock / 1000) + 300);
    store.value = renewed;
    expect(await pinned.token()).toBe(renewed.accessToken);
  });

  it('renews the stored login of the same subject and writes it back', async () => {
    const store = memoryStore(tokens('alice', 1));
    let clock = Date.now();
    const refresh = async () => tokens('alice', 2, Math.floor(clock / 1000) + 300);
    const pinned = await pinCredentials(io(), endpoint, { store: async () => store, whoIs, refresh, now: () => clock });
    clock += 3600_000;
    expect(tokenSubject(await pinned.token())).toBe('alice');
    expect(store.saves).toBe(1);
    expect(store.value?.refreshToken).toBe('rt-alice-2');
  });

  it('refuses, naming the identity, when its login cannot be renewed: never switches', async () => {
    const store = memoryStore(tokens('alice', 1));
    let clock = Date.now();
    const pinned = await pinCredentials(io(), endpoint, { store: async () => store, whoIs, now: () => clock, refresh: () => Promise.reject(new Error('invalid_grant')) });
    store.value = tokens('bob', 1, Math.floor(clock / 1000) + 99_999);
    clock += 3600_000;
    const err = await pinned.token().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect((err as Error).message).toMatch(/connects as alice@example\.com.*restart `sluice connect`/);
  });

  it('reads the subject of JWTs only', () => {
    expect(tokenSubject(jwt('x', 1))).toBe('x');
    expect(tokenSubject('opaque')).toBeUndefined();
    expect(tokenSubject('a.!!!.c')).toBeUndefined();
  });
});
