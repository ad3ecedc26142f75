// Reads the SPDY/3.1 frames a server sends through a tunnel (kubectl port-forward's
// `SPDY/3.1+portforward.k8s.io`: the SPDY bytes ride in WebSocket binary messages, cut anywhere)
// and keeps the held credential out of them. Each SPDY stream's data (one forwarded connection,
// or its error stream) is scanned as its own continuous text, so an echo split across data frames,
// WebSocket messages or TCP reads is overwritten in place with "*" of the same length; frames are
// never rebuilt. The bytes from where an echo could begin wait (holding the wire behind them)
// until the stream's next data, its end (FIN, RST_STREAM) or the end of the tunnel decides.
// Control frames are held whole until read: their raw bytes must not hold the credential, and the
// header blocks of SYN_STREAM, SYN_REPLY and HEADERS are inflated with the sender's shared zlib
// context (headerBlock.ts) and must not hold it either — a compressed block cannot be overwritten
// in place, so such a block ends the tunnel. So does anything not SPDY/3.1: another version, an
// unknown control type, a length the type does not allow, an oversized control frame, data on a
// stream after its end.
import { scrubInPlace } from '../scrub.js';
import { scrubSegments, trimFrom, type PayloadScan, type Segment } from '../wsScrub.js';
import { controlFrameProblem, ControlType, FLAG_FIN, FRAME_HEAD, headerBlockOffset } from './frames.js';
import { HeaderBlockInflater, parseHeaderBlock, SpdyScanError } from './headerBlock.js';

export { SpdyScanError } from './headerBlock.js';

/**
 * The stream ids that have ended, kept small: ids of one initiator rise monotonically (odd from
 * the client, even from the server; SPDY/3 §2.3.2) and kubectl's streams end about in order, so
 * each parity is a floor below which every id has ended, plus the ended ids above it.
 */
class EndedStreams {
  private readonly floor = [2, 1];
  private readonly above = new Set<number>();

  has(id: number): boolean {
    return id < this.floor[id & 1]! || this.above.has(id);
  }

  add(id: number): void {
    const p = id & 1;
    if (id < this.floor[p]!) return;
    this.above.add(id);
    while (this.above.delete(this.floor[p]!)) this.floor[p]! += 2;
  }
}

export class SpdyScan implements PayloadScan {
  private readonly keep: number;
  private readonly head = Buffer.alloc(FRAME_HEAD);
  private headLen = 0;
  /** The stream offset of the frame being read. */
  private frameAt = 0;
  private inBody = false;
  private remaining = 0;
  private control: { type: number; flags: number; body: Buffer; filled: number } | undefined;
  private dataStream = 0;
  private dataFin = false;
  /** Per stream, its data from the first byte that could begin an echo (only streams holding some). */
  private readonly held = new Map<number, Segment[]>();
  /** Streams the server ended: data after its end would be scanned apart from what came before, so it is refused. */
  private readonly ended = new EndedStreams();
  private fresh = new Map<number, Segment[]>();
  private readonly inflater = new HeaderBlockInflater();

  constructor(
    private readonly secrets: readonly Buffer[],
    private readonly onHit?: (count: number) => void,
  ) {
    this.keep = Math.max(0, ...secrets.map((s) => s.length - 1));
  }

  settle(segments: readonly Segment[]): number | undefined {
    for (const s of segments) this.read(s);
    for (const id of this.fresh.keys()) this.scrubStream(id);
    this.fresh = new Map();
    let hold: number | undefined;
    for (const h of this.held.values()) hold = hold === undefined ? h[0]!.at : Math.min(hold, h[0]!.at);
    // A frame head not yet whole, or a control frame not yet read, waits from its first byte.
    if (this.headLen > 0 || this.control !== undefined) hold = hold === undefined ? this.frameAt : Math.min(hold, this.frameAt);
    return hold;
  }

  /** A control frame cut short is not released: it was never read. */
  end(): boolean {
    this.held.clear();
    this.fresh.clear();
    return this.control === undefined;
  }

  private read(seg: Segment): void {
    let i = seg.start;
    while (i < seg.end) {
      if (!this.inBody) {
        if (this.headLen === 0) this.frameAt = seg.at + (i - seg.start);
        while (this.headLen < FRAME_HEAD && i < seg.end) this.head[this.headLen++] = seg.buf[i++]!;
        if (this.headLen < FRAME_HEAD) return;
        this.frameHead();
        if (this.remaining === 0) {
          this.frameDone();
          continue;
        }
      }
      const n = Math.min(this.remaining, seg.end - i);
      if (this.control !== undefined) {
        seg.buf.copy(this.control.body, this.control.filled, i, i + n);
        this.control.filled += n;
      } else {
        const part = { buf: seg.buf, start: i, end: i + n, at: seg.at + (i - seg.start) };
        const list = this.fresh.get(this.dataStream);
        if (list === undefined) this.fresh.set(this.dataStream, [part]);
        else list.push(part);
      }
      i += n;
      this.remaining -= n;
      if (this.remaining === 0) this.frameDone();
    }
  }

  private frameHead(): void {
    const h = this.head;
    const length = h.readUIntBE(5, 3);
    const flags = h[4]!;
    this.inBody = true;
    this.remaining = length;
    if ((h[0]! & 0x80) === 0) {
      this.dataStream = h.readUInt32BE(0);
      if (this.dataStream === 0) throw new SpdyScanError('a SPDY data frame on stream 0');
      if (this.ended.has(this.dataStream)) throw new SpdyScanError(`SPDY data on stream ${this.dataStream} after its end`);
      this.dataFin = (flags & FLAG_FIN) !== 0;
      return;
    }
    const version = h.readUInt16BE(0) & 0x7fff;
    const type = h.readUInt16BE(2);
    const problem = controlFrameProblem(version, type, length);
    if (problem !== undefined) throw new SpdyScanError(problem);
    this.control = { type, flags, body: Buffer.alloc(length), filled: 0 };
  }

  private frameDone(): void {
    this.inBody = false;
    this.headLen = 0;
    const c = this.control;
    if (c === undefined) {
      if (this.dataFin) this.closeStream(this.dataStream);
      return;
    }
    this.control = undefined;
    this.judgeControl(c.type, c.flags, c.body);
  }

  /** A whole control frame: refused if it or its header block holds the credential; a stream's end releases its held data. */
  private judgeControl(type: number, flags: number, body: Buffer): void {
    const raw = Buffer.concat([this.head, body]);
    if (scrubInPlace(raw, this.secrets) > 0) throw new SpdyScanError('a SPDY control frame that holds the credential');
    const blockAt = headerBlockOffset(type);
    if (blockAt !== undefined && body.length > blockAt) {
      const inflated = this.inflater.inflate(body.subarray(blockAt));
      parseHeaderBlock(inflated);
      if (scrubInPlace(Buffer.from(inflated), this.secrets) > 0) throw new SpdyScanError('a SPDY header block that echoes the held credential (a compressed block cannot be overwritten in place)');
    }
    const stream = body.length >= 4 ? body.readUInt32BE(0) & 0x7fffffff : 0;
    if (type === ControlType.RstStream || (blockAt !== undefined && (flags & FLAG_FIN) !== 0)) this.closeStream(stream);
  }

  /** Scrubs the stream's data so far; what may begin an echo stays held. */
  private scrubStream(id: number): void {
    const fresh = this.fresh.get(id) ?? [];
    const held = this.held.get(id);
    const segments = held === undefined ? fresh : [...held, ...fresh];
    this.fresh.delete(id);
    const hold = scrubSegments(segments, this.secrets, this.keep, this.onHit);
    if (hold === undefined) this.held.delete(id);
    else this.held.set(id, trimFrom(segments, hold));
  }

  /** The server sends no more data on the stream: what it held can no longer become an echo. */
  private closeStream(id: number): void {
    this.scrubStream(id);
    this.held.delete(id);
    this.ended.add(id);
  }
}
