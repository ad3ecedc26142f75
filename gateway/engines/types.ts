// The contract between the gateway core and its protocol engines (see docs/architecture.md).
// Engines receive an upgraded client stream plus this context and never touch HTTP, auth or
// the store directly: they report through `audit` and (later) ask `policy`.
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { CompiledPolicy } from '../policy/schema.js';
import type { ReviewParameters } from '../reviews/parameters.js';
import type { SessionInfo } from '../model.js';

/**
 * Thrown by `SessionAudit.onQuery` / `onDecision` (and the rejection of `flush()`) when the audit
 * trail cannot record the statement: the store is failing. The statement must not be forwarded;
 * tell the client with an ErrorResponse carrying `sqlstate` (58030, io_error) and `message`.
 */
export class AuditUnavailableError extends Error {
  readonly code = 'audit_unavailable';
  readonly sqlstate = '58030';
  constructor(message = 'the gateway cannot record this statement in its audit trail (the audit store is unavailable); it was not executed', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuditUnavailableError';
  }
}

/**
 * What a statement's result was (SessionAudit.onResult). The engine may hand over its own record
 * of the statement; it does not change it afterwards, so the audit may keep it until it builds the event.
 */
export interface ResultInfo {
  queryId: number;
  status: 'ok' | 'error';
  /** CommandComplete tags, e.g. `SELECT 3`. */
  commands?: readonly string[] | undefined;
  rows?: number | undefined;
  sqlstate?: string | undefined;
  message?: string | undefined;
  durationMs: number;
  /** Total bytes of the result's rows as sent to the client (the audit keeps a capped sample). */
  bytes?: number | undefined;
  /** Columns whose values masking changed. */
  masked?: readonly string[] | undefined;
}

/**
 * The audit hooks for one session. Write-ahead: when `onQuery` (and `onDecision`) return, the
 * event is durably committed, unless the engine passed `deferCommit: true` — then it must await
 * `flush()` before forwarding the statement. Only `onQuery`, `onDecision` and `flush()` fail, and
 * only with AuditUnavailableError (fail closed); the other hooks never throw into the engine.
 */
export interface SessionAudit {
  /** Called once the client's startup is accepted (not for CancelRequest connections). */
  onSessionStart(info: { database: string; clientUser: string; clientApplication?: string }): void;
  /** A statement the client sent; returns an id to pair with its result. */
  onQuery(query: {
    text: string;
    params?: readonly (string | null)[];
    protocol: 'simple' | 'extended';
    /** Statement kinds from the parser, e.g. `['SELECT']` (optional). */
    kinds?: readonly string[];
    /** Stage the event and return at once; the engine awaits `flush()` before forwarding. */
    deferCommit?: boolean;
  }): number;
  onResult(result: ResultInfo): void;
  onSessionEnd(end: { status: 'ok' | 'error'; sqlstate?: string; message?: string; bytesFromClient: number; bytesToClient: number }): void;
  /** Policy's verdict for a statement, before it is forwarded (or refused). Write-ahead like onQuery. */
  onDecision?(decision: { queryId: number; verdict: 'allow' | 'block' | 'review'; rule?: string; reason?: string; deferCommit?: boolean }): void;
  /** A review's life: created when the statement is held, then approved, rejected or expired. */
  onReview?(review: { queryId: number; event: 'created' | 'approved' | 'rejected' | 'expired'; reviewId: string; by?: string; reason?: string }): void;
  /** The columns of a statement's result (RowDescription), before its rows. */
  onColumns?(queryId: number, columns: readonly { name: string; typeOid?: number }[]): void;
  /**
   * One result row as the client receives it (after masking; NULL as null). Returns false once the
   * audit has its sample (caps `audit.maxRows` / `maxBytes`): the engine may stop calling it for
   * that statement and only count rows and bytes for `onResult`. The array is the audit's to
   * keep: the engine builds one per call and never touches it again.
   */
  onRow?(queryId: number, values: (string | null)[]): boolean;
  /**
   * Resolves when every event this session recorded so far is durably committed; rejects with
   * AuditUnavailableError if the store cannot write. Returns undefined when nothing is pending,
   * so the common case costs no await.
   */
  flush?(): Promise<void> | undefined;
}

/** What a held statement is waiting for; created by the engine when policy says `review`. */
export interface ReviewRequest {
  /** The statement text exactly as it will be forwarded if approved. */
  readonly sql: string;
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

/** Per-query approval, as the engines see it (implemented in gateway/reviews/). */
export interface Reviews {
  /**
   * Creates a pending review for this session's statement and returns its id at once (for the
   * client's NoticeResponse) with a promise of the outcome. Aborting `signal` cancels the review.
   */
  request(req: ReviewRequest, signal: AbortSignal): { readonly id: string; readonly outcome: Promise<ReviewOutcome> };
}

export interface SessionContext extends SessionInfo {
  readonly audit: SessionAudit;
  readonly log: Logger;
  /** How long to wait for the target to accept and authenticate before failing the session. */
  readonly connectTimeoutMs: number;
  /**
   * Largest single client message the engine will buffer, in bytes: statement text and data
   * (`messageBytes`) and parameter values (`bindBytes`); absent: the engine's defaults.
   */
  readonly limits?: { readonly messageBytes: number; readonly bindBytes: number };
  /** The stream was opened to carry one CancelRequest (past the session limit): refuse anything else. */
  readonly cancelOnly?: boolean;
  /** The connection's compiled policy (absent: everything is allowed and nothing is masked). */
  readonly policy?: CompiledPolicy;
  /** Where held statements wait for an approver (absent: a `review` verdict blocks). */
  readonly reviews?: Reviews;
}

export interface Engine {
  /** Takes over the upgraded client stream for one session; resolves when both sides are closed. */
  handle(client: Duplex, session: SessionContext, signal: AbortSignal): Promise<void>;
}

/**
 * Why the gateway ended a session itself (a revoked credential, …), passed as the reason of the
 * session's AbortSignal: the engine tells the client with this SQLSTATE and message, and the audit
 * records them as the session's end. An abort without one is the gateway shutting down.
 */
export class SessionTermination extends Error {
  constructor(
    readonly sqlstate: string,
    message: string,
  ) {
    super(message);
    this.name = 'SessionTermination';
  }
}
