// The held credential in upgraded streams and cut records, end to end: the real gateway and
// `sluice` binaries, the real kubectl against the fixture API server (whose exec can print the
// fixture's own token, framed exactly: one frame, two stdout messages, two fragments, two TCP
// writes) and a real WebSocket client against an http service that prints the Authorization it
// was sent. What the clients received, the whole audit export and the gateway's log are searched
// for each credential raw, base64, base64url and URL-encoded.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { openTunnel, runCli, serviceToken, startGateway, tokenCtx, type CliEnv, type GatewayProcess, type Tunnel } from '../support/binaries.js';
import { startHttpTarget, type HttpTarget } from '../support/httpTarget.js';
import { PRINT_TOKEN, startKubeFixture, type KubeFixture } from '../support/kubeFixture.js';
import { pod } from '../support/kubeObjects.js';
import { directKubeconfig, ensureKubectl, kubectl as kubectlWith, kubectlHome } from '../support/kubectl.js';

const AUTH = 'Bearer svc-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e';
let fixture: KubeFixture;
let target: HttpTarget;
let gw: GatewayProcess;
let ctx: CliEnv & { env: Record<string, string> };
let work: string;
let home: string;
let httpTunnel: Tunnel;
let kubeTunnel: Tunnel;
const seen: string[] = [];

beforeAll(async () => {
  await ensureKubectl();
  work = mkdtempSync(join(tmpdir(), 'sluice-echo-streams-'));
  home = kubectlHome();
  [fixture, target] = await Promise.all([startKubeFixture(), startHttpTarget()]);
  writeFileSync(join(work, 'ca.pem'), fixture.ca);
  writeFileSync(join(work, 'target-ca.pem'), target.ca);
  writeFileSync(join(work, 'token'), `${fixture.token}\n`, { mode: 0o600 });
  gw = await startGateway({
    env: { BILLING_TOKEN: AUTH },
    extra: { audit: { readers: ['auditors'] } },
    connections: [
      { name: 'k8s-prod', type: 'kubernetes', target: { server: fixture.server, ca: join(work, 'ca.pem'), token: { file: join(work, 'token') } }, allow: { groups: ['ops'] } },
      { name: 'billing-api', type: 'http', target: { url: target.url, ca: join(work, 'target-ca.pem'), headers: { Authorization: { env: 'BILLING_TOKEN' } } }, allow: { groups: ['ops'] } },
    ],
  });
  ctx = tokenCtx(gw, serviceToken(gw, 'ci', 'ops,auditors'));
  ctx.env.HOME = home;
  [httpTunnel, kubeTunnel] = await Promise.all([openTunnel('billing-api', ctx), openTunnel('k8s-prod', ctx)]);
}, 120_000);

afterAll(async () => {
  await httpTunnel?.stop();
  await kubeTunnel?.stop();
  await gw?.stop();
  await fixture?.stop();
  await target?.close();
  for (const d of [work, home]) if (d) rmSync(d, { recursive: true, force: true });
});

async function kubectl(args: string[]) {
  const r = await runCli(['connect', 'k8s-prod', '--', 'kubectl', ...args], ctx);
  seen.push(r.stdout, r.stderr);
  return r;
}

/** Every message of a WebSocket until it closes, and the extensions it negotiated. */
function wsMessages(url: string, opts: WebSocket.ClientOptions = {}, protocols?: string[]): Promise<{ messages: Buffer[]; extensions: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, opts);
    const messages: Buffer[] = [];
    ws.on('message', (d) => messages.push(Buffer.from(d as Buffer)));
    ws.once('error', reject);
    ws.once('close', () => resolve({ messages, extensions: ws.extensions }));
  });
}

/** The forms of a secret searched for: raw, base64, base64url, URL-encoded. */
const forms = (s: string) => [s, Buffer.from(s).toString('base64'), Buffer.from(s).toString('base64url'), encodeURIComponent(s)];

describe('kubectl exec streams', () => {
  for (const how of ['one-frame', 'two-messages', 'two-frames', 'two-writes']) {
    it(`a container printing the held token (${how}) shows kubectl stars`, async () => {
      const r = await kubectl(['exec', 'web-1', '--', PRINT_TOKEN, how]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`token: ${'*'.repeat(fixture.token.length)}\n`);
    });
  }

  it('the same exec straight to the fixture shows the token (what the gateway stops)', async () => {
    const r = await kubectlWith(['exec', 'web-1', '--', PRINT_TOKEN, 'two-writes'], { KUBECONFIG: directKubeconfig(work, fixture.server, join(work, 'ca.pem'), fixture.token), HOME: home });
    expect(r.stdout).toBe(`token: ${fixture.token}\n`);
  });

  it('a compression extension cannot be negotiated through the gateway (the fixture accepts it directly)', async () => {
    const path = `/api/v1/namespaces/default/pods/web-1/exec?command=${PRINT_TOKEN}&command=one-frame&stdout=true`;
    const direct = await wsMessages(`${fixture.server.replace('https', 'wss')}${path}`, { perMessageDeflate: true, ca: fixture.ca, headers: { authorization: `Bearer ${fixture.token}` } }, ['v5.channel.k8s.io']);
    expect(direct.extensions).toContain('permessage-deflate');
    const through = await wsMessages(`ws://127.0.0.1:${kubeTunnel.port}${path}`, { perMessageDeflate: true }, ['v5.channel.k8s.io']);
    expect(through.extensions).toBe('');
    const stdout = Buffer.concat(through.messages.filter((m) => m[0] === 1).map((m) => m.subarray(1))).toString();
    seen.push(stdout);
    expect(stdout).toBe(`token: ${'*'.repeat(fixture.token.length)}\n`);
  });

  it('a watch event with the token at the recorder\'s per-event cut keeps no part of it', async () => {
    const echo = pod('default', 'echo-pod');
    const note = (n: number) => `${'x'.repeat(n)}${fixture.token}${'x'.repeat(100)}`;
    const metadata = echo.body.metadata as Record<string, unknown>;
    metadata.annotations = { note: note(0) };
    const at = JSON.stringify({ type: 'ADDED', object: echo.body }).indexOf(fixture.token);
    // The token begins 10 characters before the 16 KiB cut.
    metadata.annotations = { note: note(16 * 1024 - 10 - at) };
    fixture.objects.push(echo);
    const r = await kubectl(['get', 'pods', '--watch', '--request-timeout', '2s', '-o', 'name']);
    expect(r.stdout).toContain('pod/echo-pod');
    const trail = await runCli(['audit', 'export'], ctx);
    expect(trail.code, trail.stderr).toBe(0);
    const watch = trail.stdout.split('\n').filter((l) => l.includes('"k8s.watch"') && l.includes('echo-pod'));
    expect(watch).toHaveLength(1);
    const event = (JSON.parse(watch[0]!) as { data: { first: string[] } }).data.first.find((e) => e.includes('echo-pod'))!;
    expect(event).toHaveLength(16 * 1024);
    expect(event.endsWith('*'.repeat(10))).toBe(true);
    expect(event).not.toContain(fixture.token.slice(0, 6));
  });
});

describe('WebSocket upgrades on http connections', () => {
  for (const how of ['one-frame', 'two-frames', 'two-writes']) {
    it(`a service printing the injected Authorization (${how}) reaches the client as stars`, async () => {
      const { messages } = await wsMessages(`ws://127.0.0.1:${httpTunnel.port}/ws-auth?how=${how}`);
      const text = messages.map(String).join('');
      seen.push(text);
      expect(text).toBe(`you sent: ${'*'.repeat(AUTH.length)}`);
    });
  }

  it('a frame the gateway cannot read (RSV1 set) ends the stream, recorded with the reason; nothing of it reaches the client, the gateway keeps serving', async () => {
    const { messages } = await wsMessages(`ws://127.0.0.1:${httpTunnel.port}/ws-auth?how=rsv`).catch((err: Error) => ({ messages: [] as Buffer[], error: err }));
    const text = messages.map(String).join('');
    seen.push(text);
    expect(text).toBe('first');
    // The gateway keeps serving the connection.
    expect((await fetch(`http://127.0.0.1:${httpTunnel.port}/echo/after-rsv`)).status).toBe(200);
    // The session (one per client connection) ends only once the stream's outcome is recorded.
    const trail = (await runCli(['audit', 'export'], ctx)).stdout;
    expect(trail).toMatch(/"kind":"result"[^\n]*the stream was ended: a WebSocket frame with RSV bits set/);
  });

  it('a 101 naming an extension the client was not let offer is answered 502', async () => {
    const r = await wsMessages(`ws://127.0.0.1:${httpTunnel.port}/ws-ext`, { perMessageDeflate: true }).then(
      () => 'opened',
      (err: Error) => err.message,
    );
    expect(r).toMatch(/Unexpected server response: 502/);
    const arrived = target.log.filter((e) => e.target === '/ws-ext');
    expect(arrived).toHaveLength(1);
    expect(arrived[0]!.headers['sec-websocket-extensions']).toBeUndefined();
  });

  it('a SPDY upgrade, which the gateway cannot scan, is refused', async () => {
    const before = target.log.length;
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect(httpTunnel.port, '127.0.0.1', () => s.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n'));
      let text = '';
      s.on('data', (d: Buffer) => (text += d.toString()));
      s.on('error', reject);
      s.on('close', () => resolve(text));
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(reply).toContain('cannot be scanned for the held credential');
    expect(target.log.length).toBe(before);
  });
});

describe('the record', () => {
  it('counts the echoes, and neither the clients, the audit export nor the gateway log hold a credential in any form', async () => {
    const trail = await runCli(['audit', 'export'], ctx);
    expect(trail.code, trail.stderr).toBe(0);
    expect(trail.stdout).toMatch(/"credentialEchoesScrubbed":1/);
    // Each http WebSocket echo recorded with its outcome, its echo counted.
    expect(trail.stdout.split('\n').filter((l) => l.includes('"http.response"') && l.includes('"result":"upgraded"') && l.includes('"credentialEchoesScrubbed":1'))).toHaveLength(3);
    expect(trail.stdout).toContain('k8s.output');
    const all = [...seen, trail.stdout, gw.output()].join('\n');
    for (const secret of [fixture.token, AUTH, AUTH.slice('Bearer '.length)]) for (const f of forms(secret)) expect(all).not.toContain(f);
  });
});
