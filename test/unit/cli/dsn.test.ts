// `sluice dsn` and `sluice connect --direct`: what reaches stdout (exactly one libpq string, a
// URL, or JSON), quoting that libpq and URL parsers read back, and refusals before any call.
import { describe, expect, it } from 'vitest';
import type { DirectCredential } from '../../../src/api/contract.js';
import type { Endpoint } from '../../../src/api/endpoint.js';
import { conninfo, directEnv, postgresUrl, quoteConninfoValue } from '../../../src/direct/conninfo.js';
import { keepRenewed } from '../../../src/direct/renew.js';
import type { Clock } from '../../../src/factory.js';
import { fakeFactory, GATEWAY_URL, run } from './fakes.js';

const CRED: DirectCredential = {
  id: '0123456789abcdef',
  connection: 'pg-prod',
  host: 'gw.example.test',
  port: 5432,
  database: 'app',
  user: 'pg-prod',
  password: 'slp_0123456789abcdef_secret-part_X',
  expiresAt: '2026-11-05T12:15:00.000Z',
};

const withCa = { url: GATEWAY_URL, caFile: '/home/a b/gateway cert.pem', dispatcher: undefined as never, fetch: undefined as never } satisfies Endpoint;

describe('sluice dsn', () => {
  it('prints exactly one libpq connection string, verify-full against the CA the CLI trusts', async () => {
    const f = fakeFactory({ gateway: { endpoint: withCa, direct: { issue: async () => CRED } } });
    expect(await run(f, 'dsn', 'pg-prod')).toBe(0);
    expect(f.out()).toBe(
      "host=gw.example.test port=5432 dbname=app user=pg-prod password=slp_0123456789abcdef_secret-part_X sslmode=verify-full sslrootcert='/home/a b/gateway cert.pem'\n",
    );
    expect(f.err()).toBe('');
    expect(f.calls).toEqual(['direct.issue("pg-prod")']);
  });

  it('a publicly trusted gateway (no CA file): sslrootcert=system', async () => {
    const f = fakeFactory({ gateway: { direct: { issue: async () => CRED } } });
    expect(await run(f, 'dsn', 'pg-prod')).toBe(0);
    expect(f.out()).toMatch(/ sslrootcert=system\n$/);
  });

  it('--url: the postgresql:// form, every part percent-encoded', async () => {
    const f = fakeFactory({ gateway: { endpoint: withCa, direct: { issue: async () => ({ ...CRED, password: 'p@ss/word?#', database: 'my db' }) } } });
    expect(await run(f, 'dsn', 'pg-prod', '--url')).toBe(0);
    const line = f.out();
    expect(line).toBe('postgresql://pg-prod:p%40ss%2Fword%3F%23@gw.example.test:5432/my%20db?sslmode=verify-full&sslrootcert=%2Fhome%2Fa%20b%2Fgateway%20cert.pem\n');
    const u = new URL(line.trim());
    expect(decodeURIComponent(u.password)).toBe('p@ss/word?#');
    expect(u.searchParams.get('sslrootcert')).toBe('/home/a b/gateway cert.pem');
  });

  it('--json: every field, the password included, plus both string forms', async () => {
    const f = fakeFactory({ gateway: { direct: { issue: async () => CRED } } });
    expect(await run(f, 'dsn', 'pg-prod', '--json')).toBe(0);
    const j = JSON.parse(f.out()) as Record<string, unknown>;
    expect(j).toMatchObject({ ...CRED, sslmode: 'verify-full', sslrootcert: 'system' });
    expect(j.dsn).toBe(conninfo(CRED, 'system'));
    expect(j.url).toBe(postgresUrl(CRED, 'system'));
  });

  it('--url with --json is a usage error (exit 2) before the gateway is asked', async () => {
    const f = fakeFactory();
    expect(await run(f, 'dsn', 'pg-prod', '--url', '--json')).toBe(2);
    expect(f.calls).toEqual([]);
    expect(f.out()).toBe('');
  });

  it('a refusal from the gateway: nothing on stdout', async () => {
    const f = fakeFactory({ gateway: { direct: { issue: () => Promise.reject(new Error('this gateway has no direct PostgreSQL listener')) } } });
    expect(await run(f, 'dsn', 'pg-prod')).toBe(1);
    expect(f.out()).toBe('');
    expect(f.err()).toContain('no direct PostgreSQL listener');
  });
});

describe('libpq quoting', () => {
  it.each([
    ['plain', 'plain'],
    ['', "''"],
    ['a b', "'a b'"],
    ["it's", "'it\\'s'"],
    ['back\\slash', "'back\\\\slash'"],
    ['tab\there', "'tab\there'"],
  ])('%j → %s', (value, quoted) => expect(quoteConninfoValue(value)).toBe(quoted));

  it('IPv6 hosts are bracketed in the URL; the environment carries every PG* variable', () => {
    expect(postgresUrl({ ...CRED, host: '::1' }, 'system')).toMatch(/^postgresql:\/\/pg-prod:[^@]+@\[::1\]:5432\/app\?/);
    expect(Object.keys(directEnv(CRED, '/ca.pem')).sort()).toEqual(['DATABASE_URL', 'PGDATABASE', 'PGHOST', 'PGPASSWORD', 'PGPORT', 'PGSSLMODE', 'PGSSLROOTCERT', 'PGUSER']);
  });
});

describe('sluice connect --direct', () => {
  it('needs a command', async () => {
    const f = fakeFactory();
    expect(await run(f, 'connect', 'pg-prod', '--direct')).toBe(2);
    expect(f.err()).toContain('--direct needs a command after --');
    expect(f.calls).toEqual([]);
  });

  it('refuses the flags of a local port', async () => {
    const f = fakeFactory();
    expect(await run(f, 'connect', 'pg-prod', '--direct', '--port', '5433', '--', 'true')).toBe(2);
    expect(f.err()).toContain('--port cannot be used with it');
    expect(f.calls).toEqual([]);
  });
});

describe('keepRenewed', () => {
  it('renews each time half the lifetime has passed, warns on a failure and retries, stops on abort', async () => {
    let now = Date.parse('2026-11-05T12:00:00Z');
    const stop = new AbortController();
    const waits: number[] = [];
    const clock: Clock = {
      now: () => now,
      sleep: async (ms, signal) => {
        if (signal?.aborted) throw signal.reason;
        waits.push(ms);
        now += ms;
        if (waits.length === 4) stop.abort();
      },
    };
    let calls = 0;
    const warnings: string[] = [];
    await keepRenewed(
      CRED,
      async (id) => {
        calls++;
        if (calls === 2) throw new Error('gateway unreachable');
        return { id, expiresAt: new Date(now + 15 * 60_000).toISOString() };
      },
      clock,
      stop.signal,
      (m) => warnings.push(m),
    );
    expect(waits[0]).toBe(7.5 * 60_000);
    expect(waits[1]).toBe(7.5 * 60_000);
    expect(waits[2]).toBe(5_000);
    expect(warnings).toEqual([expect.stringContaining('could not renew the credential (gateway unreachable); it expires in')]);
    expect(calls).toBe(4);
  });
});
