// The in-memory review service: ids, expiry with fake time, who may see and decide, self-approval
// refused, one decision only, cancellation by the client and by shutdown, retention of ended ones.
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Identity } from '../../../gateway/model.js';
import type { ReviewRequest } from '../../../gateway/reviews/contract.js';
import { createReviewService, normalizeReviewId, REVIEW_ID_ALPHABET, ReviewError, type ReviewEvent, type ReviewService } from '../../../gateway/reviews/service.js';

const log = pino({ level: 'silent' });
const ALICE: Identity = { subject: 'sub-alice', name: 'alice@example.com', email: 'alice@example.com', groups: ['eng', 'dba'], kind: 'human' };
const BOB: Identity = { subject: 'sub-bob', name: 'bob@example.com', email: 'bob@example.com', groups: ['sales'], kind: 'human' };
const DBA: Identity = { subject: 'token:oncall', name: 'oncall', groups: ['dba'], kind: 'service' };
const AUDITOR: Identity = { subject: 'sub-audit', name: 'audit@example.com', groups: ['audit'], kind: 'human' };
const REQ: ReviewRequest = { action: "insert into t values (1, 'x')", kind: 'sql', rule: 'writes-need-review', approvers: ['dba'], timeoutMs: 10_000, reason: 'held for review by rule writes-need-review: statement insert' };

let svc: ReviewService;
let events: ReviewEvent[];
beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-11-28T10:00:00Z') });
  events = [];
  svc = createReviewService({ log, readers: ['audit'], onEvent: (e) => events.push(e) });
});
afterEach(() => {
  svc.close();
  vi.useRealTimers();
});

const asAlice = (id = 's_1') => svc.forSession({ sessionId: id, identity: ALICE, connection: 'pg-prod' });
const refusal = async (p: Promise<unknown>): Promise<ReviewError> => {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ReviewError);
  return err as ReviewError;
};

describe('review ids', () => {
  it('are R- and four unambiguous characters, unique among many', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 2000; i++) ids.add(asAlice().request(REQ, new AbortController().signal).id);
    expect(ids.size).toBe(2000);
    for (const id of ids) expect(id).toMatch(new RegExp(`^R-[${REVIEW_ID_ALPHABET}]{4}$`));
    expect(REVIEW_ID_ALPHABET).not.toMatch(/[01ILOU]/);
  });

  it('are accepted as people type them', async () => {
    const { id } = asAlice().request(REQ, new AbortController().signal);
    expect(normalizeReviewId(id.toLowerCase())).toBe(id);
    expect(normalizeReviewId(` ${id.slice(2).toLowerCase()} `)).toBe(id);
    expect((await svc.get(id.toLowerCase(), DBA)).id).toBe(id);
  });
});

describe('a pending review', () => {
  it('records who asked, what, where, which rule and until when', async () => {
    const { id } = asAlice('s_42').request(REQ, new AbortController().signal);
    const r = await svc.get(id, DBA);
    expect(r).toMatchObject({
      id,
      status: 'pending',
      session: 's_42',
      connection: 'pg-prod',
      requester: { subject: 'sub-alice', name: 'alice@example.com', email: 'alice@example.com' },
      action: REQ.action,
      rule: 'writes-need-review',
      reason: REQ.reason,
      approvers: ['dba'],
    });
    expect(r.expiresAt.getTime() - r.createdAt.getTime()).toBe(10_000);
    expect(events.map((e) => e.event)).toEqual(['created']);
  });

  it('is seen by its requester, its approvers and audit readers only', async () => {
    const { id } = asAlice().request(REQ, new AbortController().signal);
    expect((await svc.list(ALICE)).map((r) => r.id)).toEqual([id]);
    expect((await svc.list(DBA)).map((r) => r.id)).toEqual([id]);
    expect((await svc.list(AUDITOR)).map((r) => r.id)).toEqual([id]);
    expect(await svc.list(BOB)).toEqual([]);
    const err = await refusal(svc.get(id, BOB));
    expect(err.status).toBe(403);
    expect(err.message).toContain('bob@example.com may not see review');
    expect((await refusal(svc.get('R-2222', DBA))).status).toBe(404);
  });
});

describe('deciding', () => {
  it('approval releases the statement with the approver and their note', async () => {
    const { id, outcome } = asAlice().request(REQ, new AbortController().signal);
    const r = await svc.decide(id, DBA, { approve: true, reason: ' looks fine ' });
    expect(await outcome).toEqual({ status: 'approved', by: 'oncall', reason: 'looks fine' });
    expect(r).toMatchObject({ status: 'approved', decidedBy: { subject: 'token:oncall', name: 'oncall' }, decisionReason: 'looks fine' });
    expect(r.endedAt).toEqual(new Date('2026-11-28T10:00:00Z'));
    expect(events.map((e) => e.event)).toEqual(['created', 'approved']);
  });

  it('rejection needs a reason, which the client is given', async () => {
    const { id, outcome } = asAlice().request(REQ, new AbortController().signal);
    const missing = await refusal(svc.decide(id, DBA, { approve: false, reason: '   ' }));
    expect([missing.status, missing.code]).toEqual([400, 'bad_request']);
    await svc.decide(id, DBA, { approve: false, reason: 'use the migration tool' });
    expect(await outcome).toEqual({ status: 'rejected', by: 'oncall', reason: 'use the migration tool' });
  });

  it('is refused on one\u2019s own request, even for a member of the approver group', async () => {
    const { id } = asAlice().request(REQ, new AbortController().signal);
    expect(svc.canDecide(await svc.get(id, ALICE), ALICE)).toBe(false);
    for (const approve of [true, false]) {
      const err = await refusal(svc.decide(id, ALICE, { approve, reason: 'mine' }));
      expect([err.status, err.code]).toEqual([403, 'forbidden']);
      expect(err.message).toMatch(/alice@example.com requested review R-\w{4} and may not (approve|reject) it: another member of dba must decide/);
    }
    expect((await svc.get(id, DBA)).status).toBe('pending');
  });

  it('is refused to anyone outside the approver groups, readers included', async () => {
    const { id } = asAlice().request(REQ, new AbortController().signal);
    for (const who of [BOB, AUDITOR]) {
      const err = await refusal(svc.decide(id, who, { approve: true }));
      expect(err.status).toBe(403);
      expect(err.message).toContain(`${who.name} may not approve review ${id}: it needs a member of dba`);
    }
    expect(svc.canDecide(await svc.get(id, DBA), DBA)).toBe(true);
  });

  it('happens once: a decided, expired or cancelled review answers 409', async () => {
    const a = asAlice().request(REQ, new AbortController().signal);
    await svc.decide(a.id, DBA, { approve: true });
    const again = await refusal(svc.decide(a.id, DBA, { approve: false, reason: 'changed my mind' }));
    expect([again.status, again.code]).toEqual([409, 'conflict']);
    expect(again.message).toContain('it was already approved by oncall');

    const b = asAlice().request(REQ, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(10_000);
    expect((await refusal(svc.decide(b.id, DBA, { approve: true }))).message).toContain('it expired without a decision');

    const abort = new AbortController();
    const c = asAlice().request(REQ, abort.signal);
    abort.abort();
    expect((await refusal(svc.decide(c.id, DBA, { approve: true }))).message).toContain('it was cancelled');
  });

  it('of an unknown id is 404', async () => {
    expect((await refusal(svc.decide('R-ZZZZ', DBA, { approve: true }))).status).toBe(404);
  });
});

describe('expiry and cancellation', () => {
  it('expires exactly at the timeout, not before', async () => {
    const { id, outcome } = asAlice().request({ ...REQ, timeoutMs: 60_000 }, new AbortController().signal);
    let settled = false;
    void outcome.then(() => (settled = true));
    await vi.advanceTimersByTimeAsync(59_999);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await outcome).toEqual({ status: 'expired' });
    expect((await svc.get(id, DBA)).status).toBe('expired');
    expect(await svc.list(DBA)).toEqual([]);
  });

  it('a decision stops the expiry timer', async () => {
    const { id, outcome } = asAlice().request(REQ, new AbortController().signal);
    await svc.decide(id, DBA, { approve: true });
    await vi.advanceTimersByTimeAsync(60_000);
    expect((await outcome).status).toBe('approved');
    expect(events.map((e) => e.event)).toEqual(['created', 'approved']);
  });

  it('the client going away cancels it, even before it was created', async () => {
    const abort = new AbortController();
    const { outcome } = asAlice().request(REQ, abort.signal);
    abort.abort();
    expect(await outcome).toEqual({ status: 'cancelled' });
    const gone = new AbortController();
    gone.abort();
    expect(await asAlice().request(REQ, gone.signal).outcome).toEqual({ status: 'cancelled' });
  });

  it('shutting down cancels every pending review; later requests are cancelled at once', async () => {
    const a = asAlice().request(REQ, new AbortController().signal);
    const b = asAlice().request(REQ, new AbortController().signal);
    svc.close();
    expect(await Promise.all([a.outcome, b.outcome])).toEqual([{ status: 'cancelled' }, { status: 'cancelled' }]);
    expect(await asAlice().request(REQ, new AbortController().signal).outcome).toEqual({ status: 'cancelled' });
  });

  it('two reviews of one session are independent', async () => {
    const session = asAlice();
    const a = session.request(REQ, new AbortController().signal);
    const b = session.request({ ...REQ, action: 'delete from t where id = 1' }, new AbortController().signal);
    await svc.decide(b.id, DBA, { approve: false, reason: 'no' });
    expect((await b.outcome).status).toBe('rejected');
    expect((await svc.get(a.id, DBA)).status).toBe('pending');
  });
});

describe('ended reviews', () => {
  it('are listed with all=1 for a while, newest first, then forgotten', async () => {
    svc.close();
    svc = createReviewService({ log, keepEndedMs: 3_600_000, maxEnded: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { id } = asAlice().request(REQ, new AbortController().signal);
      await svc.decide(id, DBA, { approve: true });
      ids.push(id);
      await vi.advanceTimersByTimeAsync(1000);
    }
    const pending = asAlice().request(REQ, new AbortController().signal);
    expect((await svc.list(DBA)).map((r) => r.id)).toEqual([pending.id]);
    // At most two ended ones are kept: the oldest went first.
    expect((await svc.list(DBA, { all: true })).map((r) => r.id)).toEqual([pending.id, ids[2], ids[1]]);
    await vi.advanceTimersByTimeAsync(3_600_000);
    // The decided ones ended over an hour ago; the pending one expired 10 s after it was made.
    expect((await svc.list(DBA, { all: true })).map((r) => [r.id, r.status])).toEqual([[pending.id, 'expired']]);
    expect((await refusal(svc.get(ids[2] as string, DBA))).status).toBe(404);
  });
});
