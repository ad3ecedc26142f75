// What the kubernetes engine records of a port-forward stream, through the audit core: each
// forwarded connection as `k8s.portforward.open` (its port and kubectl's request id) and
// `k8s.portforward.close` (bytes to and from the pod), and what the API server reports on the
// connection's error stream as `k8s.portforward.error`. Three protocols are read:
// - `spdy-ws`: kubectl's SPDY/3.1 tunnelled in WebSocket binary messages; `spdy`: the same SPDY
//   straight on the upgraded connection (kubectl's fallback, relayed only on a connection that holds
//   a client certificate, where nothing is scanned). kubectl opens two SPDY
//   streams per connection (SYN_STREAM with headers `streamtype: error|data`, `port`,
//   `requestid`; k8s.io/apimachinery/pkg/util/httpstream, portforward.k8s.io); the client's header
//   blocks are inflated with its own zlib context to learn them.
// - `channel`: the WebSocket channel protocol (v4.channel.k8s.io, or none): ports from the
//   `ports` query, channel 2i the data of the i-th port and 2i+1 its errors, each channel's first
//   message opened by the port (2 bytes, little-endian, counted with the data).
// The recorder only watches (it sees the bytes the client was sent, after the scan): what it cannot
// read stops the recording, with one `k8s.unrecorded`, and the stream flows on.
import type { SessionAudit } from '../../audit/contract.js';
import { controlFrameProblem, ControlType, FLAG_FIN, FRAME_HEAD, headerBlockOffset } from '../../httpProxy/spdy/frames.js';
import { HeaderBlockInflater, parseHeaderBlock } from '../../httpProxy/spdy/headerBlock.js';
import { WsFrameReader } from './wsFrames.js';

/** The most of an error stream's text recorded per connection. */
const ERROR_TEXT = 1024;

interface Connection {
  readonly requestId: string;
  readonly port: number;
  toPod: number;
  fromPod: number;
  finToPod: boolean;
  finFromPod: boolean;
  error: string;
}

export class PortForwardRecorder {
  private readonly started = performance.now();
  private readonly up = new WsFrameReader();
  private readonly down = new WsFrameReader();
  private readonly upSpdy = new SpdySplitter();
  private readonly downSpdy = new SpdySplitter();
  private readonly clientHeaders = new HeaderBlockInflater();
  /** SPDY stream id (or channel index) → its connection and whether it is the data or the error stream. */
  private readonly streams = new Map<number, { conn: Connection; data: boolean }>();
  private readonly open = new Set<Connection>();
  private stopped = false;

  constructor(
    private readonly audit: SessionAudit,
    private readonly action: number,
    private readonly protocol: 'spdy-ws' | 'spdy' | 'channel',
    ports: readonly number[],
  ) {
    if (protocol === 'channel') {
      ports.forEach((port, i) => {
        const conn = this.connection(String(i), port);
        this.streams.set(2 * i, { conn, data: true });
        this.streams.set(2 * i + 1, { conn, data: false });
      });
    }
  }

  private t(): number {
    return Math.round(performance.now() - this.started) / 1000;
  }

  fromClient(chunk: Buffer): void {
    this.direction(chunk, this.up, this.upSpdy, true);
  }

  toClient(chunk: Buffer): void {
    this.direction(chunk, this.down, this.downSpdy, false);
  }

  /** The stream ended: connections still open are closed in the record. */
  close(): void {
    for (const conn of [...this.open]) this.closed(conn);
  }

  private direction(chunk: Buffer, ws: WsFrameReader, spdy: SpdySplitter, toPod: boolean): void {
    if (this.stopped) return;
    try {
      if (this.protocol === 'spdy') {
        for (const f of spdy.push(chunk)) this.spdyFrame(f, toPod);
        return;
      }
      for (const m of ws.push(chunk)) {
        if (!m.binary) throw new Error('a text message');
        if (this.protocol === 'channel') this.channelMessage(m.payload, toPod);
        else for (const f of spdy.push(m.payload)) this.spdyFrame(f, toPod);
      }
      if (ws.failed !== undefined) throw new Error(ws.failed);
    } catch (err) {
      this.stopped = true;
      this.audit.onEvent('k8s.unrecorded', { action: this.action, t: this.t(), reason: err instanceof Error ? err.message : String(err) });
    }
  }

  private channelMessage(payload: Buffer, toPod: boolean): void {
    if (payload.length === 0) return;
    const s = this.streams.get(payload[0]!);
    if (s === undefined) return;
    this.bytes(s, payload.subarray(1), toPod);
  }

  private spdyFrame(f: SpdyFrame, toPod: boolean): void {
    if (f.control === undefined) {
      const s = this.streams.get(f.stream);
      if (s === undefined) return;
      this.bytes(s, f.body, toPod);
      if ((f.flags & FLAG_FIN) !== 0 && s.data) this.finished(s.conn, toPod);
      return;
    }
    const stream = f.body.length >= 4 ? f.body.readUInt32BE(0) & 0x7fffffff : 0;
    if (f.control === ControlType.SynStream && toPod) {
      const pairs = parseHeaderBlock(this.clientHeaders.inflate(f.body.subarray(headerBlockOffset(f.control))));
      const header = (name: string) => pairs.find(([n]) => n.toLowerCase() === name)?.[1] ?? '';
      const requestId = header('requestid');
      const port = Number(header('port'));
      let conn = [...this.open].find((c) => c.requestId === requestId);
      if (conn === undefined) conn = this.connection(requestId, port);
      this.streams.set(stream, { conn, data: header('streamtype') === 'data' });
    } else if (f.control === ControlType.RstStream) {
      const s = this.streams.get(stream);
      if (s?.data) this.closed(s.conn);
    }
  }

  private connection(requestId: string, port: number): Connection {
    const conn: Connection = { requestId, port, toPod: 0, fromPod: 0, finToPod: false, finFromPod: false, error: '' };
    this.open.add(conn);
    this.audit.onEvent('k8s.portforward.open', { action: this.action, t: this.t(), requestId, port });
    return conn;
  }

  private bytes(s: { conn: Connection; data: boolean }, data: Buffer, toPod: boolean): void {
    if (!s.data) {
      if (!toPod && s.conn.error.length < ERROR_TEXT) s.conn.error += data.toString('utf8').slice(0, ERROR_TEXT - s.conn.error.length);
      return;
    }
    if (toPod) s.conn.toPod += data.length;
    else s.conn.fromPod += data.length;
  }

  private finished(conn: Connection, toPod: boolean): void {
    if (toPod) conn.finToPod = true;
    else conn.finFromPod = true;
    if (conn.finToPod && conn.finFromPod) this.closed(conn);
  }

  private closed(conn: Connection): void {
    if (!this.open.delete(conn)) return;
    if (conn.error !== '') this.audit.onEvent('k8s.portforward.error', { action: this.action, t: this.t(), requestId: conn.requestId, port: conn.port, message: conn.error });
    this.audit.onEvent('k8s.portforward.close', { action: this.action, t: this.t(), requestId: conn.requestId, port: conn.port, bytesToPod: conn.toPod, bytesFromPod: conn.fromPod });
  }
}

interface SpdyFrame {
  /** The control frame type; undefined for a data frame. */
  readonly control: ControlType | undefined;
  /** A data frame's stream. */
  readonly stream: number;
  readonly flags: number;
  readonly body: Buffer;
}

/** Whole SPDY frames from the tunnelled bytes; throws on what is not SPDY/3.1. Data frames are passed in pieces. */
class SpdySplitter {
  private buffered = Buffer.alloc(0);
  private dataLeft = 0;
  private dataStream = 0;
  private dataFlags = 0;

  push(chunk: Buffer): SpdyFrame[] {
    const out: SpdyFrame[] = [];
    let b = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    for (;;) {
      if (this.dataLeft > 0) {
        // Data is counted as it comes: a large frame is never buffered whole.
        const n = Math.min(this.dataLeft, b.length);
        if (n === 0) break;
        this.dataLeft -= n;
        out.push({ control: undefined, stream: this.dataStream, flags: this.dataLeft === 0 ? this.dataFlags : 0, body: b.subarray(0, n) });
        b = b.subarray(n);
        continue;
      }
      if (b.length < FRAME_HEAD) break;
      const length = b.readUIntBE(5, 3);
      const flags = b[4]!;
      if ((b[0]! & 0x80) === 0) {
        this.dataStream = b.readUInt32BE(0);
        this.dataFlags = flags;
        this.dataLeft = length;
        b = b.subarray(FRAME_HEAD);
        if (length === 0) out.push({ control: undefined, stream: this.dataStream, flags, body: Buffer.alloc(0) });
        continue;
      }
      const type = b.readUInt16BE(2);
      const problem = controlFrameProblem(b.readUInt16BE(0) & 0x7fff, type, length);
      if (problem !== undefined) throw new Error(problem);
      if (b.length < FRAME_HEAD + length) break;
      out.push({ control: type as ControlType, stream: 0, flags, body: b.subarray(FRAME_HEAD, FRAME_HEAD + length) });
      b = b.subarray(FRAME_HEAD + length);
    }
    this.buffered = b.length === 0 ? Buffer.alloc(0) : Buffer.from(b);
    return out;
  }
}
