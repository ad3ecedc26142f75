// What an exec decides before the engine runs anything (gateway/exec/session.ts): a blocked input
// is recorded as the engine records a refused query and never reaches the engine; an input that
// needs a review gets one review of the whole input, waited for (with `waiting` events) or left
// pending. The engine here is a fake that must not be called; the review service is the real one.
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ExecEvent } from '../../../src/api/contract.js';
import type { Identity } from '../../../gateway/model.js';
import type { PostgresSessionAudit } from '../../../gateway/audit/postgresEvents.js';
import type { PgEngine, PgSessionContext } from '../../../gateway/engines/postgres/context.js';
import { EventSink, ROW_BATCH_BYTES } from '../../../gateway/exec/events.js';
import { runExec } from '../../../gateway/exec/session.js';
import { compilePolicy, policySchema } from '../../../gateway/policy/index.js';
import { createReviewService } from '../../../gateway/reviews/service.js';
import { coreAuditNoops } from '../../support/auditStubs.js';

const CI: Identity = { subject: 'token:ci', name: 'ci', groups: ['eng'], kind: 'service' };
const DBA: Identity = { subject: 'sub-dba', name: 'dba@example.com', groups: ['dba'], kind: 'human' };
const policy = compilePolicy(
  policySchema.parse({
    rules: [
      { id: 'no-ddl', block: { statements: ['drop'] }, message: 'DDL is not allowed' },
      { id: 'payments-review', review: { statements: ['update'], tables: ['payments'], match: 'all', approvers: ['dba'], timeout: '5m' } },
    ],
  }),
);

const untouchable: PgEngine = {
  handle: () => Promise.reject(new Error('the engine must not run this input')),
};

function harness() {
  const calls: string[] = [];
  const audit: PostgresSessionAudit = {
    ...coreAuditNoops,
    onSessionStart: () => void calls.push('start'),
    onQuery: (q) => (calls.push(`query ${q.text}`), 7),
    onDecision: (d) => void calls.push(`decision ${d.verdict} ${d.rule ?? ''}`),
    onReview: (r) => void calls.push(`review ${r.event}`),
    onResult: (r) => void calls.push(`result ${r.status} ${r.sqlstate ?? ''}`),
    onSessionEnd: (e) => void calls.push(`end ${e.status}`),
  };
  const log = pino({ level: 'silent' });
  const reviews = createReviewService({ log });
  const context: PgSessionContext = {
    id: 's_test',
    identity: CI,
    connection: { name: 'shop', type: 'postgres', target: { host: 'h', port: 5432, database: 'shop', user: 'u', password: 'p', sslmode: 'disable' }, databases: [], allow: { groups: ['eng'] }, record: 'statements', policy },
    audit,
    log,
    connectTimeoutMs: 1000,
    policy,
  };
  const out = new PassThrough();
  const events: ExecEvent[] = [];
  let carry = '';
  out.on('data', (d: Buffer) => {
    const lines = (carry + d.toString()).split('\n');
    carry = lines.pop() ?? '';
    for (const l of lines) events.push(JSON.parse(l) as ExecEvent);
  });
  return { calls, reviews, context, sink: new EventSink(out), events };
}

describe('runExec before the engine', () => {
  it('refuses a blocked input whole and records it as a refused query', async () => {
    const h = harness();
    await runExec({ engine: untouchable, context: h.context, signal: new AbortController().signal, reviews: h.reviews, sink: h.sink, input: 'select 1; drop table t', wait: true, clientGone: new Promise(() => undefined) });
    expect(h.events).toEqual([
      { type: 'session', id: 's_test' },
      { type: 'error', statement: 1, sqlstate: '42501', message: 'blocked by rule no-ddl: DDL is not allowed', rule: 'no-ddl' },
      { type: 'end', status: 'blocked', statements: 0, session: 's_test' },
    ]);
    expect(h.calls).toEqual(['start', 'query select 1; drop table t', 'decision block no-ddl', 'result error 42501', 'end error']);
  });

  it('without wait: one pending review of the whole input that outlives the exec', async () => {
    const h = harness();
    const input = 'select 1; update payments set amount = 2 where id = 1';
    await runExec({ engine: untouchable, context: h.context, signal: new AbortController().signal, reviews: h.reviews, sink: h.sink, input, wait: false, clientGone: new Promise(() => undefined) });
    const review = h.events[1] as Extract<ExecEvent, { type: 'review' }>;
    expect(review).toMatchObject({ type: 'review', status: 'pending', rule: 'payments-review', approvers: ['dba'] });
    expect(h.events.at(-1)).toEqual({ type: 'end', status: 'review_pending', statements: 0, session: 's_test' });
    const record = await h.reviews.get(review.id, CI);
    expect([record.status, record.action, record.detached]).toEqual(['pending', input, true]);
    expect(h.calls).toEqual(['start', `query ${input}`, 'decision review payments-review', 'review created', 'result error ', 'end ok']);
    h.reviews.close();
  });

  it('waiting: reports `waiting` until the decision, and a rejection ends review_rejected', async () => {
    const h = harness();
    const input = 'update payments set amount = 2 where id = 1';
    const done = runExec({ engine: untouchable, context: h.context, signal: new AbortController().signal, reviews: h.reviews, sink: h.sink, input, wait: true, clientGone: new Promise(() => undefined), waitingEveryMs: 5 });
    await expect.poll(() => h.events.filter((e) => e.type === 'waiting').length).toBeGreaterThanOrEqual(2);
    const id = (h.events[1] as { id: string }).id;
    await h.reviews.decide(id, DBA, { approve: false, reason: 'freeze' });
    await done;
    expect(h.events.filter((e) => e.type !== 'waiting').slice(2)).toEqual([
      { type: 'review', id, status: 'rejected', by: DBA.name, reason: 'freeze' },
      { type: 'end', status: 'review_rejected', statements: 0, session: 's_test' },
    ]);
    expect(h.calls.slice(-3)).toEqual(['review rejected', 'result error 42501', 'end error']);
  });

  it('waiting: the client going away cancels the review', async () => {
    const h = harness();
    let leave!: () => void;
    const clientGone = new Promise<void>((r) => (leave = r));
    const done = runExec({ engine: untouchable, context: h.context, signal: new AbortController().signal, reviews: h.reviews, sink: h.sink, input: 'update payments set amount = 3 where id = 1', wait: true, clientGone });
    await expect.poll(() => h.events.length).toBe(2);
    const id = (h.events[1] as { id: string }).id;
    leave();
    await done;
    expect((await h.reviews.get(id, CI)).status).toBe('cancelled');
    expect(h.events.at(-1)).toMatchObject({ type: 'end', status: 'cancelled' });
  });
});

describe('EventSink', () => {
  it('gathers rows into batches of about 64 KiB and waits for the client to drain', async () => {
    const out = new PassThrough({ highWaterMark: 1024 });
    const sink = new EventSink(out);
    const value = 'x'.repeat(1000);
    let settled = false;
    const writing = (async () => {
      for (let i = 0; i < 200; i++) await sink.row(0, [value], value.length);
      await sink.flushRows();
      settled = true;
    })();
    await new Promise((r) => setImmediate(r));
    // Nobody reads: the first batch filled the buffer and the writer waits.
    expect(settled).toBe(false);
    const lines: string[] = [];
    let carry = '';
    out.on('data', (d: Buffer) => {
      const parts = (carry + d.toString()).split('\n');
      carry = parts.pop() ?? '';
      lines.push(...parts);
    });
    await writing;
    const batches = lines.map((l) => JSON.parse(l) as { rows: string[][] });
    expect(batches.reduce((n, b) => n + b.rows.length, 0)).toBe(200);
    for (const l of lines) expect(l.length).toBeLessThan(ROW_BATCH_BYTES + 2 * value.length);
    expect(batches.length).toBeGreaterThan(2);
  });
});
