// Held actions as the engines see them (implemented by reviews/service.ts): an engine whose
// policy says `review` asks here and waits for the outcome. Protocol-neutral: the action is text
// of a kind the engine names (postgres: `sql`; ssh: `exec`).
import type { ReviewParameters } from './parameters.js';

/** What a held action is waiting for; created by the engine when policy says `review`. */
export interface ReviewRequest {
  /** The action exactly as it will be carried out if approved (a statement, a command line). */
  readonly action: string;
  /** What kind of action: `sql` for a statement (the API then shows it as `sql` too), `exec` for a command line, … */
  readonly kind: string;
  readonly rule: string;
  /** Groups whose members may decide (never the requester themselves). */
  readonly approvers: readonly string[];
  readonly timeoutMs: number;
  readonly reason?: string;
  /** An extended-protocol statement's Bind values, as the reviewer is shown them (reviews/parameters.ts). */
  readonly parameters?: ReviewParameters;
}

export type ReviewOutcome =
  | { readonly status: 'approved'; readonly by: string; readonly reason?: string }
  | { readonly status: 'rejected'; readonly by: string; readonly reason: string }
  | { readonly status: 'expired' }
  /** The client went away (or the session ended) before a decision. */
  | { readonly status: 'cancelled' };

/** Per-action approval for one session. */
export interface Reviews {
  /**
   * Creates a pending review for this session's action and returns its id at once (for the
   * client's notice) with a promise of the outcome. Aborting `signal` cancels the review.
   */
  request(req: ReviewRequest, signal: AbortSignal): { readonly id: string; readonly outcome: Promise<ReviewOutcome> };
}
