// What every engine reports to the audit trail, whatever its protocol: a session's start and end,
// each action the client asks for (a SQL statement, an ssh exec, …) with the policy's verdict,
// its review and its outcome, the bytes either way, and the engine's own event kinds (postgres:
// result columns and rows, audit/postgresEvents.ts; ssh: terminal output, sftp operations). The
// hash chain, signing, caps and fail-closed write-ahead live behind this interface
// (audit/recorder.ts); an engine never writes events itself.

/**
 * Thrown by `onAction` / `onDecision` (and the rejection of `flush()`) when the audit trail cannot
 * record the action: the store is failing. The action must not be carried out; the engine tells
 * the client in its own protocol (postgres: SQLSTATE 58030 io_error) with `message`.
 */
export class AuditUnavailableError extends Error {
  readonly code = 'audit_unavailable';
  /** `store`: the store cannot write; `ended`: the session was already sealed. Engines word their message by it. */
  readonly reason: 'store' | 'ended';
  constructor(message?: string, options?: { cause?: unknown; reason?: 'store' | 'ended' }) {
    const reason = options?.reason ?? 'store';
    super(message ?? (reason === 'ended' ? 'the session has ended; the action was not carried out' : 'the gateway cannot record this action in its audit trail (the audit store is unavailable); it was not carried out'), options);
    this.name = 'AuditUnavailableError';
    this.reason = reason;
  }
}

export type Verdict = 'allow' | 'block' | 'review';

export interface SessionStartInfo {
  /** What the session reached on its connection, as the engine names it (postgres: the database; ssh: the target user and host). */
  readonly target: string;
  /** The user the client asked to be (postgres: the startup's `user`). */
  readonly clientUser?: string;
  /** The client program, when the protocol tells (postgres: `application_name`). */
  readonly clientApplication?: string;
  /** Session settings the client gave at startup and the engine passed on (postgres: `statement_timeout`, …). */
  readonly clientSettings?: Readonly<Record<string, string>>;
}

export interface SessionEndInfo {
  readonly status: 'ok' | 'error';
  /** The protocol's own code for the error, if it has one (postgres: the SQLSTATE). */
  readonly code?: string;
  readonly message?: string;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
}

/** An action the client asked for, before it is carried out. */
export interface ActionInfo {
  /** What kind of action (ssh: `exec`, `shell`, `subsystem`, `forward`; postgres reports statements with onQuery). */
  readonly kind: string;
  /** The action as it will be carried out, e.g. the command line `uptime`. */
  readonly text: string;
  /** Stage the event and return at once; the engine awaits `flush()` before carrying it out. */
  readonly deferCommit?: boolean;
}

export interface DecisionInfo {
  /** The id onAction (or onQuery) returned. */
  readonly queryId: number;
  readonly verdict: Verdict;
  readonly rule?: string;
  readonly reason?: string;
  readonly deferCommit?: boolean;
}

export interface ReviewEventInfo {
  readonly queryId: number;
  readonly event: 'created' | 'approved' | 'rejected' | 'expired';
  readonly reviewId: string;
  readonly by?: string;
  readonly reason?: string;
}

/** How an action ended (for a statement: onResult, which adds its rows). */
export interface OutcomeInfo {
  readonly queryId: number;
  readonly status: 'ok' | 'error';
  /** The protocol's own result code (ssh: the exit status as text, or the signal). */
  readonly code?: string;
  readonly message?: string;
  readonly durationMs: number;
  /** Bytes the action sent to the client. */
  readonly bytes?: number;
}

/**
 * The audit hooks for one session, as every engine sees them. Write-ahead: when `onAction` (and
 * `onDecision`) return, the event is durably committed, unless the engine passed `deferCommit:
 * true` — then it must await `flush()` before carrying the action out. Only `onAction`,
 * `onDecision` and `flush()` fail, and only with AuditUnavailableError (fail closed); the other
 * hooks never throw into the engine.
 */
export interface SessionAudit {
  /** Called once the client's session is accepted. */
  onSessionStart(info: SessionStartInfo): void;
  /** An action the client asked for; returns an id to pair with its decision and outcome. */
  onAction(action: ActionInfo): number;
  /** Policy's verdict for an action, before it is carried out (or refused). Write-ahead like onAction. */
  onDecision(decision: DecisionInfo): void;
  /** A review's life: created when the action is held, then approved, rejected or expired. */
  onReview(review: ReviewEventInfo): void;
  onOutcome(outcome: OutcomeInfo): void;
  /**
   * One of the engine's own events (kind named by the protocol, e.g. `ssh.output`), in the
   * session's chain in the order reported. `data` must be canonical-JSON-able (plain objects,
   * arrays, strings, finite numbers, booleans, null). Never throws: a store failure shows on the
   * next onAction / flush.
   */
  onEvent(kind: string, data: Record<string, unknown>): void;
  onSessionEnd(end: SessionEndInfo): void;
  /**
   * Resolves when every event this session recorded so far is durably committed; rejects with
   * AuditUnavailableError if the store cannot write. Returns undefined when nothing is pending,
   * so the common case costs no await.
   */
  flush(): Promise<void> | undefined;
  /**
   * flush() without a promise, for an engine that waits on every statement: returns false when
   * nothing is pending (neither callback is called), else true, and then calls exactly one of
   * them once the events are durable (`onDone`) or cannot be made so (`onFail`, with
   * AuditUnavailableError) — never before it returns. `onDone` may run inside the append itself.
   */
  afterFlush?(onDone: () => void, onFail: (err: Error) => void): boolean;
}

/**
 * How a protocol's session events name their fields, for the trail's format (docs/audit.md) to
 * stay what each protocol's readers expect. The engine registry gives one per connection type.
 */
export interface AuditVocabulary {
  /** Key of SessionStartInfo.target in `session.start` (postgres: `database`). */
  readonly targetKey: string;
  /** Key of the error code in `session.end` and outcomes (postgres: `sqlstate`). */
  readonly codeKey: string;
  /** Key of the count of actions in `session.end` (postgres: `queries`). */
  readonly countKey: string;
  /** The code recorded for an action refused because the store could not record it (postgres: 58030). */
  readonly unrecordedCode?: string;
}

/** For protocols that do not name their own. */
export const neutralVocabulary: AuditVocabulary = { targetKey: 'target', codeKey: 'code', countKey: 'actions' };
