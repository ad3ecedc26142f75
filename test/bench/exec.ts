// What one-off work costs through `sluice exec` against running the same statement with psql
// directly: 200 sequential `sluice exec NAME -i 'select 1'` (a fresh CLI process each, through the
// gateway's exec endpoint, recording every statement) against 200 sequential
// `psql -c 'select 1'` to the target. Start-up dominates both, so the figure is mostly the CLI's
// start-up and one HTTPS round trip. Runs alternate in blocks of 20 so that the machine's drift
// favours neither side; medians are printed, nothing is asserted.
//
// NODE_EXTRA_CA_CERTS makes every Node process parse that PEM bundle before running a line of
// JavaScript (on the machines this was written on it is set to the whole system bundle: ~60 ms per
// start, paid by `node -e 0` too). psql pays nothing like it, and a user's shell rarely sets it, so
// the exec series runs without it; when it is set, a further series runs with it, so both are shown.
//
// Two exec series: cold (no agent: the CLI opens its own TLS connection) and through `sluice agent`
// (started once before the timed runs, like an ssh ControlMaster; the CLI is then a pipe to it). On
// a shared machine wall time measures the CPU queue as much as the programs, so each series also
// reports CPU per run: the CLI's (the bench's reaped children), the agent's and the gateway's.
//
// Two floors in the same run say what any Node client can reach here: `node -e 0` (Node's own
// start) and a bare Node unix-socket round trip (start, connect, one message each way, exit)
// against an echo server in this process — what the exec client through the agent does, less the
// exec itself.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI_BIN, newConfigDir, serviceToken, startGateway } from '../support/binaries.js';
import { PG_BIN_DIR, startPgCluster } from '../support/pgCluster.js';
import { cpuMicros, type Row } from './postgres.js';

const run = promisify(execFile);
const RUNS = Number(process.env.BENCH_EXEC_RUNS ?? 200);
const BLOCK = 20;

export async function benchExec(log: (s: string) => void): Promise<Row[]> {
  const cluster = await startPgCluster();
  const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: 'BENCH_PG_PASSWORD' }, sslmode: 'disable' };
  const gw = await startGateway({
    env: { BENCH_PG_PASSWORD: cluster.password },
    connections: [{ name: 'bench', type: 'postgres', target, allow: { groups: ['bench'] } }],
    extra: { log: { level: 'warn' } },
  });
  try {
    const token = serviceToken(gw, 'bench', 'bench');
    const { NODE_EXTRA_CA_CERTS: extraCa, ...baseEnv } = process.env;
    const cliBase = { ...baseEnv, SLUICE_TOKEN: token, SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string };
    const coldEnv = { ...cliBase, SLUICE_CONFIG_DIR: newConfigDir() };
    const agentEnv = { ...cliBase, SLUICE_CONFIG_DIR: newConfigDir() };
    const pgEnv = { ...process.env, PGPASSWORD: cluster.password, PGHOST: '127.0.0.1', PGPORT: String(cluster.port), PGUSER: cluster.user, PGDATABASE: cluster.database };
    const execArgs = [CLI_BIN, 'exec', 'bench', '-i', 'select 1', '--format', 'csv'];
    await run(process.execPath, [CLI_BIN, 'agent', 'start'], { env: agentEnv });
    const echoDir = mkdtempSync(join(tmpdir(), 'sluice-bench-echo-'));
    const echoPath = join(echoDir, 'echo.sock');
    const echo = createServer((sock) => sock.once('data', (d) => sock.end(d)));
    await new Promise<void>((r) => echo.listen(echoPath, r));
    const bareClient = "const s = require('node:net').connect(process.argv[1]); s.on('connect', () => s.write('x')); s.on('data', () => s.destroy());";
    const statusPid = async (env: NodeJS.ProcessEnv) => (JSON.parse((await run(process.execPath, [CLI_BIN, 'agent', 'status', '--json'], { env })).stdout) as { pid: number }).pid;
    const agentPid = await statusPid(agentEnv);
    // The agent serves only callers whose Node trust settings equal its own: with
    // NODE_EXTRA_CA_CERTS, an agent started with it, as a user's shell that sets it would.
    const extraEnv = extraCa === undefined ? undefined : { ...agentEnv, SLUICE_CONFIG_DIR: newConfigDir(), NODE_EXTRA_CA_CERTS: extraCa };
    if (extraEnv) await run(process.execPath, [CLI_BIN, 'agent', 'start'], { env: extraEnv });
    const extraAgentPid = extraEnv ? await statusPid(extraEnv) : undefined;
    try {
      const series: Series[] = [
        { name: 'sluice exec, cold (no agent)', fn: () => run(process.execPath, execArgs, { env: coldEnv }) },
        { name: 'sluice exec through the agent', fn: () => run(process.execPath, execArgs, { env: agentEnv }), agentPid },
        { name: 'psql -c', fn: () => run(join(PG_BIN_DIR, 'psql'), ['-X', '-At', '-c', 'select 1'], { env: pgEnv }) },
        { name: 'floor: node -e 0', fn: () => run(process.execPath, ['-e', '0'], { env: baseEnv }) },
        { name: 'floor: bare Node unix-socket round trip', fn: () => run(process.execPath, ['-e', bareClient, echoPath], { env: baseEnv }) },
        ...(extraEnv === undefined ? [] : [{ name: `sluice exec through the agent, with NODE_EXTRA_CA_CERTS=${extraCa}`, fn: () => run(process.execPath, execArgs, { env: extraEnv }), agentPid: extraAgentPid }]),
      ].map((x) => ({ ...x, wall: [], cli: 0, agent: 0, gateway: 0 }));
      // One warm-up each: the first exec also opens the gateway's first upstream connection.
      for (const x of series) await x.fn();
      const gwPid = gw.child.pid as number;
      const load: number[] = [];
      log(`${RUNS} sequential runs of each, alternating blocks of ${BLOCK} …`);
      for (let done = 0; done < RUNS; done += BLOCK) {
        const n = Math.min(BLOCK, RUNS - done);
        load.push(loadavg()[0] as number);
        for (const x of series) {
          const before = { cli: childCpuMicros(), agent: x.agentPid ? cpuMicros(x.agentPid) : 0, gateway: cpuMicros(gwPid) };
          for (let i = 0; i < n; i++) x.wall.push(await timed(x.fn));
          x.cli += childCpuMicros() - before.cli;
          if (x.agentPid) x.agent += cpuMicros(x.agentPid) - before.agent;
          x.gateway += cpuMicros(gwPid) - before.gateway;
        }
      }
      const psql = series.find((x) => x.name === 'psql -c') as Series;
      const p = median(psql.wall);
      log(`load average (1 min) during the runs: ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)}`);
      for (const x of series) {
        const cpu = (total: number) => (total / x.wall.length / 1000).toFixed(1);
        log(`${x.name}: median ${median(x.wall).toFixed(1)} ms (p90 ${quantile(x.wall, 0.9).toFixed(1)}); CPU per run: client ${cpu(x.cli)} ms${x.agentPid ? `, agent ${cpu(x.agent)} ms` : ''}, gateway ${cpu(x.gateway)} ms`);
      }
      return series
        .filter((x) => x !== psql)
        .map((x) => ({ figure: x.name.startsWith('floor') ? `${x.name} ÷ psql -c 'select 1' (${RUNS} sequential, median)` : `${x.name} 'select 1' ÷ psql -c (${RUNS} sequential, median)`, reference: p, value: median(x.wall), unit: 'ms', ratio: p / median(x.wall) }));
    } finally {
      await run(process.execPath, [CLI_BIN, 'agent', 'stop'], { env: agentEnv }).catch(() => undefined);
      echo.close();
      rmSync(echoDir, { recursive: true, force: true });
      if (extraEnv) await run(process.execPath, [CLI_BIN, 'agent', 'stop'], { env: extraEnv }).catch(() => undefined);
      for (const env of [coldEnv, agentEnv, ...(extraEnv ? [extraEnv] : [])]) rmSync(env.SLUICE_CONFIG_DIR, { recursive: true, force: true });
    }
  } finally {
    await gw.stop();
    await cluster.stop();
  }
}

interface Series {
  name: string;
  fn: () => Promise<unknown>;
  agentPid?: number;
  wall: number[];
  /** CPU µs summed over the runs: the client processes, the agent, the gateway. */
  cli: number;
  agent: number;
  gateway: number;
}

/** User + system CPU of this process's waited-for children so far, in µs (cutime + cstime). */
function childCpuMicros(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[13]) + Number(fields[14])) * 10_000;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
