// Two connections on one SQLite store (the gateway's event loop and its ingest thread): a commit
// that reads before it writes (the ledger head for a seal, a session's last run) must hold the
// write lock from its start. Otherwise a write by the other connection between its read and its
// write fails it at once with SQLITE_BUSY_SNAPSHOT — which took the audit down mid-benchmark.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { sealSession } from '../../gateway/audit/ledger.js';
import { openSqliteStore } from '../../gateway/store/sqlite.js';
import { newSession } from '../support/auditFixtures.js';

describe('SQLite store: two connections', () => {
  it('a commit holds the write lock from its start: the other connection is held off, the commit succeeds', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sluice-lock-')), 'trail.db');
    const store = openSqliteStore(file);
    const s = newSession();
    await store.commit([{ op: 'session', session: s }]);
    const other = new Database(file);
    other.pragma('busy_timeout = 0');
    let otherWrote: boolean | undefined;
    // The seal's builder runs inside the commit, after the ledger head was read: the moment the
    // other connection's write would slip in.
    const seal = sealSession({ id: s.id, startedAt: s.startedAt, events: 1, final: 'a'.repeat(64) });
    await store.commit([
      {
        op: 'seal',
        seal: { id: s.id, startedAt: s.startedAt, events: 1, final: 'a'.repeat(64) },
        build: (head) => {
          try {
            other.prepare('INSERT INTO audit_instances (id, started_at, seen_at) VALUES (?, ?, ?)').run('g_other', 1, 1);
            otherWrote = true;
          } catch (err) {
            expect((err as { code?: string }).code).toBe('SQLITE_BUSY');
            otherWrote = false;
          }
          return seal(head);
        },
      },
    ]);
    expect(otherWrote).toBe(false);
    expect((await store.getSession(s.id))?.ledgerSeq).toBe(1);
    other.close();
    await store.close();
  });
});
