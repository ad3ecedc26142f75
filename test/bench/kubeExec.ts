// What scanning exec streams for the held token costs: `kubectl exec web-1 -- cat FILE` of a
// BENCH_KUBE_MB (default 50) MB text file (base64, the alphabet of tokens: the scanner's worst
// case), run against the fixture API server directly, through a connection holding a client
// certificate (no token: the stream is relayed unscanned) and through one holding a token (every
// frame scanned), alternating, three rounds. Figures: MB/s of each (ratio to direct) and the CPU
// the gateway and the CLI spent per MB (/proc), scanned ÷ unscanned. Nothing asserted.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTunnel, serviceToken, startGateway, tokenCtx } from '../support/binaries.js';
import { startKubeFixture } from '../support/kubeFixture.js';
import { directKubeconfig, kubectlHome, KUBECTL } from '../support/kubectl.js';
import { cpuMicros, type Row } from './postgres.js';

const MB = Number(process.env.BENCH_KUBE_MB ?? 50);
const ROUNDS = 3;

export async function benchKubeExec(log: (s: string) => void): Promise<Row[]> {
  const work = mkdtempSync(join(tmpdir(), 'sluice-bench-kube-'));
  const home = kubectlHome();
  const fixture = await startKubeFixture();
  const file = join(work, 'payload.txt');
  writeFileSync(file, randomBytes(Math.ceil((MB * 1024 * 1024 * 3) / 4)).toString('base64').slice(0, MB * 1024 * 1024));
  writeFileSync(join(work, 'ca.pem'), fixture.ca);
  writeFileSync(join(work, 'token'), fixture.token, { mode: 0o600 });
  writeFileSync(join(work, 'client.pem'), fixture.clientCert);
  writeFileSync(join(work, 'client-key.pem'), fixture.clientKey, { mode: 0o600 });
  const gw = await startGateway({
    connections: [
      { name: 'k8s-token', type: 'kubernetes', target: { server: fixture.server, ca: join(work, 'ca.pem'), token: { file: join(work, 'token') } }, allow: { groups: ['ops'] } },
      { name: 'k8s-cert', type: 'kubernetes', target: { server: fixture.server, ca: join(work, 'ca.pem'), clientCert: join(work, 'client.pem'), clientKey: { file: join(work, 'client-key.pem') } }, allow: { groups: ['ops'] } },
    ],
  });
  const ctx = tokenCtx(gw, serviceToken(gw, 'bench', 'ops'));
  const tunnels = { token: await openTunnel('k8s-token', ctx), cert: await openTunnel('k8s-cert', ctx) };
  const local = (name: string, port: number) => {
    const f = join(work, `${name}.kubeconfig`);
    writeFileSync(f, `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: { server: "http://127.0.0.1:${port}" }\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: { cluster: c, user: u, namespace: default }\ncurrent-context: x\n`);
    return f;
  };
  const configs = { direct: directKubeconfig(work, fixture.server, join(work, 'ca.pem'), fixture.token), cert: local('cert', tunnels.cert.port), token: local('token', tunnels.token.port) };
  const pids = { gateway: gw.child.pid!, cert: tunnels.cert.child.pid!, token: tunnels.token.child.pid! };
  const series = { direct: [] as number[], cert: [] as number[], token: [] as number[] };
  const cpu = { cert: { gateway: 0, cli: 0, mb: 0 }, token: { gateway: 0, cli: 0, mb: 0 } };
  const exec = (kubeconfig: string) =>
    new Promise<number>((resolve, reject) => {
      const out = openSync('/dev/null', 'w');
      const started = performance.now();
      const child = spawn(KUBECTL, ['exec', 'web-1', '--', 'cat', file], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', KUBECONFIG: kubeconfig, HOME: home }, stdio: ['ignore', out, 'pipe'] });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.once('exit', (code) => {
        closeSync(out);
        if (code === 0) resolve((performance.now() - started) / 1000);
        else reject(new Error(`kubectl exec failed (${code}): ${err}`));
      });
    });
  try {
    const load: number[] = [];
    for (const name of ['direct', 'cert', 'token'] as const) await exec(configs[name]);
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of ['direct', 'cert', 'token'] as const) {
        const g = cpuMicros(pids.gateway);
        const c = name === 'direct' ? 0 : cpuMicros(pids[name]);
        const seconds = await exec(configs[name]);
        series[name].push(MB / seconds);
        if (name !== 'direct') {
          cpu[name].gateway += cpuMicros(pids.gateway) - g;
          cpu[name].cli += cpuMicros(pids[name]) - c;
          cpu[name].mb += MB;
        }
      }
      load.push(loadavg()[0]!);
      log(`kube exec round ${round + 1}: direct ${series.direct.at(-1)!.toFixed(1)}, unscanned ${series.cert.at(-1)!.toFixed(1)}, scanned ${series.token.at(-1)!.toFixed(1)} MB/s; load ${load.at(-1)!.toFixed(2)}`);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const d = median(series.direct);
    const perMb = (c: { gateway: number; cli: number; mb: number }) => ({ gateway: c.gateway / 1000 / c.mb, cli: c.cli / 1000 / c.mb });
    const unscanned = perMb(cpu.cert);
    const scanned = perMb(cpu.token);
    return [
      { figure: `kubectl exec cat ${MB} MB, unscanned (client cert)`, reference: d, value: median(series.cert), unit: 'MB/s', ratio: median(series.cert) / d },
      { figure: `kubectl exec cat ${MB} MB, scanned for the token`, reference: d, value: median(series.token), unit: 'MB/s', ratio: median(series.token) / d },
      { figure: 'gateway CPU per exec MB, scanned (÷ unscanned)', reference: unscanned.gateway, value: scanned.gateway, unit: 'ms/MB', ratio: unscanned.gateway / scanned.gateway },
      { figure: 'CLI CPU per exec MB, scanned (÷ unscanned)', reference: unscanned.cli, value: scanned.cli, unit: 'ms/MB', ratio: unscanned.cli / scanned.cli },
    ];
  } finally {
    await tunnels.token.stop();
    await tunnels.cert.stop();
    await gw.stop();
    await fixture.stop();
    rmSync(work, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  }
}
