// The rules behind the gateway's resource limits, without sockets: the `limits:` configuration,
// the per-identity session count, the revocation poll and the escaping of client text.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { clientText, NAME_MAX_CHARS, tunnelOrigin } from '../../../gateway/clientText.js';
import { ConfigError, loadConfig } from '../../../gateway/config/load.js';
import { terminationSqlstate } from '../../../gateway/engines/postgres/context.js';
import { SessionTermination } from '../../../gateway/engines/types.js';
import type { ServiceTokenRecord, Store } from '../../../gateway/store/types.js';
import { RevocationWatch, SessionLimiter } from '../../../gateway/tunnelLimits.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-limits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const identity = `identity: { dev: { users: [{ name: alice, email: alice@example.com, groups: [eng] }] } }\n`;
let n = 0;
const load = (text: string) => {
  const file = join(dir, `gateway-${++n}.yaml`);
  writeFileSync(file, identity + text);
  return loadConfig(file, {});
};

describe('limits configuration', () => {
  it('defaults: 1 MiB messages, 16 MiB binds, 50 sessions per identity, 10 s for headers', () => {
    expect(load('').limits).toEqual({ messageBytes: 1048576, bindBytes: 16777216, sessionsPerIdentity: 50, headersTimeoutMs: 10000, requestTimeoutMs: 30000, revocationCheckMs: 5000, httpHeadersTimeoutMs: 30000, httpIdleTimeoutMs: 300000, authenticationTimeoutMs: 10000, unauthenticatedConnections: 128, execSpareIdleMs: 60000 });
  });

  it('takes sizes in bytes or KiB/MiB and a log file relative to the configuration', () => {
    const cfg = load('limits: { messageBytes: 256KiB, bindBytes: 4194304, sessionsPerIdentity: 3 }\nlog: { file: logs/gateway.log }\n');
    expect(cfg.limits).toMatchObject({ messageBytes: 262144, bindBytes: 4194304, sessionsPerIdentity: 3 });
    expect(cfg.logFile).toBe(join(dir, 'logs/gateway.log'));
  });

  it('names the key of every bad value', () => {
    try {
      load('limits: { messageBytes: 12B, bindBytes: lots, sessionsPerIdentity: 0, typo: 1 }\n');
      throw new Error('expected a ConfigError');
    } catch (err) {
      const problems = (err as ConfigError).problems.join('\n');
      expect(problems).toMatch(/limits\.messageBytes: expected between 1KiB and 1024MiB/);
      expect(problems).toMatch(/limits\.bindBytes: /);
      expect(problems).toMatch(/limits\.sessionsPerIdentity: /);
      expect(problems).toMatch(/limits: unknown key "typo"/);
    }
  });
});

describe('SessionLimiter', () => {
  it('counts per subject, refuses past the limit, and releases each slot once', () => {
    const l = new SessionLimiter(2);
    const a1 = l.acquire('a');
    const a2 = l.acquire('a');
    expect(a1 && a2).toBeTruthy();
    expect(l.acquire('a')).toBeUndefined();
    expect(l.acquire('b')).toBeDefined();
    a1!();
    a1!(); // a second release must not free another slot
    expect(l.acquire('a')).toBeDefined();
    expect(l.acquire('a')).toBeUndefined();
    // Cancel tunnels are counted apart: a full pool can still cancel.
    expect(l.acquire('a', 'cancel')).toBeDefined();
    expect(l.acquire('a', 'cancel')).toBeDefined();
    expect(l.acquire('a', 'cancel')).toBeUndefined();
  });
});

describe('RevocationWatch', () => {
  const record = (revokedAt: Date | null): ServiceTokenRecord => ({ name: 'ci', groups: ['eng'], createdAt: new Date(0), expiresAt: null, revokedAt });
  const storeWith = (tokens: Map<string, ServiceTokenRecord>) => ({ findServiceToken: (hash: string) => Promise.resolve(tokens.get(hash)) }) as unknown as Store;
  const tok = (hash: string) => ({ kind: 'token', hash }) as const;

  it('ends every session of a token once it is revoked or gone, and only those', async () => {
    const tokens = new Map([['h1', record(null)], ['h2', record(null)]]);
    const watch = new RevocationWatch(storeWith(tokens), 60_000, pino({ level: 'silent' }));
    const ended: string[] = [];
    watch.watch(tok('h1'), 'ci', (why) => ended.push(`s1 ${terminationSqlstate(why)} ${why.message}`));
    watch.watch(tok('h1'), 'ci', (why) => ended.push(`s2 ${terminationSqlstate(why)}`));
    const unwatch = watch.watch(tok('h2'), 'other', () => ended.push('s3'));
    await watch.check();
    expect(ended).toEqual([]);
    tokens.set('h1', record(new Date('2026-01-02T03:04:05Z')));
    tokens.delete('h2');
    unwatch(); // its session already ended: nothing to terminate
    await watch.check();
    expect(ended).toEqual(['s1 28000 terminating connection: service token "ci" was revoked at 2026-01-02T03:04:05.000Z', 's2 28000']);
    await watch.check();
    expect(ended).toHaveLength(2);
    watch.close();
  });

  it('ends the sessions of a token once it has expired', async () => {
    const tokens = new Map([['h', { ...record(null), expiresAt: new Date(Date.now() + 60_000) }]]);
    const watch = new RevocationWatch(storeWith(tokens), 60_000, pino({ level: 'silent' }));
    const ended: string[] = [];
    watch.watch(tok('h'), 'ci', (why) => ended.push(why.message));
    await watch.check();
    expect(ended).toEqual([]);
    tokens.set('h', { ...record(null), expiresAt: new Date('2026-01-01T00:00:00Z') });
    await watch.check();
    expect(ended).toEqual(['terminating connection: service token "ci" expired at 2026-01-01T00:00:00.000Z']);
    watch.close();
  });

  it('keeps sessions when the store cannot answer (asked again next time)', async () => {
    const failing = { findServiceToken: () => Promise.reject(new Error('store down')) } as unknown as Store;
    const watch = new RevocationWatch(failing, 60_000, pino({ level: 'silent' }));
    let ended = false;
    watch.watch(tok('h'), 'ci', () => (ended = true));
    await watch.check();
    expect(ended).toBe(false);
    watch.close();
  });

  it('ends the sessions of a direct credential once it is revoked or deleted, not when it expires', async () => {
    const credential = (revokedAt: Date | null, expiresAt: Date) => ({ id: 'c1', hash: 'x', subject: 's', identity: '{}', connection: 'pg', tokenHash: null, createdAt: new Date(0), expiresAt, revokedAt });
    const creds = new Map([['c1', credential(null, new Date(Date.now() + 60_000))], ['c2', { ...credential(null, new Date(Date.now() + 60_000)), id: 'c2' }]]);
    const store = { findDirectCredential: (id: string) => Promise.resolve(creds.get(id)) } as unknown as Store;
    const watch = new RevocationWatch(store, 60_000, pino({ level: 'silent' }));
    const ended: string[] = [];
    watch.watch({ kind: 'direct', id: 'c1' }, 'ci', (why) => ended.push(`c1 ${terminationSqlstate(why)} ${why.message}`));
    watch.watch({ kind: 'direct', id: 'c2' }, 'ci', (why) => ended.push(`c2 ${why.message}`));
    // Expired, as PostgreSQL's VALID UNTIL: the open session goes on.
    creds.set('c1', credential(null, new Date('2026-01-01T00:00:00Z')));
    await watch.check();
    expect(ended).toEqual([]);
    creds.set('c1', credential(new Date('2026-01-02T03:04:05Z'), new Date('2026-01-02T03:04:05Z')));
    creds.delete('c2');
    await watch.check();
    expect(ended).toEqual([
      'c1 28000 terminating connection: direct credential c1 was revoked at 2026-01-02T03:04:05.000Z; run `sluice dsn pg` for a new one',
      'c2 terminating connection: direct credential c2 no longer exists; run `sluice dsn NAME` for a new one',
    ]);
    watch.close();
  });

  it('SessionTermination carries why; the postgres engine tells the client SQLSTATE 28000', () => {
    const why = new SessionTermination('credential', 'x');
    expect(why).toMatchObject({ reason: 'credential', message: 'x', name: 'SessionTermination' });
    expect(terminationSqlstate(why)).toBe('28000');
  });
});

describe('clientText', () => {
  it.each([
    ['psql', 'psql'],
    ['a\nb', 'a\\u{a}b'],
    ['\x1b[2J\x1b]0;title\x07', '\\u{1b}[2J\\u{1b}]0;title\\u{7}'],
    ['abc\u202edcba', 'abc\\u{202e}dcba'],
    ['zero\u200bwidth\ufeff', 'zero\\u{200b}width\\u{feff}'],
    ['c1\u0085', 'c1\\u{85}'],
    ['bad \ufffd utf8', 'bad \\u{fffd} utf8'],
    ['naïve – ok 😀', 'naïve – ok 😀'],
  ])('%j → %j', (input, expected) => expect(clientText(input, 200)).toBe(expected));

  it('never lets an unsafe character through and never exceeds the cap (fast-check)', () => {
    // eslint-disable-next-line no-control-regex -- the characters clientText must escape
    const unsafe = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufffd]/u;
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.integer({ min: 1, max: 100 }), (input, cap) => {
        const out = clientText(input, cap);
        expect(unsafe.test(out)).toBe(false);
        expect(Array.from(out).length).toBeLessThanOrEqual(cap);
      }),
    );
  });

  it('cuts to the cap in code points, marking the cut', () => {
    expect(clientText('x'.repeat(63), NAME_MAX_CHARS)).toBe('x'.repeat(63));
    const cut = clientText('😀'.repeat(100), NAME_MAX_CHARS);
    expect(Array.from(cut)).toHaveLength(63);
    expect(cut.endsWith('😀…')).toBe(true);
  });
});

describe('tunnelOrigin', () => {
  it.each([
    [undefined, 'connect'],
    ['connect', 'connect'],
    ['exec', 'exec'],
    ['my-tool2', 'my-tool2'],
    ['Connect', undefined],
    ['connect\xe9', undefined],
    ['a b', undefined],
    ['x'.repeat(33), undefined],
    [['connect', 'exec'], undefined],
  ])('%j → %j', (header, expected) => expect(tunnelOrigin(header)).toBe(expected));
});
