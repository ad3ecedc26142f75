// kubectl port-forward through a kubernetes connection that holds a bearer token, end to end: the
// real gateway and `sluice` binaries, the real kubectl (1.32: SPDY/3.1 tunnelled in a WebSocket)
// run by `sluice connect k8s-prod -- kubectl port-forward`, the fixture API server forwarding to
// real TCP servers standing in for the pod's ports, and curl or a raw TCP client on the local
// port. A pod that prints the held token reaches the client starred (the bytes received are
// checked); a SPDY frame the gateway cannot read, or a header block echoing the token, ends the
// stream with its reason recorded, and the gateway keeps serving. What the clients saw, the audit
// export and the gateway log are searched for the token.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, cliEnv, runCli, serviceToken, startGateway, tokenCtx, type CliEnv, type GatewayProcess } from '../support/binaries.js';
import { startKubeFixture, type KubeFixture } from '../support/kubeFixture.js';
import { HEADER_ECHO_PORT, MALFORMED_SPDY_PORT } from '../support/kubePortForward.js';
import { directKubeconfig, ensureKubectl, KUBECTL, kubectlHome, startPortForward, type PortForward } from '../support/kubectl.js';

const execFileAsync = promisify(execFile);
let fixture: KubeFixture;
let gw: GatewayProcess;
let ctx: CliEnv & { env: Record<string, string> };
let work: string;
let home: string;
let echo: Server;
let web: HttpServer;
const seen: string[] = [];

const portOf = (s: Server | HttpServer) => (s.address() as AddressInfo).port;

beforeAll(async () => {
  await ensureKubectl();
  work = mkdtempSync(join(tmpdir(), 'sluice-k8s-pf-'));
  home = kubectlHome();
  fixture = await startKubeFixture();
  writeFileSync(join(work, 'ca.pem'), fixture.ca);
  writeFileSync(join(work, 'token'), `${fixture.token}\n`, { mode: 0o600 });
  // The pod's ports: a TCP echo server, and a web server that prints the token it shares with the gateway.
  echo = createServer((s) => s.pipe(s));
  web = createHttpServer((req, res) => {
    const body = `token: ${fixture.token}\n`;
    const half = 7 + Math.floor(fixture.token.length / 2);
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.socket?.setNoDelay(true);
    // The token in two writes, so it crosses the fixture's SPDY data frames.
    res.write(body.slice(0, half), () => setImmediate(() => res.end(body.slice(half))));
  });
  await Promise.all([echo, web].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
  gw = await startGateway({
    extra: { audit: { readers: ['auditors'] } },
    connections: [{ name: 'k8s-prod', type: 'kubernetes', target: { server: fixture.server, ca: join(work, 'ca.pem'), token: { file: join(work, 'token') } }, allow: { groups: ['ops'] } }],
  });
  ctx = tokenCtx(gw, serviceToken(gw, 'ci', 'ops,auditors'));
  ctx.env.HOME = home;
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await fixture?.stop();
  await Promise.all([echo, web].map((s) => new Promise((resolve) => s?.close(resolve))));
  for (const d of [work, home]) if (d) rmSync(d, { recursive: true, force: true });
});

/** `sluice connect k8s-prod -- kubectl port-forward pod/web-1 0:PORT`, stopped after `body`. */
async function throughGateway<T>(podPort: number, body: (pf: PortForward) => Promise<T>): Promise<T> {
  const pf = await startPortForward(process.execPath, [CLI_BIN, 'connect', 'k8s-prod', '--', 'kubectl', 'port-forward', 'pod/web-1', `0:${podPort}`], cliEnv(ctx));
  try {
    return await body(pf);
  } finally {
    await pf.stop();
    seen.push(pf.output());
  }
}

async function curl(port: number): Promise<string> {
  const { stdout } = await execFileAsync('curl', ['-s', '--max-time', '20', `http://127.0.0.1:${port}/`]);
  seen.push(stdout);
  return stdout;
}

/** Sends `text` over TCP and resolves with the reply once it is as long, or with what came when the connection ends. */
function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(text));
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= text.length) s.end();
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(got));
  });
}

async function trail(): Promise<string> {
  const r = await runCli(['audit', 'export'], ctx);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

describe('kubectl port-forward through sluice connect', () => {
  it('carries bytes both ways to the pod\'s port', async () => {
    const got = await throughGateway(portOf(echo), (pf) => roundTrip(pf.port, 'hello over SPDY in a WebSocket\n'));
    expect(got).toBe('hello over SPDY in a WebSocket\n');
    const pf = fixture.log.filter((l) => l.url.includes('/portforward'));
    expect(pf.at(-1)).toMatchObject({ method: 'GET', status: 101, authorized: true, subprotocol: 'SPDY/3.1+portforward.k8s.io' });
  });

  it('a pod printing the held token reaches curl as stars, the same number of bytes', async () => {
    const body = await throughGateway(portOf(web), (pf) => curl(pf.port));
    expect(body).toBe(`token: ${'*'.repeat(fixture.token.length)}\n`);
  });

  it('the same port-forward straight to the fixture shows the token (what the gateway stops)', async () => {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, KUBECONFIG: directKubeconfig(work, fixture.server, join(work, 'ca.pem'), fixture.token) };
    const pf = await startPortForward(KUBECTL, ['port-forward', 'pod/web-1', `0:${portOf(web)}`], env);
    try {
      const { stdout } = await execFileAsync('curl', ['-s', '--max-time', '20', `http://127.0.0.1:${pf.port}/`]);
      expect(stdout).toBe(`token: ${fixture.token}\n`);
    } finally {
      await pf.stop();
    }
  });

  it('records each forwarded connection: opened, closed, its port and the bytes each way', async () => {
    const events = (await trail()).split('\n').filter((l) => l.includes('k8s.portforward.'));
    const close = events.map((l) => JSON.parse(l) as { kind: string; data: Record<string, unknown> }).filter((e) => e.kind === 'k8s.portforward.close');
    expect(close.find((e) => e.data.port === portOf(echo))?.data).toMatchObject({ bytesToPod: 31, bytesFromPod: 31 });
    const printed = close.find((e) => e.data.port === portOf(web));
    expect(printed?.data.bytesFromPod).toBeGreaterThan(fixture.token.length);
    expect(events.filter((l) => l.includes('k8s.portforward.open'))).toHaveLength(2);
  });

  for (const [name, port, reason] of [
    ['a malformed SPDY frame from the server', MALFORMED_SPDY_PORT, 'a SPDY control frame of version 2'],
    ['a header block that echoes the token', HEADER_ECHO_PORT, 'a SPDY header block that echoes the held credential'],
  ] as const) {
    it(`${name} ends the stream, recorded with the reason, and the gateway keeps serving`, async () => {
      const got = await throughGateway(port, (pf) => roundTrip(pf.port, 'anyone there?\n'));
      expect(got).toBe('');
      const t = await trail();
      expect(t).toMatch(new RegExp(`"kind":"result"[^\\n]*the stream was ended: ${reason}`));
      const after = await runCli(['connect', 'k8s-prod', '--', 'kubectl', 'get', 'pods'], ctx);
      expect(after.code, after.stderr).toBe(0);
      expect(after.stdout).toMatch(/web-1\s+1\/1\s+Running/);
    });
  }

  it('neither the clients, the audit export nor the gateway log hold the token in any form', async () => {
    const all = [...seen, await trail(), gw.output()].join('\n');
    for (const f of [fixture.token, Buffer.from(fixture.token).toString('base64'), encodeURIComponent(fixture.token)]) expect(all).not.toContain(f);
  });
});
