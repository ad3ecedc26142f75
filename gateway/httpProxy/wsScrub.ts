// Keeps the held credential out of an upgraded WebSocket stream (a container or service printing
// the token it shares with the gateway): the server→client bytes are read as RFC 6455 frames and
// every occurrence of a secret in their payloads is overwritten with "*" of the same length, so
// frame headers and lengths stay true and nothing is re-framed. The payloads are scanned as one
// continuous text — an echo split across frames, messages or TCP reads is caught — by holding back
// the wire bytes from the first payload byte that could begin an echo until the next bytes decide.
// In `channel` mode (the Kubernetes remotecommand and port-forward protocols) the channel byte at the
// start of each message is not part of that text, so an echo split across two stdout messages is
// caught too.
//
// Server frames are never masked and, with no extension negotiated (the gateway strips the client's
// Sec-WebSocket-Extensions offer), never have RSV bits set. Anything the reader cannot read as
// plain RFC 6455 — an RSV bit, a masked frame, an unknown opcode, a fragmented or oversized control
// frame, a continuation without a message, a length past 2^53 — throws WsScanError: the stream is
// ended rather than relayed unread.
//
// In `spdy` mode (kubectl's port-forward, SPDY/3.1 tunnelled in binary messages) the payloads are
// not one text: they are handed to a PayloadScan (spdyScan.ts) that reads the SPDY frames in them
// and scans each SPDY stream's data on its own.
import { scrubInPlace } from './scrub.js';
import type { ChunkFilter } from './types.js';

/** A server→client stream the gateway cannot read safely; the relay ends it. */
export class WsScanError extends Error {
  override readonly name = 'WsScanError';
}

export type WsScanMode = 'raw' | 'channel' | 'spdy';

/** Wire bytes held back behind a possible echo before the stream is refused (frames that carry nothing). */
const MAX_HELD_WIRE = 256 * 1024;

/** Bytes of one wire chunk (buf[start, end)), with the stream offset of their first byte. */
export interface Segment {
  readonly buf: Buffer;
  readonly start: number;
  readonly end: number;
  /** The stream offset of buf[start]. */
  readonly at: number;
}

/**
 * What reads the data payloads of the messages: handed each chunk's payload bytes in order (as
 * segments of the wire, so an echo found later is overwritten in bytes not yet released), it
 * overwrites echoes and returns the stream offset of the first byte that may still change (undefined: none).
 */
export interface PayloadScan {
  settle(fresh: readonly Segment[]): number | undefined;
  /**
   * The stream ended. True: what is held is released as it is (it never completed an echo);
   * false: something unread is held (a frame cut short) and the rest of the wire is dropped.
   */
  end(): boolean;
}

export class WsScrubber implements ChunkFilter {
  // Frame reading.
  private readonly head = Buffer.alloc(14);
  private headLen = 0;
  private headNeed = 2;
  private remaining = 0;
  private inPayload = false;
  private frameIsData = false;
  private messageOpen = false;
  private channelByte = false;
  /** A control frame's payload so far: scanned on its own once whole (a ping between the halves of an echo must not hide it). */
  private control: Segment[] = [];
  // The wire not yet released (stream offsets from `released`).
  private pending: Buffer[] = [];
  private released = 0;
  private seen = 0;
  private readonly payload: PayloadScan;

  /** `payload` reads the data payloads in `spdy` mode (they are one text otherwise). */
  constructor(
    private readonly secrets: readonly Buffer[],
    private readonly mode: WsScanMode = 'raw',
    private readonly onHit?: (count: number) => void,
    payload?: PayloadScan,
  ) {
    if (mode === 'spdy' && payload === undefined) throw new TypeError('spdy mode reads its payloads with a PayloadScan');
    this.payload = payload ?? new TextScan(secrets, onHit);
  }

  push(chunk: Buffer): Buffer | undefined {
    if (chunk.length === 0) return undefined;
    const base = this.seen;
    this.seen += chunk.length;
    const fresh = this.parse(chunk, base);
    const hold = this.payload.settle(fresh);
    // The wire is released up to the first byte that could begin an echo, or that belongs to an unfinished control frame.
    let holdAt = hold === undefined ? this.seen : hold;
    if (this.control.length > 0) holdAt = Math.min(holdAt, this.control[0]!.at);
    if (this.pending.length === 0 && holdAt === this.seen) {
      this.released = this.seen;
      return chunk;
    }
    this.pending.push(chunk);
    const out: Buffer[] = [];
    while (this.released < holdAt) {
      const b = this.pending[0]!;
      const n = Math.min(b.length, holdAt - this.released);
      out.push(n === b.length ? b : b.subarray(0, n));
      if (n === b.length) this.pending.shift();
      else this.pending[0] = b.subarray(n);
      this.released += n;
    }
    if (this.seen - this.released > MAX_HELD_WIRE) throw new WsScanError(`more than ${MAX_HELD_WIRE} bytes of WebSocket frames behind a possible echo of the held credential`);
    if (out.length === 0) return undefined;
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  /** The stream ended: the held data text is no echo (it never completed one); a control frame cut short is scanned as far as it came. */
  end(): Buffer | undefined {
    this.scrubControl();
    const rest = this.pending;
    this.pending = [];
    const readable = this.payload.end();
    this.control = [];
    this.released = this.seen;
    return rest.length === 0 || !readable ? undefined : Buffer.concat(rest);
  }

  /** The data-text ranges of `chunk` (at stream offset `base`), advancing the frame reader. */
  private parse(chunk: Buffer, base: number): Segment[] {
    const out: Segment[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (!this.inPayload) {
        while (this.headLen < this.headNeed && i < chunk.length) this.head[this.headLen++] = chunk[i++]!;
        if (this.headLen < this.headNeed) break;
        if (!this.header()) continue;
        if (this.remaining === 0) {
          this.frameDone();
          continue;
        }
        if (i === chunk.length) break;
      }
      let start = i;
      const n = Math.min(this.remaining, chunk.length - i);
      i += n;
      this.remaining -= n;
      if (this.frameIsData && this.channelByte) {
        this.channelByte = false;
        start++;
      }
      if (i > start) (this.frameIsData ? out : this.control).push({ buf: chunk, start, end: i, at: base + start });
      if (this.remaining === 0) this.frameDone();
    }
    return out;
  }

  /** Reads the header in `head` once enough of it is there; false when more header bytes are needed. */
  private header(): boolean {
    const b0 = this.head[0]!;
    const b1 = this.head[1]!;
    if (this.headNeed === 2) {
      if ((b0 & 0x70) !== 0) throw new WsScanError('a WebSocket frame with RSV bits set (an extension the gateway did not allow)');
      if ((b1 & 0x80) !== 0) throw new WsScanError('a masked WebSocket frame from the server');
      const len7 = b1 & 0x7f;
      if (len7 === 126) this.headNeed = 4;
      else if (len7 === 127) this.headNeed = 10;
      if (this.headNeed > 2) return false;
    }
    const len7 = b1 & 0x7f;
    let length: number;
    if (len7 === 126) length = this.head.readUInt16BE(2);
    else if (len7 === 127) {
      const big = this.head.readBigUInt64BE(2);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new WsScanError('a WebSocket frame length past 2^53');
      length = Number(big);
    } else length = len7;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if (opcode >= 0x8) {
      if (opcode > 0xa) throw new WsScanError(`an unknown WebSocket control opcode ${opcode}`);
      if (!fin || length > 125) throw new WsScanError('a fragmented or oversized WebSocket control frame');
      this.frameIsData = false;
    } else {
      if (opcode === 0x0) {
        if (!this.messageOpen) throw new WsScanError('a WebSocket continuation frame outside a message');
      } else if (opcode === 0x1 || opcode === 0x2) {
        if (this.messageOpen) throw new WsScanError('a new WebSocket message inside a fragmented one');
        if (opcode === 0x1 && this.mode === 'spdy') throw new WsScanError('a text message in a SPDY tunnel (its frames travel in binary messages)');
        this.channelByte = this.mode === 'channel';
      } else throw new WsScanError(`an unknown WebSocket opcode ${opcode}`);
      this.messageOpen = !fin;
      this.frameIsData = true;
    }
    this.remaining = length;
    this.inPayload = true;
    return true;
  }

  private frameDone(): void {
    if (!this.frameIsData) this.scrubControl();
    this.inPayload = false;
    this.headLen = 0;
    this.headNeed = 2;
  }

  private scrubControl(): void {
    if (this.control.length > 0) {
      let total = 0;
      for (const s of this.control) total += s.end - s.start;
      const text = joined(this.control, total);
      const hits = scrubInPlace(text, this.secrets);
      if (hits > 0) {
        this.onHit?.(hits);
        if (this.control.length > 1) writeBack(text, this.control);
      }
      this.control = [];
    }
  }
}

/** The data payloads as one continuous text (an echo split across frames and messages is one echo). */
class TextScan implements PayloadScan {
  private held: Segment[] = [];
  private readonly keep: number;

  constructor(
    private readonly secrets: readonly Buffer[],
    private readonly onHit?: (count: number) => void,
  ) {
    this.keep = Math.max(0, ...secrets.map((s) => s.length - 1));
  }

  settle(fresh: readonly Segment[]): number | undefined {
    const segments = this.held.length === 0 ? fresh : [...this.held, ...fresh];
    const hold = scrubSegments(segments, this.secrets, this.keep, this.onHit);
    this.held = hold === undefined ? [] : trimFrom(segments, hold);
    return hold;
  }

  end(): boolean {
    this.held = [];
    return true;
  }
}

/** Overwrites the echoes in the text the segments hold; returns the stream offset where a possible echo begins, if one does. */
export function scrubSegments(segments: readonly Segment[], secrets: readonly Buffer[], keep: number, onHit?: (count: number) => void): number | undefined {
  let total = 0;
  for (const s of segments) total += s.end - s.start;
  if (total === 0) return undefined;
  const text = joined(segments, total);
  const hits = scrubInPlace(text, secrets);
  if (hits > 0) {
    onHit?.(hits);
    if (segments.length > 1) writeBack(text, segments);
  }
  const heldBytes = pendingPrefix(text, secrets, keep);
  if (heldBytes === 0) return undefined;
  let skip = total - heldBytes;
  for (const s of segments) {
    if (skip < s.end - s.start) return s.at + skip;
    skip -= s.end - s.start;
  }
  return undefined;
}

function joined(segments: readonly Segment[], total: number): Buffer {
  if (segments.length === 1) return segments[0]!.buf.subarray(segments[0]!.start, segments[0]!.end);
  const text = Buffer.allocUnsafe(total);
  let at = 0;
  for (const s of segments) at += s.buf.copy(text, at, s.start, s.end);
  return text;
}

function writeBack(text: Buffer, segments: readonly Segment[]): void {
  let at = 0;
  for (const s of segments) at += text.copy(s.buf, s.start, at, at + (s.end - s.start));
}

/** The segments from stream offset `from` on. */
export function trimFrom(segments: readonly Segment[], from: number): Segment[] {
  const out: Segment[] = [];
  for (const s of segments) {
    const len = s.end - s.start;
    if (s.at + len <= from) continue;
    const skip = Math.max(0, from - s.at);
    out.push({ buf: s.buf, start: s.start + skip, end: s.end, at: s.at + skip });
  }
  return out;
}

/** How many of `buf`'s last bytes begin some secret that later bytes could complete (0: none). */
export function pendingPrefix(buf: Buffer, secrets: readonly Buffer[], keep: number): number {
  for (let at = Math.max(0, buf.length - keep); at < buf.length; at++) {
    const n = buf.length - at;
    for (const s of secrets) {
      if (n < s.length && s[0] === buf[at] && buf.compare(s, 0, n, at) === 0) return n;
    }
  }
  return 0;
}
