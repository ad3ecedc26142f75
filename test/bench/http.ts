// HTTP through the gateway against the service directly (issue 17's targets: at least 0.5× direct
// for both). The test's own HTTPS service (test/support/httpTarget.ts), the real gateway with an
// http connection (a policy with a block rule, so every request is normalised and judged), and
// `sluice connect` as the local end; undici as the client on both sides. Figures: requests per
// second of a small JSON GET over 8 keep-alive connections for BENCH_HTTP_SECONDS (default 5) each
// way, alternating, and MB/s of a BENCH_HTTP_MB (default 256) MB download; and, steadier than
// either on a shared machine, the CPU the gateway and the CLI spent per tunnelled request and per
// tunnelled MB (/proc). Each figure is measured in ROUNDS alternating blocks (direct, sluice, the
// floor) and the ratios are the medians of each round's ratio to its own direct block, which drift
// far less than any one figure on a shared machine. The floor of the design is measured in the same rounds: a bare Node TLS
// relay pair (bareRelay.ts: a local listener and a TLS server that reaches the service over
// verified TLS, as `sluice connect` and the gateway do) carrying the same HTTP traffic with no HTTP
// parsing, policy, scrubbing or audit — what any two-process, two-TLS-leg path costs. Nothing
// asserted.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { openTunnel, serviceToken, startGateway, tokenCtx } from '../support/binaries.js';
import { startHttpTarget } from '../support/httpTarget.js';
import { startBareRelayPair, type BareRelayPair } from './bareRelay.js';
import { httpAuditCost } from './httpAudit.js';
import { cpuMicros, type Row } from './postgres.js';

const MB = Number(process.env.BENCH_HTTP_MB ?? 256);
const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 5);
const CONCURRENCY = 8;
const ROUNDS = Number(process.env.BENCH_HTTP_ROUNDS ?? 3);

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export async function benchHttp(log: (s: string) => void): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-http-'));
  const target = await startHttpTarget();
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, target.ca);
  const gw = await startGateway({
    env: { BENCH_TOKEN: 'Bearer bench-token-0123456789' },
    connections: [
      {
        name: 'bench',
        type: 'http',
        target: { url: target.url, ca: caFile, headers: { Authorization: { env: 'BENCH_TOKEN' } } },
        allow: { groups: ['bench'] },
        policy: { rules: [{ id: 'no-admin', block: { paths: ['/admin/**'] } }] },
      },
    ],
    extra: { log: { level: 'warn' } },
  });
  let tunnel: Awaited<ReturnType<typeof openTunnel>> | undefined;
  let bare: BareRelayPair | undefined;
  const direct = new Agent({ connections: CONCURRENCY, connect: { ca: target.ca } });
  const via = new Agent({ connections: CONCURRENCY });
  const floor = new Agent({ connections: CONCURRENCY });
  try {
    tunnel = await openTunnel('bench', tokenCtx(gw, serviceToken(gw, 'bench', 'bench')));
    const directUrl = target.url;
    const viaUrl = `http://127.0.0.1:${tunnel.port}`;
    bare = await startBareRelayPair(Number(new URL(target.url).port), target.ca);
    const floorUrl = `http://127.0.0.1:${bare.port}`;
    target.json = { customers: [{ name: 'Ada', id: 1 }, { name: 'Bob', id: 2 }] };

    const rps = async (base: string, agent: Agent) => {
      let count = 0;
      const until = performance.now() + SECONDS * 1000;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (performance.now() < until) {
            const res = await request(`${base}/v1/customers`, { dispatcher: agent });
            await res.body.json();
            count++;
          }
        }),
      );
      return count / SECONDS;
    };
    await rps(directUrl, direct);
    await rps(viaUrl, via);
    await rps(floorUrl, floor);
    log(`GET small JSON, ${CONCURRENCY} keep-alive connections, ${SECONDS} s each way (direct, sluice, bare relay pair), ${ROUNDS} alternating rounds …`);
    const d: number[] = [];
    const v: number[] = [];
    const f: number[] = [];
    const pids = { gateway: gw.child.pid!, cli: tunnel.child.pid! };
    const spent = { gateway: 0, cli: 0, floor: 0 };
    const floorCpu = () => bare!.pids.reduce((sum, pid) => sum + cpuMicros(pid), 0);
    /** Runs `block` through the bare pair and adds the CPU both its processes spent to `spent.floor`. */
    const meteredFloor = async <T>(block: () => Promise<T>): Promise<T> => {
      const before = floorCpu();
      const out = await block();
      spent.floor += floorCpu() - before;
      return out;
    };
    /** Runs `block` and adds the CPU each relay process spent meanwhile to `spent`. */
    const metered = async <T>(block: () => Promise<T>): Promise<T> => {
      const g = cpuMicros(pids.gateway);
      const c = cpuMicros(pids.cli);
      const out = await block();
      spent.gateway += cpuMicros(pids.gateway) - g;
      spent.cli += cpuMicros(pids.cli) - c;
      return out;
    };
    for (let i = 0; i < ROUNDS; i++) {
      d.push(await rps(directUrl, direct));
      v.push(await metered(() => rps(viaUrl, via)));
      f.push(await meteredFloor(() => rps(floorUrl, floor)));
    }
    const requests = v.reduce((a, b) => a + b, 0) * SECONDS;
    const perRequest = { gateway: spent.gateway / requests, cli: spent.cli / requests, floor: spent.floor / (f.reduce((a, b) => a + b, 0) * SECONDS) };
    log(`CPU per tunnelled request: gateway ${perRequest.gateway.toFixed(0)} µs, CLI ${perRequest.cli.toFixed(0)} µs; bare relay pair ${perRequest.floor.toFixed(0)} µs both (load average ${loadavg()[0]!.toFixed(1)})`);
    const rd = median(d);
    const rv = median(v);
    const rf = median(f);
    const rpsRatio = { sluice: median(v.map((x, i) => x / d[i]!)), floor: median(f.map((x, i) => x / d[i]!)) };
    log(`requests/s (medians) direct ${rd.toFixed(0)}, through sluice ${rv.toFixed(0)}, through the bare relay pair ${rf.toFixed(0)}; paired ratios sluice ${v.map((x, i) => (x / d[i]!).toFixed(2)).join(' ')}, floor ${f.map((x, i) => (x / d[i]!).toFixed(2)).join(' ')}`);

    const download = async (base: string, agent: Agent) => {
      const t0 = performance.now();
      const res = await request(`${base}/bytes/${MB * 1024 * 1024}`, { dispatcher: agent });
      let size = 0;
      for await (const c of res.body) size += (c as Buffer).length;
      if (size !== MB * 1024 * 1024) throw new Error(`download was ${size} bytes`);
      return MB / ((performance.now() - t0) / 1000);
    };
    log(`${MB} MB download, direct, through the tunnel and through the bare relay pair, ${ROUNDS} alternating rounds …`);
    spent.gateway = 0;
    spent.cli = 0;
    spent.floor = 0;
    const dd: number[] = [];
    const dv: number[] = [];
    const df: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      dd.push(await download(directUrl, direct));
      dv.push(await metered(() => download(viaUrl, via)));
      df.push(await meteredFloor(() => download(floorUrl, floor)));
    }
    const [md, mv, mf] = [median(dd), median(dv), median(df)];
    const mbRatio = { sluice: median(dv.map((x, i) => x / dd[i]!)), floor: median(df.map((x, i) => x / dd[i]!)) };
    const perMB = { gateway: spent.gateway / 1000 / MB / ROUNDS, cli: spent.cli / 1000 / MB / ROUNDS, floor: spent.floor / 1000 / MB / ROUNDS };
    log(`download (medians) direct ${md.toFixed(1)} MB/s, through sluice ${mv.toFixed(1)} MB/s, through the bare relay pair ${mf.toFixed(1)} MB/s; paired ratios sluice ${dv.map((x, i) => (x / dd[i]!).toFixed(2)).join(' ')}, floor ${df.map((x, i) => (x / dd[i]!).toFixed(2)).join(' ')}; CPU per MB: gateway ${perMB.gateway.toFixed(2)} ms, CLI ${perMB.cli.toFixed(2)} ms, bare relay pair ${perMB.floor.toFixed(2)} ms both (load average ${loadavg()[0]!.toFixed(1)})`);
    log('the audit of one request in one process (recorder, journal, SQLite; ingest inline) …');
    const audit = await httpAuditCost();
    log(`audit CPU per request: ${audit.five.toFixed(1)} µs with its five events, ${audit.three.toFixed(1)} µs without http.request / http.response`);
    return [
      { figure: `http GET small JSON, ${CONCURRENCY} keep-alive (target ≥ 0.5×)`, reference: rd, value: rv, unit: 'req/s', ratio: rpsRatio.sluice },
      { figure: `http ${MB} MB download (target ≥ 0.5×)`, reference: md, value: mv, unit: 'MB/s', ratio: mbRatio.sluice },
      { figure: `  http GET small JSON: bare TLS relay pair (the floor)`, reference: rd, value: rf, unit: 'req/s', ratio: rpsRatio.floor },
      { figure: `  http ${MB} MB download: bare TLS relay pair (the floor)`, reference: md, value: mf, unit: 'MB/s', ratio: mbRatio.floor },
      { figure: '  http CPU per tunnelled request: gateway', value: perRequest.gateway, unit: 'µs' },
      { figure: '  http CPU per tunnelled request: CLI', value: perRequest.cli, unit: 'µs' },
      { figure: '  http CPU per tunnelled MB: gateway', value: perMB.gateway, unit: 'ms' },
      { figure: '  http CPU per tunnelled MB: CLI', value: perMB.cli, unit: 'ms' },
      { figure: '  http CPU per request: bare relay pair, both', value: perRequest.floor, unit: 'µs' },
      { figure: '  http CPU per MB: bare relay pair, both', value: perMB.floor, unit: 'ms' },
      { figure: '  http audit CPU per request (5 events, in-process)', value: audit.five, unit: 'µs' },
      { figure: '  http audit CPU per request without http.request/.response', value: audit.three, unit: 'µs' },
    ];
  } finally {
    await direct.close();
    await via.close();
    await floor.close();
    await bare?.stop();
    await tunnel?.stop();
    await gw.stop();
    await target.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(gw.dir, { recursive: true, force: true });
  }
}
