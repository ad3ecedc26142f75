// Attacks on a kubernetes connection's rules through writes: secrets read past a read rule by the
// writes that answer with the objects they touch (an empty patch, an update, a delete and a
// deletecollection, each with `?dryRun=All` so nothing changes), a RoleBinding created past a
// `create` rule by a PUT (create-on-update) or a server-side apply, and exec past an exec rule by
// an ephemeral container (`kubectl debug`), and pods a delete rule keeps deleted with their
// namespace. Sent by the real kubectl through `sluice connect` and
// by curl through its tunnel; each refusal is checked absent from the fixture API server's access
// log (and its objects unchanged), the secret absent from everything the client received, and
// the refusal present in the trail. The attacks are first shown to work against the fixture
// itself, so the refusals are not of requests the target would have refused anyway.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportAndVerify, openTunnel, runCli, serviceToken, startGateway, tokenCtx, type CliEnv, type GatewayProcess, type Tunnel } from '../support/binaries.js';
import { startKubeFixture, type KubeFixture } from '../support/kubeFixture.js';
import { ensureKubectl, kubectlHome } from '../support/kubectl.js';

const execFileAsync = promisify(execFile);
const PASSWORD = 'fixture-db-password';
const PASSWORD_B64 = Buffer.from(PASSWORD).toString('base64');
let fixture: KubeFixture;
let gw: GatewayProcess;
let ctx: CliEnv & { env: Record<string, string> };
let tunnel: Tunnel;
let work: string;
let home: string;

beforeAll(async () => {
  await ensureKubectl();
  work = mkdtempSync(join(tmpdir(), 'sluice-k8s-writes-'));
  home = kubectlHome();
  fixture = await startKubeFixture();
  writeFileSync(join(work, 'ca.pem'), fixture.ca);
  writeFileSync(join(work, 'token'), `${fixture.token}\n`, { mode: 0o600 });
  gw = await startGateway({
    extra: { audit: { readers: ['auditors'] } },
    connections: [
      {
        name: 'k8s',
        type: 'kubernetes',
        target: { server: fixture.server, ca: join(work, 'ca.pem'), token: { file: join(work, 'token') } },
        allow: { groups: ['ops'] },
        policy: {
          rules: [
            { id: 'no-secrets', block: { verbs: ['get', 'list', 'watch'], resources: ['secrets'] } },
            { id: 'no-new-bindings', block: { verbs: ['create'], resources: ['rolebindings', 'clusterrolebindings'], apiGroups: ['rbac.authorization.k8s.io'] } },
            { id: 'no-exec', block: { verbs: ['create'], resources: ['pods/exec', 'pods/attach'] } },
            { id: 'staging-pods-kept', block: { verbs: ['delete'], resources: ['pods'], namespaces: ['staging'] } },
          ],
        },
      },
    ],
  });
  ctx = tokenCtx(gw, serviceToken(gw, 'attacker', 'ops'));
  ctx.env.HOME = home;
  tunnel = await openTunnel('k8s', ctx);
}, 90_000);

afterAll(async () => {
  await tunnel?.stop();
  await gw?.stop();
  await fixture?.stop();
  for (const d of [work, home]) if (d) rmSync(d, { recursive: true, force: true });
});

const kubectl = (args: string[]) => runCli(['connect', 'k8s', '--', 'kubectl', ...args], ctx);

/** curl to `base` (the tunnel, or the fixture itself with its CA and token). */
async function curl(base: string, method: string, path: string, headers: string[] = [], body?: string, extra: string[] = []): Promise<{ status: number; body: string }> {
  const args = ['-sS', '-m', '10', '--path-as-is', '-X', method, ...headers.flatMap((h) => ['-H', h]), ...(body !== undefined ? ['--data-binary', body] : []), ...extra, '-w', '\n%{http_code}', `${base}${path}`];
  const { stdout } = await execFileAsync('curl', args, { encoding: 'utf8' });
  const cut = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}
const viaTunnel = (method: string, path: string, headers: string[] = [], body?: string) => curl(`http://127.0.0.1:${tunnel.port}`, method, path, headers, body);
const direct = (method: string, path: string, headers: string[] = [], body?: string) =>
  curl(fixture.server, method, path, [`Authorization: Bearer ${fixture.token}`, ...headers], body, ['--cacert', join(work, 'ca.pem')]);

/** Refused by `rule` with a Forbidden Status, never reaching the API server, the secret nowhere in the answer. */
async function refused(method: string, path: string, rule: string, headers: string[] = [], body?: string): Promise<void> {
  const seen = fixture.log.length;
  const r = await viaTunnel(method, path, headers, body);
  expect(r.status, r.body).toBe(403);
  expect(JSON.parse(r.body)).toMatchObject({ kind: 'Status', reason: 'Forbidden' });
  expect(JSON.parse(r.body).message).toContain(`rule ${rule}`);
  expect(r.body).not.toContain(PASSWORD_B64);
  expect(fixture.log.slice(seen)).toEqual([]);
}

const EMPTY_MERGE = ['Content-Type: application/merge-patch+json'];
const SECRET = '/api/v1/namespaces/default/secrets/db-credentials';
const BINDING = '/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings/admin-for-me';
const BINDING_BODY = JSON.stringify({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'admin-for-me', namespace: 'default' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' }, subjects: [{ kind: 'User', name: 'attacker' }] });

describe('writes that answer with the objects a read rule protects', () => {
  it('against the API server itself, an empty dry-run patch and a dry-run deletecollection read the secret and change nothing', async () => {
    const patched = await direct('PATCH', `${SECRET}?dryRun=All`, EMPTY_MERGE, '{}');
    expect(patched.body).toContain(PASSWORD_B64);
    const listed = await direct('DELETE', '/api/v1/secrets?dryRun=All');
    expect(listed.body).toContain(PASSWORD_B64);
    expect(fixture.objects.some((o) => o.kind === 'secrets' && o.name === 'db-credentials')).toBe(true);
  });

  it.each([
    ['PATCH', `${SECRET}?dryRun=All`, EMPTY_MERGE, '{}'],
    ['PATCH', SECRET, ['Content-Type: application/json-patch+json'], '[]'],
    ['PUT', `${SECRET}?dryRun=All`, ['Content-Type: application/json'], '{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db-credentials"}}'],
    ['DELETE', `${SECRET}?dryRun=All`, [], undefined],
    ['DELETE', '/api/v1/namespaces/default/secrets?dryRun=All', [], undefined],
    ['DELETE', '/api/v1/secrets?dryRun=All&labelSelector=app%3Ddb', [], undefined],
  ] as const)('%s %s through the tunnel', async (method, path, headers, body) => {
    await refused(method, path, 'no-secrets', [...headers], body);
  });

  it('kubectl patch and kubectl delete --dry-run=server are refused; the secret is still there', async () => {
    for (const args of [
      ['patch', 'secret', 'db-credentials', '--type=merge', '-p', '{}'],
      ['patch', 'secret', 'db-credentials', '--type=merge', '-p', '{}', '--dry-run=server', '-o', 'yaml'],
      ['delete', 'secrets', '--all', '--dry-run=server'],
      ['delete', 'secret', 'db-credentials', '--dry-run=server'],
    ]) {
      const seen = fixture.log.length;
      const r = await kubectl(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/Forbidden.*no-secrets/);
      expect(`${r.stdout}${r.stderr}`).not.toContain(PASSWORD_B64);
      expect(fixture.log.slice(seen).filter((e) => /secrets/.test(e.url) && e.method !== 'GET')).toEqual([]);
    }
    expect(fixture.objects.some((o) => o.kind === 'secrets' && o.name === 'db-credentials')).toBe(true);
  });

  it('a write to something no rule protects still passes', async () => {
    const r = await viaTunnel('PATCH', '/api/v1/namespaces/default/pods/web-1?dryRun=All', EMPTY_MERGE, '{}');
    expect(r.status, r.body).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ kind: 'Pod', metadata: { name: 'web-1' } });
  });
});

describe('writes that create past a create rule', () => {
  it.each([
    ['PUT (create-on-update)', 'PUT', ['Content-Type: application/json']],
    ['a server-side apply', 'PATCH', ['Content-Type: application/apply-patch+yaml']],
    ['a server-side apply behind a second Content-Type', 'PATCH', ['Content-Type: application/merge-patch+json', 'Content-Type: application/apply-patch+yaml']],
  ] as const)('%s of a RoleBinding is refused', async (_label, method, headers) => {
    await refused(method, `${BINDING}?fieldManager=attacker`, 'no-new-bindings', [...headers], BINDING_BODY);
  });
});

describe('an ephemeral container is exec by another name', () => {
  it('kubectl debug is refused before the pod gets a container', async () => {
    const seen = fixture.log.length;
    const r = await kubectl(['debug', 'web-1', '--image=busybox', '--target=main', '--', 'cat', '/proc/1/root/etc/shadow']);
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(/Forbidden.*no-exec/);
    expect(fixture.log.slice(seen).filter((e) => /ephemeralcontainers/.test(e.url))).toEqual([]);
  });

  it('a raw PATCH and PUT of pods/ephemeralcontainers are refused', async () => {
    const body = JSON.stringify({ spec: { ephemeralContainers: [{ name: 'dbg', image: 'busybox', command: ['sh', '-c', 'id'], targetContainerName: 'main' }] } });
    await refused('PATCH', '/api/v1/namespaces/default/pods/web-1/ephemeralcontainers', 'no-exec', ['Content-Type: application/strategic-merge-patch+json'], body);
    await refused('PUT', '/api/v1/namespaces/default/pods/web-1/ephemeralcontainers', 'no-exec', ['Content-Type: application/json'], body);
  });
});

describe('a namespace deleted with the objects a rule keeps', () => {
  it('kubectl delete namespace is refused; the namespace and its pod are still there', async () => {
    const seen = fixture.log.length;
    const r = await kubectl(['delete', 'namespace', 'staging']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/Forbidden.*staging-pods-kept/);
    expect(fixture.log.slice(seen).filter((e) => e.method === 'DELETE')).toEqual([]);
    expect(fixture.objects.filter((o) => o.namespace === 'staging' || (o.kind === 'namespaces' && o.name === 'staging')).map((o) => `${o.kind}/${o.name}`).sort()).toEqual(['namespaces/staging', 'pods/worker-1']);
  });
});

describe('the record', () => {
  it('every refusal is in the trail with its rule, and neither the token nor the secret is anywhere', async () => {
    const auditor = tokenCtx(gw, serviceToken(gw, 'auditor', 'auditors'));
    const { trail, verify } = await exportAndVerify(auditor, work);
    expect(verify.code, verify.stderr).toBe(0);
    for (const text of ['patch secrets db-credentials -n default', 'deletecollection secrets', 'update rolebindings.rbac.authorization.k8s.io admin-for-me -n default', 'patch pods/ephemeralcontainers web-1 -n default', 'delete namespaces staging -n staging']) {
      expect(trail, text).toContain(`"text":"${text}"`);
    }
    for (const rule of ['no-secrets', 'no-new-bindings', 'no-exec', 'staging-pods-kept']) expect(trail).toContain(`"rule":"${rule}"`);
    expect(trail).not.toContain(fixture.token);
    expect(trail).not.toContain(PASSWORD_B64);
  });
});
