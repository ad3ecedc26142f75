// The embedded store: SQLite through better-sqlite3 in WAL mode. Synchronous by design: each
// write is a few microseconds, and doing it inline keeps the bookkeeping ordered with the wire.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { DuplicateNameError, type QueryRecord, type ServiceTokenRecord, type SessionRecord, type Store } from './types.js';

/** Versioned migrations, applied in order at open; the index + 1 is the schema version. */
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
];

type Row = Record<string, unknown>;
const date = (v: unknown) => (v === null || v === undefined ? null : new Date(Number(v)));

export function openSqliteStore(path: string): Store {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // NORMAL in WAL mode: committed transactions survive a process crash; see docs/decisions.md.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);

  const q = {
    insertToken: db.prepare('INSERT INTO service_tokens (name, hash, groups, created_at, expires_at) VALUES (?, ?, ?, ?, ?)'),
    findToken: db.prepare('SELECT * FROM service_tokens WHERE hash = ?'),
    listTokens: db.prepare('SELECT * FROM service_tokens ORDER BY created_at'),
    revokeToken: db.prepare('UPDATE service_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL'),
    startSession: db.prepare(
      `INSERT INTO sessions (id, connection, subject, identity_name, identity_kind, groups, origin, client_address, started_at)
       VALUES (@id, @connection, @subject, @identityName, @identityKind, @groups, @origin, @clientAddress, @startedAt)`,
    ),
    setDatabase: db.prepare('UPDATE sessions SET database = ? WHERE id = ?'),
    endSession: db.prepare(
      `UPDATE sessions SET ended_at = @endedAt, status = @status, error = @error,
       bytes_from_client = @bytesFromClient, bytes_to_client = @bytesToClient WHERE id = @id`,
    ),
    addQuery: db.prepare(
      `INSERT INTO queries (session_id, seq, text, params, protocol, started_at) VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    countQuery: db.prepare('UPDATE sessions SET queries = queries + 1 WHERE id = ?'),
    finishQuery: db.prepare(
      `UPDATE queries SET status = @status, duration_ms = @durationMs, commands = @commands, rows = @rows,
       sqlstate = @sqlstate, message = @message WHERE session_id = @sessionId AND seq = @seq`,
    ),
    getSession: db.prepare('SELECT * FROM sessions WHERE id = ?'),
    listSessions: db.prepare('SELECT * FROM sessions ORDER BY started_at DESC LIMIT ?'),
    listQueries: db.prepare('SELECT * FROM queries WHERE session_id = ? ORDER BY seq'),
  };
  const addQuery = db.transaction((r: Parameters<Store['addQuery']>[0]) => {
    q.addQuery.run(r.sessionId, r.seq, r.text, r.params === null ? null : JSON.stringify(r.params), r.protocol, r.startedAt.getTime());
    q.countQuery.run(r.sessionId);
  });

  return {
    createServiceToken(t) {
      try {
        q.insertToken.run(t.name, t.hash, JSON.stringify(t.groups), Date.now(), t.expiresAt?.getTime() ?? null);
      } catch (err) {
        if ((err as { code?: string }).code?.startsWith('SQLITE_CONSTRAINT')) throw new DuplicateNameError(`a service token named "${t.name}" already exists`);
        throw err;
      }
    },
    findServiceToken: (hash) => {
      const row = q.findToken.get(hash) as Row | undefined;
      return row && toToken(row);
    },
    listServiceTokens: () => (q.listTokens.all() as Row[]).map(toToken),
    revokeServiceToken: (name) => q.revokeToken.run(Date.now(), name).changes > 0,
    startSession(s) {
      q.startSession.run({ ...s, groups: JSON.stringify(s.groups), startedAt: s.startedAt.getTime() });
    },
    setSessionDatabase: (id, database) => void q.setDatabase.run(database, id),
    endSession(id, e) {
      q.endSession.run({ id, endedAt: Date.now(), status: e.status, error: e.error ?? null, bytesFromClient: e.bytesFromClient, bytesToClient: e.bytesToClient });
    },
    addQuery: (r) => addQuery(r),
    finishQuery(sessionId, seq, r) {
      q.finishQuery.run({
        sessionId,
        seq,
        status: r.status,
        durationMs: r.durationMs,
        commands: r.commands ? JSON.stringify(r.commands) : null,
        rows: r.rows ?? null,
        sqlstate: r.sqlstate ?? null,
        message: r.message ?? null,
      });
    },
    getSession: (id) => {
      const row = q.getSession.get(id) as Row | undefined;
      return row && toSession(row);
    },
    listSessions: (limit = 100) => (q.listSessions.all(limit) as Row[]).map(toSession),
    listQueries: (id) => (q.listQueries.all(id) as Row[]).map(toQuery),
    close: () => db.close(),
  };
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

function toToken(r: Row): ServiceTokenRecord {
  return {
    name: String(r.name),
    groups: JSON.parse(String(r.groups)) as string[],
    createdAt: new Date(Number(r.created_at)),
    expiresAt: date(r.expires_at),
    revokedAt: date(r.revoked_at),
  };
}

function toSession(r: Row): SessionRecord {
  return {
    id: String(r.id),
    connection: String(r.connection),
    subject: String(r.subject),
    identityName: String(r.identity_name),
    identityKind: r.identity_kind as SessionRecord['identityKind'],
    groups: JSON.parse(String(r.groups)) as string[],
    origin: String(r.origin),
    clientAddress: String(r.client_address),
    startedAt: new Date(Number(r.started_at)),
    endedAt: date(r.ended_at),
    status: r.status as SessionRecord['status'],
    database: (r.database as string | null) ?? null,
    error: (r.error as string | null) ?? null,
    bytesFromClient: Number(r.bytes_from_client),
    bytesToClient: Number(r.bytes_to_client),
    queries: Number(r.queries),
  };
}

function toQuery(r: Row): QueryRecord {
  return {
    sessionId: String(r.session_id),
    seq: Number(r.seq),
    text: String(r.text),
    params: r.params === null ? null : (JSON.parse(String(r.params)) as (string | null)[]),
    protocol: r.protocol as QueryRecord['protocol'],
    startedAt: new Date(Number(r.started_at)),
    status: r.status as QueryRecord['status'],
    durationMs: (r.duration_ms as number | null) ?? null,
    commands: r.commands === null ? null : (JSON.parse(String(r.commands)) as string[]),
    rows: (r.rows as number | null) ?? null,
    sqlstate: (r.sqlstate as string | null) ?? null,
    message: (r.message as string | null) ?? null,
  };
}
