// The contract between the gateway core and its protocol engines (see docs/architecture.md).
// Engines receive an upgraded client stream plus this context and never touch HTTP, auth or
// the store directly: they report through `audit` (audit/contract.ts), ask `policy`, and hold
// actions for `reviews` (reviews/contract.ts). Nothing here knows a wire protocol.
import type { Duplex } from 'node:stream';
import type { ConnectionInfo } from '../../src/api/contract.js';
import type { Logger } from 'pino';
import type { SessionAudit } from '../audit/contract.js';
import type { Connection, SessionInfo } from '../model.js';
import type { CompiledPolicy } from '../policy/schema.js';
import type { Reviews } from '../reviews/contract.js';

/** What an engine gets for one session. `A`: the audit hooks its protocol uses (the core's, or a superset such as PostgresSessionAudit). */
export interface SessionContext<A extends SessionAudit = SessionAudit> extends SessionInfo {
  readonly audit: A;
  readonly log: Logger;
  /** How long to wait for the target to accept and authenticate before failing the session. */
  readonly connectTimeoutMs: number;
  /**
   * Largest single client message the engine will buffer, in bytes: statement text and data
   * (`messageBytes`) and parameter values (`bindBytes`); for HTTP, how long a client may take to
   * send a request head and stay idle between requests. Absent: the engine's defaults.
   */
  readonly limits?: { readonly messageBytes: number; readonly bindBytes: number; readonly httpHeadersTimeoutMs?: number; readonly httpIdleTimeoutMs?: number };
  /** The stream was opened to carry one CancelRequest (past the session limit): refuse anything else. */
  readonly cancelOnly?: boolean;
  /**
   * The client cancels with the key alone: a direct PostgreSQL client's CancelRequest arrives on
   * a connection of its own that carries no identity (docs/direct.md). Absent: a cancel must come
   * through a tunnel of the same identity and connection.
   */
  readonly keyOnlyCancel?: boolean;
  /** The connection's compiled policy (absent: everything is allowed and nothing is masked). */
  readonly policy?: CompiledPolicy;
  /** Where held actions wait for an approver (absent: a `review` verdict blocks). */
  readonly reviews?: Reviews;
  /**
   * SHA-256 of the one-time local password the client's `sluice connect --local-password` printed
   * (ssh: its server then accepts only a `password` login that hashes to this); absent: none asked.
   */
  readonly localPasswordDigest?: Buffer;
}

export interface Engine<A extends SessionAudit = SessionAudit> {
  /** Takes over the upgraded client stream for one session; resolves when both sides are closed. */
  handle(client: Duplex, session: SessionContext<A>, signal: AbortSignal): Promise<void>;
}

/** What the registry knows of each connection type besides its engine. */
export interface EngineEntry<A extends SessionAudit = SessionAudit> {
  readonly engine: Engine<A>;
  /**
   * What a session on this connection reaches by default, in the trail's words (postgres: the
   * database; ssh: `user@host`): recorded for sessions refused before the engine ran.
   */
  describeTarget(connection: Connection): string;
  /** The connection as `GET /v1/connections` shows it (never a secret). */
  connectionInfo(connection: Connection): ConnectionInfo;
  /** The protocol's code for a session refused because its identity holds too many (postgres: 53300 too_many_connections). */
  readonly tooManySessionsCode?: string;
}

/**
 * Why the gateway ended a session itself, passed as the reason of the session's AbortSignal:
 * `credential` — the service token was revoked or expired. The engine tells the client in its
 * protocol's terms (postgres: SQLSTATE 28000) with `message`, and the audit records them as the
 * session's end. An abort without one is the gateway shutting down.
 */
export class SessionTermination extends Error {
  constructor(
    readonly reason: 'credential',
    message: string,
  ) {
    super(message);
    this.name = 'SessionTermination';
  }
}
