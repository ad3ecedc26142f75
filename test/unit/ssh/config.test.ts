// `type: ssh` connections in the gateway configuration: the held key resolved and checked, the
// pinned host key required and well formed, the ssh policy validated; every error names the key.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../gateway/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-ssh-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pair = ssh2.utils.generateKeyPairSync('ed25519');
writeFileSync(join(dir, 'web.key'), pair.private, { mode: 0o600 });
writeFileSync(join(dir, 'web.pub'), pair.public);
const encrypted = ssh2.utils.generateKeyPairSync('ed25519', { passphrase: 'pw', cipher: 'aes256-ctr', rounds: 2 });
writeFileSync(join(dir, 'enc.key'), encrypted.private);
const HOST_KEY = ssh2.utils.generateKeyPairSync('ed25519').public.split(' ').slice(0, 2).join(' ');

const identity = `identity: { dev: { users: [{ name: alice, email: alice@example.com, groups: [ops] }] } }\n`;
let n = 0;
function write(target: string, extra = ''): string {
  const file = join(dir, `gw-${++n}.yaml`);
  writeFileSync(file, `${identity}connections:\n  - name: web-1\n    type: ssh\n    target: ${target}\n    allow: { groups: [ops] }\n${extra}`);
  return file;
}
function problems(file: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    loadConfig(file, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((l) => l.slice(file.length + 2));
  }
  throw new Error('expected a ConfigError');
}

describe('ssh connections', () => {
  it('loads a connection with its key from a file or the environment, port 22 by default', () => {
    const cfg = loadConfig(write(`{ host: 10.0.0.7, user: deploy, privateKey: { file: web.key }, hostKey: "${HOST_KEY} root@web-1" }`), {});
    const c = cfg.connections[0];
    expect(c?.type).toBe('ssh');
    if (c?.type !== 'ssh') return;
    expect(c.target).toEqual({ host: '10.0.0.7', port: 22, user: 'deploy', privateKey: pair.private, hostKey: HOST_KEY });
    expect(Object.isFrozen(c.target)).toBe(true);
    const fromEnv = loadConfig(write(`{ host: h, user: u, privateKey: { env: WEB_KEY }, hostKey: "${HOST_KEY}" }`), { WEB_KEY: pair.private });
    expect(fromEnv.connections[0]?.target).toMatchObject({ privateKey: pair.private });
  });

  it('requires the pinned host key and checks its form', () => {
    expect(problems(write('{ host: h, user: u, privateKey: { file: web.key } }'))).toEqual([expect.stringMatching(/^connections\.0\.target\.hostKey: expected the host's public key/)]);
    expect(problems(write('{ host: h, user: u, privateKey: { file: web.key }, hostKey: "ssh-dss AAAA" }'))[0]).toMatch(/^connections\.0\.target\.hostKey: expected "TYPE BASE64" with TYPE one of ssh-ed25519/);
    const rsaBlobUnderEd = `ssh-ed25519 ${Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from('ssh-rsa'), Buffer.alloc(8)]).toString('base64')}`;
    expect(problems(write(`{ host: h, user: u, privateKey: { file: web.key }, hostKey: "${rsaBlobUnderEd}" }`))[0]).toMatch(/^connections\.0\.target\.hostKey: the key data does not hold a ssh-ed25519 key/);
  });

  it('names the key when the private key is missing, encrypted or public, and never prints it', () => {
    const t = (key: string) => `{ host: h, user: u, privateKey: ${key}, hostKey: "${HOST_KEY}" }`;
    expect(problems(write(t('{ env: NOPE }')))).toEqual(['connections.0.target.privateKey: connection "web-1": environment variable NOPE is not set']);
    expect(problems(write(t('{ file: missing.key }')))[0]).toMatch(/^connections\.0\.target\.privateKey: connection "web-1": cannot read .*missing\.key: ENOENT$/);
    expect(problems(write(t('{ file: enc.key }')))[0]).toMatch(/the key is encrypted; the gateway needs an unencrypted key/);
    const pub = problems(write(t('{ file: web.pub }')));
    expect(pub[0]).toMatch(/^connections\.0\.target\.privateKey: connection "web-1": this is a public key/);
    const garbage = problems(write(t('{ env: K }')), { K: 'not a key at all' });
    expect(garbage[0]).toMatch(/not a usable private key/);
    expect(garbage.join('\n')).not.toContain('not a key at all');
  });

  it('rejects keys of the other connection type and an unknown type', () => {
    expect(problems(write(`{ host: h, user: u, privateKey: { file: web.key }, hostKey: "${HOST_KEY}", database: x }`))).toEqual(['connections.0.target: unknown key "database"']);
    const file = join(dir, 'typo.yaml');
    writeFileSync(file, `${identity}connections:\n  - { name: x, type: telnet, target: {}, allow: { groups: [ops] } }\n`);
    expect(problems(file)).toEqual(['connections.0.type: expected `type: postgres`, `type: ssh`, `type: http` or `type: kubernetes`']);
  });

  it('validates the ssh policy: commands, approvers, allowances', () => {
    const t = `{ host: h, user: u, privateKey: { file: web.key }, hostKey: "${HOST_KEY}" }`;
    const ok = loadConfig(
      write(t, `    policy:\n      rules:\n        - { id: no-destroy, block: { commands: ["rm -rf /*"] } }\n        - { id: sudo, review: { commands: ["sudo *"], approvers: [ops-leads] } }\n        - { id: tunnels, allow: { forwarding: [local] }, for: { groups: [ops] } }\n`),
      {},
    );
    const c = ok.connections[0];
    expect(c?.type === 'ssh' && c.policy?.rules.map((r) => r.action)).toEqual(['block', 'review', 'allow']);
    expect(problems(write(t, '    policy: { rules: [{ id: r, block: {} }] }\n'))).toEqual(['connections.0.policy.rules.0.block: expected `commands: [patterns]` or `sftp: true`']);
    expect(problems(write(t, '    policy: { rules: [{ id: r, review: { commands: ["sudo *"] } }] }\n'))[0]).toMatch(/^connections\.0\.policy\.rules\.0\.review\.approvers: /);
    expect(problems(write(t, '    policy: { rules: [{ id: r, allow: { forwarding: [dynamic] } }] }\n'))).toEqual(['connections.0.policy.rules.0.allow.forwarding.0: expected local, remote, agent or x11']);
    const agent = loadConfig(write(t, '    policy: { rules: [{ id: agents, allow: { forwarding: [agent] }, for: { groups: [ops] } }] }\n'), {}).connections[0];
    expect(agent?.type === 'ssh' && agent.policy?.rules[0]?.action === 'allow' && [...agent.policy.rules[0].forwarding]).toEqual(['agent']);
    expect(problems(write(t, '    policy: { rules: [{ id: r, mask: { columns: [a.b] } }] }\n'))[0]).toMatch(/unknown key "mask"/);
  });
});
