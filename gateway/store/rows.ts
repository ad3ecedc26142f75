// Row ↔ record mapping shared by the SQLite and PostgreSQL stores: both use the same column names,
// epoch milliseconds for times and JSON text for lists. (PostgreSQL returns BIGINT as a string,
// hence Number() everywhere.)
import type { CheckpointRecord, DirectCredentialRecord, EventRecord, LedgerRecord, ServiceTokenRecord, SessionRecord } from './types.js';

export type Row = Record<string, unknown>;

const date = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(Number(v)));
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

export function toToken(r: Row): ServiceTokenRecord {
  return {
    name: String(r.name),
    groups: JSON.parse(String(r.groups)) as string[],
    createdAt: new Date(Number(r.created_at)),
    expiresAt: date(r.expires_at),
    revokedAt: date(r.revoked_at),
  };
}

export function toDirectCredential(r: Row): DirectCredentialRecord {
  return {
    id: String(r.id),
    hash: String(r.hash),
    subject: String(r.subject),
    identity: String(r.identity),
    connection: String(r.connection),
    tokenHash: r.token_hash == null ? null : String(r.token_hash),
    createdAt: new Date(Number(r.created_at)),
    expiresAt: new Date(Number(r.expires_at)),
    revokedAt: date(r.revoked_at),
  };
}

export function toSession(r: Row): SessionRecord {
  return {
    id: String(r.id),
    connection: String(r.connection),
    protocol: String(r.protocol),
    subject: String(r.subject),
    identityName: String(r.identity_name),
    email: str(r.email),
    identityKind: r.identity_kind as SessionRecord['identityKind'],
    groups: JSON.parse(String(r.groups)) as string[],
    origin: String(r.origin),
    clientAddress: String(r.client_address),
    database: str(r.database),
    startedAt: new Date(Number(r.started_at)),
    endedAt: date(r.ended_at),
    status: r.status as SessionRecord['status'],
    error: str(r.error),
    bytesFromClient: Number(r.bytes_from_client),
    bytesToClient: Number(r.bytes_to_client),
    queries: Number(r.queries),
    blocked: Number(r.blocked ?? 0),
    reviewed: Number(r.reviewed ?? 0),
    events: Number(r.events),
    ledgerSeq: r.ledger_seq === null || r.ledger_seq === undefined ? null : Number(r.ledger_seq),
    purgedAt: date(r.purged_at),
    instance: String(r.instance),
  };
}

export function toEvent(r: Row): EventRecord {
  return { session: String(r.session_id), seq: Number(r.seq), kind: String(r.kind), at: new Date(Number(r.at)), body: String(r.body), hash: String(r.hash) };
}

export function toLedger(r: Row): LedgerRecord {
  return {
    seq: Number(r.seq),
    kind: r.kind as LedgerRecord['kind'],
    session: str(r.session_id),
    at: new Date(Number(r.at)),
    body: String(r.body),
    hash: String(r.hash),
  };
}

export function toCheckpoint(r: Row): CheckpointRecord {
  return { ledgerSeq: Number(r.ledger_seq), ledgerHash: String(r.ledger_hash), at: new Date(Number(r.at)), keyId: String(r.key_id), signature: String(r.signature) };
}

/** Checks that a ledger builder continued the chain from `head` without gaps. */
export function checkLedgerRun(headSeq: number, records: readonly LedgerRecord[]): void {
  records.forEach((r, i) => {
    if (r.seq !== headSeq + 1 + i) throw new Error(`ledger entry ${r.seq} does not follow ${headSeq + i}`);
  });
}

/** What a session's events say it had: statements, policy refusals and reviews (for sessions closed on recovery). */
export function tallyEvents(events: readonly EventRecord[]): { queries: number; blocked: number; reviewed: number } {
  let queries = 0;
  let blocked = 0;
  let reviewed = 0;
  for (const e of events) {
    if (e.kind === 'query') queries++;
    else if (e.kind === 'review.created') reviewed++;
    else if (e.kind === 'decision') {
      const data = e.data !== undefined ? (JSON.parse(e.data) as { verdict?: unknown }) : (JSON.parse(e.body) as { data?: { verdict?: unknown } }).data;
      if (data?.verdict === 'block') blocked++;
    }
  }
  return { queries, blocked, reviewed };
}
