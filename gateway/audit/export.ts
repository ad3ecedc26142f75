// Turns a consistent snapshot of the store into an export: JSON Lines with a header, each
// session's events (with hashes), the ledger from the first entry the scope needs, the signed
// checkpoints in that range, and a last line the gateway signs over all of it (docs/audit.md).
import { exportEndMessage, TRAIL_FORMAT, type ExportEndBody, type ExportScope } from '../../src/api/auditTrail.js';
import type { AuditSnapshot } from '../store/types.js';
import type { AuditSigner } from './keys.js';

export function exportLines(snap: AuditSnapshot, scope: ExportScope, signer: AuditSigner, at: Date, gateway?: string): string[] {
  const lines: string[] = [JSON.stringify({ type: 'header', format: TRAIL_FORMAT, at: at.toISOString(), scope, key: signer.keyId, ...(gateway ? { gateway } : {}) })];
  const sessions: { id: string; events: number; last: string }[] = [];
  for (const s of snap.sessions) {
    const events = snap.events.get(s.id) ?? [];
    if (events.length === 0) continue;
    for (const e of events) {
      const body = JSON.parse(e.body) as Record<string, unknown>;
      lines.push(JSON.stringify({ type: 'event', session: body.session, seq: body.seq, kind: body.kind, at: body.at, data: body.data, hash: e.hash }));
    }
    sessions.push({ id: s.id, events: events.length, last: (events[events.length - 1] as { hash: string }).hash });
  }
  for (const l of snap.ledger) lines.push(JSON.stringify({ type: 'ledger', ...(JSON.parse(l.body) as object), hash: l.hash }));
  for (const c of snap.checkpoints) {
    lines.push(JSON.stringify({ type: 'checkpoint', ledgerSeq: c.ledgerSeq, ledgerHash: c.ledgerHash, at: c.at.toISOString(), key: c.keyId, sig: c.signature }));
  }
  const end: ExportEndBody = {
    scope,
    at: at.toISOString(),
    key: signer.keyId,
    ledgerFrom: snap.ledgerFrom,
    ledgerPrev: snap.ledgerPrev,
    ledgerSeq: snap.head.seq,
    ledgerHash: snap.head.hash,
    sessions,
  };
  lines.push(JSON.stringify({ type: 'end', ...end, sig: signer.sign(exportEndMessage(end)) }));
  return lines;
}
