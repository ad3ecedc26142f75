// Builders for ledger entries and checkpoints: the pure half of sealing. The store calls a builder
// with the ledger's head under its lock, so replicas sharing a store append one after another.
import { canonicalJson, checkpointMessage, ledgerHash, type LedgerBody } from '../../src/api/auditTrail.js';
import type { AuditOp, CheckpointRecord, LedgerBuilder, LedgerHead, LedgerRecord, SealInput } from '../store/types.js';
import type { AuditSigner } from './keys.js';

function record(prev: string, entry: LedgerBody): LedgerRecord {
  return {
    seq: entry.seq,
    kind: entry.kind,
    session: entry.kind === 'session' ? entry.session : null,
    at: new Date(entry.at),
    body: canonicalJson(entry),
    hash: ledgerHash(prev, entry),
  };
}

/** Seals a session: its final hash and event count become the next ledger entry. */
export function sealSession(s: SealInput, now: () => Date = () => new Date()): LedgerBuilder {
  return (head: LedgerHead) => [
    record(head.hash, { seq: head.seq + 1, at: now().toISOString(), kind: 'session', session: s.id, startedAt: s.startedAt.toISOString(), events: s.events, final: s.final }),
  ];
}

/** The store op that seals a session (its input kept, so the audit journal can write it down). */
export function sealOp(s: SealInput, now?: () => Date): AuditOp {
  return { op: 'seal', seal: s, build: sealSession(s, now) };
}

/** Records that retention removed these sessions' events (their seals stay in the ledger). */
export function purgeEntry(cutoff: Date): (head: LedgerHead, sessions: readonly string[], at: Date) => LedgerRecord[] {
  return (head, sessions, at) => [record(head.hash, { seq: head.seq + 1, at: at.toISOString(), kind: 'purge', before: cutoff.toISOString(), sessions: [...sessions] })];
}

export function signCheckpoint(head: LedgerHead, signer: AuditSigner, at: Date): CheckpointRecord {
  const iso = at.toISOString();
  return {
    ledgerSeq: head.seq,
    ledgerHash: head.hash,
    at,
    keyId: signer.keyId,
    signature: signer.sign(checkpointMessage({ ledgerSeq: head.seq, ledgerHash: head.hash, at: iso, key: signer.keyId })),
  };
}
