// One conformance suite for every Store: SQLite in a temp file and PostgreSQL in a fresh database
// of the run's throwaway cluster. Whatever the gateway relies on is asserted here, for both.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EventChains, storeLookup, type StagedOp } from '../../gateway/audit/chain.js';
import { purgeEntry, sealOp } from '../../gateway/audit/ledger.js';
import { openPostgresStore } from '../../gateway/store/postgres.js';
import { openSqliteStore } from '../../gateway/store/sqlite.js';
import { newSession } from '../support/auditFixtures.js';
import { DuplicateNameError, type AuditOp, type EventRecord, type NewSession, type Store } from '../../gateway/store/types.js';
import { canonicalJson, chainHashOfText, GENESIS_HASH, ledgerHash, type LedgerBody } from '../../src/api/auditTrail.js';

const cluster = inject('pgCluster');

interface Backend {
  name: string;
  open(): Promise<Store>;
  cleanup?(): Promise<void>;
}

const sqliteDir = mkdtempSync(join(tmpdir(), 'sluice-store-'));
const dbName = `sluice_store_${randomBytes(4).toString('hex')}`;
const su = cluster.roles.superuser;
const pgUrl = `postgresql://${su.user}@${cluster.host}:${cluster.port}/${dbName}`;

const backends: Backend[] = [
  { name: 'sqlite', open: async () => openSqliteStore(join(sqliteDir, 'store.db')) },
  { name: 'postgres', open: () => openPostgresStore(pgUrl, { password: su.password }) },
];

beforeAll(async () => {
  const admin = new pg.Client({ host: cluster.host, port: cluster.port, user: su.user, password: su.password, database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
});
afterAll(async () => {
  const admin = new pg.Client({ host: cluster.host, port: cluster.port, user: su.user, password: su.password, database: 'postgres' });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
});

/** A chain of events for a session, hashed like the gateway does. */
function chain(session: string, kinds: string[], from: { seq: number; hash: string } = { seq: 0, hash: GENESIS_HASH }, at = new Date()): EventRecord[] {
  let prev = from.hash;
  return kinds.map((kind, i) => {
    const seq = from.seq + i + 1;
    const body = canonicalJson({ session, seq, kind, at: at.toISOString(), data: kind === 'query' ? { q: i, text: 'select \u00e9\u0000\ud83d\ude00' } : kind === 'decision' ? { q: i, verdict: 'block' } : {} });
    prev = chainHashOfText(prev, body);
    return { session, seq, kind, at, body, hash: prev };
  });
}

/** Ops for a whole session: row, events, end and seal. */
function wholeSession(s: NewSession, kinds = ['session.start', 'query', 'result', 'session.end'], endedAt = new Date()): AuditOp[] {
  const events = chain(s.id, kinds, undefined, s.startedAt);
  const last = events[events.length - 1] as EventRecord;
  return [
    { op: 'session', session: s },
    ...events.map((event): AuditOp => ({ op: 'event', event })),
    { op: 'end', id: s.id, end: { endedAt, status: 'ok', error: null, bytesFromClient: 10, bytesToClient: 20, queries: 1, blocked: 1, reviewed: 2, events: events.length } },
    sealOp({ id: s.id, startedAt: s.startedAt, events: events.length, final: last.hash }, () => endedAt),
  ];
}

describe.each(backends)('store conformance: $name', (backend) => {
  let store: Store;
  beforeAll(async () => {
    store = await backend.open();
  });
  afterAll(async () => {
    await store?.close();
  });

  it('migrates once: reopening keeps the data and the schema', async () => {
    await store.createServiceToken({ name: 'persist', hash: 'h-persist', groups: ['ci'], expiresAt: null });
    const again = await backend.open();
    try {
      expect(await again.findServiceToken('h-persist')).toMatchObject({ name: 'persist', groups: ['ci'], expiresAt: null, revokedAt: null });
    } finally {
      await again.close();
    }
  });

  it('service tokens: create, find by hash, list, revoke once, duplicate names refused', async () => {
    const exp = new Date(Date.now() + 60_000);
    await store.createServiceToken({ name: 'ci', hash: 'h-ci', groups: ['eng', 'ci'], expiresAt: exp });
    const found = await store.findServiceToken('h-ci');
    expect(found).toMatchObject({ name: 'ci', groups: ['eng', 'ci'], revokedAt: null });
    expect(found?.expiresAt?.getTime()).toBe(exp.getTime());
    expect(await store.findServiceToken('nope')).toBeUndefined();
    await expect(store.createServiceToken({ name: 'ci', hash: 'other', groups: [], expiresAt: null })).rejects.toBeInstanceOf(DuplicateNameError);
    expect((await store.listServiceTokens()).map((t) => t.name)).toContain('ci');
    expect(await store.revokeServiceToken('ci')).toBe(true);
    expect(await store.revokeServiceToken('ci')).toBe(false);
    expect((await store.findServiceToken('h-ci'))?.revokedAt).toBeInstanceOf(Date);
  });

  it('direct credentials: create, find by id, renew and revoke only by their subject, expired ones deleted', async () => {
    const now = new Date();
    const exp = new Date(now.getTime() + 60_000);
    const cred = { id: 'c1', hash: 'h-c1', subject: 'user:alice', identity: '{"name":"alice"}', connection: 'pg', tokenHash: null, expiresAt: exp };
    await store.createDirectCredential(cred);
    await store.createDirectCredential({ ...cred, id: 'c2', hash: 'h-c2', tokenHash: 'tok', expiresAt: new Date(now.getTime() - 1_000) });
    expect(await store.findDirectCredential('c1')).toMatchObject({ ...cred, revokedAt: null });
    expect((await store.findDirectCredential('c2'))?.tokenHash).toBe('tok');
    expect(await store.findDirectCredential('h-c1')).toBeUndefined();
    const later = new Date(now.getTime() + 120_000);
    expect(await store.renewDirectCredential('c1', 'user:mallory', later, now)).toBe(false);
    expect(await store.renewDirectCredential('c2', 'user:alice', later, now)).toBe(false); // expired: stays expired
    expect(await store.renewDirectCredential('c1', 'user:alice', later, now)).toBe(true);
    expect((await store.findDirectCredential('c1'))?.expiresAt.getTime()).toBe(later.getTime());
    expect(await store.revokeDirectCredential('c1', 'user:mallory')).toBe(false);
    expect(await store.revokeDirectCredential('c1', 'user:alice')).toBe(true);
    expect(await store.revokeDirectCredential('c1', 'user:alice')).toBe(false);
    expect((await store.findDirectCredential('c1'))?.revokedAt).toBeInstanceOf(Date);
    expect(await store.renewDirectCredential('c1', 'user:alice', later, now)).toBe(false);
    expect(await store.deleteExpiredDirectCredentials(now)).toBe(1);
    expect(await store.findDirectCredential('c2')).toBeUndefined();
    expect(await store.findDirectCredential('c1')).toBeDefined();
  });

  it('a commit writes sessions, events (byte for byte), the end and the seal', async () => {
    const s = newSession();
    const head = await store.ledgerHead();
    const ops = wholeSession(s);
    await store.commit(ops);
    const events = await store.listEvents(s.id);
    const written = ops.filter((o): o is Extract<AuditOp, { op: 'event' }> => o.op === 'event').map((o) => o.event);
    expect(events).toEqual(written);
    expect(events[1]?.body).toContain('\\u0000'); // canonical JSON escapes NUL: PostgreSQL TEXT holds it
    const row = await store.getSession(s.id);
    expect(row).toMatchObject({ id: s.id, status: 'ok', queries: 1, blocked: 1, reviewed: 2, events: 4, bytesFromClient: 10, bytesToClient: 20, ledgerSeq: head.seq + 1, purgedAt: null, email: 'alice@example.com', groups: ['eng'] });
    const after = await store.ledgerHead();
    expect(after.seq).toBe(head.seq + 1);
    const entry: LedgerBody = { seq: after.seq, at: row!.endedAt!.toISOString(), kind: 'session', session: s.id, startedAt: s.startedAt.toISOString(), events: 4, final: written[3]!.hash };
    expect(after.hash).toBe(ledgerHash(head.hash, entry));
  });

  it('events chained from entries come back with the body their hash covers, byte for byte, whichever way the store keeps them', async () => {
    const s = newSession();
    const at = Date.UTC(2026, 10, 5, 10, 4, 5, 123);
    const data = (i: number) => canonicalJson({ q: i, text: `select '\u00e9\t\ud83d\ude00 ${i}'` });
    const entries = [1, 2, 3, 4, 5].map((seq): StagedOp => ({ op: 'entry', entry: { session: s.id, seq, kind: seq === 1 ? 'session.start' : 'query', at: at + seq, data: data(seq) } }));
    const chains = new EventChains();
    // Batch one mixes an event chained here with one chained elsewhere (no data): the store keeps bodies.
    const first = chains.chainSync(entries.slice(0, 1));
    const two = chain(s.id, ['query'], { seq: 1, hash: first.ops[0]!.op === 'event' ? first.ops[0]!.event.hash : '' }, new Date(at))[0]!;
    await store.commit([{ op: 'session', session: s }, ...first.ops, { op: 'event', event: two }]);
    // Batch two continues from what the store has (as a restarted ingest thread would): all chained here, so data only in SQLite.
    const rest = await new EventChains(storeLookup(store)).chain(entries.slice(2));
    await store.commit(rest.ops);
    const stored = await store.listEvents(s.id);
    // What the gateway would compute from scratch: canonical JSON of the event, hashed onto the previous hash.
    let prev = GENESIS_HASH;
    const expected = stored.map((e, i) => {
      const body = i === 1 ? two.body : canonicalJson({ session: s.id, seq: i + 1, kind: e.kind, at: new Date(at + i + 1).toISOString(), data: JSON.parse(data(i + 1)) as unknown });
      prev = i === 1 ? two.hash : chainHashOfText(prev, body);
      return { session: s.id, seq: i + 1, body, hash: prev };
    });
    expect(stored.map((e) => ({ session: e.session, seq: e.seq, body: e.body, hash: e.hash }))).toEqual(expected);
    expect(stored.map((e) => e.at.getTime())).toEqual([at + 1, at, at + 3, at + 4, at + 5]);
  });

  it('a commit is all or nothing', async () => {
    const s = newSession();
    const ops = wholeSession(s);
    const dup = ops[1] as Extract<AuditOp, { op: 'event' }>;
    const head = await store.ledgerHead();
    await expect(store.commit([...ops.slice(0, 3), dup])).rejects.toThrow();
    expect(await store.getSession(s.id)).toBeUndefined();
    expect(await store.listEvents(s.id)).toEqual([]);
    expect(await store.ledgerHead()).toEqual(head);
  });

  it('commitSync, where offered, is the same commit', async () => {
    if (!store.commitSync) return expect(backend.name).toBe('postgres');
    const s = newSession();
    store.commitSync(wholeSession(s));
    expect((await store.getSession(s.id))?.status).toBe('ok');
  });

  it('concurrent seals extend one unbroken ledger', async () => {
    const head = await store.ledgerHead();
    const sessions = Array.from({ length: 20 }, () => newSession());
    await Promise.all(sessions.map((s) => store.commit(wholeSession(s))));
    const end = await store.ledgerHead();
    expect(end.seq).toBe(head.seq + 20);
    const snap = await store.snapshot({ kind: 'all' });
    let prev = GENESIS_HASH;
    snap.ledger.forEach((l, i) => {
      expect(l.seq).toBe(i + 1);
      expect(l.hash).toBe(ledgerHash(prev, JSON.parse(l.body) as LedgerBody));
      prev = l.hash;
    });
    expect(prev).toBe(end.hash);
    expect(new Set(sessions.map((s) => snap.ledger.find((l) => l.session === s.id)?.seq)).size).toBe(20);
  });

  it('lists sessions newest first, filtered by subject, connection, user and time, limited', async () => {
    const t0 = Date.now() - 10_000;
    const a = newSession({ subject: 'user:bob', identityName: 'bob@example.com', email: 'bob@example.com', connection: 'pg-a', startedAt: new Date(t0) });
    const b = newSession({ subject: 'token:ci', identityName: 'ci', email: null, identityKind: 'service', connection: 'pg-b', startedAt: new Date(t0 + 1000) });
    await store.commit([...wholeSession(a), ...wholeSession(b)]);
    expect((await store.listSessions({ subject: 'user:bob' })).map((s) => s.id)).toEqual([a.id]);
    expect((await store.listSessions({ connection: 'pg-b' })).map((s) => s.id)).toEqual([b.id]);
    expect((await store.listSessions({ user: 'bob@example.com' })).map((s) => s.id)).toEqual([a.id]);
    expect((await store.listSessions({ user: 'ci' })).map((s) => s.id)).toEqual([b.id]);
    const recent = await store.listSessions({ since: new Date(t0 + 500) });
    expect(recent.map((s) => s.id)).toContain(b.id);
    expect(recent.map((s) => s.id)).not.toContain(a.id);
    const two = await store.listSessions({ limit: 2 });
    expect(two).toHaveLength(2);
    expect(two[0]!.startedAt.getTime()).toBeGreaterThanOrEqual(two[1]!.startedAt.getTime());
    expect((await store.getSession(b.id))?.identityKind).toBe('service');
  });

  it('keeps checkpoints and returns the last', async () => {
    const head = await store.ledgerHead();
    await store.addCheckpoint({ ledgerSeq: head.seq, ledgerHash: head.hash, at: new Date(1_000), keyId: 'k1', signature: 'c2ln' });
    await store.addCheckpoint({ ledgerSeq: head.seq, ledgerHash: head.hash, at: new Date(2_000), keyId: 'k1', signature: 'c2lnMg==' });
    expect(await store.lastCheckpoint()).toEqual({ ledgerSeq: head.seq, ledgerHash: head.hash, at: new Date(2_000), keyId: 'k1', signature: 'c2lnMg==' });
    expect(await store.hasCheckpoint(head.seq, head.hash)).toBe(true);
    expect(await store.hasCheckpoint(head.seq, 'f'.repeat(64))).toBe(false);
    expect(await store.hasCheckpoint(head.seq + 1, head.hash)).toBe(false);
    expect(await store.ledgerHashAt(head.seq)).toBe(head.seq === 0 ? undefined : head.hash);
    expect(await store.ledgerHashAt(head.seq + 1)).toBeUndefined();
  });

  it('snapshots by scope: everything, since a time, one session', async () => {
    const old = newSession({ startedAt: new Date(Date.now() - 3_600_000) });
    await store.commit(wholeSession(old, undefined, new Date(Date.now() - 3_500_000)));
    const open = newSession();
    await store.commit([{ op: 'session', session: open }, ...chain(open.id, ['session.start', 'query']).map((event): AuditOp => ({ op: 'event', event }))]);

    const all = await store.snapshot({ kind: 'all' });
    expect(all.ledgerFrom).toBe(1);
    expect(all.ledgerPrev).toBe(GENESIS_HASH);
    expect(all.head).toEqual(await store.ledgerHead());
    expect(all.sessions.map((s) => s.id)).toEqual(expect.arrayContaining([old.id, open.id]));
    expect(all.lastSeq.get(open.id)).toBe(2);
    expect(all.checkpoints.length).toBeGreaterThanOrEqual(2);
    // Events appended after the snapshot are not part of it; pages stop at lastSeq.
    await store.commit(chain(open.id, ['session.start', 'query', 'result']).slice(2).map((event): AuditOp => ({ op: 'event', event })));
    const stored = await store.listEvents(open.id);
    expect(stored).toHaveLength(3);
    expect((await store.eventsPage(open.id, 0, all.lastSeq.get(open.id)!, 1000)).map((e) => e.seq)).toEqual([1, 2]);
    expect((await store.eventsPage(open.id, 1, 3, 1)).map((e) => e.seq)).toEqual([2]);
    expect(await store.eventsPage(open.id, 3, 3, 10)).toEqual([]);

    const one = await store.snapshot({ kind: 'session', id: old.id });
    const oldSeal = (await store.getSession(old.id))!.ledgerSeq!;
    expect(one.sessions.map((s) => s.id)).toEqual([old.id]);
    expect(one.ledgerFrom).toBe(oldSeal);
    expect(one.ledger[0]?.session).toBe(old.id);
    expect(one.ledgerPrev).toBe(all.ledger[oldSeal - 2]?.hash ?? GENESIS_HASH);

    const openOnly = await store.snapshot({ kind: 'session', id: open.id });
    expect(openOnly.ledgerFrom).toBe(openOnly.head.seq + 1);
    expect(openOnly.ledger).toEqual([]);

    const since = await store.snapshot({ kind: 'since', since: new Date(Date.now() - 60_000) });
    expect(since.sessions.map((s) => s.id)).toContain(open.id);
    expect(since.sessions.map((s) => s.id)).not.toContain(old.id);
    expect(since.ledger[0]!.at.getTime()).toBeGreaterThanOrEqual(Date.now() - 61_000);
  });

  it('reads a session committed in several batches back in order, pages across batches, refuses a stored event again and replays idempotently', async () => {
    const s = newSession();
    const events = chain(s.id, ['session.start', ...Array.from({ length: 10 }, () => 'query')]);
    const ev = (from: number, to: number) => events.slice(from - 1, to).map((event): AuditOp => ({ op: 'event', event }));
    await store.commit([{ op: 'session', session: s }, ...ev(1, 3)]);
    await store.commit(ev(4, 7));
    await store.commit(ev(8, 10));
    expect(await store.listEvents(s.id)).toEqual(events.slice(0, 10));
    expect((await store.eventsPage(s.id, 2, 9, 3)).map((e) => e.seq)).toEqual([3, 4, 5]);
    expect((await store.eventsPage(s.id, 5, 9, 10)).map((e) => e.seq)).toEqual([6, 7, 8, 9]);
    expect(await store.eventsPage(s.id, 2, 9, 3)).toEqual(events.slice(2, 5));
    await expect(store.commit(ev(10, 11))).rejects.toThrow();
    expect(await store.listEvents(s.id)).toHaveLength(10); // all or nothing: event 11 was not stored either
    await store.commit(ev(9, 11), { replay: true });
    expect(await store.listEvents(s.id)).toEqual(events);
    expect((await store.snapshot({ kind: 'session', id: s.id })).lastSeq.get(s.id)).toBe(11);
  });

  it('purges the events of sealed sessions that ended before the cutoff, and records it in the ledger', async () => {
    const ancient = newSession({ startedAt: new Date(Date.now() - 40 * 86_400_000) });
    await store.commit(wholeSession(ancient, undefined, new Date(Date.now() - 40 * 86_400_000)));
    const stillOpen = newSession({ startedAt: new Date(Date.now() - 40 * 86_400_000) });
    await store.commit([{ op: 'session', session: stillOpen }, ...chain(stillOpen.id, ['session.start']).map((event): AuditOp => ({ op: 'event', event }))]);
    const head = await store.ledgerHead();
    const cutoff = new Date(Date.now() - 30 * 86_400_000);
    const at = new Date();
    const removed = await store.purge(cutoff, purgeEntry(cutoff), at);
    expect(removed.sessions).toContain(ancient.id);
    expect(removed.sessions).not.toContain(stillOpen.id);
    expect(removed.events).toBeGreaterThanOrEqual(4);
    expect(await store.listEvents(ancient.id)).toEqual([]);
    expect((await store.getSession(ancient.id))?.purgedAt?.getTime()).toBe(at.getTime());
    expect(await store.listEvents(stillOpen.id)).toHaveLength(1);
    const after = await store.ledgerHead();
    expect(after.seq).toBe(head.seq + 1);
    const entry: LedgerBody = { seq: after.seq, at: at.toISOString(), kind: 'purge', before: cutoff.toISOString(), sessions: removed.sessions };
    expect(after.hash).toBe(ledgerHash(head.hash, entry));
    expect((await store.purge(cutoff, purgeEntry(cutoff), new Date())).sessions).toEqual([]);
    const snap = await store.snapshot({ kind: 'all' });
    expect(snap.sessions.map((s) => s.id)).not.toContain(ancient.id);
  });

  it('finds open sessions of gateways that stopped heartbeating, with the end of their chain', async () => {
    const now = new Date();
    await store.heartbeat('g_dead', new Date(now.getTime() - 120_000));
    await store.heartbeat('g_alive', now);
    await store.heartbeat('g_dead', new Date(now.getTime() - 120_000)); // an upsert, not a second row
    const dead = newSession({ instance: 'g_dead' });
    const alive = newSession({ instance: 'g_alive' });
    const mine = newSession({ instance: 'g_me' });
    const deadEvents = chain(dead.id, ['session.start', 'query', 'result', 'query', 'decision', 'review.created']);
    await store.commit([
      { op: 'session', session: dead },
      ...deadEvents.map((event): AuditOp => ({ op: 'event', event })),
      { op: 'session', session: alive },
      ...chain(alive.id, ['session.start']).map((event): AuditOp => ({ op: 'event', event })),
      { op: 'session', session: mine },
      ...chain(mine.id, ['session.start']).map((event): AuditOp => ({ op: 'event', event })),
    ]);
    const orphans = await store.orphanedSessions('g_me', new Date(now.getTime() - 60_000));
    const ids = orphans.map((o) => o.session.id);
    expect(ids).toContain(dead.id);
    expect(ids).not.toContain(alive.id);
    expect(ids).not.toContain(mine.id);
    const o = orphans.find((x) => x.session.id === dead.id)!;
    expect(o.last).toEqual({ seq: 6, hash: deadEvents[5]!.hash });
    expect(o).toMatchObject({ queries: 2, blocked: 1, reviewed: 1 });
  });
});
