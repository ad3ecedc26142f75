// `sluice connect` for http connections: the curl banner, the --json line, the child's
// SLUICE_URL and the refusal of --local-password; no gateway is dialled (nothing connects to the
// local port), so this runs without a network.
import { describe, expect, it } from 'vitest';
import type { HttpConnectionInfo } from '../../../src/api/contract.js';
import { fakeFactory, run } from './fakes.js';

const billing: HttpConnectionInfo = { name: 'billing-api', type: 'http', url: 'https://billing.internal:8443', injectedHeaders: ['Authorization'], policy: 'blocks: read-only' };
const factory = () => fakeFactory({ gateway: { connection: async () => billing } });

describe('sluice connect (http)', () => {
  it('--json names the URL; the banner is a curl line naming the injected header, never a value', async () => {
    const f = factory();
    const printed = new Promise((resolve) => f.io.stdout.once('data', resolve));
    const done = run(f, 'connect', 'billing-api', '--port', '0', '--json');
    await printed;
    const line = JSON.parse(f.out()) as { url: string; port: number };
    expect(line).toMatchObject({ connection: 'billing-api', type: 'http', host: '127.0.0.1', as: 'alice@example.com' });
    expect(line.url).toBe(`http://127.0.0.1:${line.port}`);
    expect(f.err()).toContain(`curl http://127.0.0.1:${line.port}/`);
    expect(f.err()).toContain('the gateway adds Authorization');
    f.interrupt.abort();
    expect(await done).toBe(0);
  });

  it('-- CMD gets SLUICE_URL and its exit code is ours', async () => {
    const f = factory();
    const code = await run(f, 'connect', 'billing-api', '--', 'sh', '-c', 'case "$SLUICE_URL" in http://127.0.0.1:*) exit 7;; esac; exit 1');
    expect(code).toBe(7);
  });

  it('refuses --local-password (an HTTP client has no step to give it)', async () => {
    const f = factory();
    const code = await run(f, 'connect', 'billing-api', '--local-password');
    expect(code).toBe(2);
    expect(f.err()).toMatch(/--local-password is not available for http connections/);
  });
});
