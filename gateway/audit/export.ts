// Turns a consistent snapshot of the store into an export: JSON Lines with a header, each
// session's events (with hashes), the ledger from the first entry the scope needs, the signed
// checkpoints in that range, and a last line the gateway signs over all of it (docs/audit.md).
// Streamed: events are read a page at a time while the lines are sent.
import { exportEndMessage, TRAIL_FORMAT, type ExportEndBody, type ExportScope } from '../../src/api/auditTrail.js';
import type { AuditSnapshot, CheckpointRecord, EventRecord } from '../store/types.js';
import type { AuditSigner } from './keys.js';

/** How many events one read fetches: bounds the gateway's memory whatever the trail's size. */
const PAGE = 1000;

/** Reads a session's events after `afterSeq` up to `upToSeq`, at most `limit`: Store.eventsPage. */
export type EventPages = (sessionId: string, afterSeq: number, upToSeq: number, limit: number) => Promise<EventRecord[]>;

export interface ExportExtras {
  /** The gateway's URL, for the header. */
  gateway?: string | undefined;
  /** A checkpoint of the snapshot's head signed for this export, when the store has none (it comes last). */
  final?: CheckpointRecord | undefined;
  /** The gateway's checkpoint interval, signed in the end line: verify fails a ledger left unsigned longer. */
  checkpointSeconds?: number | undefined;
}

/** The export's lines (without newlines), read from the store page by page as they are consumed. */
export async function* exportLines(snap: AuditSnapshot, pages: EventPages, scope: ExportScope, signer: AuditSigner, at: Date, extras: ExportExtras = {}): AsyncGenerator<string> {
  const { gateway, final, checkpointSeconds } = extras;
  yield JSON.stringify({ type: 'header', format: TRAIL_FORMAT, at: at.toISOString(), scope, key: signer.keyId, ...(gateway ? { gateway } : {}) });
  const sessions: { id: string; events: number; last: string }[] = [];
  for (const s of snap.sessions) {
    const upTo = snap.lastSeq.get(s.id) ?? 0;
    let after = 0;
    let count = 0;
    let last = '';
    while (after < upTo) {
      const events = await pages(s.id, after, upTo, PAGE);
      if (events.length === 0) break; // the rest is gone (deleted in the store): verify names the gap
      for (const e of events) {
        const body = JSON.parse(e.body) as Record<string, unknown>;
        yield JSON.stringify({ type: 'event', session: body.session, seq: body.seq, kind: body.kind, at: body.at, data: body.data, hash: e.hash });
        count++;
        last = e.hash;
        after = e.seq;
      }
    }
    if (count > 0) sessions.push({ id: s.id, events: count, last });
  }
  for (const l of snap.ledger) yield JSON.stringify({ type: 'ledger', ...(JSON.parse(l.body) as object), hash: l.hash });
  const checkpoints = final === undefined || snap.checkpoints.includes(final) ? snap.checkpoints : [...snap.checkpoints, final];
  for (const c of checkpoints) {
    yield JSON.stringify({ type: 'checkpoint', ledgerSeq: c.ledgerSeq, ledgerHash: c.ledgerHash, at: c.at.toISOString(), key: c.keyId, sig: c.signature });
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
    ...(checkpointSeconds !== undefined ? { checkpointSeconds } : {}),
    ...(gateway ? { gateway } : {}),
  };
  yield JSON.stringify({ type: 'end', ...end, sig: signer.sign(exportEndMessage(end)) });
}
