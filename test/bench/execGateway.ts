// The gateway's side of one exec, without any CLI: `POST /v1/connections/NAME/exec` with
// `select 1` over one kept-alive HTTPS connection (undici), from the request to the last byte of
// the answer, against what the gateway itself must do at least — a new PostgreSQL connection
// (TCP, SCRAM, startup), the query, and Terminate, with the `pg` driver from this process. Two
// gateways run side by side on the same target: one with pre-opened upstream backends
// (limits.execSpareIdleMs, the default) and one without (0). Blocks alternate so the machine's
// drift favours none; each series prints its median and the gateway's CPU per exec (/proc).
// Between two runs the bench waits EXEC_GATEWAY_GAP_MS (default 50, untimed): sequential execs
// from a CLI are that far apart at least (a Node process's start), and that gap is when a spare
// backend is opened; 0 sends them back to back. BENCH_EXEC_RUNS (default 200) sets the runs per series; EXEC_GATEWAY_CPU_PROF=DIR runs the
// gateways under `node --cpu-prof` and prints the functions with the most self time per exec.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Agent, fetch } from 'undici';
import { GATEWAY_BIN, serviceToken, writeGatewayConfig, type GatewayProcess } from '../support/binaries.js';
import { startPgCluster } from '../support/pgCluster.js';
import { cpuMicros, median, type Row } from './postgres.js';

const RUNS = Number(process.env.BENCH_EXEC_RUNS ?? 200);
const BLOCK = 20;
const PROFILE_DIR = process.env.EXEC_GATEWAY_CPU_PROF;
const GAP_MS = Number(process.env.EXEC_GATEWAY_GAP_MS ?? 50);

interface Series {
  readonly name: string;
  readonly run: () => Promise<void>;
  readonly pid?: number;
  readonly wall: number[];
  cpu: number;
}

export async function benchExecGateway(log: (s: string) => void): Promise<Row[]> {
  const cluster = await startPgCluster();
  const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: 'BENCH_PG_PASSWORD' }, sslmode: 'disable' };
  const started: { gw: GatewayProcess; dir: string }[] = [];
  const dispatchers: Agent[] = [];
  try {
    const gateway = async (execSpareIdleMs: number) => {
      const dir = mkdtempSync(join(tmpdir(), 'sluice-gw-'));
      const gw = await spawnGateway(dir, { env: { BENCH_PG_PASSWORD: cluster.password }, connections: [{ name: 'bench', type: 'postgres', target, allow: { groups: ['bench'] } }], extra: { log: { level: 'warn' }, limits: { execSpareIdleMs } } });
      started.push({ gw, dir });
      const token = serviceToken(gw, 'bench', 'bench');
      const dispatcher = new Agent({ connect: { ca: readFileSync(gw.caFile as string) }, connections: 1 });
      dispatchers.push(dispatcher);
      return async () => {
        const res = await fetch(`${gw.url}/v1/connections/bench/exec`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"input":"select 1"}', dispatcher });
        const body = await res.text();
        if (!body.includes('"status":"ok"')) throw new Error(`exec failed: ${body}`);
      };
    };
    const spares = await gateway(60_000);
    const fresh = await gateway(0);
    const direct = async () => {
      const c = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, database: cluster.database });
      await c.connect();
      await c.query('select 1');
      await c.end();
    };
    const series: Series[] = [
      { name: 'direct: pg connect (SCRAM) + select 1 + end', run: direct, wall: [], cpu: 0 },
      { name: 'exec, pre-opened backends (default)', run: spares, pid: started[0]!.gw.child.pid as number, wall: [], cpu: 0 },
      { name: 'exec, execSpareIdleMs: 0', run: fresh, pid: started[1]!.gw.child.pid as number, wall: [], cpu: 0 },
    ];
    for (const x of series) for (let i = 0; i < 5; i++) await x.run();
    const load: number[] = [];
    window.from = Number(process.hrtime.bigint() / 1000n);
    log(`exec on the gateway: ${RUNS} sequential runs of each, ${GAP_MS} ms apart, alternating blocks of ${BLOCK} …`);
    for (let done = 0; done < RUNS; done += BLOCK) {
      load.push(loadavg()[0] as number);
      for (const x of series) {
        const before = x.pid !== undefined ? cpuMicros(x.pid) : 0;
        for (let i = 0; i < Math.min(BLOCK, RUNS - done); i++) {
          if (GAP_MS > 0) await new Promise((r) => setTimeout(r, GAP_MS));
          const t = process.hrtime.bigint();
          await x.run();
          x.wall.push(Number(process.hrtime.bigint() - t) / 1e6);
        }
        if (x.pid !== undefined) x.cpu += cpuMicros(x.pid) - before;
      }
    }
    window.to = Number(process.hrtime.bigint() / 1000n);
    log(`load average (1 min) during the runs: ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)}`);
    for (const x of series) log(`${x.name}: median ${median(x.wall).toFixed(2)} ms${x.pid !== undefined ? `; gateway CPU per exec ${(x.cpu / x.wall.length / 1000).toFixed(2)} ms` : ''}`);
    const d = median(series[0]!.wall);
    return series.slice(1).map((x) => ({ figure: `gateway exec 'select 1' (HTTP, no CLI), ${x.name} ÷ direct connect+query (${RUNS} sequential, ${GAP_MS} ms apart, median)`, reference: d, value: median(x.wall), unit: 'ms', ratio: d / median(x.wall) }));
  } finally {
    for (const dispatcher of dispatchers) await dispatcher.close();
    for (const { gw, dir } of started) {
      await gw.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    if (PROFILE_DIR !== undefined) report(PROFILE_DIR, RUNS);
    await cluster.stop();
  }
}

/** The gateway binary as support/binaries.ts starts it, optionally under `node --cpu-prof`. */
async function spawnGateway(dir: string, opts: Parameters<typeof writeGatewayConfig>[1] & { env: NodeJS.ProcessEnv }): Promise<GatewayProcess> {
  const configFile = writeGatewayConfig(dir, opts);
  let flags: string[] = [];
  if (PROFILE_DIR !== undefined) {
    // One directory per gateway, in start order: the first has the spares, the second not.
    const own = join(PROFILE_DIR, `gateway-${readdirSafe(PROFILE_DIR).length + 1}`);
    mkdirSync(own, { recursive: true });
    flags = ['--cpu-prof', `--cpu-prof-dir=${own}`];
  }
  const child: ChildProcess = spawn(process.execPath, [...flags, GATEWAY_BIN, '--config', configFile], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
  const url = await new Promise<string>((resolve, reject) => {
    const check = () => {
      const m = /sluice-gateway listening on (\S+)/.exec(out);
      if (m) resolve(m[1] as string);
    };
    child.stderr!.on('data', check);
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code}:\n${out}`)));
  });
  return {
    url,
    caFile: /--ca (\S+)/.exec(out)?.[1],
    configFile,
    dir,
    child,
    output: () => out,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The measured runs, in µs of the monotonic clock a profile's times use too (start-up and shutdown are left out). */
const window = { from: 0, to: 0 };

/** The functions with the most self time in each kept profile during the measured runs, per exec of the gateway's series. */
function report(root: string, runs: number): void {
  for (const sub of readdirSafe(root).sort()) {
    for (const file of readdirSafe(join(root, sub)).filter((f) => f.endsWith('.cpuprofile'))) {
      const p = JSON.parse(readFileSync(join(root, sub, file), 'utf8')) as CpuProfile;
      const byId = new Map(p.nodes.map((n) => [n.id, n]));
      const self = new Map<string, number>();
      let busy = 0;
      let t = p.startTime;
      p.samples.forEach((id, i) => {
        const us = p.timeDeltas[i] ?? 0;
        t += us;
        const f = byId.get(id)!.callFrame;
        if (f.functionName === '(idle)' || t < window.from || t > window.to) return;
        busy += us;
        const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
        self.set(key, (self.get(key) ?? 0) + us);
      });
      process.stderr.write(`\n${sub}/${file}: busy ${(busy / 1000).toFixed(0)} ms during the runs, ${(busy / runs / 1000).toFixed(2)} ms per exec of its series\n`);
      for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) process.stderr.write(`${(us / runs).toFixed(0).padStart(8)} µs ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${key}\n`);
    }
  }
}
