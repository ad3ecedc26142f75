// SQLite schema migrations: a store written by an older gateway opens, keeps its service tokens
// and trail, and a store newer than the gateway is refused.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { EventChains } from '../../gateway/audit/chain.js';
import { openSqliteStore } from '../../gateway/store/sqlite.js';
import { newSession } from '../support/auditFixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-migrate-'));

describe('SQLite store migrations', () => {
  it('upgrades a version 1 store: tokens kept, the old unchained bookkeeping kept aside', async () => {
    const file = join(dir, 'v1.db');
    const raw = new Database(file);
    raw.exec(`CREATE TABLE service_tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, groups TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER, revoked_at INTEGER);
      CREATE TABLE sessions (id TEXT PRIMARY KEY, connection TEXT NOT NULL, subject TEXT NOT NULL, identity_name TEXT NOT NULL, identity_kind TEXT NOT NULL, groups TEXT NOT NULL, origin TEXT NOT NULL, client_address TEXT NOT NULL, started_at INTEGER NOT NULL, ended_at INTEGER, status TEXT NOT NULL DEFAULT 'open', database TEXT, error TEXT, bytes_from_client INTEGER NOT NULL DEFAULT 0, bytes_to_client INTEGER NOT NULL DEFAULT 0, queries INTEGER NOT NULL DEFAULT 0);
      CREATE INDEX sessions_started ON sessions (started_at);
      CREATE TABLE queries (session_id TEXT NOT NULL REFERENCES sessions (id), seq INTEGER NOT NULL, text TEXT NOT NULL, params TEXT, protocol TEXT NOT NULL, started_at INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'pending', duration_ms REAL, commands TEXT, rows INTEGER, sqlstate TEXT, message TEXT, PRIMARY KEY (session_id, seq));
      INSERT INTO service_tokens VALUES ('ci', 'h', '["eng"]', 1, NULL, NULL);
      INSERT INTO sessions (id, connection, subject, identity_name, identity_kind, groups, origin, client_address, started_at) VALUES ('s_old', 'pg', 'token:ci', 'ci', 'service', '[]', 'connect', '127.0.0.1', 1);
      INSERT INTO queries (session_id, seq, text, protocol, started_at) VALUES ('s_old', 1, 'select 1', 'simple', 1);
      PRAGMA user_version = 1;`);
    raw.close();
    const store = openSqliteStore(file);
    expect((await store.findServiceToken('h'))?.name).toBe('ci');
    expect(await store.listSessions({})).toEqual([]);
    await store.close();
    const after = new Database(file);
    expect(after.pragma('user_version', { simple: true })).toBe(7);
    expect(after.prepare('SELECT text FROM legacy_queries').all()).toEqual([{ text: 'select 1' }]);
    after.close();
  });

  it('upgrades a version 2 store (through 3, 4, 5, 6 and 7) without touching its trail', async () => {
    const file = join(dir, 'v2.db');
    const v2 = openSqliteStore(file);
    await v2.close();
    // Rewind to version 2's layout of audit_events, with one event in it.
    const raw = new Database(file);
    raw.exec(`DROP TABLE audit_event_runs; DROP TABLE direct_credentials;
      ALTER TABLE audit_sessions DROP COLUMN blocked; ALTER TABLE audit_sessions DROP COLUMN reviewed;
      CREATE TABLE audit_events (session_id TEXT NOT NULL REFERENCES audit_sessions (id), seq INTEGER NOT NULL, kind TEXT NOT NULL, at INTEGER NOT NULL, body TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (session_id, seq)) WITHOUT ROWID;
      INSERT INTO audit_sessions (id, connection, protocol, subject, identity_name, identity_kind, groups, origin, client_address, started_at, instance) VALUES ('s_1', 'pg', 'postgres', 's', 'n', 'human', '[]', 'connect', '::1', 1, 'g');
      INSERT INTO audit_events VALUES ('s_1', 1, 'session.start', 1, '{"b":1}', 'ff');
      PRAGMA user_version = 2;`);
    raw.close();
    const store = openSqliteStore(file);
    expect(await store.listEvents('s_1')).toEqual([{ session: 's_1', seq: 1, kind: 'session.start', at: new Date(1), body: '{"b":1}', hash: 'ff' }]);
    await store.close();
  });

  it('keeps the data in place of the body for events chained from entries (version 5), and rebuilds the body', async () => {
    const file = join(dir, 'v5.db');
    const store = openSqliteStore(file);
    const s = newSession();
    const chained = new EventChains().chainSync([{ op: 'session', session: s }, { op: 'entry', entry: { session: s.id, seq: 1, kind: 'session.start', at: 1_000, data: '{"x":1}' } }]);
    await store.commit(chained.ops);
    await store.close();
    const raw = new Database(file);
    const run = raw.prepare('SELECT data_only, lines FROM audit_event_runs').get() as { data_only: number; lines: string };
    raw.close();
    expect(run.data_only).toBe(1);
    expect(run.lines.endsWith('\t{"x":1}')).toBe(true);
    const again = openSqliteStore(file);
    expect((await again.listEvents(s.id))[0]?.body).toBe(`{"at":"1970-01-01T00:00:01.000Z","data":{"x":1},"kind":"session.start","seq":1,"session":"${s.id}"}`);
    await again.close();
  });

  it('refuses a store from a newer gateway', () => {
    const file = join(dir, 'future.db');
    const raw = new Database(file);
    raw.pragma('user_version = 99');
    raw.close();
    expect(() => openSqliteStore(file)).toThrow(/has schema version 99, newer than this gateway knows \(7\); upgrade the gateway/);
  });
});
