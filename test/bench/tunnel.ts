// The tunnel (`sluice connect`) against its own floor, the bare Node.js TLS relay pair
// (bareRelay.ts), and what a policy costs on it, with the CPU each relay process spends per
// transaction: the gateway, the CLI, and the two bare relays. CPU per transaction is read from
// /proc around each block; on a shared machine it is steadier than throughput, and it is what an
// operator sizes a gateway with. Blocks alternate and turn their order each round; ratios are
// medians of the per-round ratios (shared/notes/performance.md). Nothing is asserted: it prints.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { newConfigDir, serviceToken, spawnCli, startGateway } from '../support/binaries.js';
import { PG_BIN_DIR, startPgCluster } from '../support/pgCluster.js';
import { startBareRelayPair, type BareRelayPair } from './bareRelay.js';
import { cpuMicros, median, type Row } from './postgres.js';

const run = promisify(execFile);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);

/** Block rules as a typical deployment has them, and a mask on one column pgbench -S never reads. */
export const POLICY = {
  rules: [
    { id: 'no-ddl', block: { statements: ['drop', 'truncate', 'alter'] } },
    { id: 'no-unbounded-writes', block: { unboundedWrites: true } },
    { id: 'no-file-access', block: { functions: ['pg_read_file', 'pg_ls_dir', 'lo_export', 'dblink'], copyProgram: true } },
    { id: 'email', mask: { columns: ['bench_customers.email'], with: 'partial' } },
  ],
};

/** One path under test: where pgbench connects, and the relay processes whose CPU it costs. */
interface Path {
  name: string;
  port: number;
  pids: Record<string, number>;
}

interface Block {
  tps: number;
  /** CPU µs per transaction of each of the path's relay processes. */
  cpu: Record<string, number>;
}

export async function benchTunnel(log: (s: string) => void): Promise<Row[]> {
  const cluster = await startPgCluster();
  const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: 'BENCH_PG_PASSWORD' }, sslmode: 'disable' };
  const gw = await startGateway({
    env: { BENCH_PG_PASSWORD: cluster.password },
    connections: [
      { name: 'bench', type: 'postgres', target, allow: { groups: ['bench'] } },
      { name: 'bench-policy', type: 'postgres', target, allow: { groups: ['bench'] }, policy: POLICY },
    ],
    extra: { log: { level: 'warn' } },
  });
  const token = serviceToken(gw, 'bench', 'bench');
  const cliEnv = { SLUICE_TOKEN: token, SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string };
  const connects: ChildProcess[] = ['bench', 'bench-policy'].map((name) => spawnCli(['connect', name, '--json', '--port', '0'], { configDir: newConfigDir(), env: cliEnv }));
  let bare: BareRelayPair | undefined;
  try {
    bare = await startBareRelayPair(cluster.port);
    const [plain, policed] = await Promise.all(
      connects.map(async (c, i): Promise<Path> => {
        const [line] = (await once(c.stdout!, 'data')) as [Buffer];
        const port = (JSON.parse(line.toString()) as { port: number }).port;
        return { name: i === 0 ? 'sluice' : 'sluice + policy', port, pids: { gateway: gw.child.pid!, cli: c.pid! } };
      }),
    );
    const pair: Path = { name: 'bare pair', port: bare.port, pids: { 'bare server': bare.pids[0]!, 'bare client': bare.pids[1]! } };
    const env = { ...process.env, PGSSLMODE: 'disable', PGPASSWORD: cluster.password, PGHOST: '127.0.0.1', PGUSER: cluster.user, PGDATABASE: cluster.database };

    log('pgbench -i -s 10 and a 1M-row customers table …');
    await run(join(PG_BIN_DIR, 'pgbench'), ['-i', '-q', '-s', '10', '-p', String(cluster.port)], { env });
    await run(join(PG_BIN_DIR, 'psql'), ['-X', '-p', String(cluster.port), '-c', "create table bench_customers as select g as id, 'customer ' || g as name, 'user' || g || '@example.com' as email from generate_series(1, 1000000) g"], { env });
    // The load leaves ~200 MB of dirty pages: written now, not by a checkpoint during the measured blocks.
    const su = cluster.roles.superuser;
    await run(join(PG_BIN_DIR, 'psql'), ['-X', '-p', String(cluster.port), '-U', su.user, '-c', 'checkpoint'], { env: { ...env, PGPASSWORD: su.password } });

    const rows: Row[] = [];
    for (const clients of [1, 8]) {
      log(`pgbench -S -c ${clients}: bare Node TLS relay pair, sluice, sluice + policy (${PAIRS} rounds of ${SECONDS} s) …`);
      const paths = [pair, plain!, policed!];
      for (const p of paths) await pgbench(p, clients, env, WARMUP);
      const rounds = await blocks((p) => pgbench(p, clients, env), paths);
      for (const [i, r] of rounds.entries()) log(`  round ${i + 1}: ${r.map((b, j) => `${paths[j]!.name} ${b.tps.toFixed(0)} tps (${describeCpu(b.cpu)})`).join('; ')}`);
      rows.push(ratioRow(`tunnel c${clients} TPS, sluice ÷ bare pair`, rounds.map((r) => [r[0]!.tps, r[1]!.tps]), 'tps'));
      rows.push(ratioRow(`tunnel c${clients} TPS, block + 1-column mask ÷ no policy`, rounds.map((r) => [r[1]!.tps, r[2]!.tps]), 'tps'));
      for (const [j, p] of paths.entries()) {
        for (const proc of Object.keys(p.pids)) rows.push({ figure: `  c${clients} CPU per transaction, ${p.name}: ${proc}`, value: median(rounds.map((r) => r[j]!.cpu[proc]!)), unit: 'µs' });
      }
    }

    log('SELECT of 1M rows, one masked column, against the same tunnel without a policy …');
    const sql = 'select * from bench_customers';
    const sel: [number, number][] = [];
    for (let i = 0; i < PAIRS; i++) {
      const order = i % 2 === 0 ? [plain!, policed!] : [policed!, plain!];
      const got = new Map<Path, number>();
      for (const p of order) got.set(p, await selectRows(p.port, sql, env));
      sel.push([got.get(plain!)!, got.get(policed!)!]);
    }
    rows.push(ratioRow('1M-row SELECT, 1 masked column ÷ no policy', sel, 'rows/s'));
    return rows;
  } catch (err) {
    log(`the benchmark failed; the gateway's log ends with:\n${gw.output().slice(-6000)}`);
    throw err;
  } finally {
    for (const c of connects) c.kill('SIGINT');
    await bare?.stop();
    await gw.stop();
    rmSync(gw.dir, { recursive: true, force: true });
    await cluster.stop();
  }
}

function describeCpu(cpu: Record<string, number>): string {
  return Object.entries(cpu)
    .map(([k, v]) => `${k} ${v.toFixed(0)} µs`)
    .join(', ');
}

function ratioRow(figure: string, pairs: [number, number][], unit: string): Row {
  return { figure, reference: median(pairs.map((p) => p[0])), value: median(pairs.map((p) => p[1])), unit, ratio: median(pairs.map(([a, b]) => b / a)) };
}

/** PAIRS rounds over every path, the order reversed every other round; results in path order. */
async function blocks(measure: (p: Path) => Promise<Block>, paths: Path[]): Promise<Block[][]> {
  const out: Block[][] = [];
  for (let i = 0; i < PAIRS; i++) {
    const round = new Array<Block>(paths.length);
    const order = paths.map((_, j) => (i % 2 === 0 ? j : paths.length - 1 - j));
    for (const j of order) round[j] = await measure(paths[j]!);
    out.push(round);
  }
  return out;
}

async function pgbench(p: Path, clients: number, env: NodeJS.ProcessEnv, seconds = SECONDS): Promise<Block> {
  const before = Object.fromEntries(Object.entries(p.pids).map(([k, pid]) => [k, cpuMicros(pid)]));
  const { stdout } = await run(join(PG_BIN_DIR, 'pgbench'), ['-S', '-n', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds), '-p', String(p.port)], { env });
  const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1]);
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1]);
  if (!Number.isFinite(tps) || !(transactions > 0)) throw new Error(`cannot read pgbench output:\n${stdout}`);
  const cpu = Object.fromEntries(Object.entries(p.pids).map(([k, pid]) => [k, (cpuMicros(pid) - before[k]!) / transactions]));
  return { tps, cpu };
}

/** Rows per second psql reads (unaligned, to a pipe) for `sql`. */
async function selectRows(port: number, sql: string, env: NodeJS.ProcessEnv): Promise<number> {
  const started = process.hrtime.bigint();
  const child = spawn(join(PG_BIN_DIR, 'psql'), ['-X', '-At', '-p', String(port), '-c', sql], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let lines = 0;
  child.stdout.on('data', (d: Buffer) => {
    for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) lines++;
  });
  const [code] = (await once(child, 'exit')) as [number];
  if (code !== 0) throw new Error(`psql exited with ${code}`);
  return lines / (Number(process.hrtime.bigint() - started) / 1e9);
}
