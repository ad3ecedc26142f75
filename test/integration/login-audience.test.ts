// Logging in through an OIDC provider outside the gateway that issues an access token for the
// gateway only when the device login names it: Auth0's `audience` parameter, RFC 8707's
// `resource`. The provider here is a real one (oidc-provider, the embedded dev IdP of a second
// gateway, reached over plain http on loopback), which accepts `resource` and refuses a resource it
// does not serve — so whether the CLI sent the parameter, and what it sent, shows in the outcome.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { login, newConfigDir, runCli, startGateway, type GatewayProcess } from '../support/binaries.js';

let provider: GatewayProcess;
const started: GatewayProcess[] = [];

beforeAll(async () => {
  provider = await startGateway({ tls: false });
  started.push(provider);
});
afterAll(async () => {
  for (const g of started) await g.stop();
});

/** A gateway that trusts the provider's IdP as an external OIDC issuer. */
async function gatewayWith(identity: Record<string, unknown>): Promise<GatewayProcess> {
  const gw = await startGateway({ extra: { identity: { issuer: `${provider.url}/dev-idp`, clientId: 'sluice-cli', ...identity } } });
  started.push(gw);
  return gw;
}

describe('the audience in the device login request', () => {
  it('audienceParameter: resource — the provider issues a token for the gateway, which accepts it', async () => {
    const gw = await gatewayWith({ audience: 'urn:sluice:gateway', audienceParameter: 'resource' });
    const configDir = newConfigDir();
    const res = await login(gw, configDir, 'alice');
    expect(res.code, res.stderr).toBe(0);
    const who = await runCli(['whoami', '--json'], { configDir });
    expect(who.code, who.stderr).toBe(0);
    expect(JSON.parse(who.stdout)).toMatchObject({ name: 'alice@example.com', kind: 'human' });
  });

  it('the CLI really sends it: a resource the provider does not serve is refused with a clear error', async () => {
    const gw = await gatewayWith({ audience: 'urn:sluice:elsewhere', audienceParameter: 'resource' });
    const res = await runCli(['login', '--gateway', gw.url, '--ca', gw.caFile!, '--no-browser'], { configDir: newConfigDir() });
    expect(res.code).toBe(4);
    expect(res.stderr).toMatch(/the identity provider refused to start a device login: .*(invalid_target|unknown resource urn:sluice:elsewhere)/);
  });

  it('without it, a provider that defaults to another audience issues a token the gateway refuses, and login says so', async () => {
    const gw = await gatewayWith({ audience: 'urn:sluice:elsewhere' });
    const res = await login(gw, newConfigDir(), 'alice');
    expect(res.code).toBe(4);
    expect(res.stderr).toMatch(/audience/i);
  });
});
