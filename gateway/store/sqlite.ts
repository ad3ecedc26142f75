// The embedded store: SQLite through better-sqlite3 in WAL mode. Synchronous underneath: a commit
// is tens of microseconds, so the audit can commit a statement's event before the engine forwards
// it without the engine awaiting anything (commitSync). The async methods wrap the same calls.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { EntryEvent, entryBody } from '../audit/chain.js';
import { GENESIS_HASH } from '../../src/api/auditTrail.js';
import { checkLedgerRun, tallyEvents, toCheckpoint, toDirectCredential, toLedger, toSession, toToken, type Row } from './rows.js';
import { DuplicateNameError, type AuditOp, type AuditSnapshot, type EventRecord, type LedgerHead, type SessionFilter, type SnapshotScope, type Store } from './types.js';

/** Versioned migrations, applied in order at open; the index + 1 is the schema version (user_version). */
const migrations: readonly string[] = [
  `CREATE TABLE service_tokens (
     name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, groups TEXT NOT NULL,
     created_at INTEGER NOT NULL, expires_at INTEGER, revoked_at INTEGER);
   CREATE TABLE sessions (
     id TEXT PRIMARY KEY, connection TEXT NOT NULL, subject TEXT NOT NULL, identity_name TEXT NOT NULL,
     identity_kind TEXT NOT NULL, groups TEXT NOT NULL, origin TEXT NOT NULL, client_address TEXT NOT NULL,
     started_at INTEGER NOT NULL, ended_at INTEGER, status TEXT NOT NULL DEFAULT 'open', database TEXT,
     error TEXT, bytes_from_client INTEGER NOT NULL DEFAULT 0, bytes_to_client INTEGER NOT NULL DEFAULT 0,
     queries INTEGER NOT NULL DEFAULT 0);
   CREATE INDEX sessions_started ON sessions (started_at);
   CREATE TABLE queries (
     session_id TEXT NOT NULL REFERENCES sessions (id), seq INTEGER NOT NULL, text TEXT NOT NULL,
     params TEXT, protocol TEXT NOT NULL, started_at INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
     duration_ms REAL, commands TEXT, rows INTEGER, sqlstate TEXT, message TEXT,
     PRIMARY KEY (session_id, seq));`,
  // 2: the tamper-evident trail. The unchained bookkeeping of version 1 is kept, renamed, and is
  // not part of the trail.
  `ALTER TABLE sessions RENAME TO legacy_sessions;
   ALTER TABLE queries RENAME TO legacy_queries;
   DROP INDEX sessions_started;
   CREATE TABLE audit_sessions (
     id TEXT PRIMARY KEY, connection TEXT NOT NULL, protocol TEXT NOT NULL, subject TEXT NOT NULL,
     identity_name TEXT NOT NULL, email TEXT, identity_kind TEXT NOT NULL, groups TEXT NOT NULL,
     origin TEXT NOT NULL, client_address TEXT NOT NULL, database TEXT, started_at INTEGER NOT NULL,
     ended_at INTEGER, status TEXT NOT NULL DEFAULT 'open', error TEXT,
     bytes_from_client INTEGER NOT NULL DEFAULT 0, bytes_to_client INTEGER NOT NULL DEFAULT 0,
     queries INTEGER NOT NULL DEFAULT 0, events INTEGER NOT NULL DEFAULT 0,
     ledger_seq INTEGER, purged_at INTEGER, instance TEXT NOT NULL);
   CREATE INDEX audit_sessions_started ON audit_sessions (started_at);
   CREATE INDEX audit_sessions_open ON audit_sessions (status) WHERE status = 'open';
   CREATE TABLE audit_events (
     session_id TEXT NOT NULL REFERENCES audit_sessions (id), seq INTEGER NOT NULL, kind TEXT NOT NULL,
     at INTEGER NOT NULL, body TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (session_id, seq)) WITHOUT ROWID;
   CREATE TABLE audit_ledger (
     seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, session_id TEXT, at INTEGER NOT NULL, body TEXT NOT NULL, hash TEXT NOT NULL);
   CREATE TABLE audit_checkpoints (
     id INTEGER PRIMARY KEY, ledger_seq INTEGER NOT NULL, ledger_hash TEXT NOT NULL, at INTEGER NOT NULL,
     key_id TEXT NOT NULL, signature TEXT NOT NULL);
   CREATE TABLE audit_instances (id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, seen_at INTEGER NOT NULL);`,
  // 3: events in a rowid table (appends at the end) with a separate index: a WITHOUT ROWID table
  // clustered by (session, seq) splits pages under concurrent sessions and halved the events/s
  // a group commit sustains (test/bench/audit.ts).
  `CREATE TABLE audit_events_v3 (
     id INTEGER PRIMARY KEY, session_id TEXT NOT NULL REFERENCES audit_sessions (id), seq INTEGER NOT NULL,
     kind TEXT NOT NULL, at INTEGER NOT NULL, body TEXT NOT NULL, hash TEXT NOT NULL);
   INSERT INTO audit_events_v3 (session_id, seq, kind, at, body, hash)
     SELECT session_id, seq, kind, at, body, hash FROM audit_events ORDER BY session_id, seq;
   DROP TABLE audit_events;
   ALTER TABLE audit_events_v3 RENAME TO audit_events;
   CREATE UNIQUE INDEX audit_events_session_seq ON audit_events (session_id, seq);`,
  // 4: a session's events of one commit in one row (a run): the ingest commits a batch of ~100 ms
  // per transaction, and a row (with its index entry and foreign-key probe) per event was half of
  // the ingest thread's work. Each line of `lines` is seq, kind, at, hash and the body, separated
  // by tabs (canonical JSON holds no raw tab or newline).
  `CREATE TABLE audit_event_runs (
     id INTEGER PRIMARY KEY, session_id TEXT NOT NULL REFERENCES audit_sessions (id),
     first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, events INTEGER NOT NULL, lines TEXT NOT NULL);
   INSERT INTO audit_event_runs (session_id, first_seq, last_seq, events, lines)
     SELECT session_id, seq, seq, 1, seq || char(9) || kind || char(9) || at || char(9) || hash || char(9) || body FROM audit_events ORDER BY id;
   DROP TABLE audit_events;
   CREATE UNIQUE INDEX audit_event_runs_session ON audit_event_runs (session_id, first_seq);`,
  // 5: a run whose events all carry their data (EventRecord.data: each body is built from the
  // event's fields and data) keeps the data in place of the body: the body repeats the session,
  // number, kind and time the line already has, a third of what the ingest wrote per event.
  `ALTER TABLE audit_event_runs ADD COLUMN data_only INTEGER NOT NULL DEFAULT 0;`,
  // 6: per-session counts of statements refused by policy and held for review, kept at the end
  // like `queries` so `sessions ls` reads them from the row instead of every session's events.
  // Sessions ended before this show 0.
  `ALTER TABLE audit_sessions ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE audit_sessions ADD COLUMN reviewed INTEGER NOT NULL DEFAULT 0;`,
  // 7: short-lived passwords of the direct listeners (hash only).
  `CREATE TABLE direct_credentials (
     id TEXT PRIMARY KEY, hash TEXT NOT NULL, subject TEXT NOT NULL, identity TEXT NOT NULL,
     connection TEXT NOT NULL, token_hash TEXT, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
     revoked_at INTEGER);
   CREATE INDEX direct_credentials_expires ON direct_credentials (expires_at);`,
];

/** The last event time written into a run, as text: epoch milliseconds exceed V8's small integers, and turning one into a string takes its slow path. */
let lineAtMs = NaN;
let lineAtText = '';

/** One event as a line of a run (see migrations 4 and 5): its data in a data-only run, else its body. */
function eventLine(e: EventRecord, dataOnly: boolean): string {
  // An event chained in this process has its time as a number: no Date to make and read back.
  const at = e instanceof EntryEvent ? e.atMs : e.at.getTime();
  if (at !== lineAtMs) {
    lineAtMs = at;
    lineAtText = `${at}`;
  }
  return `${e.seq}\t${e.kind}\t${lineAtText}\t${e.hash}\t${dataOnly ? e.data : e.body}`;
}

/** The events of a run, in order. */
function runEvents(session: string, lines: string, dataOnly: boolean): EventRecord[] {
  const out: EventRecord[] = [];
  for (const line of lines.split('\n')) {
    const a = line.indexOf('\t');
    const b = line.indexOf('\t', a + 1);
    const c = line.indexOf('\t', b + 1);
    const d = line.indexOf('\t', c + 1);
    const seq = Number(line.slice(0, a));
    const kind = line.slice(a + 1, b);
    const at = Number(line.slice(b + 1, c));
    const hash = line.slice(c + 1, d);
    const last = line.slice(d + 1);
    if (dataOnly) out.push({ session, seq, kind, at: new Date(at), hash, data: last, body: entryBody({ session, seq, kind, at, data: last }) });
    else out.push({ session, seq, kind, at: new Date(at), hash, body: last });
  }
  return out;
}

/** The events of a run's row. */
const rowEvents = (session: string, r: Row): EventRecord[] => runEvents(session, String(r.lines), r.data_only === 1);

export interface SqliteStoreOptions {
  /** `process`: synchronous=NORMAL (commits survive a gateway crash); `fsync`: FULL (and power loss). */
  durability?: 'process' | 'fsync';
}

export function openSqliteStore(path: string, opts: SqliteStoreOptions = {}): Store {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true });
    // The trail holds statements and result samples: create the file private (SQLite gives the
    // WAL and SHM files the same mode).
    closeSync(openSync(path, 'a', 0o600));
  }
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${opts.durability === 'fsync' ? 'FULL' : 'NORMAL'}`);
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);

  const q = {
    insertToken: db.prepare('INSERT INTO service_tokens (name, hash, groups, created_at, expires_at) VALUES (?, ?, ?, ?, ?)'),
    findToken: db.prepare('SELECT * FROM service_tokens WHERE hash = ?'),
    listTokens: db.prepare('SELECT * FROM service_tokens ORDER BY created_at'),
    revokeToken: db.prepare('UPDATE service_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL'),
    insertCredential: db.prepare('INSERT INTO direct_credentials (id, hash, subject, identity, connection, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
    findCredential: db.prepare('SELECT * FROM direct_credentials WHERE id = ?'),
    renewCredential: db.prepare('UPDATE direct_credentials SET expires_at = ? WHERE id = ? AND subject = ? AND revoked_at IS NULL AND expires_at > ?'),
    revokeCredential: db.prepare('UPDATE direct_credentials SET revoked_at = ? WHERE id = ? AND subject = ? AND revoked_at IS NULL'),
    deleteExpiredCredentials: db.prepare('DELETE FROM direct_credentials WHERE expires_at < ?'),
    insertSession: db.prepare(insertSessionSql('INSERT')),
    replaySession: db.prepare(insertSessionSql('INSERT OR IGNORE')),
    insertRun: db.prepare('INSERT INTO audit_event_runs (session_id, first_seq, last_seq, events, lines, data_only) VALUES (?, ?, ?, ?, ?, ?)'),
    lastSeq: db.prepare('SELECT last_seq FROM audit_event_runs WHERE session_id = ? ORDER BY first_seq DESC LIMIT 1'),
    sealedAt: db.prepare('SELECT ledger_seq FROM audit_sessions WHERE id = ?'),
    endSession: db.prepare(
      `UPDATE audit_sessions SET ended_at = @endedAt, status = @status, error = @error, bytes_from_client = @bytesFromClient,
       bytes_to_client = @bytesToClient, queries = @queries, blocked = @blocked, reviewed = @reviewed, events = @events WHERE id = @id`,
    ),
    head: db.prepare('SELECT seq, hash FROM audit_ledger ORDER BY seq DESC LIMIT 1'),
    insertLedger: db.prepare('INSERT INTO audit_ledger (seq, kind, session_id, at, body, hash) VALUES (?, ?, ?, ?, ?, ?)'),
    sealSession: db.prepare('UPDATE audit_sessions SET ledger_seq = ? WHERE id = ?'),
    heartbeat: db.prepare('INSERT INTO audit_instances (id, started_at, seen_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at'),
    addCheckpoint: db.prepare('INSERT INTO audit_checkpoints (ledger_seq, ledger_hash, at, key_id, signature) VALUES (?, ?, ?, ?, ?)'),
    lastCheckpoint: db.prepare('SELECT * FROM audit_checkpoints ORDER BY id DESC LIMIT 1'),
    hasCheckpoint: db.prepare('SELECT 1 FROM audit_checkpoints WHERE ledger_seq = ? AND ledger_hash = ? LIMIT 1'),
    getSession: db.prepare('SELECT * FROM audit_sessions WHERE id = ?'),
    runs: db.prepare('SELECT lines, data_only FROM audit_event_runs WHERE session_id = ? ORDER BY first_seq'),
    runsPage: db.prepare('SELECT lines, data_only FROM audit_event_runs WHERE session_id = ? AND last_seq > ? AND first_seq <= ? ORDER BY first_seq'),
    purgeable: db.prepare('SELECT id FROM audit_sessions WHERE ledger_seq IS NOT NULL AND purged_at IS NULL AND ended_at < ? ORDER BY ledger_seq'),
    countEvents: db.prepare('SELECT coalesce(sum(events), 0) AS n FROM audit_event_runs WHERE session_id = ?'),
    deleteEvents: db.prepare('DELETE FROM audit_event_runs WHERE session_id = ?'),
    markPurged: db.prepare('UPDATE audit_sessions SET purged_at = ? WHERE id = ?'),
    orphans: db.prepare(
      `SELECT s.* FROM audit_sessions s LEFT JOIN audit_instances i ON i.id = s.instance
       WHERE s.status = 'open' AND s.instance <> ? AND (i.seen_at IS NULL OR i.seen_at < ?) ORDER BY s.started_at`,
    ),
    ledgerFromSeq: db.prepare('SELECT * FROM audit_ledger WHERE seq >= ? ORDER BY seq'),
    ledgerHashAt: db.prepare('SELECT hash FROM audit_ledger WHERE seq = ?'),
    firstLedgerSince: db.prepare('SELECT min(seq) AS seq FROM audit_ledger WHERE at >= ?'),
    checkpointsFrom: db.prepare('SELECT * FROM audit_checkpoints WHERE ledger_seq >= ? ORDER BY id'),
    sessionsAll: db.prepare('SELECT * FROM audit_sessions WHERE purged_at IS NULL ORDER BY started_at, id'),
    sessionsSince: db.prepare('SELECT * FROM audit_sessions WHERE purged_at IS NULL AND started_at >= ? ORDER BY started_at, id'),
  };

  const head = (): LedgerHead => {
    const r = q.head.get() as Row | undefined;
    return r ? { seq: Number(r.seq), hash: String(r.hash) } : { seq: 0, hash: GENESIS_HASH };
  };

  /** The number of a session's last stored event (0: none) — without reading the run's lines (once per session per ingest). */
  const lastSeq = (id: string): number => Number((q.lastSeq.get(id) as Row | undefined)?.last_seq ?? 0);

  /**
   * Stores a session's events of one commit as one run. They must follow what is stored (a
   * number already stored is a conflict, like a unique key); in a replay, those already stored
   * are skipped instead.
   */
  const writeRun = (session: string, events: readonly EventRecord[], replay: boolean) => {
    let after = lastSeq(session);
    // The events themselves unless a replay skips some (then a copy of those kept).
    let kept: readonly EventRecord[] = events;
    let dataOnly = true;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      if (e.seq <= after) {
        if (!replay) throw new Error(`UNIQUE constraint failed: event ${e.seq} of session ${session} is already stored`);
        if (kept === events) kept = events.slice(0, i);
        continue;
      }
      if (kept !== events) (kept as EventRecord[]).push(e);
      after = e.seq;
      if (e.data === undefined) dataOnly = false;
    }
    if (kept.length === 0) return;
    let lines = eventLine(kept[0]!, dataOnly);
    for (let i = 1; i < kept.length; i++) lines += `\n${eventLine(kept[i]!, dataOnly)}`;
    q.insertRun.run(session, kept[0]!.seq, kept[kept.length - 1]!.seq, kept.length, lines, dataOnly ? 1 : 0);
  };

  const commit = db.transaction((ops: readonly AuditOp[], replay: boolean) => {
    // Events are gathered per session and written as runs at the end of the transaction (every
    // session row they refer to is in by then).
    const runs = new Map<string, EventRecord[]>();
    for (const o of ops) {
      switch (o.op) {
        case 'session': {
          const s = o.session;
          (replay ? q.replaySession : q.insertSession).run({ ...s, groups: JSON.stringify(s.groups), startedAt: s.startedAt.getTime() });
          break;
        }
        case 'event': {
          const run = runs.get(o.event.session);
          if (run === undefined) runs.set(o.event.session, [o.event]);
          else run.push(o.event);
          break;
        }
        case 'end':
          q.endSession.run({ id: o.id, ...o.end, blocked: o.end.blocked ?? 0, reviewed: o.end.reviewed ?? 0, endedAt: o.end.endedAt.getTime() });
          break;
        case 'seal': {
          if (replay && (q.sealedAt.get(o.seal.id) as Row | undefined)?.ledger_seq != null) break;
          const h = head();
          const records = o.build(h);
          checkLedgerRun(h.seq, records);
          for (const r of records) {
            q.insertLedger.run(r.seq, r.kind, r.session, r.at.getTime(), r.body, r.hash);
            if (r.kind === 'session' && r.session) q.sealSession.run(r.seq, r.session);
          }
          break;
        }
      }
    }
    for (const [session, events] of runs) writeRun(session, events, replay);
  });

  const snapshot = db.transaction((scope: SnapshotScope): AuditSnapshot => {
    const h = head();
    let sessions: Row[];
    let ledgerFrom: number;
    if (scope.kind === 'all') {
      sessions = q.sessionsAll.all() as Row[];
      ledgerFrom = 1;
    } else if (scope.kind === 'since') {
      sessions = q.sessionsSince.all(scope.since.getTime()) as Row[];
      const first = (q.firstLedgerSince.get(scope.since.getTime()) as Row).seq;
      ledgerFrom = first === null ? h.seq + 1 : Number(first);
    } else {
      const row = q.getSession.get(scope.id) as Row | undefined;
      sessions = row && row.purged_at === null ? [row] : [];
      ledgerFrom = row && row.ledger_seq !== null ? Number(row.ledger_seq) : h.seq + 1;
    }
    const records = sessions.map(toSession);
    const lastSeqs = new Map(records.map((s) => [s.id, lastSeq(s.id)]));
    const prev = ledgerFrom <= 1 ? GENESIS_HASH : String((q.ledgerHashAt.get(ledgerFrom - 1) as Row).hash);
    return {
      sessions: records,
      lastSeq: lastSeqs,
      ledgerFrom,
      ledgerPrev: prev,
      ledger: (q.ledgerFromSeq.all(ledgerFrom) as Row[]).map(toLedger),
      head: h,
      checkpoints: (q.checkpointsFrom.all(ledgerFrom) as Row[]).map(toCheckpoint),
    };
  });

  const purge = db.transaction((cutoff: Date, build: Parameters<Store['purge']>[1], at: Date) => {
    const ids = (q.purgeable.all(cutoff.getTime()) as Row[]).map((r) => String(r.id));
    if (ids.length === 0) return { sessions: [], events: 0 };
    let events = 0;
    for (const id of ids) {
      events += Number((q.countEvents.get(id) as Row).n);
      q.deleteEvents.run(id);
      q.markPurged.run(at.getTime(), id);
    }
    const h = head();
    const records = build(h, ids, at);
    checkLedgerRun(h.seq, records);
    for (const r of records) q.insertLedger.run(r.seq, r.kind, r.session, r.at.getTime(), r.body, r.hash);
    return { sessions: ids, events };
  });

  const orphans = db.transaction((instance: string, staleBefore: Date) =>
    (q.orphans.all(instance, staleBefore.getTime()) as Row[]).map((r) => {
      const session = toSession(r);
      const all = (q.runs.all(session.id) as Row[]).flatMap((run) => rowEvents(session.id, run));
      const last = all[all.length - 1]!;
      return { session, last: { seq: last.seq, hash: last.hash }, ...tallyEvents(all) };
    }),
  );

  return {
    kind: 'sqlite',
    async createServiceToken(t) {
      try {
        q.insertToken.run(t.name, t.hash, JSON.stringify(t.groups), Date.now(), t.expiresAt?.getTime() ?? null);
      } catch (err) {
        if ((err as { code?: string }).code?.startsWith('SQLITE_CONSTRAINT')) throw new DuplicateNameError(`a service token named "${t.name}" already exists`);
        throw err;
      }
    },
    async findServiceToken(hash) {
      const row = q.findToken.get(hash) as Row | undefined;
      return row && toToken(row);
    },
    listServiceTokens: async () => (q.listTokens.all() as Row[]).map(toToken),
    revokeServiceToken: async (name) => q.revokeToken.run(Date.now(), name).changes > 0,
    async createDirectCredential(c) {
      q.insertCredential.run(c.id, c.hash, c.subject, c.identity, c.connection, c.tokenHash, Date.now(), c.expiresAt.getTime());
    },
    async findDirectCredential(id) {
      const row = q.findCredential.get(id) as Row | undefined;
      return row && toDirectCredential(row);
    },
    renewDirectCredential: async (id, subject, expiresAt, now) => q.renewCredential.run(expiresAt.getTime(), id, subject, now.getTime()).changes > 0,
    revokeDirectCredential: async (id, subject) => q.revokeCredential.run(Date.now(), id, subject).changes > 0,
    deleteExpiredDirectCredentials: async (before) => q.deleteExpiredCredentials.run(before.getTime()).changes,

    // BEGIN IMMEDIATE: a transaction that reads first (a run's predecessor, the ledger head) and
    // then writes cannot take the write lock once another connection (the ingest thread's or the
    // event loop's) has committed since its read: SQLite then fails it at once with
    // SQLITE_BUSY_SNAPSHOT instead of waiting. Taking the write lock at BEGIN waits instead.
    commitSync: (ops, opts) => commit.immediate(ops, opts?.replay === true),
    commit: async (ops, opts) => commit.immediate(ops, opts?.replay === true),
    async heartbeat(instance, at) {
      q.heartbeat.run(instance, at.getTime(), at.getTime());
    },
    async addCheckpoint(c) {
      q.addCheckpoint.run(c.ledgerSeq, c.ledgerHash, c.at.getTime(), c.keyId, c.signature);
    },
    async lastCheckpoint() {
      const r = q.lastCheckpoint.get() as Row | undefined;
      return r && toCheckpoint(r);
    },
    hasCheckpoint: async (seq, hash) => q.hasCheckpoint.get(seq, hash) !== undefined,
    async ledgerHashAt(seq) {
      const r = q.ledgerHashAt.get(seq) as Row | undefined;
      return r && String(r.hash);
    },
    purge: async (cutoff, build, at) => purge.immediate(cutoff, build, at),

    async listSessions(f: SessionFilter) {
      const where: string[] = [];
      const args: unknown[] = [];
      const add = (sql: string, ...values: unknown[]) => {
        where.push(sql);
        args.push(...values);
      };
      if (f.subject !== undefined) add('subject = ?', f.subject);
      if (f.connection !== undefined) add('connection = ?', f.connection);
      if (f.user !== undefined) add('(identity_name = ? OR email = ?)', f.user, f.user);
      if (f.since !== undefined) add('started_at >= ?', f.since.getTime());
      const sql = `SELECT * FROM audit_sessions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC, id DESC LIMIT ?`;
      return (db.prepare(sql).all(...args, f.limit ?? 100) as Row[]).map(toSession);
    },
    async getSession(id) {
      const row = q.getSession.get(id) as Row | undefined;
      return row && toSession(row);
    },
    listEvents: async (id) => (q.runs.all(id) as Row[]).flatMap((r) => rowEvents(id, r)),
    async eventsPage(id, after, upTo, limit) {
      const out: EventRecord[] = [];
      for (const r of q.runsPage.iterate(id, after, upTo) as Iterable<Row>) {
        for (const e of rowEvents(id, r)) {
          if (e.seq <= after || e.seq > upTo) continue;
          out.push(e);
          if (out.length === limit) return out;
        }
      }
      return out;
    },
    ledgerHead: async () => head(),
    snapshot: async (scope) => snapshot(scope),
    orphanedSessions: async (instance, staleBefore) => orphans(instance, staleBefore),
    async close() {
      if (db.open) db.close();
    },
  };
}

function insertSessionSql(insert: string): string {
  return `${insert} INTO audit_sessions (id, connection, protocol, subject, identity_name, email, identity_kind, groups, origin, client_address, database, started_at, instance)
     VALUES (@id, @connection, @protocol, @subject, @identityName, @email, @identityKind, @groups, @origin, @clientAddress, @database, @startedAt, @instance)`;
}

function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new Error(`the store ${db.name} has schema version ${current}, newer than this gateway knows (${migrations.length}); upgrade the gateway`);
  }
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
