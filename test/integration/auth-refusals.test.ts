// Every way a credential can be wrong gets a precise 401 from the gateway (JSON body naming
// the problem, never echoing the token) and exit code 4 from the CLI. Tokens are minted with
// the dev IdP's real signing key, then altered one claim at a time.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { importJWK, SignJWT, type JWK } from 'jose';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_BIN, login, newConfigDir, runCli, startGateway, type GatewayProcess } from '../support/binaries.js';

let gw: GatewayProcess;
let dispatcher: Agent;
let ecKey: JWK;
let validToken: string;

beforeAll(async () => {
  gw = await startGateway();
  dispatcher = new Agent({ connect: { ca: readFileSync(gw.caFile as string) } });
  const keys = JSON.parse(readFileSync(join(gw.dir, 'state', 'dev-idp-keys.json'), 'utf8')) as { jwks: { keys: JWK[] } };
  ecKey = keys.jwks.keys.find((k) => k.alg === 'ES256') as JWK;
  const configDir = newConfigDir();
  expect((await login(gw, configDir, 'alice')).code).toBe(0);
  const stored = JSON.parse(readFileSync(join(configDir, 'tokens.json'), 'utf8')) as Record<string, { accessToken: string }>;
  validToken = Object.values(stored)[0]!.accessToken;
});
afterAll(async () => {
  await gw?.stop();
  await dispatcher?.close();
});

async function me(token: string | undefined) {
  const res = await fetch(`${gw.url}/v1/me`, { dispatcher, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, text, body: JSON.parse(text) as { error?: { code: string; message: string } } };
}

async function mint(claims: Record<string, unknown>, opts: { key?: JWK; alg?: string } = {}): Promise<string> {
  const key = opts.key ?? ecKey;
  const now = Math.floor(Date.now() / 1000);
  const payload = { sub: 'alice', iss: `${gw.url}/dev-idp`, aud: 'urn:sluice:gateway', iat: now, exp: now + 300, email: 'alice@example.com', groups: ['eng'], ...claims };
  return new SignJWT(payload)
    .setProtectedHeader({ alg: opts.alg ?? 'ES256', kid: key.kid as string, typ: 'at+jwt' })
    .sign(await importJWK(key, opts.alg ?? 'ES256'));
}

function b64(o: unknown) {
  return Buffer.from(JSON.stringify(o)).toString('base64url');
}

describe('gateway authentication', () => {
  it('accepts a valid access token', async () => {
    const r = await me(validToken);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ email: 'alice@example.com', groups: ['eng', 'dba'], kind: 'human' });
  });

  const cases: [string, () => Promise<string | undefined>, string, RegExp][] = [
    ['no token', async () => undefined, 'missing_token', /no credentials/],
    ['garbage', async () => 'garbage', 'malformed_token', /not a valid JWT/],
    ['forged signature', async () => {
      const [h, p, s] = validToken.split('.') as [string, string, string];
      return `${h}.${p}.${s.startsWith('A') ? 'B' : 'A'}${s.slice(1)}`;
    }, 'invalid_signature', /signature is invalid/],
    ['altered payload', async () => {
      const [h, p, s] = validToken.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
      return `${h}.${b64({ ...claims, groups: ['admin'] })}.${s}`;
    }, 'invalid_signature', /signature is invalid/],
    ['wrong audience', () => mint({ aud: 'someone-else' }), 'invalid_audience', /wrong audience/],
    ['wrong issuer', () => mint({ iss: 'https://evil.example.com' }), 'invalid_issuer', /issuer this gateway does not trust/],
    ['expired (beyond the 60 s skew)', () => mint({ exp: Math.floor(Date.now() / 1000) - 120 }), 'token_expired', /has expired/],
    ['not yet valid', () => mint({ nbf: Math.floor(Date.now() / 1000) + 600 }), 'token_not_yet_valid', /not valid yet/],
    ['alg none', async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice', iss: `${gw.url}/dev-idp`, aud: 'sluice', exp: 9_999_999_999, groups: ['eng'] })}.`, 'algorithm_not_allowed', /algorithm/],
    ['HMAC (HS256) with a guessable key', async () => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ groups: ['eng'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuer(`${gw.url}/dev-idp`).setAudience('urn:sluice:gateway').setExpirationTime(now + 60).sign(new TextEncoder().encode('x'.repeat(32)));
    }, 'algorithm_not_allowed', /algorithm/],
    ['a key the issuer does not publish', async () => {
      const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as JWK;
      return mint({}, { key: { ...other, kid: 'not-published' } });
    }, 'unknown_key', /key the issuer does not publish/],
  ];

  for (const [what, make, code, message] of cases) {
    it(`refuses ${what} with 401 ${code}, and the CLI exits 4`, async () => {
      const token = await make();
      const r = await me(token);
      expect(r.status).toBe(401);
      expect(r.body.error?.code).toBe(code);
      expect(r.body.error?.message).toMatch(message);
      if (token) expect(r.text).not.toContain(token);
      if (token) {
        const cli = await runCli(['whoami', '--gateway', gw.url, '--ca', gw.caFile as string], { configDir: newConfigDir(), env: { SLUICE_TOKEN: token } });
        expect(cli.code).toBe(4);
        expect(cli.stderr).toMatch(message);
        expect(cli.stderr + cli.stdout).not.toContain(token);
      }
    });
  }
});

describe('service tokens', () => {
  const gatewayCli = (...args: string[]) => execFileSync(process.execPath, [GATEWAY_BIN, ...args, '--config', gw.configFile], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  it('creates a token shown once, authenticates with it, and lists it without its value', async () => {
    const token = gatewayCli('token', 'create', '--name', 'ci-deploy', '--groups', 'ci,eng', '--ttl', '1h').trim();
    expect(token).toMatch(/^slc_[A-Za-z0-9_-]{43}$/);
    const r = await me(token);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ subject: 'token:ci-deploy', name: 'ci-deploy', groups: ['ci', 'eng'], kind: 'service' });
    const cli = await runCli(['whoami', '--json', '--gateway', gw.url, '--ca', gw.caFile as string], { configDir: newConfigDir(), env: { SLUICE_TOKEN: token } });
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ kind: 'service', name: 'ci-deploy' });
    const list = gatewayCli('token', 'list', '--json');
    expect(JSON.parse(list)).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'ci-deploy', state: 'active', groups: ['ci', 'eng'] })]));
    expect(list).not.toContain(token);
    // Only the hash is stored: the raw value is nowhere in the database file.
    expect(readFileSync(join(gw.dir, 'state', 'sluice.db')).includes(Buffer.from(token))).toBe(false);
  });

  it('refuses a revoked token at once', async () => {
    const token = gatewayCli('token', 'create', '--name', 'revoke-me', '--groups', 'ci').trim();
    expect((await me(token)).status).toBe(200);
    gatewayCli('token', 'revoke', 'revoke-me');
    const r = await me(token);
    expect(r.status).toBe(401);
    expect(r.body.error).toMatchObject({ code: 'token_revoked' });
    expect(r.body.error?.message).toContain('service token "revoke-me" was revoked');
    const cli = await runCli(['whoami', '--gateway', gw.url, '--ca', gw.caFile as string], { configDir: newConfigDir(), env: { SLUICE_TOKEN: token } });
    expect(cli.code).toBe(4);
  });

  it('refuses an expired token', async () => {
    const token = gatewayCli('token', 'create', '--name', 'short-lived', '--groups', 'ci', '--ttl', '1s').trim();
    await new Promise((r) => setTimeout(r, 1_100));
    const r = await me(token);
    expect(r.status).toBe(401);
    expect(r.body.error).toMatchObject({ code: 'token_expired' });
  });

  it('refuses an unknown slc_ token without echoing it', async () => {
    const token = `slc_${'x'.repeat(43)}`;
    const r = await me(token);
    expect(r.status).toBe(401);
    expect(r.text).not.toContain(token);
  });

  it('rejects a duplicate name and a bad --ttl', () => {
    gatewayCli('token', 'create', '--name', 'dup', '--groups', 'ci');
    expect(() => gatewayCli('token', 'create', '--name', 'dup', '--groups', 'ci')).toThrow(/already exists/);
    expect(() => gatewayCli('token', 'create', '--name', 'x', '--groups', 'ci', '--ttl', 'soon')).toThrow(/--ttl: invalid duration "soon"/);
  });
});
