// whoami, connections, logout, login (up to the identity provider) with a fake gateway.
import { describe, expect, it } from 'vitest';
import { AuthError, CliError } from '../../../src/errors.js';
import { alice, fakeFactory, GATEWAY_URL, pgProd, run } from './fakes.js';

describe('sluice whoami', () => {
  it('prints who you are on stdout', async () => {
    const f = fakeFactory({ gateway: { me: async () => ({ ...alice, expiresAt: '2026-11-05T13:00:00Z' }) } });
    expect(await run(f, 'whoami')).toBe(0);
    expect(f.out()).toBe(
      [`alice (user) at ${GATEWAY_URL}`, '  email:   alice@example.com', '  subject: sub-alice', '  groups:  eng, dba', '  token expires 2026-11-05T13:00:00Z', ''].join('\n'),
    );
    expect(f.err()).toBe('');
  });

  it('--json prints one object with the gateway URL', async () => {
    const f = fakeFactory({ gateway: { me: async () => ({ ...alice, kind: 'service', email: undefined, name: 'ci' }) } });
    expect(await run(f, 'whoami', '--json')).toBe(0);
    expect(JSON.parse(f.out())).toEqual({ gateway: GATEWAY_URL, subject: 'sub-alice', name: 'ci', groups: ['eng', 'dba'], kind: 'service' });
  });

  it('not logged in: exit 4 with what to run', async () => {
    const f = fakeFactory({ gateway: { me: () => Promise.reject(new AuthError(`not logged in to ${GATEWAY_URL}: run \`sluice login\``)) } });
    expect(await run(f, 'whoami', '--json')).toBe(4);
    expect(f.out()).toBe('');
    expect(f.err()).toContain('run `sluice login`');
  });
});

describe('sluice connections', () => {
  it('prints an aligned table', async () => {
    const f = fakeFactory({ gateway: { connections: async () => ({ connections: [pgProd, { ...pgProd, name: 'pg-analytics-eu', database: 'dwh', description: undefined }] }) } });
    expect(await run(f, 'connections')).toBe(0);
    expect(f.out().split('\n')).toEqual([
      'NAME             TYPE      DATABASE  DESCRIPTION',
      'pg-prod          postgres  app       production',
      'pg-analytics-eu  postgres  dwh',
      '',
    ]);
  });

  it('`ls` is an alias, and --json prints the array', async () => {
    const f = fakeFactory({ gateway: { connections: async () => ({ connections: [pgProd] }) } });
    expect(await run(f, 'ls', '--json')).toBe(0);
    expect(JSON.parse(f.out())).toEqual([pgProd]);
  });

  it('an empty list is a notice on stderr, not data', async () => {
    const f = fakeFactory({ gateway: { connections: async () => ({ connections: [] }) } });
    expect(await run(f, 'connections')).toBe(0);
    expect(f.out()).toBe('');
    expect(f.err()).toBe('no connections are available to you on this gateway\n');
  });

  it('--json with an empty list prints []', async () => {
    const f = fakeFactory({ gateway: { connections: async () => ({ connections: [] }) } });
    expect(await run(f, 'connections', '--json')).toBe(0);
    expect(f.out()).toBe('[]\n');
  });
});

describe('sluice logout', () => {
  it('forgets the stored tokens and says so on stderr', async () => {
    const f = fakeFactory();
    f.tokens.set(GATEWAY_URL, { accessToken: 'a', expiresAt: 0, issuer: 'i', clientId: 'c' });
    expect(await run(f, 'logout')).toBe(0);
    expect(f.tokens.size).toBe(0);
    expect(f.err()).toBe(`Logged out of ${GATEWAY_URL}\n`);
    expect(f.out()).toBe('');
  });

  it('not logged in: nothing to do, exit 0', async () => {
    const f = fakeFactory();
    expect(await run(f, 'logout')).toBe(0);
    expect(f.err()).toBe(`Not logged in to ${GATEWAY_URL}; nothing to do\n`);
  });
});

describe('sluice login', () => {
  it('a gateway that cannot be reached: exit 1, the reason on stderr, nothing stored', async () => {
    const f = fakeFactory({ gateway: { authConfig: () => Promise.reject(new CliError(`cannot reach the gateway at ${GATEWAY_URL}: connection refused — is sluice-gateway running there?`)) } });
    expect(await run(f, 'login', '--no-browser')).toBe(1);
    expect(f.err()).toContain('is sluice-gateway running there?');
    expect(f.out()).toBe('');
    expect(f.tokens.size).toBe(0);
    expect(f.settingsMap.size).toBe(0);
  });
});
