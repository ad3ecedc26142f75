// Attacks on a kubernetes connection's rules through the verb and the scope: a rule on `get`
// walked past by a list, a cluster-wide list, a watch (`?watch=1`, `watch=true`, the legacy
// /watch/ path), a Table; a rule on `delete` walked past by a deletecollection; rules on
// namespaces and names walked past by collection requests that return or delete their objects
// among others; and impersonation headers in any case. Sent by the real kubectl through
// `sluice connect` and by curl through its tunnel; each refusal is checked absent from the
// fixture API server's access log and its objects, and present in the trail.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportAndVerify, openTunnel, runCli, serviceToken, startGateway, tokenCtx, type CliEnv, type GatewayProcess, type Tunnel } from '../support/binaries.js';
import { startKubeFixture, type KubeFixture } from '../support/kubeFixture.js';
import { ensureKubectl, kubectlHome } from '../support/kubectl.js';

const execFileAsync = promisify(execFile);
let fixture: KubeFixture;
let gw: GatewayProcess;
let ctx: CliEnv & { env: Record<string, string> };
let tunnel: Tunnel;
let work: string;
let home: string;

beforeAll(async () => {
  await ensureKubectl();
  work = mkdtempSync(join(tmpdir(), 'sluice-k8s-verbs-'));
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
            { id: 'no-secret-reads', block: { verbs: ['get'], resources: ['secrets'] } },
            { id: 'default-pods-kept', block: { verbs: ['delete'], resources: ['pods'], namespaces: ['default'] } },
            { id: 'worker-untouched', block: { resources: ['pods'], names: ['worker-1'] } },
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

/** curl through the tunnel: the gateway adds the token. */
async function curl(method: string, path: string, headers: string[] = []): Promise<{ status: number; body: string }> {
  const { stdout } = await execFileAsync('curl', ['-sS', '-m', '10', '--path-as-is', '-X', method, ...headers.flatMap((h) => ['-H', h]), '-w', '\n%{http_code}', `http://127.0.0.1:${tunnel.port}${path}`], { encoding: 'utf8' });
  const cut = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

/** The request is refused by `rule` and never reaches the API server. */
async function refused(method: string, path: string, rule: RegExp, headers: string[] = []): Promise<void> {
  const seen = fixture.log.length;
  const r = await curl(method, path, headers);
  expect(r.status, r.body).toBe(403);
  expect(JSON.parse(r.body)).toMatchObject({ kind: 'Status', reason: 'Forbidden' });
  expect(JSON.parse(r.body).message).toMatch(rule);
  expect(fixture.log.slice(seen)).toEqual([]);
}

describe('a rule on get also stops the list, watch and table reads of the same objects', () => {
  it('kubectl get secrets, -A, -o yaml and a single secret are all refused', async () => {
    for (const args of [['get', 'secrets'], ['get', 'secrets', '-A'], ['get', 'secrets', '-o', 'yaml'], ['get', 'secret', 'db-credentials'], ['get', 'secrets', '--field-selector', 'metadata.name=db-credentials']]) {
      const seen = fixture.log.length;
      const r = await kubectl(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/Forbidden.*no-secret-reads/);
      expect(r.stdout).not.toContain('fixture-db-password');
      expect(fixture.log.slice(seen).filter((e) => /secrets/.test(e.url))).toEqual([]);
    }
  });

  it.each([
    '/api/v1/secrets',
    '/api/v1/namespaces/default/secrets',
    '/api/v1/namespaces/default/secrets/',
    '/api/v1/namespaces/default/secrets?watch=1',
    '/api/v1/namespaces/default/secrets?watch=true&resourceVersion=0',
    '/api/v1/secrets?watch=True',
    '/api/v1/watch/secrets',
    '/api/v1/watch/namespaces/default/secrets',
    '/api/v1/namespaces/default/secrets?labelSelector=app%3Ddb',
    '/api/v1/namespaces/default/secrets?as=Table',
  ])('GET %s', async (path) => {
    await refused('GET', path, /no-secret-reads/, ['Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json']);
  });
});

describe('a rule on delete also stops the deletecollection of the same objects', () => {
  it('DELETE on the collection, namespaced and cluster-wide, is refused; the pods remain', async () => {
    await refused('DELETE', '/api/v1/namespaces/default/pods', /default-pods-kept/);
    await refused('DELETE', '/api/v1/pods', /default-pods-kept/);
    await refused('DELETE', '/api/v1/namespaces/default/pods/web-1', /default-pods-kept/);
    expect(fixture.objects.filter((o) => o.kind === 'pods' && o.namespace === 'default').map((o) => o.name).sort()).toEqual(['web-1', 'web-2']);
  });
});

describe('a rule naming an object also stops the collection requests that return it', () => {
  it('listing pods of its namespace or of all namespaces is refused; naming another pod is not', async () => {
    for (const args of [['get', 'pods', '-n', 'staging'], ['get', 'pods', '-A'], ['get', 'pod', 'worker-1', '-n', 'staging']]) {
      const r = await kubectl(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/Forbidden.*worker-untouched/);
    }
    await refused('GET', '/api/v1/namespaces/staging/pods?watch=1', /worker-untouched/);
    await refused('GET', '/api/v1/namespaces/staging/pods?fieldSelector=metadata.name!%3Dx', /worker-untouched/);
    const other = await kubectl(['get', 'pod', 'web-1']);
    expect(other.code, other.stderr).toBe(0);
    expect(other.stdout).toMatch(/web-1/);
    const selected = await curl('GET', '/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-1');
    expect(selected.status).toBe(200);
  });
});

describe('impersonation, whatever the spelling', () => {
  it.each(['Impersonate-User: admin', 'IMPERSONATE-GROUP: system:masters', 'impersonate-uid: 0', 'Impersonate-Extra-scopes: all'])('%s', async (header) => {
    const seen = fixture.log.length;
    const r = await curl('GET', '/api/v1/namespaces/default/pods', [header]);
    expect(r.status).toBe(403);
    expect(r.body).toMatch(/impersonation headers are refused/);
    expect(fixture.log.slice(seen)).toEqual([]);
  });
});

describe('protocols the gateway does not pass', () => {
  it('an h2c upgrade is refused before the API server, and recorded', async () => {
    const seen = fixture.log.length;
    const { stdout } = await execFileAsync('curl', ['-sS', '-m', '10', '--http2', '-w', '\n%{http_code}', `http://127.0.0.1:${tunnel.port}/api/v1/h2c-probe`], { encoding: 'utf8' }).catch((err: { stdout: string }) => ({ stdout: err.stdout }));
    expect(stdout).toMatch(/400$/);
    expect(fixture.log.slice(seen)).toEqual([]);
  });

  it('a CONNECT is answered 405 before the API server, and recorded', async () => {
    const seen = fixture.log.length;
    const got = await new Promise<string>((resolve, reject) => {
      let text = '';
      const s = connect(tunnel.port, '127.0.0.1', () => s.write('CONNECT kubernetes.default:443 HTTP/1.1\r\nHost: kubernetes.default:443\r\n\r\n'));
      s.setEncoding('latin1');
      s.on('data', (d: string) => (text += d));
      s.on('error', reject);
      s.on('close', () => resolve(text));
    });
    expect(got).toMatch(/^HTTP\/1\.1 405 /);
    expect(fixture.log.slice(seen)).toEqual([]);
  });
});

describe('the record', () => {
  it('every refused request is in the trail with its rule, and the token is nowhere', async () => {
    const auditor = tokenCtx(gw, serviceToken(gw, 'auditor', 'auditors'));
    const { trail, verify } = await exportAndVerify(auditor, work);
    expect(verify.code, verify.stderr).toBe(0);
    for (const text of ['deletecollection pods -n default', 'deletecollection pods', 'watch secrets', 'list secrets -n default', 'list pods -n staging', 'GET /api/v1/h2c-probe', 'CONNECT kubernetes.default:443']) {
      expect(trail, text).toContain(`"text":"${text}"`);
    }
    expect(trail).toContain('"rule":"no-secret-reads"');
    expect(trail).toContain('"rule":"worker-untouched"');
    expect(trail).not.toContain(fixture.token);
  });
});
