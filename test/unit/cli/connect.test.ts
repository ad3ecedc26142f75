// `sluice connect`: flag validation and refusals before any port is opened.
import { describe, expect, it } from 'vitest';
import { AuthError } from '../../../src/errors.js';
import { NotFoundError } from '../../../src/api/client.js';
import { fakeFactory, run } from './fakes.js';

describe('sluice connect', () => {
  it.each([
    [['--port', '70000'], "option '--port <n>' argument '70000' is invalid. expected a port number 0-65535"],
    [['--startup-timeout', 'soon'], "option '--startup-timeout <duration>' argument 'soon' is invalid. expected a duration (e.g. 500ms, 30s"],
    [['--startup-timeout', '0'], 'more than 0 and at most 1h'],
    [['--startup-timeout', '2h'], 'more than 0 and at most 1h'],
  ])('%j is a usage error (exit 2) before the gateway is asked', async (flags, message) => {
    const f = fakeFactory();
    expect(await run(f, 'connect', 'pg-prod', ...flags)).toBe(2);
    expect(f.err()).toContain(message);
    expect(f.calls).toEqual([]);
  });

  it('a connection that is not yours: exit 4 and no listener', async () => {
    const f = fakeFactory({ gateway: { connection: () => Promise.reject(new AuthError('you may not use pg-prod', 403)) } });
    expect(await run(f, 'connect', 'pg-prod', '--startup-timeout', '10s')).toBe(4);
    expect(f.calls).toEqual(['connection("pg-prod")']);
    expect(f.err()).toBe('sluice: you may not use pg-prod\n');
    expect(f.out()).toBe('');
  });

  it('no such connection: exit 1 with the gateway message', async () => {
    const f = fakeFactory({ gateway: { connection: () => Promise.reject(new NotFoundError('no connection named "pg-nope"')) } });
    expect(await run(f, 'connect', 'pg-nope', '--', 'psql', '-c', 'select 1')).toBe(1);
    expect(f.err()).toBe('sluice: no connection named "pg-nope"\n');
  });
});
