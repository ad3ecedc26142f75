// The few PostgreSQL messages the direct listener reads and writes before it hands a client to the
// engine: untyped first messages (length-prefixed), the PasswordMessage, the cleartext-password
// request, and a stream reader that waits for whole messages without losing bytes that follow.
import type { Duplex } from 'node:stream';
import { STARTUP_MAX_LENGTH } from '../engines/postgres/codec/framer.js';
import { PgProtocolError } from '../engines/postgres/codec/wire.js';

/** AuthenticationCleartextPassword ('R', code 3). */
export function encodeCleartextPasswordRequest(): Buffer {
  const b = Buffer.alloc(9);
  b.write('R', 0, 'latin1');
  b.writeInt32BE(8, 1);
  b.writeInt32BE(3, 5);
  return b;
}

/** A StartupMessage with these parameters, in order, for protocol `version` (major << 16 | minor). */
export function encodeStartup(version: number, params: Iterable<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of params) parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  const body = Buffer.concat([...parts, Buffer.from([0])]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(version, 4);
  return Buffer.concat([head, body]);
}

/** A password is a short string; anything longer than this is no credential of ours. */
const PASSWORD_MAX_LENGTH = 1024;

/** Reads whole messages off a stream until `release()` hands the stream (and any bytes left) back. */
export class MessageReader {
  private buffered: Buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private failure: Error | undefined;

  constructor(private readonly stream: Duplex) {
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onError);
  }

  private readonly onData = (chunk: Buffer) => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    this.wake?.();
  };
  private readonly onEnd = () => this.fail(new Error('the client closed the connection'));
  private readonly onError = (err: Error) => this.fail(err);

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake?.();
  }

  /** Bytes received and not yet read. */
  get pending(): number {
    return this.buffered.length;
  }

  /** Resolves once `n` bytes are buffered. */
  async need(n: number): Promise<Buffer> {
    while (this.buffered.length < n) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    return this.buffered;
  }

  private take(n: number): Buffer {
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** An untyped message (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage): its whole bytes and its body. */
  async untyped(): Promise<{ bytes: Buffer; body: Buffer }> {
    const len = (await this.need(4)).readInt32BE(0);
    if (len < 8 || len > STARTUP_MAX_LENGTH) throw new PgProtocolError('malformed', `invalid length of startup packet: ${len}`);
    await this.need(len);
    const bytes = this.take(len);
    return { bytes, body: bytes.subarray(4) };
  }

  /** The PasswordMessage's text. */
  async password(): Promise<string> {
    const head = await this.need(5);
    if (head[0] !== 0x70) throw new PgProtocolError('malformed', `expected a password message, got message type 0x${(head[0] as number).toString(16)}`);
    const len = head.readInt32BE(1);
    if (len < 5 || len > PASSWORD_MAX_LENGTH + 5) throw new PgProtocolError('malformed', `invalid password message length: ${len}`);
    await this.need(1 + len);
    const body = this.take(1 + len).subarray(5);
    const end = body.indexOf(0);
    if (end !== body.length - 1) throw new PgProtocolError('malformed', 'the password message is not one NUL-terminated string');
    return body.subarray(0, end).toString('utf8');
  }

  /** Stops reading; the stream is paused and what was received but not read is returned. */
  release(): Buffer {
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('close', this.onEnd);
    this.stream.off('error', this.onError);
    this.stream.pause();
    return this.take(this.buffered.length);
  }
}
