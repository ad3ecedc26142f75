// The `Reviews` an exec session's engine gets. The engine still asks for every hold it makes; the
// answer depends on the exec: an input already approved (in this exec, or by `review: ID`) has
// each hold answered at once with that approval (the audit records it under the approved review's
// id); otherwise a hold the pre-check did not foresee waits like a tunnel client's (wait) or is
// cancelled at once (no wait), and the runner is told which, to report it.
import type { ReviewOutcome, ReviewRequest, Reviews } from '../reviews/contract.js';

export interface Approval {
  readonly id: string;
  /** Who approved (name as the audit trail's `by` holds it). */
  readonly by: string;
  readonly reason?: string;
}

export interface HoldObserver {
  /** A statement is held for review `id` (only when the exec waits). */
  created(id: string, req: ReviewRequest): void;
  settled(id: string, outcome: ReviewOutcome): void;
}

export interface ExecReviews extends Reviews {
  /** The outcome of the last hold the engine asked for, and whether it was cancelled for not waiting. */
  readonly last: { readonly id: string; readonly outcome?: ReviewOutcome; readonly unforeseen: boolean; readonly rule: string } | undefined;
}

export function execReviews(base: Reviews, opts: { readonly approval?: Approval; readonly wait: boolean; readonly observer: HoldObserver }): ExecReviews {
  let last: ExecReviews['last'];
  return {
    get last() {
      return last;
    },
    request(req, signal) {
      const approval = opts.approval;
      if (approval !== undefined) {
        const outcome: ReviewOutcome = { status: 'approved', by: approval.by, ...(approval.reason !== undefined ? { reason: approval.reason } : {}) };
        last = { id: approval.id, outcome, unforeseen: false, rule: req.rule };
        return { id: approval.id, outcome: Promise.resolve(outcome) };
      }
      if (!opts.wait) {
        // Nobody will wait: the hold is created (so the trail shows it) and cancelled at once.
        const abort = new AbortController();
        const r = base.request(req, abort.signal);
        abort.abort();
        last = { id: r.id, unforeseen: true, rule: req.rule };
        return r;
      }
      const r = base.request(req, signal);
      const entry = { id: r.id, unforeseen: false, rule: req.rule };
      last = entry;
      opts.observer.created(r.id, req);
      void r.outcome.then((outcome) => {
        if (last?.id === r.id) last = { ...entry, outcome };
        opts.observer.settled(r.id, outcome);
      });
      return r;
    },
  };
}
