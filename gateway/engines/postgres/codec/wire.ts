// Wire primitives shared by every decoder and encoder: the one error the codec raises, bounds-
// checked reading of a message body, and building of outgoing messages. A gateway must turn any
// malformed input into a clean ErrorResponse for that session (never a crash), so every framing
// and decoding failure is a PgProtocolError carrying the SQLSTATE to report, and every decoder
// reads through BodyReader so a short or lying body fails at the first field that does not fit
// instead of raising a RangeError or yielding a silently wrong value.

/** Why the bytes were rejected. */
export type PgProtocolErrorCode =
  /** A declared length is below the minimum or above the cap for its message type. */
  | 'bad-length'
  /** A message body ended before a field it must contain. */
  | 'truncated'
  /** A field holds a value the protocol does not allow (bad format code, unknown type, …). */
  | 'malformed'
  /** Well-formed but not something this gateway speaks (another protocol version, …). */
  | 'unsupported';

/**
 * A violation of the PostgreSQL frontend/backend protocol. `sqlstate` is `08P01`
 * (protocol_violation) unless the caller names another real code, e.g. `0A000` for an
 * unsupported protocol version. Messages describe the bytes, never their content, so they are
 * safe to send to a client and to log.
 */
export class PgProtocolError extends Error {
  readonly code: PgProtocolErrorCode;
  readonly sqlstate: string;

  constructor(code: PgProtocolErrorCode, message: string, options?: ErrorOptions & { sqlstate?: string }) {
    super(message, options);
    this.name = 'PgProtocolError';
    this.code = code;
    this.sqlstate = options?.sqlstate ?? '08P01';
  }
}

/**
 * The one NUL-terminated string that is the whole body `buf[start, end)` (Query, CommandComplete),
 * with BodyReader's checks and errors but no reader: these two are read on every round trip.
 */
export function soleCString(buf: Buffer, start: number, end: number, what: string, field: string): string {
  const nul = buf.indexOf(0, start);
  if (nul < 0 || nul >= end) throw new PgProtocolError('truncated', `${what} ends inside its ${field}`);
  if (nul + 1 !== end) throw new PgProtocolError('malformed', `${what} has ${end - nul - 1} bytes after its last field`);
  return buf.toString('utf8', start, nul);
}

/** A cursor over `buf[start, end)`: the body of one message, without its header. */
export class BodyReader {
  private pos: number;

  constructor(
    private readonly buf: Buffer,
    start = 0,
    private readonly end = buf.length,
    /** Names the message in errors, e.g. `Bind`. */
    private readonly what = 'message',
  ) {
    this.pos = start;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, field: string): void {
    if (this.end - this.pos < n) throw new PgProtocolError('truncated', `${this.what} ends inside its ${field}`);
  }

  byte(field: string): number {
    this.need(1, field);
    return this.buf[this.pos++]!;
  }

  /** A signed Int16: for fields that may be negative (format codes, attnum, type size). */
  int16(field: string): number {
    this.need(2, field);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  /**
   * An Int16 count (parameters, formats, columns): the protocol gives these 16 bits and
   * PostgreSQL reads them unsigned (pq_getmsgint), so 32,768–65,535 are valid counts, not negatives.
   */
  count16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  int32(field: string): number {
    this.need(4, field);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** A NUL-terminated string, decoded as UTF-8 (the gateway speaks UTF-8 to both sides). */
  cstring(field: string): string {
    const nul = this.buf.indexOf(0, this.pos);
    if (nul < 0 || nul >= this.end) throw new PgProtocolError('truncated', `${this.what} ends inside its ${field}`);
    const s = this.buf.toString('utf8', this.pos, nul);
    this.pos = nul + 1;
    return s;
  }

  /** `n` raw bytes as a view (no copy) of the underlying buffer. */
  bytes(n: number, field: string): Buffer {
    this.need(n, field);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** The rest of the body as a view. */
  rest(): Buffer {
    const v = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return v;
  }

  /** Rejects trailing bytes: a body longer than its fields is as suspect as a short one. */
  finish(): void {
    if (this.pos !== this.end) throw new PgProtocolError('malformed', `${this.what} has ${this.end - this.pos} bytes after its last field`);
  }
}

/**
 * Builds one outgoing message. Encoders are on cold paths (startup, errors, auth), so clarity
 * wins over avoiding the one extra copy in `Buffer.concat`.
 */
export class MessageWriter {
  private readonly parts: Buffer[] = [];
  private size = 0;

  private push(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  byte(v: number): this {
    return this.push(Buffer.of(v));
  }

  int16(v: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeInt16BE(v);
    return this.push(b);
  }

  int32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeInt32BE(v);
    return this.push(b);
  }

  /** Writes `s` as UTF-8 plus the terminating NUL. A NUL inside `s` would end the field early. */
  cstring(s: string): this {
    if (s.includes('\0')) throw new TypeError('a PostgreSQL string field cannot contain NUL');
    return this.push(Buffer.from(`${s}\0`, 'utf8'));
  }

  bytes(b: Uint8Array): this {
    return this.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  }

  /** A typed message: type byte, Int32 length (counting itself), body. */
  typed(type: string): Buffer {
    const header = Buffer.allocUnsafe(5);
    header[0] = type.charCodeAt(0);
    header.writeInt32BE(4 + this.size, 1);
    return Buffer.concat([header, ...this.parts], 5 + this.size);
  }

  /** An untyped message (StartupMessage, SSLRequest, CancelRequest): Int32 length, body. */
  untyped(): Buffer {
    const header = Buffer.allocUnsafe(4);
    header.writeInt32BE(4 + this.size, 0);
    return Buffer.concat([header, ...this.parts], 4 + this.size);
  }
}
