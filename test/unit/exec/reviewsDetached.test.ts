// Reviews for exec: a detached review outlives the session that asked for it, and an approved
// input is claimed to run exactly once, by its requester, on its connection, byte for byte.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../gateway/model.js';
import { createReviewService, ReviewError } from '../../../gateway/reviews/service.js';

const ALICE: Identity = { subject: 'sub-alice', name: 'alice@example.com', groups: ['eng'], kind: 'human' };
const BOB: Identity = { subject: 'sub-bob', name: 'bob@example.com', groups: ['eng'], kind: 'human' };
const DBA: Identity = { subject: 'sub-dba', name: 'dba@example.com', groups: ['dba'], kind: 'human' };
const SQL = 'update payments set amount = 1 where id = 1';
const session = { sessionId: 's_1', identity: ALICE, connection: 'shop' };
const req = { action: SQL, kind: 'sql', rule: 'payments-review', approvers: ['dba'], timeoutMs: 60_000 };

function service() {
  return createReviewService({ log: pino({ level: 'silent' }) });
}

async function refusal(fn: () => unknown): Promise<ReviewError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof ReviewError) return err;
    throw err;
  }
  throw new Error('expected a ReviewError');
}

describe('detached reviews', () => {
  it('stay pending when the session that asked ends, and can be decided later', async () => {
    const reviews = service();
    const held = reviews.requestDetached(session, req);
    const r = await reviews.get(held.id, ALICE);
    expect([r.status, r.detached]).toEqual(['pending', true]);
    // A session's review is cancelled with its signal; a detached one has none to abort.
    const attached = new AbortController();
    const other = reviews.forSession(session).request(req, attached.signal);
    attached.abort();
    expect((await other.outcome).status).toBe('cancelled');
    expect((await reviews.get(held.id, ALICE)).status).toBe('pending');
    await reviews.decide(held.id, DBA, { approve: true });
    await expect(held.outcome).resolves.toMatchObject({ status: 'approved', by: DBA.name });
    reviews.close();
  });

  it('expire like any review', async () => {
    const reviews = service();
    const held = reviews.requestDetached(session, { ...req, timeoutMs: 5 });
    await expect(held.outcome).resolves.toEqual({ status: 'expired' });
    expect(reviews.consume(held.id, ALICE, 'shop', SQL).status).toBe('expired');
    reviews.close();
  });
});

describe('consume', () => {
  it('runs an approved input once', async () => {
    const reviews = service();
    const held = reviews.requestDetached(session, req);
    expect(reviews.consume(held.id, ALICE, 'shop', SQL).status).toBe('pending');
    await reviews.decide(held.id, DBA, { approve: true, reason: 'ok' });
    const first = reviews.consume(held.id.toLowerCase(), ALICE, 'shop', SQL);
    expect(first.status).toBe('approved');
    expect(first.record.ranAt).toBeInstanceOf(Date);
    const again = await refusal(() => reviews.consume(held.id, ALICE, 'shop', SQL));
    expect([again.status, again.code, again.message]).toEqual([409, 'conflict', expect.stringContaining(`review ${held.id} has already run`)]);
    reviews.close();
  });

  it('of two racing claims, exactly one runs', async () => {
    const reviews = service();
    const held = reviews.requestDetached(session, req);
    await reviews.decide(held.id, DBA, { approve: true });
    const results = await Promise.allSettled([0, 1].map(async () => reviews.consume(held.id, ALICE, 'shop', SQL)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    reviews.close();
  });

  it('refuses another input, another requester, another connection, an unknown id', async () => {
    const reviews = service();
    const held = reviews.requestDetached(session, req);
    await reviews.decide(held.id, DBA, { approve: true });
    const changed = await refusal(() => reviews.consume(held.id, ALICE, 'shop', `${SQL} `));
    expect([changed.status, changed.message]).toEqual([409, `the input differs from what review ${held.id} approved; run it without --review to ask for a new review`]);
    expect((await refusal(() => reviews.consume(held.id, BOB, 'shop', SQL))).status).toBe(403);
    expect((await refusal(() => reviews.consume(held.id, ALICE, 'other', SQL))).status).toBe(403);
    expect((await refusal(() => reviews.consume('R-2222', ALICE, 'shop', SQL))).status).toBe(404);
    // None of the refusals used it up.
    expect(reviews.consume(held.id, ALICE, 'shop', SQL).status).toBe('approved');
    reviews.close();
  });

  it('reports a rejection', async () => {
    const reviews = service();
    const held = reviews.requestDetached(session, req);
    await reviews.decide(held.id, DBA, { approve: false, reason: 'not today' });
    const r = reviews.consume(held.id, ALICE, 'shop', SQL);
    expect([r.status, r.record.decisionReason]).toEqual(['rejected', 'not today']);
    reviews.close();
  });
});
