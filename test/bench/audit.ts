// How many audit events a store sustains, through the real recorder and writer (hashing,
// canonical JSON, commits): one statement = a `query` event committed before it would be
// forwarded, then its `result` event. Two ways of committing:
// - per statement: onQuery commits synchronously (SQLite only; what an engine that does not
//   await the audit gets),
// - group commit: sessions pass deferCommit and await flush(), so concurrent sessions share one
//   transaction (and with durability: fsync, one fsync).
// Both durability settings. The PostgreSQL rows use the benchmark's throwaway cluster, which runs
// with fsync=off: they measure round trips, not disks. Nothing is asserted; rows are printed.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { AuditWriter } from '../../gateway/audit/writer.js';
import type { Identity } from '../../gateway/model.js';
import { createSessionAudit } from '../../gateway/sessionAudit.js';
import { openPostgresStore } from '../../gateway/store/postgres.js';
import { openSqliteStore } from '../../gateway/store/sqlite.js';
import type { Store } from '../../gateway/store/types.js';
import { startPgCluster } from '../support/pgCluster.js';
import type { Row } from './postgres.js';

const SECONDS = Number(process.env.BENCH_AUDIT_SECONDS ?? 2);
const RUNS = Number(process.env.BENCH_PAIRS ?? 3);
const log = pino({ level: 'silent' });
const WHO: Identity = { subject: 'token:bench', name: 'bench', groups: ['bench'], kind: 'service' };
const TEXT = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1';

type Mode = { kind: 'per-statement' } | { kind: 'group'; sessions: number };

/** Events per second one recorder/writer pair sustains on `store` for SECONDS. */
async function measure(store: Store, mode: Mode): Promise<{ eventsPerSecond: number; eventsPerCommit: number }> {
  const writer = new AuditWriter({ store, log, instance: 'g_bench' });
  const sessions = mode.kind === 'group' ? mode.sessions : 1;
  const audits = Array.from({ length: sessions }, () => {
    const id = `s_bench_${randomBytes(6).toString('hex')}`;
    const a = createSessionAudit({ writer, limits: { maxRows: 100, maxBytes: 65536 }, instance: 'g_bench', log }, { id, connection: 'bench', protocol: 'postgres', identity: WHO, origin: 'bench', clientAddress: '127.0.0.1' });
    a.onSessionStart({ target: 'bench', clientUser: 'bench' });
    return a;
  });
  await writer.flush();
  const before = { ...writer.stats };
  let events = 0;
  const start = performance.now();
  const deadline = start + SECONDS * 1000;
  if (mode.kind === 'per-statement') {
    const a = audits[0]!;
    while (performance.now() < deadline) {
      for (let k = 0; k < 50; k++) {
        const q = a.onQuery({ text: TEXT, params: [String(k)], protocol: 'extended' });
        a.onResult({ queryId: q, status: 'ok', commands: ['SELECT 1'], rows: 1, durationMs: 0.05 });
        events += 2;
      }
    }
  } else {
    await Promise.all(
      audits.map(async (a) => {
        let k = 0;
        while (performance.now() < deadline) {
          const q = a.onQuery({ text: TEXT, params: [String(k++)], protocol: 'extended', deferCommit: true });
          await a.flush!();
          a.onResult({ queryId: q, status: 'ok', commands: ['SELECT 1'], rows: 1, durationMs: 0.05 });
          events += 2;
        }
      }),
    );
  }
  await writer.flush();
  const elapsed = (performance.now() - start) / 1000;
  for (const a of audits) a.onSessionEnd({ status: 'ok', bytesFromClient: 0, bytesToClient: 0 });
  await writer.flush();
  writer.close();
  const commits = writer.stats.commits - before.commits;
  return { eventsPerSecond: events / elapsed, eventsPerCommit: commits > 0 ? (writer.stats.ops - before.ops) / commits : 0 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/**
 * `process` and `fsync` measured in alternating runs (P, F, P, F, …) on fresh stores; the fsync row
 * carries the median of the paired ratios, which drifts far less than either figure on a shared
 * VM (shared/notes/performance.md).
 */
async function paired(name: string, open: (d: 'process' | 'fsync') => Promise<Store>, mode: Mode, say: (s: string) => void): Promise<Row[]> {
  say(`${name} …`);
  const runs: Record<'process' | 'fsync', { eps: number; per: number }[]> = { process: [], fsync: [] };
  for (let i = 0; i < RUNS; i++) {
    for (const d of ['process', 'fsync'] as const) {
      const store = await open(d);
      try {
        const r = await measure(store, mode);
        runs[d].push({ eps: r.eventsPerSecond, per: r.eventsPerCommit });
      } finally {
        await store.close();
      }
    }
  }
  const row = (d: 'process' | 'fsync'): Row => ({
    figure: `${name}, ${d}${d === 'fsync' ? ' (ratio: ÷ process)' : ''}`,
    value: median(runs[d].map((r) => r.eps)),
    unit: `events/s, ${median(runs[d].map((r) => r.per)).toFixed(0)}/commit`,
    ...(d === 'fsync' ? { ratio: median(runs.fsync.map((r, i) => r.eps / (runs.process[i] as { eps: number }).eps)) } : {}),
  });
  return [row('process'), row('fsync')];
}

/** The audit store benchmark for `npm run bench`. */
export async function benchAudit(say: (s: string) => void = (s) => process.stderr.write(`bench: ${s}\n`)): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-audit-'));
  let n = 0;
  const sqlite = async (durability: 'process' | 'fsync') => openSqliteStore(join(dir, `audit-${++n}.db`), { durability });
  const rows: Row[] = [];
  try {
    rows.push(...(await paired('audit sqlite: commit per statement', sqlite, { kind: 'per-statement' }, say)));
    for (const sessions of [1, 8, 64]) rows.push(...(await paired(`audit sqlite: group commit, ${sessions} sessions`, sqlite, { kind: 'group', sessions }, say)));
    const cluster = await startPgCluster();
    try {
      const url = `postgresql://${cluster.user}@${cluster.host}:${cluster.port}/${cluster.database}`;
      const postgres = (durability: 'process' | 'fsync') => openPostgresStore(url, { password: cluster.password, durability });
      for (const sessions of [1, 8, 64]) {
        rows.push(...(await paired(`audit postgres (fsync=off test cluster): group commit, ${sessions} sessions`, postgres, { kind: 'group', sessions }, say)));
      }
    } finally {
      await cluster.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
