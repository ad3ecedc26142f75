// The per-session recorder and the writer behind it: write-ahead, caps, fail closed and recover,
// deferred commits with group commit, and a store that can only commit asynchronously.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { AuditWriter } from '../../../gateway/audit/writer.js';
import type { Identity } from '../../../gateway/model.js';
import { AuditUnavailableError } from '../../../gateway/audit/contract.js';
import { createSessionAudit, durationJson, REFUSED_UNRECORDED } from '../../../gateway/sessionAudit.js';
import { openSqliteStore } from '../../../gateway/store/sqlite.js';
import type { EventRecord, Store } from '../../../gateway/store/types.js';
import { canonicalJson, eventHash, GENESIS_HASH, type EventKind } from '../../../src/api/auditTrail.js';

const log = pino({ level: 'silent' });
const ALICE: Identity = { subject: 'user:alice', name: 'alice@example.com', email: 'alice@example.com', groups: ['eng'], kind: 'human' };
let n = 0;

/** A SQLite store whose writes can be made to fail, like a full disk. */
function faultyStore(opts: { sync?: boolean } = {}): Store & { failing: boolean; commits: number } {
  const inner = openSqliteStore(':memory:');
  const s = {
    ...inner,
    failing: false,
    commits: 0,
    async commit(ops: Parameters<Store['commit']>[0]) {
      await new Promise((r) => setTimeout(r, 1));
      if (s.failing) throw new Error('SQLITE_FULL: database or disk is full');
      s.commits++;
      return inner.commit(ops);
    },
    async heartbeat(i: string, at: Date) {
      if (s.failing) throw new Error('SQLITE_FULL: database or disk is full');
      return inner.heartbeat(i, at);
    },
  } as Store & { failing: boolean; commits: number };
  if (opts.sync !== false) {
    s.commitSync = (ops) => {
      if (s.failing) throw new Error('SQLITE_FULL: database or disk is full');
      s.commits++;
      inner.commitSync!(ops);
    };
  } else {
    delete (s as Partial<Store>).commitSync;
  }
  return s;
}

function setup(store: Store, limits = { maxRows: 3, maxBytes: 20 }) {
  const writer = new AuditWriter({ store, log, instance: 'g_test', retryMs: 20 });
  const open = () => {
    const id = `s_unit${++n}`;
    return { id, audit: createSessionAudit({ writer, limits, instance: 'g_test', log }, { id, connection: 'pg', protocol: 'postgres', identity: ALICE, origin: 'connect', clientAddress: '127.0.0.1' }) };
  };
  return { writer, open };
}

function verifyChain(events: EventRecord[]): void {
  let prev = GENESIS_HASH;
  events.forEach((e, i) => {
    expect(e.seq).toBe(i + 1);
    const body = JSON.parse(e.body) as { session: string; seq: number; kind: EventKind; at: string; data: Record<string, unknown> };
    expect(eventHash(prev, body)).toBe(e.hash);
    prev = e.hash;
  });
}

const data = (e: EventRecord | undefined) => (JSON.parse(e?.body ?? '{}') as { data: Record<string, unknown> }).data;

describe('session audit', () => {
  it('commits a statement before onQuery returns, then seals the session', async () => {
    const store = faultyStore();
    const { open, writer } = setup(store);
    const { id, audit } = open();
    audit.onSessionStart({ target: 'app', clientUser: 'x', clientApplication: 'psql' });
    const q = audit.onQuery({ text: 'select 1', protocol: 'simple' });
    // No tick has passed: the query (and the session start before it) are already in the store.
    expect((await store.listEvents(id)).map((e) => e.kind)).toEqual(['session.start', 'query']);
    expect(data((await store.listEvents(id))[1])).toEqual({ q, text: 'select 1', protocol: 'simple' });
    audit.onResult({ queryId: q, status: 'ok', commands: ['SELECT 1'], rows: 1, durationMs: 1.23456 });
    audit.onSessionEnd({ status: 'ok', bytesFromClient: 10, bytesToClient: 20 });
    audit.onResult({ queryId: q, status: 'ok', durationMs: 1 }); // after the end: ignored
    audit.onSessionEnd({ status: 'error', bytesFromClient: 0, bytesToClient: 0 }); // once only
    // A statement after the end is refused (nothing could record it), and the audit stays healthy.
    expect(() => audit.onQuery({ text: 'select 2', protocol: 'simple' })).toThrow(AuditUnavailableError);
    expect(() => audit.onDecision?.({ queryId: q, verdict: 'allow' })).toThrow(AuditUnavailableError);
    await writer.flush();
    expect(writer.healthy).toBe(true);
    const events = await store.listEvents(id);
    expect(events.map((e) => e.kind)).toEqual(['session.start', 'query', 'result', 'session.end']);
    verifyChain(events);
    expect(data(events[0])).toMatchObject({ connection: 'pg', database: 'app', clientApplication: 'psql', identity: { subject: 'user:alice', email: 'alice@example.com', groups: ['eng'], kind: 'human' } });
    expect(data(events[2])).toEqual({ q, status: 'ok', commands: ['SELECT 1'], rows: 1, durationMs: 1.235 });
    expect(data(events[3])).toEqual({ status: 'ok', bytesFromClient: 10, bytesToClient: 20, queries: 1 });
    const row = await store.getSession(id);
    expect(row).toMatchObject({ status: 'ok', queries: 1, events: 4, ledgerSeq: 1 });
  });

  it('counts statements refused by policy and held for review into the session row', async () => {
    const store = faultyStore();
    const { open, writer } = setup(store);
    const { id, audit } = open();
    audit.onSessionStart({ target: 'app', clientUser: 'x' });
    const blocked = audit.onQuery({ text: 'drop table t', protocol: 'simple' });
    audit.onDecision?.({ queryId: blocked, verdict: 'block', rule: 'no-ddl', reason: 'no' });
    const held = audit.onQuery({ text: 'insert into t values (1)', protocol: 'simple' });
    audit.onDecision?.({ queryId: held, verdict: 'review', rule: 'writes' });
    audit.onReview?.({ queryId: held, event: 'created', reviewId: 'R-2345' });
    audit.onReview?.({ queryId: held, event: 'approved', reviewId: 'R-2345', by: 'bob' });
    audit.onSessionEnd({ status: 'ok', bytesFromClient: 1, bytesToClient: 1 });
    await writer.flush();
    expect(await store.getSession(id)).toMatchObject({ queries: 2, blocked: 1, reviewed: 1 });
  });

  it('keeps a capped sample of each result with the true totals', async () => {
    const store = faultyStore();
    const { open, writer } = setup(store, { maxRows: 3, maxBytes: 20 });
    const { id, audit } = open();
    audit.onSessionStart({ target: 'app', clientUser: 'x' });
    const q1 = audit.onQuery({ text: 'select * from t', protocol: 'simple' });
    audit.onColumns!(q1, [{ name: 'id', typeOid: 23 }, { name: 'email' }]);
    const wanted = [1, 2, 3, 4, 5].map((i) => audit.onRow!(q1, [String(i), i === 2 ? null : 'a@b.c']));
    expect(wanted).toEqual([true, true, false, false, false]);
    audit.onResult({ queryId: q1, status: 'ok', commands: ['SELECT 5'], rows: 5, bytes: 999, durationMs: 2, masked: ['email'] });
    const q2 = audit.onQuery({ text: 'select big', protocol: 'simple' });
    audit.onColumns!(q2, [{ name: 'v' }]);
    expect(audit.onRow!(q2, ['x'.repeat(15)])).toBe(true);
    expect(audit.onRow!(q2, ['y'.repeat(15)])).toBe(false); // over maxBytes: not kept
    audit.onResult({ queryId: q2, status: 'ok', commands: ['SELECT 2'], durationMs: 1 });
    await writer.flush();
    const results = (await store.listEvents(id)).filter((e) => e.kind === 'result').map(data);
    expect(results[0]).toEqual({
      q: q1,
      status: 'ok',
      commands: ['SELECT 5'],
      rows: 5,
      bytes: 999,
      durationMs: 2,
      masked: ['email'],
      columns: [{ name: 'id', type: 23 }, { name: 'email' }],
      sample: [['1', 'a@b.c'], ['2', null], ['3', 'a@b.c']],
      truncated: true,
    });
    expect(results[1]).toMatchObject({ rows: 2, bytes: 30, sample: [['x'.repeat(15)]], truncated: true });
  });

  it('fails closed while the store cannot write, records the refusal, and recovers', async () => {
    const store = faultyStore();
    const { open, writer } = setup(store);
    const { id, audit } = open();
    audit.onSessionStart({ target: 'app', clientUser: 'x' });
    const ok = audit.onQuery({ text: 'select 1', protocol: 'simple' });
    store.failing = true;
    audit.onResult({ queryId: ok, status: 'ok', commands: ['SELECT 1'], rows: 1, durationMs: 1 }); // staged, never thrown
    let thrown: unknown;
    try {
      audit.onQuery({ text: 'delete from orders', protocol: 'simple' });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(AuditUnavailableError);
    expect((thrown as AuditUnavailableError).reason).toBe('store');
    expect(writer.healthy).toBe(false);
    // Already failing: refused at once, without a write attempt.
    const before = store.commits;
    expect(() => audit.onQuery({ text: 'select 2', protocol: 'simple' })).toThrow(AuditUnavailableError);
    expect(store.commits).toBe(before);
    await expect(audit.flush!()).rejects.toBeInstanceOf(AuditUnavailableError);
    audit.onSessionEnd({ status: 'error', code: '58030', message: 'refused', bytesFromClient: 1, bytesToClient: 2 });
    expect((await store.listEvents(id)).map((e) => e.kind)).toEqual(['session.start', 'query']);

    store.failing = false;
    await expect.poll(() => writer.healthy, { timeout: 2000 }).toBe(true);
    await expect.poll(async () => (await store.listEvents(id)).length, { timeout: 2000 }).toBe(8);
    const events = await store.listEvents(id);
    verifyChain(events);
    expect(events.map((e) => e.kind)).toEqual(['session.start', 'query', 'result', 'query', 'result', 'query', 'result', 'session.end']);
    const refusals = events.filter((e) => e.kind === 'result' && data(e).message === REFUSED_UNRECORDED);
    expect(refusals.map((e) => data(e).q)).toEqual([2, 3]);
    expect((await store.getSession(id))?.status).toBe('error');
  });

  it('with deferCommit, stages the statement and commits many sessions in one group commit on flush()', async () => {
    const store = faultyStore();
    const { open } = setup(store);
    const sessions = Array.from({ length: 10 }, open);
    for (const s of sessions) s.audit.onSessionStart({ target: 'app', clientUser: 'x' });
    const before = store.commits;
    const ids = sessions.map((s) => s.audit.onQuery({ text: 'select 1', protocol: 'extended', params: ['1', null], deferCommit: true }));
    expect(ids.every((q) => q === 1)).toBe(true);
    expect(await store.listEvents(sessions[0]!.id)).toEqual([]); // nothing written yet
    const flushes = sessions.map((s) => s.audit.flush!());
    expect(flushes.every((p) => p instanceof Promise)).toBe(true);
    await Promise.all(flushes);
    expect(store.commits - before).toBe(1); // ten sessions, one transaction (one fsync with durability: fsync)
    expect(data((await store.listEvents(sessions[0]!.id))[1])).toEqual({ q: 1, text: 'select 1', protocol: 'extended', params: ['1', null] });
    expect(sessions[0]!.audit.flush!()).toBeUndefined(); // nothing pending: no promise to await
  });

  it('with a store that only commits asynchronously, flush() is the write-ahead point', async () => {
    const store = faultyStore({ sync: false });
    const { open } = setup(store);
    const { id, audit } = open();
    audit.onSessionStart({ target: 'app', clientUser: 'x' });
    audit.onQuery({ text: 'select 1', protocol: 'simple', deferCommit: true });
    audit.onDecision!({ queryId: 1, verdict: 'allow', rule: 'default', deferCommit: true });
    await audit.flush!();
    expect((await store.listEvents(id)).map((e) => e.kind)).toEqual(['session.start', 'query', 'decision']);
    store.failing = true;
    audit.onQuery({ text: 'select 2', protocol: 'simple', deferCommit: true });
    await expect(audit.flush!()).rejects.toBeInstanceOf(AuditUnavailableError);
    store.failing = false;
    audit.onReview!({ queryId: 2, event: 'created', reviewId: 'r1' });
    audit.onSessionEnd({ status: 'ok', bytesFromClient: 0, bytesToClient: 0 });
    await expect.poll(async () => (await store.listEvents(id)).map((e) => e.kind), { timeout: 2000 }).toEqual([
      'session.start',
      'query',
      'decision',
      'query',
      'review.created',
      'session.end',
    ]);
    verifyChain(await store.listEvents(id));
  });

  it('record: sessions keeps the session and refused statements only, and asks for no result rows', async () => {
    const store = faultyStore();
    const writer = new AuditWriter({ store, log, instance: 'g_test' });
    const id = `s_unit${++n}`;
    const audit = createSessionAudit({ writer, limits: { maxRows: 3, maxBytes: 20 }, instance: 'g_test', log }, { id, connection: 'pg', protocol: 'postgres', identity: ALICE, origin: 'connect', clientAddress: '127.0.0.1', record: 'sessions' });
    expect(audit.onColumns).toBeUndefined();
    expect(audit.onRow).toBeUndefined();
    audit.onSessionStart({ target: 'app', clientUser: 'x' });
    // Without a policy no decision comes: hundreds of statements leave nothing behind.
    for (let i = 0; i < 300; i++) audit.onResult({ queryId: audit.onQuery({ text: `select ${i}`, protocol: 'simple' }), status: 'ok', durationMs: 0 });
    const allowed = audit.onQuery({ text: 'select 1', protocol: 'simple' });
    audit.onDecision!({ queryId: allowed, verdict: 'allow' });
    audit.onResult({ queryId: allowed, status: 'ok', durationMs: 0 });
    const blocked = audit.onQuery({ text: 'drop table t', protocol: 'simple' });
    audit.onDecision!({ queryId: blocked, verdict: 'block', rule: 'no-ddl', reason: 'statement drop' });
    audit.onResult({ queryId: blocked, status: 'error', sqlstate: '42501', message: 'blocked', durationMs: 0 });
    audit.onSessionEnd({ status: 'ok', bytesFromClient: 1, bytesToClient: 2 });
    await writer.flush();
    const events = await store.listEvents(id);
    expect(events.map((e) => e.kind)).toEqual(['session.start', 'query', 'decision', 'result', 'session.end']);
    expect(data(events[1])).toMatchObject({ q: 302, text: 'drop table t' });
    expect(data(events[4])).toMatchObject({ queries: 302 });
    verifyChain(events);
  });

  it('writes every statement and result body as canonical JSON (the fast path agrees with canonicalJson)', async () => {
    const store = faultyStore();
    const { open, writer } = setup(store, { maxRows: 2, maxBytes: 1000 });
    const { id, audit } = open();
    audit.onSessionStart({ target: 'app', clientUser: 'x' });
    const shapes = [
      { text: 'select 1', protocol: 'simple' as const },
      { text: 'select $1, $2', protocol: 'extended' as const, params: ['a "quoted" \\ value', null], kinds: ['select'] },
      { text: 'insert into t values (\'\u00e9\u2028\ud83d\ude00\')', protocol: 'simple' as const, kinds: ['insert', 'select'] },
      // Quotes, a backslash, control characters and a lone surrogate: the escaping paths.
      { text: 'select "x",\n\t\'\\\' -- \u0001\ud800', protocol: 'simple' as const, kinds: ['se"lect'] },
    ];
    for (const q of shapes) {
      const qid = audit.onQuery(q);
      audit.onColumns!(qid, [{ name: 'z', typeOid: 25 }, { name: 'a' }]);
      audit.onRow!(qid, ['x\ty', null]);
      audit.onRow!(qid, ['2', '\u0000']);
      audit.onRow!(qid, ['3', 'three']);
      audit.onResult({ queryId: qid, status: 'error', commands: ['SELECT 3'], rows: 3, bytes: 42, durationMs: 1 / 3, sqlstate: '22012', message: 'division by zero', masked: ['z'] });
    }
    await writer.flush();
    const events = await store.listEvents(id);
    expect(events.filter((e) => e.kind === 'query' || e.kind === 'result')).toHaveLength(8);
    for (const e of events) expect(e.body).toBe(canonicalJson(JSON.parse(e.body)));
    // Every member, exactly (the hand-built forms must not lose or invent one).
    expect(data(events.find((e) => e.kind === 'query' && data(e).q === 2))).toEqual({ kinds: ['select'], params: ['a "quoted" \\ value', null], protocol: 'extended', q: 2, text: 'select $1, $2' });
    expect(data(events.find((e) => e.kind === 'result' && data(e).q === 3))).toEqual({
      bytes: 42,
      columns: [{ name: 'z', type: 25 }, { name: 'a' }],
      commands: ['SELECT 3'],
      durationMs: 0.333,
      masked: ['z'],
      message: 'division by zero',
      q: 3,
      rows: 3,
      sample: [['x\ty', null], ['2', '\u0000']],
      sqlstate: '22012',
      status: 'error',
      truncated: true,
    });
    expect(data(events.find((e) => e.kind === 'query' && data(e).q === 4))).toMatchObject({ kinds: ['se"lect'], text: 'select "x",\n\t\'\\\' -- \u0001\ud800' });
    verifyChain(events);
  });

  it('writes durations as JSON.stringify writes them rounded to the microsecond', () => {
    const samples = [0, 0.0004, 0.0005, 0.001, 0.01, 0.1, 0.412, 0.41, 1, 1 / 3, 2 / 3, 10.5, 999.9995, 1000, 12345.678, 86_400_000.001, 3.14159e9, 1e11 + 0.007];
    // And a deterministic sweep of values a round trip takes (fractions of a ms to minutes).
    let x = 0.000_123;
    for (let i = 0; i < 20_000; i++) {
      samples.push(x);
      x = (x * 1.0007 + 0.000_37) % 200_000;
    }
    for (const ms of samples) expect(durationJson(ms), String(ms)).toBe(JSON.stringify(Math.round(ms * 1000) / 1000));
    // Not finite, or negative (a clock that went backwards): the general path.
    expect(durationJson(-1.5)).toBe('-1.5');
    expect(durationJson(Number.NaN)).toBe('null');
  });
});
