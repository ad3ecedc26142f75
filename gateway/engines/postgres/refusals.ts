// Refusing a statement without forwarding it, so that the client sees exactly what a server would
// show. The gateway does not fabricate the answer itself: in place of the refused message it sends
// the target a statement that cannot parse — a bare identifier carrying a per-session marker — and
// when the target's ErrorResponse naming that marker comes back, it is replaced by the gateway's
// own (42501 with the rule, 57014 for an expired review, …). Everything else follows from the
// target being a real server:
// - order: the error arrives after the answers to everything pipelined before it, and the
//   ReadyForQuery after it is the target's own, with the real transaction status;
// - a refusal inside a transaction block aborts the transaction, as any error would, so a script
//   that goes on to COMMIT cannot commit half of what it meant to;
// - in the extended protocol the target skips to Sync after the error, and if an earlier message
//   of the same pipeline already failed, the marker is skipped and the client sees that earlier
//   error alone — as it would from a server.
import { randomBytes } from 'node:crypto';
import { encodeErrorResponse, type PgNotice } from './codec/backend.js';
import { MessageWriter } from './codec/wire.js';

/** An error the gateway reports for a statement it refused. */
export interface Refusal {
  readonly sqlstate: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

/** The markers of one session and the errors they stand for. */
export class Refusals {
  private readonly prefix: string;
  private readonly prefixBytes: Buffer;
  private next = 0;
  /** Marker number → the ErrorResponse to send and the client cycle it was issued in. */
  private readonly pending = new Map<number, { readonly error: Buffer; readonly cycle: number }>();

  constructor() {
    // Random per session, so no text a client sends can make the gateway rewrite a real error.
    this.prefix = `sluice_refused_${randomBytes(6).toString('hex')}_`;
    this.prefixBytes = Buffer.from(this.prefix, 'latin1');
  }

  /** Query ('Q') to send instead of a refused Query or FunctionCall. */
  query(refusal: Refusal, cycle: number): Buffer {
    return new MessageWriter().cstring(this.register(refusal, cycle)).typed('Q');
  }

  /** Parse ('P') of `statement` to send instead of a refused Parse (the syntax error comes first). */
  parse(statement: string, refusal: Refusal, cycle: number): Buffer {
    return new MessageWriter().cstring(statement).cstring(this.register(refusal, cycle)).int16(0).typed('P');
  }

  /** Bind ('B') of a statement that cannot exist, to send instead of a refused Bind. */
  bind(refusal: Refusal, cycle: number): Buffer {
    return new MessageWriter().cstring('').cstring(this.register(refusal, cycle)).int16(0).int16(0).int16(0).typed('B');
  }

  /**
   * For an ErrorResponse frame from the target (`buf[start, end)`): the gateway's own error if it
   * answers one of this session's markers, else undefined.
   */
  replacement(buf: Buffer, start: number, end: number): Buffer | undefined {
    if (this.pending.size === 0) return undefined;
    const frame = buf.subarray(start, end);
    const at = frame.indexOf(this.prefixBytes);
    if (at < 0) return undefined;
    let n = 0;
    for (let i = at + this.prefixBytes.length; i < frame.length && frame[i]! >= 0x30 && frame[i]! <= 0x39; i++) n = n * 10 + frame[i]! - 0x30;
    const entry = this.pending.get(n);
    if (entry === undefined) return undefined;
    this.pending.delete(n);
    return entry.error;
  }

  /** Forgets markers of cycles the target has finished: they were skipped after an earlier error. */
  expire(finishedCycles: number): void {
    if (this.pending.size === 0) return;
    for (const [n, e] of this.pending) if (e.cycle < finishedCycles) this.pending.delete(n);
  }

  get size(): number {
    return this.pending.size;
  }

  private register(refusal: Refusal, cycle: number): string {
    const n = ++this.next;
    const notice: PgNotice & { severity: 'ERROR' } = { severity: 'ERROR', sqlstate: refusal.sqlstate, message: refusal.message };
    const error = encodeErrorResponse({
      ...notice,
      ...(refusal.detail !== undefined ? { detail: refusal.detail } : {}),
      ...(refusal.hint !== undefined ? { hint: refusal.hint } : {}),
    });
    this.pending.set(n, { error, cycle });
    return `${this.prefix}${n}`;
  }
}
