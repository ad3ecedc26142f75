// The target → client byte stream, message by message, without copying what need not change.
// Each message type has an action: PASS (bytes flow through; the gateway only counts the body),
// OBSERVE (bytes flow through and the whole message is handed to the handler, assembled only when
// it spans chunks) or INTERCEPT (bytes are held until the message is complete and the handler
// decides: keep, replace or drop it — possibly asynchronously, e.g. while the gateway looks up
// column names; the relay then stops until the answer and the caller pauses the target socket).
// Runs of passed and kept messages are emitted as views of the received chunk, so a chunk in
// which nothing changes is emitted as that very chunk. Bytes the gateway itself wants to say (a
// NoticeResponse) are injected at the next message boundary, never inside a target message.
import { PgProtocolError } from './wire.js';
import { SERVER_MAX_LENGTH, describeType } from './framer.js';

export const PASS = 0;
export const OBSERVE = 1;
export const INTERCEPT = 2;

/** What becomes of an intercepted message: undefined = its own bytes, a Buffer = these bytes instead, null = nothing. */
export type RelayVerdict = Buffer | null | undefined;

/**
 * Receives a message whose whole frame (type byte and length included) is `buf[start, end)`,
 * valid only during the call. For OBSERVE the result is ignored and must not be a promise. An
 * OBSERVE body above the collect cap is reported as a bare 5-byte header.
 */
export type RelayHandler = (type: number, buf: Buffer, start: number, end: number) => RelayVerdict | Promise<RelayVerdict>;

/** Streaming relay of server messages; see the module comment. */
export class PgBackendRelay {
  /** Action per type byte; change entries at any time (takes effect from the next message). */
  readonly actions = new Uint8Array(256);
  /** Bytes of DataRow and CopyData messages seen (frames, headers included), for the audit. */
  rowBytes = 0;

  private readonly header = Buffer.alloc(5);
  private headerFill = 0;
  /** Body bytes of the current message still to come. */
  private left = 0;
  private curAction = PASS;
  private parts: Buffer[] | undefined;
  private partsLen = 0;
  private readonly queue: Buffer[] = [];
  private pos = 0;
  private waiting = false;
  /** A chunk is being scanned outside the queue: what is injected meanwhile waits for a boundary. */
  private scanning = false;
  private injections: Buffer[] = [];
  private emittedMidMessage = false;
  /** Output of the current drain: emitted as one Buffer, so a result with many rewritten rows costs one socket write per chunk, not one per row. */
  private readonly pieces: Buffer[] = [];
  private piecesLen = 0;
  /** The piece being extended, and where its bytes end in its ArrayBuffer. */
  private last: Buffer | undefined;
  private lastEnd = 0;

  /**
   * @param emit receives every byte for the client, in order.
   * @param onResume called when an asynchronous verdict has been applied and the queue drained
   *   as far as it goes (resume the target socket then).
   */
  constructor(
    private readonly handler: RelayHandler,
    private readonly emit: (bytes: Buffer) => void,
    private readonly onResume: () => void = () => undefined,
    private readonly maxLength = SERVER_MAX_LENGTH,
    private readonly collectCap = 1024 * 1024,
  ) {}

  /** True while waiting for an asynchronous verdict: pause the source until onResume. */
  get paused(): boolean {
    return this.waiting;
  }

  /** True when everything emitted so far ends exactly at a message boundary. */
  get atBoundary(): boolean {
    return !this.emittedMidMessage;
  }

  /** Emits `bytes` at the next message boundary (now, if the stream is at one). */
  inject(bytes: Buffer): void {
    if (!this.emittedMidMessage && !this.waiting && !this.scanning && this.parts === undefined && this.queue.length === 0) this.emit(bytes);
    else this.injections.push(bytes);
  }

  /**
   * Takes the next chunk of the stream. The chunk is kept by reference, so it must not be reused.
   * @throws PgProtocolError on a declared length below 4 or above the cap.
   */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.waiting || this.queue.length > 0) {
      this.queue.push(chunk);
      if (!this.waiting) this.drain();
      return;
    }
    // The usual case, nothing queued: the chunk is scanned without passing through the queue.
    this.scanning = true;
    try {
      if (!this.scan(chunk)) this.queue.push(chunk);
      else this.pos = 0;
    } finally {
      this.scanning = false;
    }
    this.flushPieces();
  }

  private drain(): void {
    while (this.queue.length > 0 && !this.waiting) {
      const chunk = this.queue[0] as Buffer;
      const done = this.scan(chunk);
      if (done) {
        this.queue.shift();
        this.pos = 0;
      }
    }
    this.flushPieces();
  }

  private out(b: Buffer): void {
    this.piecesLen += b.length;
    const last = this.last;
    // Bytes that continue the last piece in memory (a run of rewritten rows the masker wrote one
    // after another) extend it: the drain's output is then one view, with no copy to join it.
    if (last !== undefined && b.buffer === last.buffer && b.byteOffset === this.lastEnd) {
      this.lastEnd += b.length;
      return;
    }
    this.closeLast();
    this.last = b;
    this.lastEnd = b.byteOffset + b.length;
  }

  private closeLast(): void {
    const last = this.last;
    if (last === undefined) return;
    this.last = undefined;
    this.pieces.push(this.lastEnd === last.byteOffset + last.length ? last : Buffer.from(last.buffer, last.byteOffset, this.lastEnd - last.byteOffset));
  }

  private flushPieces(): void {
    this.closeLast();
    const p = this.pieces;
    if (p.length === 0) return;
    const len = this.piecesLen;
    this.piecesLen = 0;
    const bytes = p.length === 1 ? (p[0] as Buffer) : Buffer.concat(p, len);
    // Emptied before emitting (emit may inject, which may flush again); the array is kept for the next chunk.
    p.length = 0;
    this.emit(bytes);
  }

  /** Processes `chunk` from `this.pos`; returns false when it stopped for an asynchronous verdict. */
  private scan(chunk: Buffer): boolean {
    const n = chunk.length;
    let pos = this.pos;
    /** Start of the bytes of this chunk not yet emitted (the current run of passed messages). */
    let from = pos;
    while (pos < n) {
      if (this.left > 0) {
        const take = Math.min(this.left, n - pos);
        if (this.parts !== undefined) {
          this.parts.push(chunk.subarray(pos, pos + take));
          this.partsLen += take;
        }
        pos += take;
        this.left -= take;
        // The middle of a held message is not part of the run to emit.
        if (this.parts !== undefined && this.curAction === INTERCEPT) from = pos;
        if (this.left === 0 && this.parts !== undefined) {
          const frame = Buffer.concat(this.parts, this.partsLen);
          this.parts = undefined;
          this.partsLen = 0;
          if (this.curAction === INTERCEPT) {
            from = pos;
            if (!this.decide(frame[0] as number, frame, 0, frame.length)) {
              this.pos = pos;
              return false;
            }
          } else {
            this.handler(frame[0] as number, frame, 0, frame.length);
          }
        }
        continue;
      }
      // At a message boundary (unless a header is partly read).
      if (this.headerFill === 0 && this.injections.length > 0) {
        from = this.flushRun(chunk, from, pos);
        this.emittedMidMessage = false;
        for (const b of this.injections.splice(0)) this.out(b);
      }
      let start: number;
      let type: number;
      let len: number;
      if (this.headerFill === 0 && n - pos >= 5) {
        start = pos;
        type = chunk[pos] as number;
        len = chunk.readInt32BE(pos + 1);
        pos += 5;
      } else {
        if (this.headerFill === 0) {
          // A header split across chunks: an intercepted message must not leak its first bytes.
          this.curAction = this.actions[chunk[pos] as number] as number;
          if (this.curAction === INTERCEPT) from = this.flushRun(chunk, from, pos);
        }
        const take = Math.min(5 - this.headerFill, n - pos);
        chunk.copy(this.header, this.headerFill, pos, pos + take);
        this.headerFill += take;
        pos += take;
        if (this.curAction === INTERCEPT) from = pos;
        if (this.headerFill < 5) break;
        this.headerFill = 0;
        start = -1; // the header is not in this chunk
        type = this.header[0] as number;
        len = this.header.readInt32BE(1);
      }
      if (len < 4 || len > this.maxLength) {
        throw new PgProtocolError('bad-length', `server message ${describeType(type)} declares length ${len}, outside 4..${this.maxLength}`);
      }
      if (type === 0x44 || type === 0x64) this.rowBytes += len + 1;
      const action = start < 0 ? this.curAction : (this.actions[type] as number);
      this.curAction = action;
      const bodyLen = len - 4;
      const avail = n - pos;
      if (action === PASS) {
        const take = Math.min(bodyLen, avail);
        pos += take;
        this.left = bodyLen - take;
        continue;
      }
      if (start >= 0 && avail >= bodyLen) {
        // Whole in this chunk: no copy.
        pos += bodyLen;
        if (action === OBSERVE) {
          this.handler(type, chunk, start, pos);
          continue;
        }
        const v = this.handler(type, chunk, start, pos);
        // Kept as it is: it stays in the run, so an unchanged chunk is still one piece.
        if (v === undefined) continue;
        this.flushRun(chunk, from, start);
        from = pos;
        if (!this.settle(v, chunk, start, pos)) {
          this.pos = pos;
          return false;
        }
        continue;
      }
      if (action === OBSERVE && bodyLen > this.collectCap) {
        this.handler(type, start >= 0 ? chunk : this.header, start >= 0 ? start : 0, (start >= 0 ? start : 0) + 5);
        const take = Math.min(bodyLen, avail);
        pos += take;
        this.left = bodyLen - take;
        continue;
      }
      if (action === INTERCEPT && start >= 0) from = this.flushRun(chunk, from, start);
      const head = start >= 0 ? chunk.subarray(start, start + 5) : Buffer.from(this.header);
      const take = Math.min(bodyLen, avail);
      this.parts = [head, chunk.subarray(pos, pos + take)];
      this.partsLen = 5 + take;
      pos += take;
      this.left = bodyLen - take;
      if (action === INTERCEPT) from = pos;
      if (this.left === 0) {
        // Only possible for a header that arrived split: the body was all here.
        const frame = Buffer.concat(this.parts, this.partsLen);
        this.parts = undefined;
        this.partsLen = 0;
        if (action === OBSERVE) this.handler(type, frame, 0, frame.length);
        else if (!this.decide(type, frame, 0, frame.length)) {
          this.pos = pos;
          return false;
        }
      }
    }
    this.flushRun(chunk, from, pos);
    // Emitted bytes end inside a message when a passed or observed message is incomplete.
    this.emittedMidMessage = (this.left > 0 || this.headerFill > 0) && this.curAction !== INTERCEPT;
    if (!this.emittedMidMessage && this.parts === undefined && this.headerFill === 0 && this.injections.length > 0) {
      for (const b of this.injections.splice(0)) this.out(b);
    }
    return true;
  }

  /** Emits `chunk[from, to)`, the run of passed messages that ends at `to`; returns `to`. */
  private flushRun(chunk: Buffer, from: number, to: number): number {
    if (to > from) this.out(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to));
    return to;
  }

  /** Applies the handler's verdict; returns false when it is asynchronous (the relay waits). */
  private decide(type: number, buf: Buffer, start: number, end: number): boolean {
    return this.settle(this.handler(type, buf, start, end), buf, start, end);
  }

  private settle(v: RelayVerdict | Promise<RelayVerdict>, buf: Buffer, start: number, end: number): boolean {
    if (!(v instanceof Promise)) {
      this.apply(v, buf, start, end);
      return true;
    }
    // The frame may be a view of a chunk still in the queue: keep it as it is.
    const frame = buf.subarray(start, end);
    this.waiting = true;
    // Everything before this message went out; it ends on a boundary.
    this.emittedMidMessage = false;
    this.flushPieces();
    v.then(
      (verdict) => {
        this.apply(verdict, frame, 0, frame.length);
        this.waiting = false;
        this.drain();
        if (!this.waiting) this.onResume();
      },
      (err: unknown) => {
        this.waiting = false;
        this.onError(err);
      },
    );
    return false;
  }

  private apply(v: RelayVerdict, buf: Buffer, start: number, end: number): void {
    if (v === null) return;
    this.out(v ?? (start === 0 && end === buf.length ? buf : buf.subarray(start, end)));
  }

  /** Called when an asynchronous verdict fails; the owner ends the session. */
  onError: (err: unknown) => void = () => undefined;
}
