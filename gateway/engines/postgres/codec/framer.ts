// Incremental framing of PostgreSQL messages: append chunks as they arrive, take out every
// complete frame, keep the rest. A frame that lies whole inside one received chunk is handed out
// as offsets into that chunk (zero copy); only a frame split across chunks is assembled, and then
// only once, when its last byte has arrived. Declared lengths are checked against a per-type cap
// as soon as the header is readable, before any of the body is buffered, so a hostile peer cannot
// make the gateway hold more than the cap. Used for client → gateway traffic (whole frames are
// needed to decode Query/Parse/Bind) and for the upstream startup exchange; the relay of server
// results uses the lighter PgBackendScanner, which never buffers bodies.
import { PgProtocolError } from './wire.js';

/** PostgreSQL's own limit for the startup packet (MAX_STARTUP_PACKET_LENGTH). */
export const STARTUP_MAX_LENGTH = 10_000;
/**
 * Default caps for client messages that carry SQL or data. PostgreSQL allows up to 1 GiB; the
 * gateway buffers each client message whole (it must see all of a statement before forwarding
 * it), so a session that declares a large message and sends it slowly holds the cap in gateway
 * memory. 64 MiB let twelve such sessions take the gateway from 444 MB to 874 MB; the defaults now
 * are 1 MiB for Query, Parse, CopyData and CopyFail (SQL text, and COPY streams, which clients
 * send as many small CopyData messages: psql 8 KiB, JDBC 64 KiB) and 16 MiB for Bind and
 * FunctionCall (parameter values, e.g. a bytea upload). Both are configurable (`limits:`).
 */
export const DEFAULT_CLIENT_LIMITS: ClientMessageLimits = Object.freeze({ messageBytes: 1024 * 1024, bindBytes: 16 * 1024 * 1024 });

/** The two configurable caps on client messages, in bytes (the declared length, which counts itself). */
export interface ClientMessageLimits {
  /** Query, Parse, CopyData, CopyFail. */
  readonly messageBytes: number;
  /** Bind, FunctionCall. */
  readonly bindBytes: number;
}

/** PostgreSQL's PQ_SMALL_MESSAGE_LIMIT, for Sync, Flush, Describe, Execute, Close, Terminate. */
export const CLIENT_SMALL_MAX_LENGTH = 10_000;
/** PostgreSQL's own ceiling for one message (MaxAllocSize): large DataRow and CopyData. */
export const SERVER_MAX_LENGTH = 1024 * 1024 * 1024;

const EMPTY = Buffer.alloc(0);

/** Printable name of a message type for error messages. */
export function describeType(type: number): string {
  return type >= 0x20 && type < 0x7f ? `'${String.fromCharCode(type)}'` : `0x${type.toString(16).padStart(2, '0')}`;
}

/**
 * Frames one direction of a PostgreSQL connection. After `next()` returns true the current frame
 * is `buffer[start, end)` (header included) with its body at `buffer[bodyStart, end)`; these
 * fields stay valid until the next call to `next()`. The buffer may be a received chunk, so do
 * not write into it. Untyped frames (the first messages of a client) have `type` 0 and their body
 * starts with the Int32 request code.
 */
export class PgFramer {
  type = 0;
  buffer: Buffer = EMPTY;
  start = 0;
  end = 0;
  bodyStart = 0;

  private cur: Buffer = EMPTY;
  private pos = 0;
  /** Bytes of an incomplete frame, oldest first; views of earlier chunks, not copies. */
  private parts: Buffer[] = [];
  private partsLen = 0;
  /** Total size of the incomplete frame once its header has been read, else -1. */
  private need = -1;
  private untyped: boolean;

  /**
   * @param caps maximum declared length per type byte; 0 marks a type the peer may not send.
   * @param untyped whether frames start without a type byte (a client's first messages).
   */
  constructor(
    private readonly caps: Uint32Array,
    untyped: boolean,
    private readonly side: 'client' | 'server',
    /** The configuration key behind a type's cap, for types whose cap is configurable. */
    private readonly capNames?: readonly (string | undefined)[],
  ) {
    this.untyped = untyped;
  }

  /** Switches to typed frames: call once the client's StartupMessage has been taken. */
  expectTyped(): void {
    this.untyped = false;
  }

  /** Appends a received chunk. The framer keeps a view of it, so the chunk must not be reused. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.pos < this.cur.length) this.stash();
    this.cur = chunk;
    this.pos = 0;
  }

  /**
   * Advances to the next complete frame; returns false when more bytes are needed.
   * @throws PgProtocolError when a declared length is out of bounds or a type is not allowed.
   */
  next(): boolean {
    if (this.partsLen > 0) return this.nextFromParts();
    const cur = this.cur;
    const pos = this.pos;
    const avail = cur.length - pos;
    const headerLen = this.untyped ? 4 : 5;
    if (avail < headerLen) {
      this.stash();
      return false;
    }
    const type = this.untyped ? 0 : cur[pos]!;
    const total = this.check(type, cur.readInt32BE(this.untyped ? pos : pos + 1)) + headerLen - 4;
    if (avail < total) {
      this.need = total;
      this.stash();
      return false;
    }
    this.type = type;
    this.buffer = cur;
    this.start = pos;
    this.end = pos + total;
    this.bodyStart = pos + headerLen;
    this.pos = pos + total;
    return true;
  }

  /** The current frame, header included, as a view. */
  get frame(): Buffer {
    return this.buffer.subarray(this.start, this.end);
  }

  /** The current frame's body as a view. */
  get body(): Buffer {
    return this.buffer.subarray(this.bodyStart, this.end);
  }

  /** Bytes received but not yet returned as frames. */
  get buffered(): number {
    return this.partsLen + this.cur.length - this.pos;
  }

  /** Removes and returns every byte not yet returned as a frame (e.g. to hand a socket on). */
  takeRest(): Buffer {
    this.stash();
    const rest = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsLen);
    this.parts = [];
    this.partsLen = 0;
    this.need = -1;
    return rest;
  }

  private nextFromParts(): boolean {
    const headerLen = this.untyped ? 4 : 5;
    const have = this.partsLen + this.cur.length - this.pos;
    if (this.need < 0) {
      if (have < headerLen) {
        this.stash();
        return false;
      }
      const off = this.untyped ? 0 : 1;
      let len = 0;
      for (let k = 0; k < 4; k++) len = (len << 8) | this.peek(off + k);
      this.need = this.check(this.untyped ? 0 : this.peek(0), len) + headerLen - 4;
    }
    const total = this.need;
    if (have < total) {
      this.stash();
      return false;
    }
    if (this.partsLen >= total) {
      // Chunks pushed while nobody took frames (a session waiting for its audit reads on): the
      // stash holds whole frames. Joined once, they are taken from the joined chunk as usual.
      this.stash();
      const all = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsLen);
      this.parts = [];
      this.partsLen = 0;
      this.need = -1;
      this.cur = all;
      this.pos = 0;
      return this.next();
    }
    const fromCur = total - this.partsLen;
    this.parts.push(this.cur.subarray(this.pos, this.pos + fromCur));
    const frame = Buffer.concat(this.parts, total);
    this.pos += fromCur;
    this.parts = [];
    this.partsLen = 0;
    this.need = -1;
    this.type = this.untyped ? 0 : frame[0]!;
    this.buffer = frame;
    this.start = 0;
    this.end = total;
    this.bodyStart = headerLen;
    return true;
  }

  /** Byte `i` of the pending bytes (stashed parts, then the current chunk). */
  private peek(i: number): number {
    for (const part of this.parts) {
      if (i < part.length) return part[i]!;
      i -= part.length;
    }
    return this.cur[this.pos + i]!;
  }

  private stash(): void {
    if (this.pos < this.cur.length) {
      const tail = this.cur.subarray(this.pos);
      this.parts.push(tail);
      this.partsLen += tail.length;
    }
    this.cur = EMPTY;
    this.pos = 0;
  }

  /** Validates a declared length (which counts itself) and returns it. */
  private check(type: number, len: number): number {
    const cap = this.untyped ? STARTUP_MAX_LENGTH : this.caps[type]!;
    if (cap === 0) {
      throw new PgProtocolError('malformed', `unexpected ${this.side} message type ${describeType(type)}`);
    }
    const min = this.untyped ? 8 : 4;
    const what = this.untyped ? `${this.side} startup packet` : `${this.side} message ${describeType(type)}`;
    if (len < min) throw new PgProtocolError('bad-length', `${what} declares length ${len}, below the minimum of ${min}`);
    if (len > cap) {
      // A message PostgreSQL itself could accept but over a configured limit is
      // program_limit_exceeded, naming the setting so an operator can find it; a length no
      // PostgreSQL message can have stays a protocol violation.
      const setting = this.untyped ? undefined : this.capNames?.[type];
      const message = `${what} declares length ${len}, above the gateway's cap of ${cap} bytes${setting ? ` (${setting})` : ''}`;
      throw new PgProtocolError('bad-length', message, setting && len <= SERVER_MAX_LENGTH ? { sqlstate: PROGRAM_LIMIT_EXCEEDED } : {});
    }
    return len;
  }
}

const PROGRAM_LIMIT_EXCEEDED = '54000';

/** Configurable caps: which setting limits which client message type. */
const LARGE_TYPES: readonly [string, keyof ClientMessageLimits][] = [
  ['Q', 'messageBytes'],
  ['P', 'messageBytes'],
  ['d', 'messageBytes'],
  ['f', 'messageBytes'],
  ['B', 'bindBytes'],
  ['F', 'bindBytes'],
];

function frontendCaps(limits: ClientMessageLimits): { caps: Uint32Array; names: (string | undefined)[] } {
  const caps = new Uint32Array(256);
  const names: (string | undefined)[] = [];
  for (const [t, key] of LARGE_TYPES) {
    caps[t.charCodeAt(0)] = limits[key];
    names[t.charCodeAt(0)] = `limits.${key}`;
  }
  // CopyDone has no body; it shares the small messages' cap.
  for (const t of 'SHDECXc') caps[t.charCodeAt(0)] = CLIENT_SMALL_MAX_LENGTH;
  return { caps, names };
}

const DEFAULT_FRONTEND = frontendCaps(DEFAULT_CLIENT_LIMITS);

/**
 * A framer for client → gateway bytes. It starts in untyped mode for StartupMessage, SSLRequest,
 * GSSENCRequest and CancelRequest; call `expectTyped()` once startup is done. Only the message
 * types a client may send after startup are accepted (PostgreSQL itself rejects the others with a
 * FATAL protocol violation); PasswordMessage is refused because the gateway never asks for one.
 */
export function createFrontendFramer(limits: ClientMessageLimits = DEFAULT_CLIENT_LIMITS): PgFramer {
  const { caps, names } = limits === DEFAULT_CLIENT_LIMITS ? DEFAULT_FRONTEND : frontendCaps(limits);
  return new PgFramer(caps, true, 'client', names);
}

/**
 * A framer for target → gateway bytes. Every type is accepted (a newer server may speak messages
 * this gateway relays without understanding); `maxLength` caps all of them.
 */
export function createBackendFramer(maxLength = SERVER_MAX_LENGTH): PgFramer {
  return new PgFramer(new Uint32Array(256).fill(maxLength), false, 'server');
}
