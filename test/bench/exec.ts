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
// the exec series runs without it; when it is set, a third series runs with it, so both are shown.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI_BIN, newConfigDir, serviceToken, startGateway } from '../support/binaries.js';
import { PG_BIN_DIR, startPgCluster } from '../support/pgCluster.js';
import type { Row } from './postgres.js';

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
    const cliEnv = { ...baseEnv, SLUICE_TOKEN: token, SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string, SLUICE_CONFIG_DIR: newConfigDir() };
    const pgEnv = { ...process.env, PGPASSWORD: cluster.password, PGHOST: '127.0.0.1', PGPORT: String(cluster.port), PGUSER: cluster.user, PGDATABASE: cluster.database };
    const execArgs = [CLI_BIN, 'exec', 'bench', '-i', 'select 1', '--format', 'csv'];
    const viaExec = () => run(process.execPath, execArgs, { env: cliEnv });
    const viaExecExtraCa = extraCa === undefined ? undefined : () => run(process.execPath, execArgs, { env: { ...cliEnv, NODE_EXTRA_CA_CERTS: extraCa } });
    const viaPsql = () => run(join(PG_BIN_DIR, 'psql'), ['-X', '-At', '-c', 'select 1'], { env: pgEnv });
    // One warm-up each: the first exec also opens the gateway's first upstream connection.
    await viaExec();
    await viaPsql();
    log(`${RUNS} sequential sluice exec and ${RUNS} psql -c, alternating blocks of ${BLOCK} …`);
    const exec: number[] = [];
    const execExtraCa: number[] = [];
    const psql: number[] = [];
    for (let done = 0; done < RUNS; done += BLOCK) {
      const n = Math.min(BLOCK, RUNS - done);
      for (let i = 0; i < n; i++) exec.push(await timed(viaExec));
      for (let i = 0; i < n; i++) psql.push(await timed(viaPsql));
      if (viaExecExtraCa) for (let i = 0; i < n; i++) execExtraCa.push(await timed(viaExecExtraCa));
    }
    const e = median(exec);
    const p = median(psql);
    log(`exec median ${e.toFixed(1)} ms (p90 ${quantile(exec, 0.9).toFixed(1)}), psql median ${p.toFixed(1)} ms (p90 ${quantile(psql, 0.9).toFixed(1)})`);
    const rows: Row[] = [{ figure: `sluice exec 'select 1' ÷ psql -c (${RUNS} sequential, median)`, reference: p, value: e, unit: 'ms', ratio: p / e }];
    if (execExtraCa.length > 0) {
      const x = median(execExtraCa);
      log(`exec with NODE_EXTRA_CA_CERTS=${extraCa}: median ${x.toFixed(1)} ms (p90 ${quantile(execExtraCa, 0.9).toFixed(1)})`);
      rows.push({ figure: `… the same with this machine's NODE_EXTRA_CA_CERTS`, reference: p, value: x, unit: 'ms', ratio: p / x });
    }
    return rows;
  } finally {
    await gw.stop();
    await cluster.stop();
  }
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
