// What policy costs on the PostgreSQL path, measured through the real binaries: one gateway with
// the same target under three connections — no policy, a typical block-only policy, and that
// policy plus masks — each behind its own `sluice connect`. Blocks alternate between the
// connections (none, block, mask, none, …) and each policy figure is the median of its ratios to
// the no-policy block of the same round, since raw throughput drifts between runs on these
// machines (shared/notes/performance.md). Also: a 1M-row SELECT with two masked columns, masked
// vs unmasked tunnel vs direct. Nothing is asserted; rows are printed.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { newConfigDir, serviceToken, spawnCli, startGateway } from '../support/binaries.js';
import { PG_BIN_DIR, startPgCluster } from '../support/pgCluster.js';
import type { Row } from './postgres.js';

const run = promisify(execFile);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);

const BLOCKS = [
  { id: 'no-ddl', block: { statements: ['drop', 'truncate', 'alter'] } },
  { id: 'no-unbounded-writes', block: { unboundedWrites: true } },
  { id: 'no-file-access', block: { functions: ['pg_read_file', 'pg_ls_dir', 'lo_export', 'dblink'], copyProgram: true } },
];
// The example masks: two columns kept partially, detectors everywhere else. (`hash`
// costs an HMAC, about 1.7 µs, per value on top.)
const MASKS = [
  { id: 'pii', mask: { columns: ['bench_customers.email', 'bench_customers.card_number', 'pgbench_accounts.filler'], with: 'partial' } },
  { id: 'pii-anywhere', mask: { detect: ['credit_card', 'email', 'us_ssn', 'iban', 'phone', 'secret'], with: 'redact' } },
];

type Kind = 'none' | 'block' | 'mask';

export async function benchPolicy(log: (s: string) => void): Promise<Row[]> {
  const cluster = await startPgCluster();
  const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: 'BENCH_PG_PASSWORD' }, sslmode: 'disable' };
  const gw = await startGateway({
    env: { BENCH_PG_PASSWORD: cluster.password },
    connections: [
      { name: 'none', type: 'postgres', target, allow: { groups: ['bench'] } },
      { name: 'block', type: 'postgres', target, allow: { groups: ['bench'] }, policy: { rules: BLOCKS } },
      { name: 'mask', type: 'postgres', target, allow: { groups: ['bench'] }, policy: { rules: [...BLOCKS, ...MASKS] } },
    ],
    extra: { log: { level: 'warn' } },
  });
  const token = serviceToken(gw, 'bench', 'bench');
  const connects = (['none', 'block', 'mask'] as const).map((name) =>
    spawnCli(['connect', name, '--json', '--port', '0'], { configDir: newConfigDir(), env: { SLUICE_TOKEN: token, SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string } }),
  );
  try {
    const ports = {} as Record<Kind, number>;
    for (const [i, name] of (['none', 'block', 'mask'] as const).entries()) {
      const [line] = (await once(connects[i]!.stdout!, 'data')) as [Buffer];
      ports[name] = (JSON.parse(line.toString()) as { port: number }).port;
    }
    const env = { ...process.env, PGSSLMODE: 'disable', PGPASSWORD: cluster.password, PGHOST: '127.0.0.1', PGUSER: cluster.user, PGDATABASE: cluster.database };
    log('pgbench -i -s 10 and a 1M-row customers table …');
    await run(join(PG_BIN_DIR, 'pgbench'), ['-i', '-q', '-s', '10', '-p', String(cluster.port)], { env });
    await run(join(PG_BIN_DIR, 'psql'), ['-X', '-p', String(cluster.port), '-c', "create table bench_customers as select g as id, 'customer ' || g as name, 'user' || g || '@example.com' as email, (4000000000000000 + g)::text as card_number from generate_series(1, 1000000) g"], { env });

    const rows: Row[] = [];
    for (const clients of [1, 8]) {
      log(`pgbench -S -c ${clients}: ${PAIRS} rounds of none/block/mask, ${SECONDS} s each …`);
      const rounds: Record<Kind, number>[] = [];
      for (let i = 0; i < PAIRS; i++) {
        const r = {} as Record<Kind, number>;
        // The order turns each round so that drift during a round favours no connection.
        const order: Kind[] = i % 2 === 0 ? ['none', 'block', 'mask'] : ['mask', 'block', 'none'];
        for (const k of order) r[k] = await pgbench(ports[k], clients, env);
        rounds.push(r);
      }
      for (const k of ['block', 'mask'] as const) {
        rows.push({ figure: `pgbench -S c${clients} TPS, ${k === 'block' ? 'block-only policy' : 'block + mask policy'} ÷ no policy`, reference: median(rounds.map((r) => r.none)), value: median(rounds.map((r) => r[k])), unit: 'tps', ratio: median(rounds.map((r) => r[k] / r.none)) });
      }
    }

    log('SELECT of 1M rows with two masked columns …');
    const sql = 'select * from bench_customers';
    const sel: { direct: number; none: number; mask: number }[] = [];
    for (let i = 0; i < PAIRS; i++) sel.push({ direct: await selectRows(cluster.port, sql, env), none: await selectRows(ports.none, sql, env), mask: await selectRows(ports.mask, sql, env) });
    rows.push({ figure: '1M-row SELECT, unmasked tunnel', reference: median(sel.map((s) => s.direct)), value: median(sel.map((s) => s.none)), unit: 'rows/s', ratio: median(sel.map((s) => s.none / s.direct)) });
    rows.push({ figure: '1M-row SELECT, 2 masked columns + detectors', reference: median(sel.map((s) => s.direct)), value: median(sel.map((s) => s.mask)), unit: 'rows/s', ratio: median(sel.map((s) => s.mask / s.direct)) });
    rows.push({ figure: '  masked ÷ unmasked tunnel', value: median(sel.map((s) => s.mask / s.none)), unit: '×' });
    return rows;
  } finally {
    for (const c of connects) c.kill('SIGINT');
    await gw.stop();
    // The bench's trail runs to hundreds of megabytes: not left behind in the temporary directory.
    rmSync(gw.dir, { recursive: true, force: true });
    await cluster.stop();
  }
}

async function pgbench(port: number, clients: number, env: NodeJS.ProcessEnv): Promise<number> {
  const { stdout } = await run(join(PG_BIN_DIR, 'pgbench'), ['-S', '-n', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(SECONDS), '-p', String(port)], { env });
  const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1]);
  if (!Number.isFinite(tps)) throw new Error(`cannot read pgbench output:\n${stdout}`);
  return tps;
}

/** Rows per second psql reads (unaligned, to /dev/null) for `sql`. */
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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
