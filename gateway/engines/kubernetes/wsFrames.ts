// An incremental reader of WebSocket frames (RFC 6455 §5.2) for one direction of an exec or
// attach stream the gateway relays untouched: it only watches, to record the terminal. Append a
// chunk, get every complete message; fragments are joined, the client's masking undone, control
// frames (ping/pong/close) skipped. A frame it cannot read (an extension's RSV bits, e.g.
// permessage-deflate, or a length past the cap) stops the reading for good: from then on the
// recorder keeps only byte counts and says so, and the bytes still flow as they are.

/** A data message: binary (opcode 2) or text (opcode 1), its fragments joined. */
export interface WsMessage {
  readonly binary: boolean;
  readonly payload: Buffer;
}

const enum Opcode {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
}

export class WsFrameReader {
  private buffered: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private fragmentsBytes = 0;
  private fragmentBinary = false;
  /** Why reading stopped, once it did. */
  failed: string | undefined;

  /** `maxMessage`: the largest message kept whole; a longer one stops the reading. */
  constructor(private readonly maxMessage = 1024 * 1024) {}

  push(chunk: Buffer): WsMessage[] {
    if (this.failed !== undefined) return [];
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const out: WsMessage[] = [];
    let offset = 0;
    for (;;) {
      const frame = this.frameAt(offset);
      if (frame === undefined) break;
      if ('problem' in frame) {
        this.failed = frame.problem;
        this.buffered = Buffer.alloc(0);
        return out;
      }
      offset = frame.end;
      const message = this.take(frame.fin, frame.opcode, frame.payload);
      if (message !== undefined) out.push(message);
      if (this.failed !== undefined) return out;
    }
    this.buffered = offset === 0 ? this.buffered : this.buffered.subarray(offset);
    return out;
  }

  private frameAt(offset: number): { fin: boolean; opcode: number; payload: Buffer; end: number } | { problem: string } | undefined {
    const b = this.buffered;
    if (b.length - offset < 2) return undefined;
    const b0 = b[offset] as number;
    const b1 = b[offset + 1] as number;
    if ((b0 & 0x70) !== 0) return { problem: 'a WebSocket extension (compression) is in use' };
    let length = b1 & 0x7f;
    let at = offset + 2;
    if (length === 126) {
      if (b.length - at < 2) return undefined;
      length = b.readUInt16BE(at);
      at += 2;
    } else if (length === 127) {
      if (b.length - at < 8) return undefined;
      const big = b.readBigUInt64BE(at);
      if (big > BigInt(this.maxMessage)) return { problem: `a WebSocket frame longer than ${this.maxMessage} bytes` };
      length = Number(big);
      at += 8;
    }
    if (length > this.maxMessage) return { problem: `a WebSocket frame longer than ${this.maxMessage} bytes` };
    const masked = (b1 & 0x80) !== 0;
    const maskAt = at;
    if (masked) at += 4;
    if (b.length - at < length) return undefined;
    let payload = b.subarray(at, at + length);
    if (masked) {
      payload = Buffer.from(payload);
      for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (b[maskAt + (i & 3)] as number);
    }
    return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload, end: at + length };
  }

  private take(fin: boolean, opcode: number, payload: Buffer): WsMessage | undefined {
    if (opcode >= 0x8) return undefined; // close, ping, pong: nothing to record
    if (opcode === Opcode.Text || opcode === Opcode.Binary) {
      this.fragments = [];
      this.fragmentsBytes = 0;
      this.fragmentBinary = opcode === Opcode.Binary;
    } else if (opcode !== Opcode.Continuation) {
      this.failed = `an unknown WebSocket opcode ${opcode}`;
      return undefined;
    }
    this.fragments.push(payload);
    this.fragmentsBytes += payload.length;
    if (this.fragmentsBytes > this.maxMessage) {
      this.failed = `a WebSocket message longer than ${this.maxMessage} bytes`;
      return undefined;
    }
    if (!fin) return undefined;
    const message = { binary: this.fragmentBinary, payload: this.fragments.length === 1 ? (this.fragments[0] as Buffer) : Buffer.concat(this.fragments) };
    this.fragments = [];
    this.fragmentsBytes = 0;
    return message;
  }
}
