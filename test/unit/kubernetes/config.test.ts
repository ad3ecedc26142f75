// `type: kubernetes` connections in the gateway configuration, exactly as issue 17 writes them:
// the token (file or env) or client certificate resolved, the CA read, https only, the rules
// validated; every error names FILE: key and never carries the secret.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../gateway/config/load.js';
import { kubernetesEntry } from '../../../gateway/engines/kubernetes/entry.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-k8s-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.secret-token-value';
let pems: { cert: string; private: string };

beforeAll(async () => {
  pems = await generate([{ name: 'commonName', value: 'kube' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' });
  writeFileSync(join(dir, 'ca.pem'), pems.cert);
  writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
  writeFileSync(join(dir, 'client.pem'), pems.cert);
  writeFileSync(join(dir, 'client-key.pem'), pems.private);
  writeFileSync(join(dir, 'garbage.pem'), 'not pem');
});

const identity = `identity: { dev: { users: [{ name: alice, email: alice@example.com, groups: [ops] }] } }\n`;
let n = 0;
function write(target: string, policy = ''): string {
  const file = join(dir, `gw-${++n}.yaml`);
  writeFileSync(file, `${identity}connections:\n  - name: k8s-prod\n    type: kubernetes\n    target: ${target}\n    allow: { groups: [ops] }\n${policy}`);
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

const ISSUE_POLICY = `    policy:
      rules:
        - id: no-namespace-deletes
          block: { verbs: [delete], resources: [namespaces] }
        - id: exec-needs-review
          review: { verbs: [create], resources: [pods/exec, pods/attach], approvers: [ops-leads] }
        - id: no-secrets
          block: { verbs: [get, list, watch], resources: [secrets] }
`;

describe('kubernetes connections', () => {
  it('loads the issue\'s connection: token from a file, CA, rules', () => {
    const cfg = loadConfig(write('{ server: "https://10.0.0.9:6443", ca: ca.pem, token: { file: token } }', ISSUE_POLICY), {});
    const c = cfg.connections[0];
    if (c?.type !== 'kubernetes') throw new Error('expected a kubernetes connection');
    expect(c.target).toEqual({ server: 'https://10.0.0.9:6443', ca: pems.cert, token: TOKEN });
    expect(c.policy?.rules.map((r) => [r.id, r.action])).toEqual([['no-namespace-deletes', 'block'], ['exec-needs-review', 'review'], ['no-secrets', 'block']]);
    const info = kubernetesEntry.connectionInfo(c);
    expect(info).toEqual({ name: 'k8s-prod', type: 'kubernetes', policy: 'blocks: no-namespace-deletes, no-secrets; reviews: exec-needs-review (ops-leads)', record: 'statements' });
    expect(JSON.stringify(info)).not.toContain(TOKEN);
    const env = loadConfig(write('{ server: "https://k8s.internal", token: { env: KUBE_TOKEN } }'), { KUBE_TOKEN: TOKEN });
    expect(env.connections[0]?.target).toMatchObject({ token: TOKEN });
  });

  it('loads a client certificate and key instead of a token', () => {
    const cfg = loadConfig(write('{ server: "https://10.0.0.9:6443", ca: ca.pem, clientCert: client.pem, clientKey: { file: client-key.pem } }'), {});
    expect(cfg.connections[0]?.target).toMatchObject({ clientCert: pems.cert, clientKey: pems.private });
  });

  it('names the key of each problem, never the secret', () => {
    expect(problems(write('{ server: "http://10.0.0.9:6443", token: { file: token } }'))).toEqual(['connections.0.target.server: expected an https:// URL with no path, e.g. "https://10.0.0.9:6443"']);
    expect(problems(write('{ server: "https://h/api", token: { file: token } }'))[0]).toMatch(/^connections\.0\.target\.server: expected an https:\/\/ URL with no path/);
    expect(problems(write('{ server: "https://h" }'))[0]).toMatch(/^connections\.0\.target: expected `token: \{ file \| env \}`, or `clientCert: PATH` and `clientKey/);
    expect(problems(write('{ server: "https://h", token: { file: token }, clientCert: client.pem, clientKey: { file: client-key.pem } }'))[0]).toMatch(/^connections\.0\.target: expected either `token` or `clientCert` and `clientKey`, not both/);
    expect(problems(write('{ server: "https://h", clientCert: client.pem }'))[0]).toMatch(/^connections\.0\.target\.clientKey: a client certificate needs both/);
    expect(problems(write('{ server: "https://h", token: { env: NOPE } }'))).toEqual(['connections.0.target.token: connection "k8s-prod": environment variable NOPE is not set']);
    expect(problems(write('{ server: "https://h", token: { file: missing } }'))[0]).toMatch(/^connections\.0\.target\.token: connection "k8s-prod": cannot read .*missing: ENOENT$/);
    expect(problems(write('{ server: "https://h", ca: garbage.pem, token: { file: token } }'))).toEqual(['connections.0.target.ca: connection "k8s-prod": not a PEM certificate']);
    expect(problems(write('{ server: "https://h", clientCert: client.pem, clientKey: { file: garbage.pem } }'))[0]).toMatch(/^connections\.0\.target\.clientKey: connection "k8s-prod": not a PEM private key/);
    const spaced = problems(write('{ server: "https://h", token: { env: T } }'), { T: 'two words' });
    expect(spaced).toEqual(['connections.0.target.token: connection "k8s-prod": the token is empty or holds whitespace or control characters']);
    expect(spaced.join()).not.toContain('two words');
    expect(problems(write('{ server: "https://h", token: { file: token } }', '    policy: { rules: [{ id: x, block: { verbs: [destroy] } }] }\n'))[0]).toMatch(/^connections\.0\.policy\.rules\.0\.block\.verbs\.0: expected one of get, list, watch/);
  });
});
