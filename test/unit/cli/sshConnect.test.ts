// `sluice connect` and `sluice ssh` for ssh connections: the known_hosts file, the printed
// commands, the child's environment and the refusals; no gateway is dialled (nothing connects to
// the local port), so this runs without a network.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hostKeyAlias, writeKnownHost } from '../../../src/ssh/knownHosts.js';
import { shellQuote, sshArgv, sshCommandLines } from '../../../src/ssh/sshArgs.js';
import { fakeFactory, GATEWAY_URL, pgProd, run, type FakeFactory } from './fakes.js';
import { webOne } from './sshFixtures.js';

let dir: string;
beforeEach(async () => void (dir = await mkdtemp(join(tmpdir(), 'sluice-sshcli-'))));
afterEach(() => rm(dir, { recursive: true, force: true }));

function factory(over: Parameters<typeof fakeFactory>[0] = {}): FakeFactory {
  const f = fakeFactory({ gateway: { connection: async () => webOne }, ...over });
  const settings = f.settings;
  const path = join(dir, 'settings.json');
  f.settings = async () => ({ ...(await settings()), path });
  return f;
}

describe('known_hosts', () => {
  it('keys the gateway host key by an alias per gateway and connection, replacing only its own line', async () => {
    const alias = hostKeyAlias(GATEWAY_URL, 'web-1');
    expect(alias).toBe('sluice.web-1.gw.example.test.8443');
    expect(hostKeyAlias('https://gw.example.test', 'a b')).toBe('sluice.a_b.gw.example.test');
    await writeFile(join(dir, 'known_hosts'), 'other ssh-ed25519 AAAA\nsluice.web-1.gw.example.test.8443 ssh-ed25519 OLD\n');
    const path = await writeKnownHost(dir, alias, `${webOne.hostKey}\n`);
    expect(await readFile(path, 'utf8')).toBe(`other ssh-ed25519 AAAA\n${alias} ${webOne.hostKey}\n`);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('ssh keeps strict checking and gets the command after --', () => {
    const t = { host: '127.0.0.1', port: 2222, user: 'deploy', knownHosts: '/c/known_hosts', alias: 'sluice.web-1.gw' };
    const argv = sshArgv(t, ['uptime']);
    expect(argv).toContain('StrictHostKeyChecking=yes');
    expect(argv.join(' ')).not.toContain('StrictHostKeyChecking=no');
    expect(argv.slice(-3)).toEqual(['deploy@127.0.0.1', '--', 'uptime']);
    expect(argv).not.toContain('-A');
    expect(sshArgv(t, [], { forwardAgent: true })[0]).toBe('-A');
    expect(sshCommandLines({ ...t, knownHosts: '/my dir/known_hosts' }).scp).toBe("scp -P 2222 -o 'UserKnownHostsFile=/my dir/known_hosts' -o HostKeyAlias=sluice.web-1.gw FILE deploy@127.0.0.1:PATH");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });
});

describe('sluice connect (ssh)', () => {
  it('--json names the port, user and known_hosts; the file holds the gateway key', async () => {
    const f = factory();
    const printed = new Promise((resolve) => f.io.stdout.once('data', resolve));
    const done = run(f, 'connect', 'web-1', '--port', '0', '--json');
    await printed;
    const line = JSON.parse(f.out()) as Record<string, unknown>;
    expect(line).toMatchObject({ connection: 'web-1', type: 'ssh', host: '127.0.0.1', user: 'deploy', hostKeyAlias: 'sluice.web-1.gw.example.test.8443', as: 'alice@example.com' });
    expect(line.port).toBeGreaterThan(0);
    expect(await readFile(line.knownHosts as string, 'utf8')).toBe(`sluice.web-1.gw.example.test.8443 ${webOne.hostKey}\n`);
    expect(f.err()).toContain(`ssh -p ${String(line.port)} -o UserKnownHostsFile=`);
    expect(f.err()).toContain(`scp -P ${String(line.port)} `);
    f.interrupt.abort();
    expect(await done).toBe(0);
  });

  it('-- CMD gets SLUICE_PORT, SLUICE_KNOWN_HOSTS, … and its exit code is ours', async () => {
    const f = factory();
    const code = await run(f, 'connect', 'web-1', '--', 'sh', '-c', 'echo "$SLUICE_HOST $SLUICE_SSH_USER $SLUICE_HOST_KEY_ALIAS" >&2; test -n "$SLUICE_PORT" && test -f "$SLUICE_KNOWN_HOSTS" && exit 7');
    expect(code).toBe(7);
  });
});

describe('sluice ssh', () => {
  it('a PostgreSQL connection is refused with what to use instead', async () => {
    const f = factory({ gateway: { connection: async () => pgProd } });
    expect(await run(f, 'ssh', 'pg-prod')).toBe(2);
    expect(f.err()).toContain('pg-prod is a postgres connection, not ssh: use `sluice connect pg-prod`');
  });

  it('runs $SLUICE_SSH with the tunnel port, user and known_hosts and exits with its code', async () => {
    const f = factory({ env: { SLUICE_SSH: 'sh', PATH: process.env.PATH } });
    // `sh ARGS…` fails on ssh's flags with its own status: what matters is that its code is ours.
    const code = await run(f, 'ssh', 'web-1', '--', 'true');
    expect(code).toBeGreaterThan(0);
    expect(f.calls).toEqual(['connection("web-1")']);
  });
});
