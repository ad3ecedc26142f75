// The contract between the gateway core and its protocol engines (see docs/architecture.md).
// Engines receive an upgraded client stream plus this context and never touch HTTP, auth or
// the store directly: they report through `audit` and (later) ask `policy`.
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';

/** Who is on the other end of a tunnel, as established by the gateway's authentication. */
export interface Identity {
  /** `sub` of a human's access token, or `token:<name>` for a service token. */
  readonly subject: string;
  /** Shown to people and used for `application_name`: the email, else the token name. */
  readonly name: string;
  readonly email?: string;
  readonly groups: readonly string[];
  readonly kind: 'human' | 'service';
  /** Epoch seconds at which the credential stops being accepted. */
  readonly expiresAt?: number;
}

export type SslMode = 'disable' | 'require' | 'verify-full';

/** A PostgreSQL target with its secret already resolved (never logged, never sent to a client). */
export interface PostgresTarget {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
  readonly sslmode: SslMode;
  /** PEM text of the CA that signs the target's certificate (for verify-full). */
  readonly ca?: string;
}

export interface PostgresConnection {
  readonly name: string;
  readonly type: 'postgres';
  readonly description?: string;
  readonly target: PostgresTarget;
  /** Databases a client may ask for besides `target.database`. */
  readonly databases: readonly string[];
  readonly allow: { readonly groups: readonly string[] };
}

export type Connection = PostgresConnection;

/** Bookkeeping hooks for one session. Implementations must not throw into the engine. */
export interface SessionAudit {
  /** Called once the client's startup is accepted (not for CancelRequest connections). */
  onSessionStart(info: { database: string; clientUser: string; clientApplication?: string }): void;
  /** A statement the client sent; returns an id to pair with its result. */
  onQuery(query: { text: string; params?: readonly (string | null)[]; protocol: 'simple' | 'extended' }): number;
  onResult(result: {
    queryId: number;
    status: 'ok' | 'error';
    /** CommandComplete tags, e.g. `SELECT 3`. */
    commands?: readonly string[];
    rows?: number;
    sqlstate?: string;
    message?: string;
    durationMs: number;
  }): void;
  onSessionEnd(end: { status: 'ok' | 'error'; sqlstate?: string; message?: string; bytesFromClient: number; bytesToClient: number }): void;
}

export interface SessionContext {
  readonly id: string;
  readonly identity: Identity;
  readonly connection: Connection;
  readonly audit: SessionAudit;
  readonly log: Logger;
  /** How long to wait for the target to accept and authenticate before failing the session. */
  readonly connectTimeoutMs: number;
}

export interface Engine {
  /** Takes over the upgraded client stream for one session; resolves when both sides are closed. */
  handle(client: Duplex, session: SessionContext, signal: AbortSignal): Promise<void>;
}
