// The records and errors of the review service, apart from its in-memory machinery, so a
// store-backed implementation and the HTTP routes share them without importing each other.
import type { ErrorCode } from '../../src/api/contract.js';
import type { ReviewParameter } from './parameters.js';

/** A review is pending until it is approved, rejected, expires, or its client goes away. */
export type ReviewStatus = 'pending' | 'approved' | 'rejected' | 'expired' | 'cancelled';

/** A person or service token as a review names them (never their groups or credentials). */
export interface ReviewParty {
  /** The stable identifier: the token's `sub`, or `token:<name>`. Self-approval is judged on it. */
  readonly subject: string;
  /** The email, else the token name: what people see and what the audit trail's `by` holds. */
  readonly name: string;
  readonly email?: string;
}

/** One held action and what became of it. */
export interface ReviewRecord {
  /** `R-` and four characters of REVIEW_ID_ALPHABET, e.g. `R-8F3K`. */
  readonly id: string;
  readonly status: ReviewStatus;
  /** The audit session the statement belongs to (`sluice sessions show` it). */
  readonly session: string;
  readonly requester: ReviewParty;
  readonly connection: string;
  /** The action exactly as it is carried out if approved (a statement, a command line). */
  readonly action: string;
  /** What kind of action (ReviewRequest.kind): `sql` for a statement. */
  readonly kind: string;
  /** A Bind's parameter values: approving releases that Bind, with exactly these values. */
  readonly parameters?: readonly ReviewParameter[];
  /** How many further parameters were not kept (parameters.ts caps the list). */
  readonly parametersOmitted?: number;
  /** The policy rule that asked for the review, and its explanation. */
  readonly rule: string;
  readonly reason?: string;
  /** Groups whose members may decide. */
  readonly approvers: readonly string[];
  readonly createdAt: Date;
  /** When a pending review expires (and the statement fails with 57014). */
  readonly expiresAt: Date;
  /** When it stopped being pending, for whatever reason. */
  readonly endedAt?: Date;
  /** Who approved or rejected it (absent when it expired or was cancelled). */
  readonly decidedBy?: ReviewParty;
  /** The approver's note; for a rejection, the reason the client is told. */
  readonly decisionReason?: string;
  /**
   * Held for an exec that did not wait (`--no-wait`): no session waits on it, so its session's end
   * does not cancel it, and once approved it is run by a later exec naming it (`consume`).
   */
  readonly detached?: true;
  /** When an exec ran the approved input (it runs once). */
  readonly ranAt?: Date;
}

/** What `consume` found: an approved review is marked as run; any other status is reported. */
export type Consumption =
  | { readonly status: 'approved'; readonly record: ReviewRecord }
  | { readonly status: 'pending' | 'rejected' | 'expired'; readonly record: ReviewRecord };

/** What an approver asks for. A rejection's reason is mandatory: the client is told it. */
export interface Decision {
  readonly approve: boolean;
  readonly reason?: string;
}

/** A refused read or decision, with the HTTP status and contract code the API answers with. */
export class ReviewError extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 409,
    readonly code: Extract<ErrorCode, 'bad_request' | 'forbidden' | 'not_found' | 'conflict'>,
    message: string,
  ) {
    super(message);
    this.name = 'ReviewError';
  }
}

/** A sentence saying how a review ended, for 409 messages and the CLI. */
export function describeEnd(r: ReviewRecord): string {
  const at = r.endedAt ? ` at ${r.endedAt.toISOString()}` : '';
  switch (r.status) {
    case 'approved':
      return `it was already approved by ${r.decidedBy?.name ?? 'someone'}${at}`;
    case 'rejected':
      return `it was already rejected by ${r.decidedBy?.name ?? 'someone'}${at}`;
    case 'expired':
      return `it expired without a decision${at}`;
    case 'cancelled':
      return `it was cancelled${at} (the client went away or the gateway stopped)`;
    case 'pending':
      return 'it is still pending';
  }
}
