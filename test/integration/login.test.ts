// Device-code login end to end: the real CLI binary against the real gateway binary with its
// embedded IdP over real TLS; approval by driving the IdP's pages over HTTP as a person would.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, login, newConfigDir, runCli, spawnCli, startGateway, waitForStderr, type GatewayProcess } from '../support/binaries.js';

interface TokenFile {
  [gateway: string]: { accessToken: string; refreshToken?: string; expiresAt: number };
}

let gw: GatewayProcess;
beforeAll(async () => {
  gw = await startGateway({ accessTokenTtlSeconds: 3 });
});
afterAll(async () => {
  await gw?.stop();
});

describe('sluice login', () => {
  it('logs in with the device flow, stores the token in a 0600 file, and whoami shows the identity', async () => {
    const configDir = newConfigDir();
    const res = await login(gw, configDir, 'alice');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/To sign in, open https:\/\/127\.0\.0\.1:\d+\/dev-idp\/device and enter the code [A-Z-]+/);
    expect(res.stderr).toContain('Logged in to');
    expect(res.stderr).toContain('as alice@example.com');
    expect(res.stderr).toContain('groups: eng, dba');
    const file = join(configDir, 'tokens.json');
    expect(res.stderr).toContain(`notice: no OS keyring is available; tokens are stored in ${file} (mode 0600)`);
    expect(res.stderr).toContain(`token stored in ${file}`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(res.stdout).toBe('');

    const who = await runCli(['whoami', '--json'], { configDir });
    expect(who.code, who.stderr).toBe(0);
    const me = JSON.parse(who.stdout) as Record<string, unknown>;
    expect(me).toMatchObject({ gateway: gw.url, name: 'alice@example.com', email: 'alice@example.com', groups: ['eng', 'dba'], kind: 'human' });

    // The notice is given once, not on every command.
    expect(who.stderr).not.toContain('notice:');

    const tokens = Object.values(JSON.parse(readFileSync(file, 'utf8')) as TokenFile)[0]!;
    for (const secret of [tokens.accessToken, tokens.refreshToken as string]) {
      expect(secret.length).toBeGreaterThan(20);
      for (const text of [res.stdout, res.stderr, who.stdout, who.stderr, gw.output()]) expect(text).not.toContain(secret);
    }
  });

  it('refreshes the access token silently once it has expired', async () => {
    const configDir = newConfigDir();
    expect((await login(gw, configDir, 'alice')).code).toBe(0);
    const file = join(configDir, 'tokens.json');
    const before = Object.values(JSON.parse(readFileSync(file, 'utf8')) as TokenFile)[0]!;
    await new Promise((r) => setTimeout(r, 3_500)); // the test IdP's access tokens live 3 s
    expect(before.expiresAt * 1000).toBeLessThan(Date.now());

    const who = await runCli(['whoami', '--json'], { configDir });
    expect(who.code, who.stderr).toBe(0);
    expect(JSON.parse(who.stdout)).toMatchObject({ email: 'alice@example.com' });
    const after = Object.values(JSON.parse(readFileSync(file, 'utf8')) as TokenFile)[0]!;
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(after.expiresAt).toBeGreaterThan(before.expiresAt);
    expect(who.stderr).not.toContain(after.accessToken);
  });

  it('says to run sluice login when the refresh is refused, with exit code 4', async () => {
    const configDir = newConfigDir();
    expect((await login(gw, configDir, 'bob')).code).toBe(0);
    const file = join(configDir, 'tokens.json');
    const all = JSON.parse(readFileSync(file, 'utf8')) as TokenFile;
    const entry = Object.values(all)[0]!;
    entry.expiresAt = 0;
    entry.refreshToken = 'not-a-real-refresh-token';
    writeFileSync(file, JSON.stringify(all));
    const who = await runCli(['whoami'], { configDir });
    expect(who.code).toBe(4);
    expect(who.stderr).toMatch(/could not be renewed .*run `sluice login`/);
  });

  it('logout forgets the token; whoami then exits 4', async () => {
    const configDir = newConfigDir();
    expect((await login(gw, configDir, 'bob')).code).toBe(0);
    const out = await runCli(['logout'], { configDir });
    expect(out.code).toBe(0);
    expect(out.stderr).toContain(`Logged out of ${gw.url}`);
    const who = await runCli(['whoami'], { configDir });
    expect(who.code).toBe(4);
    expect(who.stderr).toContain(`not logged in to ${gw.url}: run \`sluice login\``);
  });

  it('Ctrl-C while waiting for approval cancels cleanly with exit 130 and stores nothing', async () => {
    const configDir = newConfigDir();
    const child = spawnCli(['login', '--gateway', gw.url, '--ca', gw.caFile as string, '--no-browser'], { configDir });
    const done = collect(child);
    await waitForStderr(child, /enter the code/);
    child.kill('SIGINT');
    const res = await done;
    expect(res.code).toBe(130);
    expect(res.stderr).toContain('sluice: login cancelled');
    const who = await runCli(['whoami', '--gateway', gw.url, '--ca', gw.caFile as string], { configDir });
    expect(who.code).toBe(4);
  });

  it('refuses an https gateway with a self-signed certificate unless its CA is given', async () => {
    const configDir = newConfigDir();
    const res = await runCli(['login', '--gateway', gw.url, '--no-browser'], { configDir });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/cannot verify the TLS certificate of https:\/\/127\.0\.0\.1:\d+ \(\w+\): pass --ca FILE/);
  });

  it('http:// to the TLS gateway suggests https:// (the server hangs up on clear text)', async () => {
    const plain = gw.url.replace(/^https:/, 'http:');
    const res = await runCli(['whoami', '--gateway', plain], { configDir: newConfigDir(), env: { SLUICE_TOKEN: 'not-sent-anywhere-useful' } });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`sluice: cannot talk to the gateway at ${plain}: it speaks TLS; use ${gw.url}`);
  });

  it('refuses plain http to a non-loopback gateway (usage error, exit 2)', async () => {
    const res = await runCli(['whoami', '--gateway', 'http://gateway.example.com:8443'], { configDir: newConfigDir() });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('refusing plain http:// for gateway.example.com:8443');
  });

  it('config set gateway is remembered; an unknown setting is a usage error', async () => {
    const configDir = newConfigDir();
    expect((await runCli(['config', 'set', 'gateway', 'https://gw.example.com/'], { configDir })).code).toBe(0);
    const get = await runCli(['config', 'get', 'gateway'], { configDir });
    expect(get.stdout.trim()).toBe('https://gw.example.com');
    const bad = await runCli(['config', 'set', 'colour', 'blue'], { configDir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown setting "colour"');
    expect(statSync(join(configDir, 'settings.json')).mode & 0o777).toBe(0o600);
  });
});
