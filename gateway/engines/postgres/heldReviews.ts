// Statements held for review: the request to the Reviews service, the NoticeResponse that tells
// the client at once, the audit's review events, and what the held statement becomes — forwarded
// unchanged when approved, refused (42501 rejected, 57014 expired or cancelled) otherwise. One
// statement is held at a time: the client flow reads nothing after it until it is settled.
import type { Decision } from '../../policy/index.js';
import type { PgSessionContext } from './context.js';
import { reviewParameters } from '../../reviews/parameters.js';
import { encodeNoticeResponse } from './codec/backend.js';
import type { BindParam } from './codec/frontend.js';
import type { Refusal } from './refusals.js';

/** Something to wait for before the next client message; settles to what to do then. */
export type Hold = () => Promise<(() => void) | undefined>;

/** What becomes of a held statement. */
export interface HeldStatement {
  readonly forward: () => void;
  readonly refuse: (r: Refusal) => void;
}

export class HeldReviews {
  /** The review being waited for, if any: a CancelRequest or the session's end aborts it. */
  private abort: AbortController | undefined;
  private cancelled = false;
  private closed = false;

  /**
   * @param notify sends the client a message at the next boundary of the target's stream.
   * @param recorded called when audit events were staged (the flow flushes before forwarding).
   */
  constructor(
    private readonly ctx: PgSessionContext,
    private readonly notify: (bytes: Buffer) => void,
    private readonly recorded: () => void,
  ) {}

  /** The client asked to cancel: true when a held statement was cancelled by it. */
  cancel(): boolean {
    if (this.abort === undefined || this.abort.signal.aborted) return false;
    this.cancelled = true;
    this.abort.abort();
    return true;
  }

  close(): void {
    this.closed = true;
    this.abort?.abort();
  }

  /** Holds the statement (and everything after it) until a reviewer decides. */
  hold(d: Decision, queryId: number, sql: string, how: HeldStatement, params?: readonly BindParam[]): Hold | undefined {
    const rule = d.rule ?? 'review';
    const reviews = this.ctx.reviews;
    if (reviews === undefined) {
      how.refuse({ sqlstate: '42501', message: `held for review by rule ${rule}, but this gateway has no review service: not executed` });
      return undefined;
    }
    const audit = this.ctx.audit;
    return async () => {
      const abort = (this.abort = new AbortController());
      if (this.closed) abort.abort();
      this.cancelled = false;
      let request;
      try {
        const parameters = params === undefined ? undefined : reviewParameters(params);
        request = reviews.request(
          { action: sql, kind: 'sql', rule, approvers: d.approvers ?? [], timeoutMs: d.timeoutMs ?? 600_000, ...(d.reason !== undefined ? { reason: d.reason } : {}), ...(parameters !== undefined ? { parameters } : {}) },
          abort.signal,
        );
      } catch (err) {
        this.ctx.log.error({ err }, 'review could not be requested');
        return () => how.refuse({ sqlstate: '42501', message: `held for review by rule ${rule}, but the review could not be created: not executed` });
      }
      const reviewId = request.id;
      audit.onReview?.({ queryId, event: 'created', reviewId });
      this.notify(encodeNoticeResponse({ severity: 'NOTICE', sqlstate: '00000', message: `query held for review ${reviewId} by rule ${rule}; an approver runs: sluice reviews approve ${reviewId}` }));
      const outcome = await request.outcome.catch(() => ({ status: 'cancelled' }) as const);
      this.abort = undefined;
      this.recorded();
      switch (outcome.status) {
        case 'approved':
          audit.onReview?.({ queryId, event: 'approved', reviewId, by: outcome.by, ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}) });
          return how.forward;
        case 'rejected':
          audit.onReview?.({ queryId, event: 'rejected', reviewId, by: outcome.by, reason: outcome.reason });
          return () => how.refuse({ sqlstate: '42501', message: `rejected in review ${reviewId} by ${outcome.by}: ${outcome.reason}` });
        case 'expired':
          audit.onReview?.({ queryId, event: 'expired', reviewId });
          return () => how.refuse({ sqlstate: '57014', message: `review ${reviewId} expired without a decision: not executed` });
        case 'cancelled':
          // PostgreSQL's own words for a cancelled statement, when the client cancelled it.
          return () => how.refuse({ sqlstate: '57014', message: this.cancelled ? 'canceling statement due to user request' : `review ${reviewId} was cancelled: not executed` });
      }
    };
  }
}
