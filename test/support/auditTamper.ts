// What someone with write access to a SQLite audit store, but not the gateway's signing key, can
// do to its history: rewrite events and recompute every hash after them (each event chain, each
// seal, the whole ledger), drop the checkpoints they cannot sign again, cut the newest history off,
// or delete checkpoints. Used by the tamper tests against a stopped gateway's store file.
import Database from 'better-sqlite3';
import { entryBody } from '../../gateway/audit/chain.js';
import { canonicalJson, chainHashOfText, GENESIS_HASH, ledgerHash, type LedgerBody } from '../../src/api/auditTrail.js';

interface RunRow {
  id: number;
  session_id: string;
  lines: string;
  data_only: number;
}

/** Recomputes every ledger hash from entry 1 (after seals changed) and drops the checkpoints that no longer match. */
function rehashLedger(db: Database.Database, finals: ReadonlyMap<string, string>): number {
  let prev = GENESIS_HASH;
  const update = db.prepare('UPDATE audit_ledger SET body = ?, hash = ? WHERE seq = ?');
  for (const r of db.prepare('SELECT seq, body FROM audit_ledger ORDER BY seq').all() as { seq: number; body: string }[]) {
    const entry = JSON.parse(r.body) as LedgerBody;
    const next = entry.kind === 'session' && finals.has(entry.session) ? { ...entry, final: finals.get(entry.session) as string } : entry;
    prev = ledgerHash(prev, next);
    update.run(canonicalJson(next), prev, r.seq);
  }
  const stale = (db.prepare('SELECT c.id FROM audit_checkpoints c LEFT JOIN audit_ledger l ON l.seq = c.ledger_seq WHERE l.hash IS NULL OR l.hash <> c.ledger_hash').all() as { id: number }[]).map((r) => r.id);
  for (const id of stale) db.prepare('DELETE FROM audit_checkpoints WHERE id = ?').run(id);
  return stale.length;
}

/**
 * Replaces `from` with `to` in every event of the sessions whose events contain `from`, recomputes
 * their chains, their seals and the ledger, and deletes the checkpoints that no longer match.
 * Returns the sessions rewritten and how many checkpoints had to go.
 */
export function rewriteHistory(file: string, from: string, to: string): { sessions: string[]; checkpointsDropped: number } {
  const db = new Database(file);
  try {
    return db.transaction(() => {
      const runs = db.prepare('SELECT id, session_id, lines, data_only FROM audit_event_runs ORDER BY session_id, first_seq').all() as RunRow[];
      const touched = new Set(runs.filter((r) => r.lines.includes(from)).map((r) => r.session_id));
      const finals = new Map<string, string>();
      for (const session of touched) {
        let prev = GENESIS_HASH;
        for (const run of runs.filter((r) => r.session_id === session)) {
          const lines = run.lines.split('\n').map((line) => {
            const [seq, kind, at, , ...rest] = line.split('\t');
            const last = rest.join('\t').split(from).join(to);
            const body = run.data_only === 1 ? entryBody({ session, seq: Number(seq), kind: kind as string, at: Number(at), data: last }) : last;
            prev = chainHashOfText(prev, body);
            return [seq, kind, at, prev, last].join('\t');
          });
          db.prepare('UPDATE audit_event_runs SET lines = ? WHERE id = ?').run(lines.join('\n'), run.id);
        }
        finals.set(session, prev);
      }
      return { sessions: [...touched], checkpointsDropped: rehashLedger(db, finals) };
    })();
  } finally {
    db.close();
  }
}

/** Deletes the newest `entries` ledger entries, the sessions they sealed (rows and events) and the checkpoints past the new head. */
export function truncateHistory(file: string, entries: number): { head: number } {
  const db = new Database(file);
  try {
    return db.transaction(() => {
      const top = (db.prepare('SELECT max(seq) AS seq FROM audit_ledger').get() as { seq: number }).seq;
      const head = top - entries;
      const sessions = (db.prepare('SELECT session_id FROM audit_ledger WHERE seq > ? AND session_id IS NOT NULL').all(head) as { session_id: string }[]).map((r) => r.session_id);
      for (const s of sessions) {
        db.prepare('DELETE FROM audit_event_runs WHERE session_id = ?').run(s);
        db.prepare('DELETE FROM audit_sessions WHERE id = ?').run(s);
      }
      db.prepare('DELETE FROM audit_ledger WHERE seq > ?').run(head);
      db.prepare('DELETE FROM audit_checkpoints WHERE ledger_seq > ?').run(head);
      return { head };
    })();
  } finally {
    db.close();
  }
}

/** Deletes every checkpoint at or after ledger entry `fromSeq`. Returns how many. */
export function deleteCheckpoints(file: string, fromSeq = 0): number {
  const db = new Database(file);
  try {
    return db.prepare('DELETE FROM audit_checkpoints WHERE ledger_seq >= ?').run(fromSeq).changes;
  } finally {
    db.close();
  }
}
