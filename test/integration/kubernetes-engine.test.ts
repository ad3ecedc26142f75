// Kubernetes through the gateway, end to end: the fixture API server (test/support/kubeFixture.ts)
// as the target, the real gateway and `sluice` binaries, and the real kubectl run by
// `sluice connect k8s-prod -- kubectl …`. What reached the target is read from the fixture's own
// access log and objects; what the client and the trail hold is searched for the cluster token.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { paths, type ReviewList, type SessionDetail, type SessionList } from '../../src/api/contract.js';
import { CLI_BIN, cliEnv, collect, openTunnel, runCli, serviceToken, spawnCli, startGateway, tokenCtx, waitForStderr, type CliEnv, type GatewayProcess } from '../support/binaries.js';
import { startKubeFixture, type KubeFixture } from '../support/kubeFixture.js';
import { ensureKubectl, kubectl as kubectlWith, kubectlHome } from '../support/kubectl.js';
import { startTmux } from '../support/tmux.js';

let fixture: KubeFixture;
let gw: GatewayProcess;
let ctx: CliEnv & { env: Record<string, string> };
let lead: string;
let dispatcher: Agent;
let work: string;
let home: string;
const seen: string[] = [];

beforeAll(async () => {
  await ensureKubectl();
  work = mkdtempSync(join(tmpdir(), 'sluice-k8s-'));
  home = kubectlHome();
  fixture = await startKubeFixture();
  writeFileSync(join(work, 'ca.pem'), fixture.ca);
  writeFileSync(join(work, 'token'), `${fixture.token}\n`, { mode: 0o600 });
  writeFileSync(join(work, 'client.pem'), fixture.clientCert);
  writeFileSync(join(work, 'client-key.pem'), fixture.clientKey, { mode: 0o600 });
  gw = await startGateway({
    connections: [
      {
        name: 'k8s-prod',
        type: 'kubernetes',
        target: { server: fixture.server, ca: join(work, 'ca.pem'), token: { file: join(work, 'token') } },
        allow: { groups: ['ops'] },
        policy: {
          rules: [
            { id: 'no-namespace-deletes', block: { verbs: ['delete'], resources: ['namespaces'] } },
            { id: 'exec-needs-review', review: { verbs: ['create'], resources: ['pods/exec', 'pods/attach'], approvers: ['ops-leads'] } },
            { id: 'no-secrets', block: { verbs: ['get', 'list', 'watch'], resources: ['secrets'] } },
          ],
        },
      },
      {
        name: 'k8s-cert',
        type: 'kubernetes',
        target: { server: fixture.server, ca: join(work, 'ca.pem'), clientCert: join(work, 'client.pem'), clientKey: { file: join(work, 'client-key.pem') } },
        allow: { groups: ['ops'] },
      },
    ],
  });
  const ops = serviceToken(gw, 'ci', 'ops');
  lead = serviceToken(gw, 'lead', 'ops-leads');
  ctx = tokenCtx(gw, ops);
  ctx.env.HOME = home;
  dispatcher = new Agent({ connect: gw.caFile ? { ca: readFileSync(gw.caFile) } : {} });
}, 90_000);

afterAll(async () => {
  await dispatcher?.close();
  await gw?.stop();
  await fixture?.stop();
  for (const d of [work, home]) if (d) rmSync(d, { recursive: true, force: true });
});

/** `sluice connect k8s-prod -- kubectl ARGS`; everything it printed is kept for the secret check. */
async function kubectl(args: string[], input?: string) {
  const r = await runCli(['connect', 'k8s-prod', '--', 'kubectl', ...args], ctx, input);
  seen.push(r.stdout, r.stderr);
  return r;
}

const reached = (re: RegExp) => fixture.log.filter((e) => re.test(`${e.method} ${e.url}`));

async function pendingReview(): Promise<string> {
  for (;;) {
    const res = await fetch(`${gw.url}${paths.reviews}?status=pending`, { headers: { authorization: `Bearer ${lead}` }, dispatcher });
    const list = (await res.json()) as ReviewList;
    const r = list.reviews.find((x) => x.status === 'pending');
    if (r) return r.id;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function decide(id: string, approve: boolean): Promise<void> {
  const res = await fetch(`${gw.url}${approve ? paths.reviewApprove(id) : paths.reviewReject(id)}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${lead}`, 'content-type': 'application/json' },
    body: JSON.stringify(approve ? {} : { reason: 'not in prod' }),
    dispatcher,
  });
  expect(res.status).toBe(200);
}

describe('kubectl through sluice connect', () => {
  it('get, describe and delete pods reach the API server with the held token', async () => {
    const get = await kubectl(['get', 'pods']);
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout).toMatch(/^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\n/);
    expect(get.stdout).toMatch(/web-1\s+1\/1\s+Running/);
    const describe = await kubectl(['describe', 'pod', 'web-2']);
    expect(describe.code, describe.stderr).toBe(0);
    expect(describe.stdout).toMatch(/Name:\s+web-2/);
    const del = await kubectl(['delete', 'pod', 'web-2']);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toMatch(/pod "web-2" deleted/);
    expect(fixture.objects.some((o) => o.kind === 'pods' && o.name === 'web-2')).toBe(false);
    expect(reached(/^DELETE \/api\/v1\/namespaces\/default\/pods\/web-2$/)).toHaveLength(1);
    expect(fixture.log.every((e) => e.authorized)).toBe(true);
  });

  it('a blocked `delete namespace` never reaches the API server', async () => {
    const before = fixture.log.length;
    const r = await kubectl(['delete', 'namespace', 'staging']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Error from server \(Forbidden\): sluice: delete namespaces staging -n staging is blocked by rule no-namespace-deletes/);
    expect(reached(/^DELETE \/api\/v1\/namespaces\/staging/)).toHaveLength(0);
    expect(fixture.objects.some((o) => o.kind === 'namespaces' && o.name === 'staging')).toBe(true);
    // Discovery may run first; nothing else of this command reached the target.
    expect(fixture.log.slice(before).every((e) => !/namespaces\/staging/.test(e.url))).toBe(true);
  });

  it('secrets are blocked, by list, get, watch and encoded paths alike', async () => {
    for (const args of [['get', 'secrets'], ['get', 'secret', 'db-credentials', '-o', 'yaml'], ['get', 'secrets', '--watch-only', '--request-timeout', '5s'], ['get', '--raw', '/api/v1/namespaces/default/secret%73']]) {
      const r = await kubectl(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(/Forbidden|forbidden/);
      expect(r.stdout).not.toContain('fixture-db-password');
    }
    const raw = await kubectl(['get', '--raw', '/api/v1/namespaces/default/pods/../secrets']);
    expect(raw.code).not.toBe(0);
    expect(reached(/secret/i)).toHaveLength(0);
  });

  it('exec held for review: approved runs the shell and is replayable; rejected never reaches the pod', async () => {
    const child = spawnCli(['connect', 'k8s-prod', '--', 'kubectl', 'exec', '-i', 'web-1', '--', 'sh'], ctx);
    child.stdin?.end('echo hello-from-pod\necho to-stderr >&2\nexit 3\n');
    const done = collect(child);
    const id = await pendingReview();
    expect(fixture.execs).toHaveLength(0);
    await decide(id, true);
    const r = await done;
    seen.push(r.stdout, r.stderr);
    expect(r.stdout).toBe('hello-from-pod\n');
    expect(r.stderr).toContain('to-stderr');
    expect(r.code).toBe(3);
    expect(fixture.execs).toEqual([['sh']]);

    const session = await lastSessionWith('k8s.output');
    const replay = await runCli(['sessions', 'replay', session.session.id, '--speed', '0'], ctx);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toBe('hello-from-pod\n');
    expect(replay.stderr).toContain('create pods/exec web-1 -n default');
    expect(replay.stderr).toContain('to-stderr');

    const rejected = spawnCli(['connect', 'k8s-prod', '--', 'kubectl', 'exec', '-i', 'web-1', '--', 'sh'], ctx);
    rejected.stdin?.end('echo never\n');
    const rdone = collect(rejected);
    await decide(await pendingReview(), false);
    const rr = await rdone;
    seen.push(rr.stdout, rr.stderr);
    expect(rr.code).not.toBe(0);
    expect(rr.stdout).toBe('');
    expect(rr.stderr).toMatch(/Error from server \(Forbidden\): sluice: review R-\w+ was rejected by lead: not in prod; the request was not sent/);
    expect(fixture.execs).toHaveLength(1);
  });

  it('`kubectl exec -it` in a real terminal: typed commands run, the exit status returns, the session replays', async () => {
    const t = await startTmux({ command: [process.execPath, CLI_BIN, 'connect', 'k8s-prod', '--', 'kubectl', 'exec', '-it', 'web-1', '--', 'sh'], env: cliEnv(ctx) });
    try {
      await decide(await pendingReview(), true);
      // The pod's sh has no pty (the fixture's), so it needs a newline (C-j), not the terminal's CR.
      await t.type('echo typed-$((6*7))');
      await t.keys('C-j');
      await t.waitFor(/typed-42/);
      await t.type('exit 4');
      await t.keys('C-j');
      const { code, modes } = await t.waitForExit();
      expect(code).toBe(4);
      expect(modes.icanon).toBe(true);
    } finally {
      await t.kill();
    }
    const session = await lastSessionWith('k8s.input', (d) => d.events.some((e) => e.kind === 'k8s.input' && String(e.data.data).includes('typed-$((6*7))')));
    const kinds = session.events.map((e) => e.kind);
    expect(kinds).toContain('k8s.resize');
    const replay = await runCli(['sessions', 'replay', session.session.id, '--speed', '0'], ctx);
    expect(replay.stdout).toContain('typed-42');
    const cast = await runCli(['sessions', 'export', session.session.id, '--cast'], ctx);
    const lines = cast.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(lines[0]).toMatchObject({ version: 2, width: 80, height: 24 });
    expect(lines.some((e) => Array.isArray(e) && e[1] === 'i' && String(e[2]).includes('typed-$((6*7))'))).toBe(true);
  });

  it('`sluice connect k8s-prod` prints `export KUBECONFIG=…` for a kubeconfig of its own; --local-password is refused', async () => {
    const child = spawnCli(['connect', 'k8s-prod', '--port', '0'], ctx);
    try {
      const [, file] = (await waitForStderr(child, /export KUBECONFIG=(\S+)\n/)) as unknown as [string, string];
      expect(file.startsWith(ctx.configDir)).toBe(true);
      expect(readFileSync(file, 'utf8')).not.toMatch(/token|insecure/);
      const ok = await kubectlWith(['get', 'pods', '-o', 'name'], { KUBECONFIG: file, HOME: home });
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toContain('pod/web-1');
      seen.push(ok.stdout, ok.stderr);
    } finally {
      child.kill('SIGINT');
      await collect(child);
    }
    const refused = await runCli(['connect', 'k8s-prod', '--local-password'], ctx);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--local-password is not available for kubernetes connections/);
  });

  it('a watch is recorded as its event count and first events', async () => {
    const r = await kubectl(['get', 'pods', '--watch', '--request-timeout', '2s', '-o', 'name']);
    expect(r.stdout).toContain('pod/web-1');
    const session = await lastSessionWith('k8s.watch');
    const watch = session.events.find((e) => e.kind === 'k8s.watch');
    const listed = fixture.objects.filter((o) => o.kind === 'pods' && o.namespace === 'default').length;
    expect(watch?.data.events).toBe(listed);
    expect(String((watch?.data.first as string[])[0])).toMatch(/^\{"type":"ADDED","object":\{"kind":"Pod"/);
    expect(session.events.some((e) => e.kind === 'action' && e.data.kind === 'watch' && e.data.text === 'watch pods -n default')).toBe(true);
  });

  it('impersonation is refused before it reaches the API server', async () => {
    const before = fixture.log.length;
    const r = await kubectl(['get', 'pods', '--as', 'system:admin']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Forbidden.*impersonation headers are refused/);
    expect(fixture.log.slice(before).filter((e) => /pods/.test(e.url))).toHaveLength(0);
  });

  it('with a client certificate upstream: kubectl works, and a client\'s own Authorization is refused', async () => {
    const r = await runCli(['connect', 'k8s-cert', '--', 'kubectl', 'get', 'pods', '-o', 'name'], ctx);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('pod/web-1');
    const tunnel = await openTunnel('k8s-cert', ctx);
    try {
      const before = fixture.log.length;
      const res = await fetch(`http://127.0.0.1:${tunnel.port}/api/v1/namespaces/default/pods`, { headers: { authorization: 'Bearer someone-elses-token' } });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { message: string }).message).toMatch(/carry no credential of their own/);
      expect(fixture.log.length).toBe(before);
    } finally {
      await tunnel.stop();
    }
  });

  it('a TokenReview answer that echoes the held token (gzip-coded, asked or not) reaches kubectl decoded and scrubbed', async () => {
    const file = join(work, 'review.json');
    writeFileSync(file, JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: {} }));
    const r = await kubectl(['create', '--raw', '/apis/authentication.k8s.io/v1/tokenreviews', '-f', file]);
    expect(r.code, r.stderr).toBe(0);
    const review = JSON.parse(r.stdout) as { spec: { token: string }; status: { authenticated: boolean } };
    expect(review.status.authenticated).toBe(true);
    expect(review.spec.token).toBe('*'.repeat(fixture.token.length));
    expect(reached(/^POST \/apis\/authentication\.k8s\.io\/v1\/tokenreviews$/)).toHaveLength(1);
    const session = await lastSessionWith('k8s.response', (d) => d.events.some((e) => e.kind === 'k8s.response' && e.data.credentialEchoesScrubbed !== undefined));
    const response = session.events.find((e) => e.kind === 'k8s.response' && e.data.credentialEchoesScrubbed !== undefined)!;
    expect(response.data.credentialEchoesScrubbed).toBeGreaterThan(0);
    expect(String(response.data.responseSample)).toContain('*'.repeat(fixture.token.length));
  });

  it('the cluster token never reaches the client nor the audit trail', async () => {
    const verbose = await kubectl(['get', 'pods', '-v=9']);
    expect(verbose.code).toBe(0);
    // The API the CLI reads, fetched directly: one CLI process per session would be slow.
    const api = async (path: string) => (await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${ctx.env.SLUICE_TOKEN}` }, dispatcher })).text();
    const list = JSON.parse(await api(`${paths.sessions}?connection=k8s-prod&limit=200`)) as SessionList;
    const ids = list.sessions.map((s) => s.id);
    expect(ids.length).toBeGreaterThan(0);
    for (const id of ids) seen.push(await api(paths.session(id)));
    // The trail was really read: it holds the requests, with the pods the target returned.
    expect(seen.join('\n')).toMatch(/"k8s\.request"[\s\S]*web-1/);
    seen.push((await runCli(['sessions', 'show', ids[0] as string, '--json'], ctx)).stdout);
    seen.push(gw.output());
    for (const text of seen) expect(text).not.toContain(fixture.token);
  });
});

/** The latest k8s-prod session holding an event of `kind` (and passing `also`), once its end is recorded. */
async function lastSessionWith(kind: string, also: (d: SessionDetail) => boolean = () => true): Promise<SessionDetail> {
  for (;;) {
    const list = JSON.parse((await runCli(['sessions', '--json', '--connection', 'k8s-prod', '--limit', '20'], ctx)).stdout) as SessionList | SessionList['sessions'];
    for (const s of Array.isArray(list) ? list : list.sessions) {
      const detail = JSON.parse((await runCli(['sessions', 'show', s.id, '--json'], ctx)).stdout) as SessionDetail;
      if (detail.events.some((e) => e.kind === kind) && detail.events.some((e) => e.kind === 'session.end') && also(detail)) return detail;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
