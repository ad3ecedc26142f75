// PostgreSQL through Sluice vs direct, measured in the same run on the same server. Blocks
// alternate direct and tunnelled (D, T, D, T, …) and the median of the paired ratios is
// reported, because raw throughput on these shared machines drifts by up to 40% between runs
// (shared/notes/performance.md). Nothing here asserts a time: it prints.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { newConfigDir, serviceToken, spawnCli, startGateway } from '../support/binaries.js';
import { PG_BIN_DIR, startPgCluster, type PgCluster } from '../support/pgCluster.js';
import { startBareRelayPair, type BareRelayPair } from './bareRelay.js';
import { startSshForward, type SshForward } from './sshForward.js';

const run = promisify(execFile);

export interface Row {
  figure: string;
  /** What `value` is compared with: a direct connection, unless the figure names another (`÷ sessions only`, `÷ unmasked tunnel`). */
  reference?: number;
  value: number;
  unit: string;
  /** value / reference (for times: reference / value, so higher is always better). */
  ratio?: number;
}

interface Endpoint {
  port: number;
}

const PAIRS = Number(process.env.BENCH_PAIRS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
/** An unmeasured pgbench run per path first: the first measured block of a cold path (JIT, caches) ran up to 25% off the others here. */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);

/** `recording` measures only what recording costs (BENCH_ONLY=recording): the issue 5 figure, quickly. */
export async function benchPostgres(log: (s: string) => void, only?: 'recording'): Promise<Row[]> {
  const cluster = await startPgCluster();
  const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: 'BENCH_PG_PASSWORD' }, sslmode: 'disable' };
  const gw = await startGateway({
    env: { BENCH_PG_PASSWORD: cluster.password },
    connections: [
      { name: 'bench', type: 'postgres', target, allow: { groups: ['bench'] } },
      // The same target with recording off but for sessions (issue 5: what recording costs).
      { name: 'bench-sessions', type: 'postgres', target, allow: { groups: ['bench'] }, record: 'sessions' },
    ],
    extra: { log: { level: 'warn' } },
  });
  const token = serviceToken(gw, 'bench', 'bench');
  const cliEnv = { SLUICE_TOKEN: token, SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string };
  const connects = ['bench', 'bench-sessions'].map((name) => spawnCli(['connect', name, '--json', '--port', '0'], { configDir: newConfigDir(), env: cliEnv }));
  let ssh: SshForward | undefined;
  let bare: BareRelayPair | undefined;
  try {
    // The recording comparison measures two gateway connections only: no ssh -L, no bare pair.
    if (only !== 'recording') {
      ssh = await startSshForward(cluster.port);
      bare = await startBareRelayPair(cluster.port);
    }
    const [tunnel, sessionsOnly] = await Promise.all(
      connects.map(async (c): Promise<Endpoint> => {
        const [line] = (await once(c.stdout!, 'data')) as [Buffer];
        return { port: (JSON.parse(line.toString()) as { port: number }).port };
      }),
    );
    const direct: Endpoint = { port: cluster.port };
    // Empty in the recording comparison, which starts neither ssh -L nor the bare pair.
    const paths: Endpoint[] = ssh ? [direct, tunnel!, { port: ssh.port }] : [];
    const compared: Endpoint[] = bare ? [...paths, { port: bare.port }] : [];
    const env = { ...process.env, PGSSLMODE: 'disable', PGPASSWORD: cluster.password, PGHOST: '127.0.0.1', PGUSER: cluster.user, PGDATABASE: cluster.database };

    log('pgbench -i -s 10 …');
    await run(join(PG_BIN_DIR, 'pgbench'), ['-i', '-q', '-s', '10', '-p', String(cluster.port)], { env });
    // pgbench -i leaves ~160 MB of dirty pages: written now, not by a checkpoint during the first measured blocks.
    const admin = new pg.Client({ host: '127.0.0.1', port: cluster.port, user: cluster.roles.superuser.user, password: cluster.roles.superuser.password, database: cluster.database });
    await admin.connect();
    await admin.query('CHECKPOINT').finally(() => admin.end());

    const rows: Row[] = [];
    for (const clients of only === 'recording' ? [] : [1, 8]) {
      log(`pgbench -S -c ${clients}: direct, sluice, ssh -L, bare Node TLS relay pair (${PAIRS} rounds of ${SECONDS} s blocks) …`);
      await warmUp(cluster, compared, clients, env);
      const rounds = await blocks((e) => pgbench(cluster, e, clients, env), compared);
      rows.push(...threeWay(`pgbench -S c${clients} TPS`, rounds.map((r) => r.map((x) => x.tps)), 'tps', false));
      rows.push(...bareRows(rounds.map((r) => r.map((x) => x.tps)), 'tps', false));
      rows.push(...threeWay(`pgbench -S c${clients} latency`, rounds.map((r) => r.map((x) => x.latencyMs)), 'ms', true));
    }

    for (const clients of [8, 1]) {
      log(`pgbench -S -c ${clients}: recording every statement vs sessions only …`);
      // The gateway's CPU per transaction as well: steadier than TPS on a shared machine, and what
      // recording costs whether or not the cores are saturated.
      const measured = async (e: Endpoint) => {
        const before = cpuMicros(gw.child.pid!);
        const r = await pgbench(cluster, e, clients, env);
        return { ...r, gatewayCpu: (cpuMicros(gw.child.pid!) - before) / r.transactions };
      };
      await warmUp(cluster, [sessionsOnly!, tunnel!], clients, env);
      const rounds = await blocks(measured, [sessionsOnly!, tunnel!]);
      for (const [i, [off, on]] of rounds.entries()) {
        log(`  round ${i + 1}: sessions only ${off!.tps.toFixed(0)} tps, ${off!.gatewayCpu.toFixed(1)} µs; statements ${on!.tps.toFixed(0)} tps, ${on!.gatewayCpu.toFixed(1)} µs`);
      }
      const row = pairRow(`c${clients} TPS, recording on ÷ off`, rounds.map((r) => [r[0]!.tps, r[1]!.tps]), 'tps', false);
      rows.push({ ...row, figure: `pgbench -S c${clients} TPS, recording statements ÷ sessions only` });
      const cpu = pairRow('', rounds.map((r) => [r[0]!.gatewayCpu, r[1]!.gatewayCpu]), 'µs', true);
      rows.push({ ...cpu, figure: `  gateway CPU per transaction, statements ÷ sessions only` });
    }

    if (only === 'recording') return rows;
    log('COPY 1M rows TO STDOUT …');
    const copy = await blocks((e) => copyOut(e, env), paths);
    rows.push(...threeWay('COPY 1M rows to stdout', copy, 'MB/s', false));

    log('200 × (connect, select 1, disconnect) …');
    const setup = await blocks((e) => connectLoop(cluster, e, 200), paths);
    rows.push(...threeWay('connect + select 1 + close', setup, 'ms', true));
    rows.push({ figure: 'connection setup overhead (sluice)', value: median(setup.map((r) => r[1]! - r[0]!)), unit: 'ms' });
    return rows;
  } catch (err) {
    // What the gateway said is usually the explanation (a refused statement names only its SQLSTATE).
    log(`the benchmark failed; the gateway's log ends with:\n${gw.output().slice(-6000)}`);
    throw err;
  } finally {
    for (const c of connects) c.kill('SIGINT');
    await ssh?.stop();
    await bare?.stop();
    await gw.stop();
    // The bench's trail runs to hundreds of megabytes: not left behind in the temporary directory.
    rmSync(gw.dir, { recursive: true, force: true });
    await cluster.stop();
  }
}

/**
 * PAIRS rounds, each measuring every path once (the first is the reference); results in path
 * order. Every other round measures the paths in reverse order (A B, B A, …): the machine's speed
 * drifts within a round too, and a fixed order would hand that drift to one side every time.
 */
export async function blocks<T, E = Endpoint>(measure: (e: E) => Promise<T>, paths: E[]): Promise<T[][]> {
  const out: T[][] = [];
  for (let i = 0; i < PAIRS; i++) {
    const round: T[] = new Array<T>(paths.length);
    const order = paths.map((_, j) => (i % 2 === 0 ? j : paths.length - 1 - j));
    for (const j of order) round[j] = await measure(paths[j]!);
    out.push(round);
  }
  return out;
}

/** Rounds of [direct, sluice, ssh -L]: sluice and ssh -L each against direct, and sluice against ssh -L. */
function threeWay(figure: string, rounds: number[][], unit: string, lowerIsBetter: boolean): Row[] {
  const pick = (i: number, j: number) => rounds.map((r): [number, number] => [r[i]!, r[j]!]);
  const vsSsh = pairRow(figure, pick(2, 1), unit, lowerIsBetter);
  return [pairRow(figure, pick(0, 1), unit, lowerIsBetter), pairRow(`  ssh -L`, pick(0, 2), unit, lowerIsBetter), { figure: '  sluice ÷ ssh -L', value: vsSsh.value, unit, ratio: vsSsh.ratio! }];
}

/**
 * Rounds of [direct, sluice, ssh -L, bare pair]: the bare Node.js TLS relay pair (bareRelay.ts) is
 * the floor of the tunnel's design; against ssh -L it says what the design itself costs, and
 * sluice against it what the engine, policy and audit cost on top.
 */
function bareRows(rounds: number[][], unit: string, lowerIsBetter: boolean): Row[] {
  const pick = (i: number, j: number) => rounds.map((r): [number, number] => [r[i]!, r[j]!]);
  const vsSsh = pairRow('', pick(2, 3), unit, lowerIsBetter);
  const sluiceVsBare = pairRow('', pick(3, 1), unit, lowerIsBetter);
  return [
    pairRow('  bare Node TLS relay pair', pick(0, 3), unit, lowerIsBetter),
    { figure: '  bare pair ÷ ssh -L', value: vsSsh.value, unit, ratio: vsSsh.ratio! },
    { figure: '  sluice ÷ bare pair', value: sluiceVsBare.value, unit, ratio: sluiceVsBare.ratio! },
  ];
}

export function pairRow(figure: string, pairs: [number, number][], unit: string, lowerIsBetter: boolean): Row {
  const ratios = pairs.map(([d, t]) => (lowerIsBetter ? d / t : t / d));
  return { figure, reference: median(pairs.map((p) => p[0])), value: median(pairs.map((p) => p[1])), unit, ratio: median(ratios) };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** User + system CPU a process has used so far, in µs (/proc, clock ticks of 10 ms). */
export function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function warmUp(c: PgCluster, paths: Endpoint[], clients: number, env: NodeJS.ProcessEnv): Promise<void> {
  if (WARMUP > 0) for (const e of paths) await pgbench(c, e, clients, env, WARMUP);
}

async function pgbench(_c: PgCluster, e: Endpoint, clients: number, env: NodeJS.ProcessEnv, seconds = SECONDS): Promise<{ tps: number; latencyMs: number; transactions: number }> {
  const { stdout } = await run(join(PG_BIN_DIR, 'pgbench'), ['-S', '-n', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds), '-p', String(e.port)], { env });
  const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1]);
  const latencyMs = Number(/latency average = ([\d.]+) ms/.exec(stdout)?.[1]);
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1]);
  if (!Number.isFinite(tps) || !Number.isFinite(latencyMs) || !(transactions > 0)) throw new Error(`cannot read pgbench output:\n${stdout}`);
  return { tps, latencyMs, transactions };
}

/** MB/s of `COPY (1M rows) TO STDOUT` read by psql (the server backend is the usual bottleneck). */
async function copyOut(e: Endpoint, env: NodeJS.ProcessEnv): Promise<number> {
  const started = process.hrtime.bigint();
  const child = spawn(join(PG_BIN_DIR, 'psql'), ['-X', '-p', String(e.port), '-c', "copy (select g, md5(g::text), now() from generate_series(1, 1000000) g) to stdout"], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let bytes = 0;
  child.stdout.on('data', (d: Buffer) => (bytes += d.length));
  const [code] = (await once(child, 'exit')) as [number];
  if (code !== 0) throw new Error(`psql COPY exited with ${code}`);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return bytes / 1e6 / seconds;
}

/** Mean milliseconds of one connect + `select 1` + close, over `n` sequential connections. */
async function connectLoop(c: PgCluster, e: Endpoint, n: number): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const client = new pg.Client({ host: '127.0.0.1', port: e.port, user: c.user, password: c.password, database: c.database });
    await client.connect();
    await client.query('select 1');
    await client.end();
  }
  return Number(process.hrtime.bigint() - started) / 1e6 / n;
}
