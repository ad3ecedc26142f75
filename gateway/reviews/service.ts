// Per-query approval (docs/reviews.md). An engine holds a statement and asks its session's
// `Reviews.request`; people see and decide reviews through the API (routes.ts). This version keeps
// reviews in this process's memory, which is all one gateway replica needs. `ReviewService` is the
// seam for a store-backed version (rows in the store, PostgreSQL LISTEN/NOTIFY to wake the replica
// holding the statement), which is why its reading and deciding methods are asynchronous.
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { Identity } from '../model.js';
import type { ReviewOutcome, ReviewRequest, Reviews } from './contract.js';
import { describeEnd, ReviewError, type Consumption, type Decision, type ReviewParty, type ReviewRecord, type ReviewStatus } from './model.js';

export { ReviewError, type Consumption, type Decision, type ReviewParty, type ReviewRecord, type ReviewStatus } from './model.js';

/** What a review's life looked like at one step, for listeners (webhooks, a replicated store). */
export interface ReviewEvent {
  readonly event: Exclude<ReviewStatus, 'pending'> | 'created';
  readonly review: ReviewRecord;
}

export interface ReviewServiceOptions {
  readonly log: Logger;
  /** Groups whose members may read every review (the audit readers); they decide only as approvers. */
  readonly readers?: readonly string[];
  /** How long decided, expired and cancelled reviews stay listed by `?all=1` (default 24 h). */
  readonly keepEndedMs?: number;
  /** At most this many ended reviews are kept (oldest dropped first; default 1000). */
  readonly maxEnded?: number;
  readonly now?: () => Date;
  /** Called after each change; must not throw (errors are logged and ignored). */
  readonly onEvent?: (e: ReviewEvent) => void;
}

/** The session a `Reviews` handle belongs to: who is asking, through which connection. */
export interface ReviewSession {
  readonly sessionId: string;
  readonly identity: Identity;
  readonly connection: string;
}

/** The gateway's reviews: the engines' `Reviews` per session, plus what the API needs. */
export interface ReviewService {
  /** The `Reviews` an engine gets in its SessionContext. */
  forSession(session: ReviewSession): Reviews;
  /**
   * Reviews `who` may see, newest first: those they requested and those they may decide (audit
   * readers: all). Pending only, unless `all` (then also those ended within the retention window).
   */
  list(who: Identity, opts?: { readonly all?: boolean }): Promise<ReviewRecord[]>;
  /** One review; ReviewError 404 when no such id, 403 when `who` may not see it. */
  get(id: string, who: Identity): Promise<ReviewRecord>;
  /**
   * Approves or rejects a pending review and releases the held statement. ReviewError: 404 no such
   * review; 403 `who` requested it or is in none of its approver groups; 409 it is no longer
   * pending; 400 a rejection without a reason.
   */
  decide(id: string, who: Identity, decision: Decision): Promise<ReviewRecord>;
  /**
   * Creates a review no session waits on (an exec with `wait: false`): only a decision, its expiry
   * or the service's close end it. The outcome promise settles then, like a session's.
   */
  requestDetached(session: ReviewSession, req: ReviewRequest): { readonly id: string; readonly outcome: Promise<ReviewOutcome> };
  /**
   * Claims an approved review's input to run it once (an exec with `review: ID`), atomically: of
   * two racing callers one gets `approved`, the other a 409. ReviewError: 404 no such review; 403
   * `who` did not request it on `connection`; 409 it already ran, was cancelled, or `sql` is not
   * byte for byte what was reviewed. A pending, rejected or expired review is returned as such.
   */
  consume(id: string, who: Identity, connection: string, sql: string): Consumption;
  /** Whether `who` may decide `review` now (pending, not theirs, in an approver group). */
  canDecide(review: ReviewRecord, who: Identity): boolean;
  /** Cancels every pending review (their statements fail) and stops the timers. */
  close(): void;
}

/** Characters of review ids: no 0/O, 1/I/L or U, so an id read aloud or retyped is unambiguous. */
export const REVIEW_ID_ALPHABET = '23456789ABCDEFGHJKMNPQRSTVWXYZ';
const ID_LENGTH = 4;
/** Node's timers overflow past 2^31-1 ms (~24.8 days); the policy caps timeouts at 7 days anyway. */
const MAX_TIMEOUT_MS = 2_147_483_647;
export const MAX_REASON_LENGTH = 1000;

/** Accepts `r-8f3k`, `R-8F3K` or `8f3k` as typed by a person; returns the canonical `R-8F3K`. */
export function normalizeReviewId(text: string): string {
  const t = text.trim().toUpperCase();
  return t.startsWith('R-') ? t : `R-${t}`;
}

interface Pending {
  record: ReviewRecord;
  timer: ReturnType<typeof setTimeout>;
  resolve: (o: ReviewOutcome) => void;
  detach: () => void;
}

export function createReviewService(opts: ReviewServiceOptions): ReviewService {
  const now = opts.now ?? (() => new Date());
  const log = opts.log.child({ component: 'reviews' });
  const keepEndedMs = opts.keepEndedMs ?? 86_400_000;
  const maxEnded = opts.maxEnded ?? 1000;
  const readers = opts.readers ?? [];
  const pending = new Map<string, Pending>();
  // Insertion order is end order, so pruning drops from the front.
  const ended = new Map<string, ReviewRecord>();
  let closed = false;

  const emit = (event: ReviewEvent['event'], review: ReviewRecord) => {
    try {
      opts.onEvent?.({ event, review });
    } catch (err) {
      log.error({ err, review: review.id }, 'a review listener failed');
    }
  };

  const prune = () => {
    const cutoff = now().getTime() - keepEndedMs;
    for (const [id, r] of ended) {
      if (ended.size > maxEnded || (r.endedAt as Date).getTime() < cutoff) ended.delete(id);
      else break;
    }
  };

  const newId = (): string => {
    for (;;) {
      let s = 'R-';
      for (let i = 0; i < ID_LENGTH; i++) s += REVIEW_ID_ALPHABET[randomInt(REVIEW_ID_ALPHABET.length)];
      // Unique among the reviews anyone can still name; 30^4 ids leave plenty of room.
      if (!pending.has(s) && !ended.has(s)) return s;
    }
  };

  /** Moves a pending review to its end state and wakes the statement waiting on it. */
  const finish = (p: Pending, change: Partial<ReviewRecord> & { status: Exclude<ReviewStatus, 'pending'> }, outcome: ReviewOutcome): ReviewRecord => {
    clearTimeout(p.timer);
    p.detach();
    pending.delete(p.record.id);
    const record: ReviewRecord = { ...p.record, ...change, endedAt: now() };
    ended.set(record.id, record);
    prune();
    p.resolve(outcome);
    emit(change.status, record);
    return record;
  };

  const isReader = (who: Identity) => readers.some((g) => who.groups.includes(g));
  const inApprovers = (r: ReviewRecord, who: Identity) => r.approvers.some((g) => who.groups.includes(g));
  const visible = (r: ReviewRecord, who: Identity) => r.requester.subject === who.subject || inApprovers(r, who) || isReader(who);
  const find = (id: string): { record: ReviewRecord; live?: Pending } | undefined => {
    const key = normalizeReviewId(id);
    const live = pending.get(key);
    if (live) return { record: live.record, live };
    const record = ended.get(key);
    return record ? { record } : undefined;
  };

  function request(session: ReviewSession, req: ReviewRequest, signal: AbortSignal, detached = false): { id: string; outcome: Promise<ReviewOutcome> } {
    const id = newId();
    const created = now();
    const timeoutMs = Math.min(Math.max(req.timeoutMs, 0), MAX_TIMEOUT_MS);
    const who = session.identity;
    const record: ReviewRecord = {
      id,
      status: 'pending',
      session: session.sessionId,
      requester: { subject: who.subject, name: who.name, ...(who.email ? { email: who.email } : {}) },
      connection: session.connection,
      action: req.action,
      kind: req.kind,
      ...(req.parameters !== undefined ? { parameters: req.parameters.parameters } : {}),
      ...(req.parameters?.parametersOmitted !== undefined ? { parametersOmitted: req.parameters.parametersOmitted } : {}),
      rule: req.rule,
      ...(req.reason ? { reason: req.reason } : {}),
      approvers: [...req.approvers],
      createdAt: created,
      expiresAt: new Date(created.getTime() + timeoutMs),
      ...(detached ? { detached: true as const } : {}),
    };
    let resolve!: (o: ReviewOutcome) => void;
    const outcome = new Promise<ReviewOutcome>((r) => (resolve = r));
    const onAbort = () => {
      const p = pending.get(id);
      if (!p) return;
      finish(p, { status: 'cancelled' }, { status: 'cancelled' });
      log.info({ review: id, session: session.sessionId }, 'review cancelled: the client went away before a decision');
    };
    const p: Pending = {
      record,
      resolve,
      detach: () => signal.removeEventListener('abort', onAbort),
      timer: setTimeout(() => {
        const live = pending.get(id);
        if (!live) return;
        finish(live, { status: 'expired' }, { status: 'expired' });
        log.info({ review: id, session: session.sessionId, rule: req.rule }, 'review expired without a decision');
      }, timeoutMs),
    };
    // The timer must not keep a stopping gateway alive; close() settles what is left.
    p.timer.unref?.();
    pending.set(id, p);
    log.info(
      { review: id, session: session.sessionId, connection: session.connection, requester: who.name, rule: req.rule, approvers: req.approvers, expiresAt: record.expiresAt.toISOString() },
      'statement held for review',
    );
    emit('created', record);
    if (closed || signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    return { id, outcome };
  }

  const service: ReviewService = {
    forSession: (session) => ({ request: (req, signal) => request(session, req, signal) }),

    // A signal nobody aborts: the review outlives the session that asked for it.
    requestDetached: (session, req) => request(session, req, new AbortController().signal, true),

    consume(id, who, connection, sql) {
      const key = normalizeReviewId(id);
      const found = find(key);
      if (!found) throw new ReviewError(404, 'not_found', `no review ${key} (reviews are kept ${Math.round(keepEndedMs / 3_600_000)} h after they end)`);
      const r = found.record;
      if (r.requester.subject !== who.subject || r.connection !== connection) {
        throw new ReviewError(403, 'forbidden', `review ${r.id} was not requested by ${who.name} on connection "${connection}": only its requester may run it, on its connection`);
      }
      if (r.status === 'pending' || r.status === 'rejected' || r.status === 'expired') return { status: r.status, record: r };
      if (r.status === 'cancelled') throw new ReviewError(409, 'conflict', `review ${r.id} cannot run: ${describeEnd(r)}; run the input without --review to ask for a new review`);
      if (r.ranAt !== undefined) throw new ReviewError(409, 'conflict', `review ${r.id} has already run (at ${r.ranAt.toISOString()}); run the input without --review to ask for a new review`);
      if (r.action !== sql) throw new ReviewError(409, 'conflict', `the input differs from what review ${r.id} approved; run it without --review to ask for a new review`);
      // Synchronous from the check to here: a second caller sees ranAt.
      const ran: ReviewRecord = { ...r, ranAt: now() };
      ended.set(r.id, ran);
      log.info({ review: r.id, session: r.session, requester: who.name }, 'approved input claimed to run');
      return { status: 'approved', record: ran };
    },

    async list(who, { all = false } = {}) {
      prune();
      const rows = [...pending.values()].map((p) => p.record);
      if (all) rows.push(...ended.values());
      return rows.filter((r) => visible(r, who)).sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
    },

    async get(id, who) {
      prune();
      const found = find(id);
      if (!found) throw new ReviewError(404, 'not_found', `no review ${normalizeReviewId(id)} (reviews are kept ${Math.round(keepEndedMs / 3_600_000)} h after they end)`);
      if (!visible(found.record, who)) {
        throw new ReviewError(403, 'forbidden', `${who.name} may not see review ${found.record.id}: only its requester, members of ${found.record.approvers.join(', ')} and audit readers may`);
      }
      return found.record;
    },

    async decide(id, who, decision) {
      const found = find(id);
      if (!found) throw new ReviewError(404, 'not_found', `no review ${normalizeReviewId(id)}`);
      const r = found.record;
      const verb = decision.approve ? 'approve' : 'reject';
      const refuse = (status: 403 | 409 | 400, code: 'forbidden' | 'conflict' | 'bad_request', message: string): never => {
        log.warn({ review: r.id, who: who.name, subject: who.subject, decision: verb }, 'review decision refused: %s', message);
        throw new ReviewError(status, code, message);
      };
      if (r.requester.subject === who.subject) {
        refuse(403, 'forbidden', `${who.name} requested review ${r.id} and may not ${verb} it: another member of ${r.approvers.join(', ')} must decide (to withdraw the statement, cancel it in your client (Ctrl-C in psql) or close the connection)`);
      }
      if (!inApprovers(r, who)) {
        refuse(403, 'forbidden', `${who.name} may not ${verb} review ${r.id}: it needs a member of ${r.approvers.join(', ')} (you are in ${who.groups.join(', ') || 'no groups'})`);
      }
      if (!found.live) refuse(409, 'conflict', `review ${r.id} cannot be decided: ${describeEnd(r)}`);
      const reason = decision.reason?.trim();
      if (!decision.approve && !reason) refuse(400, 'bad_request', `rejecting review ${r.id} needs a reason (it is sent to the client)`);
      if (reason && reason.length > MAX_REASON_LENGTH) refuse(400, 'bad_request', `the reason is longer than ${MAX_REASON_LENGTH} characters`);
      const by: ReviewParty = { subject: who.subject, name: who.name, ...(who.email ? { email: who.email } : {}) };
      const live = found.live as Pending;
      const record = decision.approve
        ? finish(live, { status: 'approved', decidedBy: by, ...(reason ? { decisionReason: reason } : {}) }, { status: 'approved', by: who.name, ...(reason ? { reason } : {}) })
        : finish(live, { status: 'rejected', decidedBy: by, decisionReason: reason as string }, { status: 'rejected', by: who.name, reason: reason as string });
      log.info({ review: r.id, session: r.session, rule: r.rule, requester: r.requester.name, by: who.name, subject: who.subject, decision: record.status, reason }, `review ${record.status}`);
      return record;
    },

    canDecide: (r, who) => r.status === 'pending' && r.requester.subject !== who.subject && inApprovers(r, who),

    close() {
      closed = true;
      for (const p of [...pending.values()]) finish(p, { status: 'cancelled' }, { status: 'cancelled' });
    },
  };
  return service;
}
