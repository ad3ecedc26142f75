// The blocked/reviewed session counts are a schema migration in both stores (SQLite 6, PostgreSQL
// 2): a store from before them opens, its sessions show 0, and new session ends keep the counts.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { openPostgresStore } from '../../gateway/store/postgres.js';
import { openSqliteStore } from '../../gateway/store/sqlite.js';
import type { Store } from '../../gateway/store/types.js';
import { newSession } from '../support/auditFixtures.js';

const cluster = inject('pgCluster');
const su = cluster.roles.superuser;
const dir = mkdtempSync(join(tmpdir(), 'sluice-counts-'));
const dbName = `sluice_counts_${randomBytes(4).toString('hex')}`;

const admin = async <T>(database: string, f: (c: pg.Client) => Promise<T>): Promise<T> => {
  const c = new pg.Client({ host: cluster.host, port: cluster.port, user: su.user, password: su.password, database });
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
};

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await admin('postgres', (c) => c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`));
});

/** A session ended before the counts existed, then a new one ended with them, on the upgraded store. */
async function checkUpgraded(store: Store, oldId: string): Promise<void> {
  expect(await store.getSession(oldId)).toMatchObject({ queries: 3, blocked: 0, reviewed: 0 });
  const s = newSession();
  await store.commit([
    { op: 'session', session: s },
    { op: 'end', id: s.id, end: { endedAt: new Date(), status: 'ok', error: null, bytesFromClient: 1, bytesToClient: 1, queries: 4, blocked: 1, reviewed: 2, events: 0 } },
  ]);
  expect(await store.getSession(s.id)).toMatchObject({ queries: 4, blocked: 1, reviewed: 2 });
}

const OLD_SESSION = `(id, connection, protocol, subject, identity_name, identity_kind, groups, origin, client_address, started_at, ended_at, status, queries, instance)
  VALUES ('s_old', 'pg', 'postgres', 's', 'n', 'human', '[]', 'connect', '::1', 1, 2, 'ok', 3, 'g')`;

describe('the blocked/reviewed counts migration', () => {
  it('SQLite: a version 5 store opens at the current version 7 with counts of 0 for its sessions', async () => {
    const file = join(dir, 'v5.db');
    await openSqliteStore(file).close();
    const raw = new Database(file);
    // Version 5 had neither the counts (6) nor the direct listener's credentials (7).
    raw.exec(`DROP TABLE direct_credentials; ALTER TABLE audit_sessions DROP COLUMN blocked; ALTER TABLE audit_sessions DROP COLUMN reviewed;
      INSERT INTO audit_sessions ${OLD_SESSION}; PRAGMA user_version = 5;`);
    raw.close();
    const store = openSqliteStore(file);
    try {
      await checkUpgraded(store, 's_old');
    } finally {
      await store.close();
    }
    const after = new Database(file);
    expect(after.pragma('user_version', { simple: true })).toBe(7);
    after.close();
  });

  it('PostgreSQL: a version 1 store opens at the current version 3 with counts of 0 for its sessions', async () => {
    await admin('postgres', (c) => c.query(`CREATE DATABASE ${dbName}`));
    const url = `postgresql://${su.user}@${cluster.host}:${cluster.port}/${dbName}`;
    await (await openPostgresStore(url, { password: su.password })).close();
    await admin(dbName, (c) =>
      c.query(`DROP TABLE direct_credentials; ALTER TABLE audit_sessions DROP COLUMN blocked, DROP COLUMN reviewed; INSERT INTO audit_sessions ${OLD_SESSION}; UPDATE sluice_schema SET version = 1`),
    );
    const store = await openPostgresStore(url, { password: su.password });
    try {
      await checkUpgraded(store, 's_old');
    } finally {
      await store.close();
    }
    expect(await admin(dbName, async (c) => (await c.query('SELECT version FROM sluice_schema')).rows)).toEqual([{ version: 3 }]);
  });
});
