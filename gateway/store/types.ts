// The gateway's persistence interface. Only gateway/store/* knows about SQL; the rest of the
// gateway sees these plain records. Two implementations (SQLite, PostgreSQL) pass one conformance
// suite (test/integration/store-conformance.test.ts). Hashing and signing happen outside the store:
// it keeps bytes and hashes exactly as given and never recomputes them.

export interface ServiceTokenRecord {
  name: string;
  groups: string[];
  createdAt: Date;
  /** null = never expires. */
  expiresAt: Date | null;
  revokedAt: Date | null;
}

/**
 * A short-lived password for a direct listener (docs/direct.md), bound to one identity and one
 * connection. Only the SHA-256 of the password is kept; `identity` is the JSON of the identity it
 * was issued to, `tokenHash` the SHA-256 of the service token that asked for it (whose revocation
 * ends the sessions it opened), null for a person.
 */
export interface DirectCredentialRecord {
  id: string;
  hash: string;
  subject: string;
  identity: string;
  connection: string;
  tokenHash: string | null;
  createdAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
}

export type SessionStatus = 'open' | 'ok' | 'error';

/** A session's row: who, where, when, and summary counts. The events are the record of truth. */
export interface SessionRecord {
  id: string;
  connection: string;
  protocol: string;
  subject: string;
  identityName: string;
  email: string | null;
  identityKind: 'human' | 'service';
  groups: string[];
  origin: string;
  clientAddress: string;
  database: string | null;
  startedAt: Date;
  endedAt: Date | null;
  status: SessionStatus;
  error: string | null;
  bytesFromClient: number;
  bytesToClient: number;
  queries: number;
  /** Statements refused by policy (a `decision` with verdict `block`). */
  blocked: number;
  /** Statements held for review (a `review.created` event), whatever the outcome. */
  reviewed: number;
  events: number;
  /** Ledger entry that sealed the session's final hash; null while open. */
  ledgerSeq: number | null;
  /** When retention deleted the session's events; null while they are kept. */
  purgedAt: Date | null;
  /** The gateway process that owns (or owned) the session. */
  instance: string;
}

export type NewSession = Omit<SessionRecord, 'endedAt' | 'status' | 'error' | 'bytesFromClient' | 'bytesToClient' | 'queries' | 'blocked' | 'reviewed' | 'events' | 'ledgerSeq' | 'purgedAt'>;

export interface SessionEnd {
  endedAt: Date;
  status: 'ok' | 'error';
  error: string | null;
  bytesFromClient: number;
  bytesToClient: number;
  queries: number;
  /** Absent: 0 (an end journaled by an older gateway). */
  blocked?: number;
  reviewed?: number;
  events: number;
}

/** One event as stored: `body` is the canonical JSON its hash covers, kept byte for byte. */
export interface EventRecord {
  readonly session: string;
  readonly seq: number;
  readonly kind: string;
  readonly at: Date;
  readonly body: string;
  readonly hash: string;
  /**
   * Set when the body is exactly what gateway/audit/chain.ts entryBody builds from the fields
   * above and this data (its canonical JSON): a store may then keep only the data and rebuild the
   * same body byte for byte when read.
   */
  readonly data?: string;
}

export interface LedgerRecord {
  seq: number;
  kind: 'session' | 'purge';
  /** The sealed session, for `kind: 'session'`. */
  session: string | null;
  at: Date;
  /** Canonical JSON of the ledger entry (see src/api/auditTrail.ts LedgerBody). */
  body: string;
  hash: string;
}

export interface LedgerHead {
  seq: number;
  hash: string;
}

export interface CheckpointRecord {
  ledgerSeq: number;
  ledgerHash: string;
  at: Date;
  keyId: string;
  /** base64 Ed25519 signature over checkpointMessage(). */
  signature: string;
}

/** What a session's seal in the ledger says (the builder turns it into the ledger entry). */
export interface SealInput {
  id: string;
  startedAt: Date;
  events: number;
  /** The hash of the session's last event. */
  final: string;
}

/** Given the ledger's current head, returns the entries to append (seq head.seq + 1, …). */
export type LedgerBuilder = (head: LedgerHead) => LedgerRecord[];

export interface CommitOptions {
  replay?: boolean;
}

/** One write in an audit commit; a commit applies its ops in order, in one transaction. */
export type AuditOp =
  | { op: 'session'; session: NewSession }
  | { op: 'event'; event: EventRecord }
  | { op: 'end'; id: string; end: SessionEnd }
  /** Appends ledger entries under the store's ledger lock (replicas append one at a time). */
  | { op: 'seal'; seal: SealInput; build: LedgerBuilder };

export interface SessionFilter {
  /** Only this identity's sessions (what a non-reader may see). */
  subject?: string;
  connection?: string;
  /** Matches the identity's name or email. */
  user?: string;
  since?: Date;
  limit?: number;
}

export type SnapshotScope = { kind: 'all' } | { kind: 'since'; since: Date } | { kind: 'session'; id: string };

/**
 * A consistent read of what an export needs, except the events themselves: those are read page by
 * page with eventsPage() up to each session's `lastSeq` (events are only ever appended, so the
 * pages read later are the events as they were at the snapshot), so an export of any size streams
 * in bounded memory.
 */
export interface AuditSnapshot {
  /** Sessions in scope whose events are still kept, oldest first. */
  sessions: SessionRecord[];
  /** Each session's last event seq at the snapshot (0: none yet). */
  lastSeq: Map<string, number>;
  /** The hash before `ledger[0]` (GENESIS when it is entry 1) and the first seq included. */
  ledgerFrom: number;
  ledgerPrev: string;
  ledger: LedgerRecord[];
  head: LedgerHead;
  checkpoints: CheckpointRecord[];
}

/** An open session whose gateway process is gone, with the end of its chain. */
export interface OrphanedSession {
  session: SessionRecord;
  last: { seq: number; hash: string };
  queries: number;
  blocked: number;
  reviewed: number;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';

  createServiceToken(t: { name: string; hash: string; groups: string[]; expiresAt: Date | null }): Promise<void>;
  /** Looks a token up by the SHA-256 of its value. */
  findServiceToken(hash: string): Promise<ServiceTokenRecord | undefined>;
  listServiceTokens(): Promise<ServiceTokenRecord[]>;
  /** Returns false when no active token has that name. */
  revokeServiceToken(name: string): Promise<boolean>;

  createDirectCredential(c: Omit<DirectCredentialRecord, 'createdAt' | 'revokedAt'>): Promise<void>;
  /** Looks a credential up by its id (never by its secret: the hash is compared by the caller, in constant time). */
  findDirectCredential(id: string): Promise<DirectCredentialRecord | undefined>;
  /** Moves an active (unrevoked, unexpired at `now`) credential of `subject` to `expiresAt`; false when there is none. */
  renewDirectCredential(id: string, subject: string, expiresAt: Date, now: Date): Promise<boolean>;
  /** Revokes `subject`'s credential; false when it has no unrevoked credential with that id. */
  revokeDirectCredential(id: string, subject: string): Promise<boolean>;
  /** Deletes credentials that expired before `before` (they can no longer be used or renewed); returns how many. */
  deleteExpiredDirectCredentials(before: Date): Promise<number>;

  /**
   * Applies the ops in order in one transaction: all or nothing. With `replay` (the audit journal
   * after a crash) ops already applied are skipped: a session or event that exists, a seal of a
   * session already sealed.
   */
  commit(ops: readonly AuditOp[], opts?: CommitOptions): Promise<void>;
  /** The same, synchronously, for stores that can (SQLite). */
  commitSync?(ops: readonly AuditOp[], opts?: CommitOptions): void;
  /** Records that a gateway process is alive (also the probe that tells a failed store came back). */
  heartbeat(instance: string, at: Date): Promise<void>;
  addCheckpoint(c: CheckpointRecord): Promise<void>;
  lastCheckpoint(): Promise<CheckpointRecord | undefined>;
  /** Whether a checkpoint of exactly this ledger entry and hash is stored (gateway/audit/lastCheckpoint.ts). */
  hasCheckpoint(ledgerSeq: number, ledgerHash: string): Promise<boolean>;
  /** The hash of ledger entry `seq`; undefined when the ledger has no such entry. */
  ledgerHashAt(seq: number): Promise<string | undefined>;
  /**
   * Deletes the events of sealed sessions that ended before `cutoff`, marks them purged and appends
   * the ledger entries `build` returns for them, in one transaction. Returns what was removed.
   */
  purge(cutoff: Date, build: (head: LedgerHead, sessions: readonly string[], at: Date) => LedgerRecord[], at: Date): Promise<{ sessions: string[]; events: number }>;

  listSessions(filter: SessionFilter): Promise<SessionRecord[]>;
  getSession(id: string): Promise<SessionRecord | undefined>;
  listEvents(sessionId: string): Promise<EventRecord[]>;
  /** A session's events with `afterSeq < seq <= upToSeq`, in order, at most `limit` of them. */
  eventsPage(sessionId: string, afterSeq: number, upToSeq: number, limit: number): Promise<EventRecord[]>;
  ledgerHead(): Promise<LedgerHead>;
  snapshot(scope: SnapshotScope): Promise<AuditSnapshot>;
  /** Open sessions owned by other instances not seen since `staleBefore`. */
  orphanedSessions(instance: string, staleBefore: Date): Promise<OrphanedSession[]>;
  close(): Promise<void>;
}

export class DuplicateNameError extends Error {}
