// The shared store: PostgreSQL through pg, for several gateway replicas on one database. The same
// records as the SQLite store; ledger appends take a transaction-scoped advisory lock, so replicas
// extend the one ledger one at a time. Migrations are versioned and applied at open under another
// advisory lock, so replicas starting together migrate once.
import pg from 'pg';
import { GENESIS_HASH } from '../../src/api/auditTrail.js';
import { checkLedgerRun, toCheckpoint, toDirectCredential, toEvent, toLedger, toSession, toToken, type Row } from './rows.js';
import { DuplicateNameError, type AuditOp, type CommitOptions, type EventRecord, type LedgerHead, type LedgerRecord, type SessionFilter, type Store } from './types.js';

const migrations: readonly string[] = [
  `CREATE TABLE service_tokens (
     name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, groups TEXT NOT NULL,
     created_at BIGINT NOT NULL, expires_at BIGINT, revoked_at BIGINT);
   CREATE TABLE audit_sessions (
     id TEXT PRIMARY KEY, connection TEXT NOT NULL, protocol TEXT NOT NULL, subject TEXT NOT NULL,
     identity_name TEXT NOT NULL, email TEXT, identity_kind TEXT NOT NULL, groups TEXT NOT NULL,
     origin TEXT NOT NULL, client_address TEXT NOT NULL, database TEXT, started_at BIGINT NOT NULL,
     ended_at BIGINT, status TEXT NOT NULL DEFAULT 'open', error TEXT,
     bytes_from_client BIGINT NOT NULL DEFAULT 0, bytes_to_client BIGINT NOT NULL DEFAULT 0,
     queries INTEGER NOT NULL DEFAULT 0, events INTEGER NOT NULL DEFAULT 0,
     ledger_seq BIGINT, purged_at BIGINT, instance TEXT NOT NULL);
   CREATE INDEX audit_sessions_started ON audit_sessions (started_at);
   CREATE INDEX audit_sessions_open ON audit_sessions (status) WHERE status = 'open';
   CREATE TABLE audit_events (
     session_id TEXT NOT NULL REFERENCES audit_sessions (id), seq INTEGER NOT NULL, kind TEXT NOT NULL,
     at BIGINT NOT NULL, body TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (session_id, seq));
   CREATE TABLE audit_ledger (
     seq BIGINT PRIMARY KEY, kind TEXT NOT NULL, session_id TEXT, at BIGINT NOT NULL, body TEXT NOT NULL, hash TEXT NOT NULL);
   CREATE INDEX audit_ledger_at ON audit_ledger (at);
   CREATE TABLE audit_checkpoints (
     id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ledger_seq BIGINT NOT NULL, ledger_hash TEXT NOT NULL,
     at BIGINT NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL);
   CREATE TABLE audit_instances (id TEXT PRIMARY KEY, started_at BIGINT NOT NULL, seen_at BIGINT NOT NULL);`,
  // 2: per-session counts of statements refused by policy and held for review, kept at the end
  // like `queries` (sessions ended before this show 0).
  `ALTER TABLE audit_sessions ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0, ADD COLUMN reviewed INTEGER NOT NULL DEFAULT 0;`,
  // 3: short-lived passwords of the direct listeners (hash only).
  `CREATE TABLE direct_credentials (
     id TEXT PRIMARY KEY, hash TEXT NOT NULL, subject TEXT NOT NULL, identity TEXT NOT NULL,
     connection TEXT NOT NULL, token_hash TEXT, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
     revoked_at BIGINT);
   CREATE INDEX direct_credentials_expires ON direct_credentials (expires_at);`,
];

const MIGRATE_LOCK = "hashtextextended('sluice.store.migrate', 0)";
const LEDGER_LOCK = "hashtextextended('sluice.audit.ledger', 0)";

export interface PostgresStoreOptions {
  /** Used when the URL carries none (kept out of the URL so it is never logged with it). */
  password?: string;
  /** `process`: synchronous_commit=off (commits survive a gateway crash); `fsync`: on (and the database server's crash). */
  durability?: 'process' | 'fsync';
  /** Connections in the pool; the audit writer uses one at a time. */
  max?: number;
}

export async function openPostgresStore(url: string, opts: PostgresStoreOptions = {}): Promise<Store> {
  // pg lets the URL's fields override separate ones, so a separate password goes into the URL.
  let connectionString = url;
  if (opts.password !== undefined) {
    const u = new URL(url);
    u.password = encodeURIComponent(opts.password);
    connectionString = u.toString();
  }
  const pool = new pg.Pool({
    connectionString,
    max: opts.max ?? 4,
    connectionTimeoutMillis: 10_000,
    options: `-c synchronous_commit=${opts.durability === 'fsync' ? 'on' : 'off'}`,
    application_name: 'sluice-gateway store',
  });
  // An idle client losing its connection must not crash the gateway; the next query reconnects.
  pool.on('error', () => undefined);

  async function tx<T>(fn: (c: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    const c = await pool.connect();
    let broken: Error | undefined;
    try {
      await c.query(begin);
      const r = await fn(c);
      await c.query('COMMIT');
      return r;
    } catch (err) {
      await c.query('ROLLBACK').catch((e: Error) => (broken = e));
      throw err;
    } finally {
      c.release(broken);
    }
  }
  const rows = async (sql: string, args: unknown[] = [], c: pg.Pool | pg.PoolClient = pool): Promise<Row[]> => (await c.query(sql, args)).rows as Row[];

  try {
    await migrate(pool);
  } catch (err) {
    await pool.end();
    throw err;
  }

  const headOf = async (c: pg.PoolClient): Promise<LedgerHead> => {
    const [r] = await rows('SELECT seq, hash FROM audit_ledger ORDER BY seq DESC LIMIT 1', [], c);
    return r ? { seq: Number(r.seq), hash: String(r.hash) } : { seq: 0, hash: GENESIS_HASH };
  };
  const insertLedger = async (c: pg.PoolClient, records: readonly LedgerRecord[]) => {
    for (const r of records) {
      await c.query('INSERT INTO audit_ledger (seq, kind, session_id, at, body, hash) VALUES ($1, $2, $3, $4, $5, $6)', [r.seq, r.kind, r.session, r.at.getTime(), r.body, r.hash]);
      if (r.kind === 'session' && r.session) await c.query('UPDATE audit_sessions SET ledger_seq = $1 WHERE id = $2', [r.seq, r.session]);
    }
  };
  // Runs of events go in one statement: a busy gateway's group commit is one round trip for them.
  const insertEvents = (c: pg.PoolClient, events: readonly EventRecord[], replay: boolean) =>
    c.query(
      `INSERT INTO audit_events (session_id, seq, kind, at, body, hash)
       SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::bigint[], $5::text[], $6::text[])${replay ? ' ON CONFLICT DO NOTHING' : ''}`,
      [events.map((e) => e.session), events.map((e) => e.seq), events.map((e) => e.kind), events.map((e) => e.at.getTime()), events.map((e) => e.body), events.map((e) => e.hash)],
    );

  return {
    kind: 'postgres',
    async createServiceToken(t) {
      try {
        await pool.query('INSERT INTO service_tokens (name, hash, groups, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)', [
          t.name,
          t.hash,
          JSON.stringify(t.groups),
          Date.now(),
          t.expiresAt?.getTime() ?? null,
        ]);
      } catch (err) {
        if ((err as { code?: string }).code === '23505') throw new DuplicateNameError(`a service token named "${t.name}" already exists`);
        throw err;
      }
    },
    async findServiceToken(hash) {
      const [r] = await rows('SELECT * FROM service_tokens WHERE hash = $1', [hash]);
      return r && toToken(r);
    },
    listServiceTokens: async () => (await rows('SELECT * FROM service_tokens ORDER BY created_at')).map(toToken),
    revokeServiceToken: async (name) => ((await pool.query('UPDATE service_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL', [Date.now(), name])).rowCount ?? 0) > 0,
    async createDirectCredential(c) {
      await pool.query('INSERT INTO direct_credentials (id, hash, subject, identity, connection, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)', [
        c.id,
        c.hash,
        c.subject,
        c.identity,
        c.connection,
        c.tokenHash,
        Date.now(),
        c.expiresAt.getTime(),
      ]);
    },
    async findDirectCredential(id) {
      const [r] = await rows('SELECT * FROM direct_credentials WHERE id = $1', [id]);
      return r && toDirectCredential(r);
    },
    renewDirectCredential: async (id, subject, expiresAt, now) =>
      ((await pool.query('UPDATE direct_credentials SET expires_at = $1 WHERE id = $2 AND subject = $3 AND revoked_at IS NULL AND expires_at > $4', [expiresAt.getTime(), id, subject, now.getTime()])).rowCount ?? 0) > 0,
    revokeDirectCredential: async (id, subject) =>
      ((await pool.query('UPDATE direct_credentials SET revoked_at = $1 WHERE id = $2 AND subject = $3 AND revoked_at IS NULL', [Date.now(), id, subject])).rowCount ?? 0) > 0,
    deleteExpiredDirectCredentials: async (before) => (await pool.query('DELETE FROM direct_credentials WHERE expires_at < $1', [before.getTime()])).rowCount ?? 0,

    async commit(ops: readonly AuditOp[], opts?: CommitOptions) {
      const replay = opts?.replay === true;
      await tx(async (c) => {
        let run: EventRecord[] = [];
        const flushRun = async () => {
          if (run.length > 0) await insertEvents(c, run, replay);
          run = [];
        };
        for (const o of ops) {
          if (o.op === 'event') {
            run.push(o.event);
            continue;
          }
          await flushRun();
          if (o.op === 'session') {
            const s = o.session;
            await c.query(
              `INSERT INTO audit_sessions (id, connection, protocol, subject, identity_name, email, identity_kind, groups, origin, client_address, database, started_at, instance)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)${replay ? ' ON CONFLICT (id) DO NOTHING' : ''}`,
              [s.id, s.connection, s.protocol, s.subject, s.identityName, s.email, s.identityKind, JSON.stringify(s.groups), s.origin, s.clientAddress, s.database, s.startedAt.getTime(), s.instance],
            );
          } else if (o.op === 'end') {
            const e = o.end;
            await c.query(
              `UPDATE audit_sessions SET ended_at = $2, status = $3, error = $4, bytes_from_client = $5, bytes_to_client = $6, queries = $7, events = $8, blocked = $9, reviewed = $10 WHERE id = $1`,
              [o.id, e.endedAt.getTime(), e.status, e.error, e.bytesFromClient, e.bytesToClient, e.queries, e.events, e.blocked ?? 0, e.reviewed ?? 0],
            );
          } else {
            if (replay && (await rows('SELECT ledger_seq FROM audit_sessions WHERE id = $1', [o.seal.id], c))[0]?.ledger_seq != null) continue;
            await c.query(`SELECT pg_advisory_xact_lock(${LEDGER_LOCK})`);
            const h = await headOf(c);
            const records = o.build(h);
            checkLedgerRun(h.seq, records);
            await insertLedger(c, records);
          }
        }
        await flushRun();
      });
    },
    async heartbeat(instance, at) {
      await pool.query('INSERT INTO audit_instances (id, started_at, seen_at) VALUES ($1, $2, $2) ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at', [instance, at.getTime()]);
    },
    async addCheckpoint(cp) {
      await pool.query('INSERT INTO audit_checkpoints (ledger_seq, ledger_hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5)', [cp.ledgerSeq, cp.ledgerHash, cp.at.getTime(), cp.keyId, cp.signature]);
    },
    async lastCheckpoint() {
      const [r] = await rows('SELECT * FROM audit_checkpoints ORDER BY id DESC LIMIT 1');
      return r && toCheckpoint(r);
    },
    hasCheckpoint: async (seq, hash) => (await rows('SELECT 1 FROM audit_checkpoints WHERE ledger_seq = $1 AND ledger_hash = $2 LIMIT 1', [seq, hash])).length > 0,
    async ledgerHashAt(seq) {
      const [r] = await rows('SELECT hash FROM audit_ledger WHERE seq = $1', [seq]);
      return r && String(r.hash);
    },
    purge: (cutoff, build, at) =>
      tx(async (c) => {
        await c.query(`SELECT pg_advisory_xact_lock(${LEDGER_LOCK})`);
        const ids = (
          await rows('SELECT id FROM audit_sessions WHERE ledger_seq IS NOT NULL AND purged_at IS NULL AND ended_at < $1 ORDER BY ledger_seq FOR UPDATE', [cutoff.getTime()], c)
        ).map((r) => String(r.id));
        if (ids.length === 0) return { sessions: [], events: 0 };
        const deleted = await c.query('DELETE FROM audit_events WHERE session_id = ANY($1)', [ids]);
        await c.query('UPDATE audit_sessions SET purged_at = $1 WHERE id = ANY($2)', [at.getTime(), ids]);
        const h = await headOf(c);
        const records = build(h, ids, at);
        checkLedgerRun(h.seq, records);
        await insertLedger(c, records);
        return { sessions: ids, events: deleted.rowCount ?? 0 };
      }),

    async listSessions(f: SessionFilter) {
      const where: string[] = [];
      const args: unknown[] = [];
      const arg = (v: unknown) => (args.push(v), `$${args.length}`);
      if (f.subject !== undefined) where.push(`subject = ${arg(f.subject)}`);
      if (f.connection !== undefined) where.push(`connection = ${arg(f.connection)}`);
      if (f.user !== undefined) {
        const p = arg(f.user);
        where.push(`(identity_name = ${p} OR email = ${p})`);
      }
      if (f.since !== undefined) where.push(`started_at >= ${arg(f.since.getTime())}`);
      const sql = `SELECT * FROM audit_sessions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC, id DESC LIMIT ${arg(f.limit ?? 100)}`;
      return (await rows(sql, args)).map(toSession);
    },
    async getSession(id) {
      const [r] = await rows('SELECT * FROM audit_sessions WHERE id = $1', [id]);
      return r && toSession(r);
    },
    listEvents: async (id) => (await rows('SELECT * FROM audit_events WHERE session_id = $1 ORDER BY seq', [id])).map(toEvent),
    eventsPage: async (id, after, upTo, limit) =>
      (await rows('SELECT * FROM audit_events WHERE session_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4', [id, after, upTo, limit])).map(toEvent),
    ledgerHead: () => tx(headOf),
    snapshot: (scope) =>
      tx(async (c) => {
        const h = await headOf(c);
        let sessions: Row[];
        let ledgerFrom: number;
        if (scope.kind === 'all') {
          sessions = await rows('SELECT * FROM audit_sessions WHERE purged_at IS NULL ORDER BY started_at, id', [], c);
          ledgerFrom = 1;
        } else if (scope.kind === 'since') {
          sessions = await rows('SELECT * FROM audit_sessions WHERE purged_at IS NULL AND started_at >= $1 ORDER BY started_at, id', [scope.since.getTime()], c);
          const [first] = await rows('SELECT min(seq) AS seq FROM audit_ledger WHERE at >= $1', [scope.since.getTime()], c);
          ledgerFrom = first?.seq === null || first?.seq === undefined ? h.seq + 1 : Number(first.seq);
        } else {
          const [row] = await rows('SELECT * FROM audit_sessions WHERE id = $1', [scope.id], c);
          sessions = row && row.purged_at === null ? [row] : [];
          ledgerFrom = row && row.ledger_seq !== null ? Number(row.ledger_seq) : h.seq + 1;
        }
        const records = sessions.map(toSession);
        const lastSeq = new Map<string, number>(records.map((s) => [s.id, 0]));
        if (records.length > 0) {
          for (const r of await rows('SELECT session_id, max(seq) AS seq FROM audit_events WHERE session_id = ANY($1) GROUP BY session_id', [records.map((s) => s.id)], c)) {
            lastSeq.set(String(r.session_id), Number(r.seq));
          }
        }
        const [prev] = ledgerFrom <= 1 ? [] : await rows('SELECT hash FROM audit_ledger WHERE seq = $1', [ledgerFrom - 1], c);
        return {
          sessions: records,
          lastSeq,
          ledgerFrom,
          ledgerPrev: prev ? String(prev.hash) : GENESIS_HASH,
          ledger: (await rows('SELECT * FROM audit_ledger WHERE seq >= $1 ORDER BY seq', [ledgerFrom], c)).map(toLedger),
          head: h,
          checkpoints: (await rows('SELECT * FROM audit_checkpoints WHERE ledger_seq >= $1 ORDER BY id', [ledgerFrom], c)).map(toCheckpoint),
        };
      }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY'),
    async orphanedSessions(instance, staleBefore) {
      const found = await rows(
        `SELECT s.* FROM audit_sessions s LEFT JOIN audit_instances i ON i.id = s.instance
         WHERE s.status = 'open' AND s.instance <> $1 AND (i.seen_at IS NULL OR i.seen_at < $2) ORDER BY s.started_at`,
        [instance, staleBefore.getTime()],
      );
      const out = [];
      for (const r of found) {
        const session = toSession(r);
        const [last] = await rows('SELECT seq, hash FROM audit_events WHERE session_id = $1 ORDER BY seq DESC LIMIT 1', [session.id]);
        const [n] = await rows(
          `SELECT count(*) FILTER (WHERE kind = 'query') AS queries, count(*) FILTER (WHERE kind = 'review.created') AS reviewed,
             count(*) FILTER (WHERE kind = 'decision' AND body::jsonb -> 'data' ->> 'verdict' = 'block') AS blocked
           FROM audit_events WHERE session_id = $1`,
          [session.id],
        );
        const counts = { queries: Number(n?.queries ?? 0), blocked: Number(n?.blocked ?? 0), reviewed: Number(n?.reviewed ?? 0) };
        if (last) out.push({ session, last: { seq: Number(last.seq), hash: String(last.hash) }, ...counts });
      }
      return out;
    },
    close: () => pool.end(),
  };
}

async function migrate(pool: pg.Pool): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(`SELECT pg_advisory_xact_lock(${MIGRATE_LOCK})`);
    await c.query('CREATE TABLE IF NOT EXISTS sluice_schema (version INTEGER NOT NULL)');
    const { rows } = await c.query<{ version: number }>('SELECT version FROM sluice_schema');
    const current = rows[0]?.version ?? 0;
    if (rows.length === 0) await c.query('INSERT INTO sluice_schema (version) VALUES (0)');
    if (current > migrations.length) {
      throw new Error(`the PostgreSQL store has schema version ${current}, newer than this gateway knows (${migrations.length}); upgrade the gateway`);
    }
    for (let v = current; v < migrations.length; v++) await c.query(migrations[v] as string);
    await c.query('UPDATE sluice_schema SET version = $1', [migrations.length]);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}
