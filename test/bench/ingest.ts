// What the audit ingest costs per event, in one process and without the tunnel: the work the
// ingest thread does for each batch the writer hands over (read the journal file, chain the
// events, commit them to SQLite as runs, empty the file), for pgbench-like statements of eight
// sessions, at several batch sizes. The store's cost per event falls with the batch (SQLite writes
// every page a commit touches to the WAL and checkpoints it), which is what the writer's ingest
// interval trades against how soon other replicas see events. Prints; asserts nothing.
import { mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventChains, storeLookup, type StagedOp } from '../../gateway/audit/chain.js';
import { commitStaged } from '../../gateway/audit/ingest.js';
import { AuditJournal, readJournalPart } from '../../gateway/audit/journal.js';
import { openSqliteStore } from '../../gateway/store/sqlite.js';
import type { Row } from './postgres.js';

const SESSIONS = 8;
const EVENTS = Number(process.env.BENCH_INGEST_EVENTS ?? 60_000);
/** Statements per batch to measure (`BENCH_INGEST_BATCHES=16,64,320`). */
const BATCHES = (process.env.BENCH_INGEST_BATCHES ?? '16,64,320').split(',').map(Number);
if (BATCHES.some((n) => !Number.isSafeInteger(n) || n < 1)) throw new Error(`BENCH_INGEST_BATCHES=${process.env.BENCH_INGEST_BATCHES} is not a list of positive integers`);

/** CPU µs per event over `events` events ingested in batches of `statements` statements (two events each). */
async function measure(statements: number, events = EVENTS): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-ingest-'));
  const store = openSqliteStore(join(dir, 'audit.db'));
  try {
    const chains = new EventChains(storeLookup(store));
    const journal = await AuditJournal.open({ dir, durability: 'process' }, async () => undefined);
    const sessions = Array.from({ length: SESSIONS }, (_, i) => `s_bench_ingest_${i}`);
    const seqs = sessions.map(() => 0);
    await commitStaged(
      store,
      chains,
      sessions.map((id) => ({
        op: 'session',
        session: { id, connection: 'bench', protocol: 'postgres', subject: 'token:bench', identityName: 'bench', email: null, identityKind: 'service', groups: ['bench'], origin: 'connect', clientAddress: '127.0.0.1', database: 'bench', startedAt: new Date(), instance: 'g_bench' },
      })),
      false,
    );
    let q = 0;
    const started = Date.now();
    let done = 0;
    const before = process.cpuUsage();
    while (done < events) {
      const ops: StagedOp[] = [];
      for (let t = 0; t < statements; t++) {
        const k = t % SESSIONS;
        const session = sessions[k]!;
        q++;
        // Times as at ~8,000 statements per second: neighbours often share their millisecond, not their second's digits.
        const at = started + Math.floor(q / 8);
        ops.push({ op: 'entry', entry: { session, seq: ++seqs[k]!, kind: 'query', at, data: `{"protocol":"simple","q":${q},"text":"SELECT abalance FROM pgbench_accounts WHERE aid = ${(q * 7919) % 1_000_000};"}` } });
        ops.push({ op: 'entry', entry: { session, seq: ++seqs[k]!, kind: 'result', at, data: `{"bytes":5,"columns":[{"name":"abalance","type":23}],"commands":["SELECT 1"],"durationMs":0.412,"q":${q},"rows":1,"sample":[["0"]],"status":"ok"}` } });
      }
      // The writer's part (the append) is not the ingest's: it is left out of the measure.
      const appendStart = process.cpuUsage();
      journal.appendSync(ops);
      const appended = process.cpuUsage(appendStart);
      before.user += appended.user;
      before.system += appended.system;
      const { path, bytes, release } = journal.rotate();
      await commitStaged(store, chains, readJournalPart(path, bytes), false);
      truncateSync(path, 0);
      release(true);
      done += ops.length;
    }
    const used = process.cpuUsage(before);
    journal.close();
    return (used.user + used.system) / done;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchIngest(log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  // A first, unmeasured pass: the first measurement of a process ran ~1.8× the later ones (JIT).
  await measure(BATCHES[0]!, EVENTS / 2);
  for (const statements of BATCHES) {
    log(`audit ingest, ${statements} statements per batch …`);
    rows.push({ figure: `audit ingest CPU per event, ${statements} statements per batch (SQLite)`, value: await measure(statements), unit: 'µs' });
  }
  return rows;
}
