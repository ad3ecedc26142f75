// Review verdicts in the PostgreSQL engine, with a fake Reviews service the test decides for (the
// real service and its API are tested in reviews.test.ts): the statement and everything after it
// wait, the client is told at once, and approval runs it unchanged, rejection and expiry fail it
// (42501, 57014) without running it, a client that leaves cancels the review; prepared
// statements are reviewed when they run, as the target defined them.
import { createConnection } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { decodeErrorFields } from '../../gateway/engines/postgres/codec/backend.js';
import { createBackendFramer } from '../../gateway/engines/postgres/codec/framer.js';
import { encodeCancelRequest, encodeStartupMessage } from '../../gateway/engines/postgres/codec/frontend.js';
import { build } from '../unit/postgres/builder.js';
import { ALICE, client, compile, connectionFor, FakeReviews, freshDatabase, startEngine, waitFor, type Engine } from '../support/pgEngineHarness.js';

const cluster = inject('pgCluster');

const POLICY = compile({
  rules: [
    { id: 'no-ddl', block: { statements: ['drop'] } },
    { id: 'writes-need-review', review: { statements: ['insert', 'update', 'delete'], approvers: ['dba'], timeout: '10m' }, except: { groups: ['dba'] } },
  ],
});

let db: Awaited<ReturnType<typeof freshDatabase>>;
let database: string;
let gw: Engine;
const reviews = new FakeReviews();

const ids = async () => (await db.admin.query('select id from items order by id')).rows.map((r: { id: number }) => r.id);

beforeAll(async () => {
  db = await freshDatabase(cluster, 'reviews_engine');
  database = db.target.database;
  await db.admin.query('create table items (id int primary key, note text); alter table items owner to app');
  gw = await startEngine(connectionFor(db.target), { policy: POLICY, reviews });
});

afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

/** Waits for the next review request. */
async function nextReview(after: number) {
  await waitFor('a review request', () => reviews.requests.length > after);
  return reviews.requests[after]!;
}

describe('review verdicts', () => {
  it('holds the statement, tells the client at once, and runs it unchanged once approved', async () => {
    const c = client(gw.port, database);
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    await c.connect();
    const before = reviews.requests.length;
    const running = c.query("insert into items values (1, 'approved')");
    const r = await nextReview(before);
    expect(r.req).toMatchObject({ kind: 'sql', action: "insert into items values (1, 'approved')", rule: 'writes-need-review', approvers: ['dba'], timeoutMs: 600_000 });
    await waitFor('the notice', () => notices.length === 1);
    expect(notices).toEqual([`query held for review ${r.id} by rule writes-need-review; an approver runs: sluice reviews approve ${r.id}`]);
    expect(await ids()).toEqual([]);
    reviews.decide(r.id, { status: 'approved', by: 'dana@example.com' });
    await running;
    expect(await ids()).toEqual([1]);
    await c.end();
    const s = gw.sessions.at(-1)!;
    await s.ended;
    const rec = s.of('insert into items values (1');
    expect(rec.decision).toMatchObject({ verdict: 'review', rule: 'writes-need-review' });
    expect(s.reviews.map((x) => [x.queryId, x.event, x.reviewId, x.by])).toEqual([
      [rec.id, 'created', r.id, undefined],
      [rec.id, 'approved', r.id, 'dana@example.com'],
    ]);
    expect(rec.result).toMatchObject({ status: 'ok', commands: ['INSERT 0 1'] });
  });

  it('rejection fails it with the reason (42501), expiry with 57014; nothing runs and the session goes on', async () => {
    const c = client(gw.port, database);
    await c.connect();
    let before = reviews.requests.length;
    const rejected = c.query("insert into items values (2, 'rejected')").catch((e: unknown) => e);
    reviews.decide((await nextReview(before)).id, { status: 'rejected', by: 'dana@example.com', reason: 'not during the freeze' });
    expect(await rejected).toMatchObject({ code: '42501', message: expect.stringMatching(/^rejected in review R-\d+ by dana@example.com: not during the freeze$/) });
    before = reviews.requests.length;
    const expired = c.query('delete from items where id = 1').catch((e: unknown) => e);
    reviews.decide((await nextReview(before)).id, { status: 'expired' });
    expect(await expired).toMatchObject({ code: '57014' });
    expect((await c.query('select count(*)::int as n from items')).rows).toEqual([{ n: 1 }]);
    await c.end();
    expect(await ids()).toEqual([1]);
  });

  it('holds everything sent after the statement, in order (a pipeline of simple queries)', async () => {
    const socket = createConnection({ host: '127.0.0.1', port: gw.port });
    const framer = createBackendFramer();
    const seen: string[] = [];
    let readies = 0;
    socket.on('data', (d: Buffer) => {
      framer.push(d);
      while (framer.next()) {
        const t = String.fromCharCode(framer.type);
        if (t === 'D') seen.push(`D:${framer.body.toString('utf8', 6)}`);
        else if (t === 'N') seen.push('N');
        else if (t === 'E') seen.push(`E:${decodeErrorFields(framer.body).code}`);
        else if (t === 'C' || t === 'Z') seen.push(t);
        if (t === 'Z') readies++;
      }
    });
    socket.write(encodeStartupMessage([['user', 'x'], ['database', database]]));
    await waitFor('startup', () => readies === 1);
    seen.length = 0;
    const before = reviews.requests.length;
    socket.write(Buffer.concat([build().cstring("insert into items values (3, 'pipelined')").typed('Q'), build().cstring('select count(*) from items').typed('Q')]));
    const r = await nextReview(before);
    await new Promise((res) => setTimeout(res, 100));
    expect(seen).toEqual(['N']);
    reviews.decide(r.id, { status: 'approved', by: 'dana@example.com' });
    await waitFor('both answers', () => readies === 3);
    socket.destroy();
    expect(seen).toEqual(['N', 'C', 'Z', 'D:2', 'C', 'Z']);
  });

  it('reviews an extended-protocol statement at its Bind, with its parameters', async () => {
    const c = client(gw.port, database);
    await c.connect();
    const before = reviews.requests.length;
    const running = c.query('insert into items values ($1, $2)', [4, 'extended']);
    const r = await nextReview(before);
    expect(r.req.action).toBe('insert into items values ($1, $2)');
    reviews.decide(r.id, { status: 'approved', by: 'dana@example.com' });
    await running;
    await c.end();
    const s = gw.sessions.at(-1)!;
    await s.ended;
    expect(s.of('insert into items values ($1').query).toMatchObject({ params: ['4', 'extended'], protocol: 'extended' });
    expect(await ids()).toEqual([1, 3, 4]);
  });

  it('EXECUTE is reviewed as what the target prepared, even after a refused redefinition', async () => {
    const c = client(gw.port, database);
    await c.connect();
    await c.query("PREPARE bump AS UPDATE items SET note = 'bumped' WHERE id = 1");
    await expect(c.query('PREPARE bump AS SELECT 1')).rejects.toMatchObject({ code: '42P05' });
    const before = reviews.requests.length;
    const running = c.query('EXECUTE bump').catch((e: unknown) => e);
    const r = await nextReview(before);
    expect(r.req.action).toBe('EXECUTE bump');
    reviews.decide(r.id, { status: 'rejected', by: 'dana@example.com', reason: 'no' });
    expect(await running).toMatchObject({ code: '42501' });
    expect((await db.admin.query('select note from items where id = 1')).rows).toEqual([{ note: 'approved' }]);
    await c.end();
  });

  it("a CancelRequest (psql's Ctrl-C) cancels a held statement: 57014, the review is cancelled, nothing runs", async () => {
    const c = client(gw.port, database);
    await c.connect();
    const before = reviews.requests.length;
    const running = c.query("insert into items values (8, 'cancelled')").catch((e: unknown) => e);
    const r = await nextReview(before);
    const key = c as unknown as { processID: number; secretKey: number };
    await new Promise<void>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port: gw.port }, () => s.end(encodeCancelRequest(key.processID, key.secretKey)));
      s.on('close', () => resolve());
    });
    expect(await running).toMatchObject({ code: '57014', message: 'canceling statement due to user request' });
    expect(r.signal.aborted).toBe(true);
    expect((await c.query('select count(*)::int as n from items where id = 8')).rows).toEqual([{ n: 0 }]);
    await c.end();
  });

  it('a client that leaves cancels its review; nothing runs', async () => {
    const c = client(gw.port, database);
    c.on('error', () => undefined);
    await c.connect();
    const before = reviews.requests.length;
    void c.query("insert into items values (9, 'abandoned')").catch(() => undefined);
    const r = await nextReview(before);
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await waitFor('the review to be cancelled', () => r.signal.aborted);
    reviews.decide(r.id, { status: 'approved', by: 'dana@example.com' });
    await new Promise((res) => setTimeout(res, 100));
    expect(await ids()).not.toContain(9);
    // The target was never sent the held statement: nothing to cancel there, the session just ends.
    const audit = gw.sessions.find((s) => s.queries.some((q) => q.text.includes("'abandoned'")))!;
    const end = await audit.ended;
    expect(end).toMatchObject({ status: 'ok' });
    expect(JSON.stringify(audit.results)).not.toContain('the client went away');
  });

  it('members of an excepted group are not reviewed; without a review service a review verdict blocks', async () => {
    const dba = await startEngine(connectionFor(db.target), { policy: POLICY, reviews, identity: { ...ALICE, groups: ['dba'] } });
    const none = await startEngine(connectionFor(db.target), { policy: POLICY });
    try {
      const a = client(dba.port, database);
      await a.connect();
      await a.query("insert into items values (5, 'dba')");
      await a.end();
      const b = client(none.port, database);
      await b.connect();
      await expect(b.query("insert into items values (6, 'nobody')")).rejects.toMatchObject({
        code: '42501',
        message: 'held for review by rule writes-need-review, but this gateway has no review service: not executed',
      });
      await b.end();
    } finally {
      await dba.close();
      await none.close();
    }
    expect(await ids()).toEqual([1, 3, 4, 5]);
  });
});
