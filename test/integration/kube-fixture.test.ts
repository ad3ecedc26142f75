// The fixture API server against the real kubectl, with no gateway in between: proves that the
// fixture speaks shapes kubectl accepts (discovery, Tables, describe, delete, exec over WebSocket
// with v5 and with v4 only), so that the engine's tests through the gateway exercise real client
// behaviour. Also the baseline the access log is read against.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubeFixture, type KubeFixture } from '../support/kubeFixture.js';
import { SPDY_PORTFORWARD_PROTOCOL } from '../support/kubePortForward.js';
import { directKubeconfig, ensureKubectl, KUBECTL, kubectl, kubectlHome, startPortForward } from '../support/kubectl.js';

let fixture: KubeFixture;
let env: { KUBECONFIG: string; HOME: string };
const dir = mkdtempSync(join(tmpdir(), 'sluice-kube-fixture-'));

beforeAll(async () => {
  await ensureKubectl();
  fixture = await startKubeFixture();
  writeFileSync(join(dir, 'ca.pem'), fixture.ca);
  env = { KUBECONFIG: directKubeconfig(dir, fixture.server, join(dir, 'ca.pem'), fixture.token), HOME: kubectlHome() };
});
afterAll(async () => {
  await fixture?.stop();
  rmSync(dir, { recursive: true, force: true });
  if (env) rmSync(env.HOME, { recursive: true, force: true });
});

describe('kube fixture with the real kubectl', () => {
  it('get, describe and delete pods', async () => {
    const get = await kubectl(['get', 'pods'], env);
    expect(get.stderr).toBe('');
    expect(get.stdout).toMatch(/^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\n/);
    expect(get.stdout).toMatch(/web-1\s+1\/1\s+Running\s+0\s+5m/);
    const describe = await kubectl(['describe', 'pod', 'web-2'], env);
    expect(describe.code, describe.stderr).toBe(0);
    expect(describe.stdout).toMatch(/Name:\s+web-2/);
    const del = await kubectl(['delete', 'pod', 'web-2'], env);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toMatch(/pod "web-2" deleted/);
    expect(fixture.objects.some((o) => o.name === 'web-2')).toBe(false);
  });

  it('exec over WebSocket: stdout, stderr, stdin and the exit code', async () => {
    const r = await kubectl(['exec', 'web-1', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3'], env);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toMatch(/^err\n/);
    expect(r.code).toBe(3);
    const i = await kubectl(['exec', '-i', 'web-1', '--', 'sh'], env, 'echo from-stdin\nexit 0\n');
    expect(i.stdout).toBe('from-stdin\n');
    expect(i.code).toBe(0);
    expect(fixture.log.filter((e) => e.subprotocol !== undefined).map((e) => e.subprotocol)).toEqual(['v5.channel.k8s.io', 'v5.channel.k8s.io']);
  });

  it('refuses a request without the token with the API server\'s 401 Status', async () => {
    const wrong = { KUBECONFIG: directKubeconfig(mkdtempSync(join(dir, 'wrong-')), fixture.server, join(dir, 'ca.pem'), 'not-the-token'), HOME: env.HOME };
    const r = await kubectl(['get', 'secrets'], wrong);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/You must be logged in to the server \(Unauthorized\)|Unauthorized/);
    expect(fixture.log.at(-1)).toMatchObject({ authorized: false, status: 401 });
  });
});

describe('kube fixture port-forward with the real kubectl', () => {
  it('kubectl 1.32 tunnels SPDY/3.1 in a WebSocket; bytes go both ways to the pod\'s TCP port', async () => {
    // The "pod's" port: a real TCP echo server.
    const echo: Server = createServer((s) => s.pipe(s));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const podPort = (echo.address() as AddressInfo).port;
    const pf = await startPortForward(KUBECTL, ['port-forward', 'pod/web-1', `0:${podPort}`], { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env });
    try {
      const got = await roundTrip(pf.port, 'ping through the tunnel\n');
      expect(got).toBe('ping through the tunnel\n');
      const upgrades = fixture.log.filter((l) => l.url.includes('/portforward'));
      expect(upgrades.map((l) => [l.method, l.upgrade, l.status, l.subprotocol])).toEqual([['GET', `websocket; ${SPDY_PORTFORWARD_PROTOCOL}`, 101, SPDY_PORTFORWARD_PROTOCOL]]);
    } finally {
      await pf.stop();
      await new Promise((resolve) => echo.close(resolve));
    }
  });
});

/** Sends `text` on a TCP connection to the port and resolves with what comes back once as many bytes arrived. */
function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= text.length) {
        s.end();
        resolve(got);
      }
    });
    s.on('error', reject);
    s.write(text);
  });
}

describe('kube fixture offering only v4.channel.k8s.io', () => {
  it('kubectl 1.32 asks for v5 only over WebSocket, then falls back to SPDY/3.1, which the fixture does not serve', async () => {
    const v4 = await startKubeFixture({ protocols: ['v4.channel.k8s.io'] });
    try {
      writeFileSync(join(dir, 'ca4.pem'), v4.ca);
      const e = { KUBECONFIG: directKubeconfig(mkdtempSync(join(dir, 'v4-')), v4.server, join(dir, 'ca4.pem'), v4.token), HOME: env.HOME };
      const r = await kubectl(['exec', '-i', 'web-1', '--', 'sh'], e, 'echo v4-ok\n');
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe('');
      const upgrades = v4.log.filter((l) => l.upgrade !== undefined);
      expect(upgrades.map((l) => [l.method, l.upgrade?.split(';')[0]?.toLowerCase(), l.status])).toEqual([
        ['GET', 'websocket', 400],
        ['POST', 'spdy/3.1', 400],
      ]);
      expect(upgrades[0]?.upgrade).toBe('websocket; v5.channel.k8s.io');
    } finally {
      await v4.stop();
    }
  });
});
