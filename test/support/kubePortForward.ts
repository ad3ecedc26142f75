// The fixture API server's port-forward (kubeFixture.ts), as kubectl 1.31+ speaks it: a WebSocket
// with the subprotocol `SPDY/3.1+portforward.k8s.io` whose binary messages carry a SPDY/3.1
// session (client-go tools/portforward, tunneling_connection.go). kubectl opens two SPDY streams
// per local connection (headers `streamtype: error|data`, `port`, `requestid`); the fixture answers
// each with SYN_REPLY and joins the data stream to a real TCP connection to 127.0.0.1:port, the
// pod's port. Header blocks go through Node's zlib streams primed with the SPDY/3 dictionary, one
// context per direction as the protocol requires. Every frame the fixture sends is cut in two
// WebSocket messages, so the gateway sees SPDY frames across message boundaries.
// The WebSocket is served by hand: `ws` refuses the subprotocol (a `/` is not a token character in
// RFC 7230's grammar), which Go's API server accepts.
// Two ports misbehave on purpose: MALFORMED_SPDY_PORT answers with a SPDY/2 control frame and
// HEADER_ECHO_PORT with a SYN_REPLY whose header block carries the fixture's token.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { constants, createDeflate, createInflate, type Deflate, type Inflate } from 'node:zlib';
import { SPDY3_DICTIONARY } from '../../gateway/httpProxy/spdy/headerBlock.js';

export const SPDY_PORTFORWARD_PROTOCOL = 'SPDY/3.1+portforward.k8s.io';
export const MALFORMED_SPDY_PORT = 1;
export const HEADER_ECHO_PORT = 2;

const SYN_STREAM = 1;
const SYN_REPLY = 2;
const RST_STREAM = 3;
const PING = 6;
const FIN = 0x01;

function control(type: number, flags: number, body: Buffer, version = 3): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16BE(0x8000 | version, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt32BE(body.length, 4);
  head[4] = flags;
  return Buffer.concat([head, body]);
}

function data(stream: number, flags: number, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(stream & 0x7fffffff, 0);
  head.writeUInt32BE(body.length, 4);
  head[4] = flags;
  return Buffer.concat([head, body]);
}

function nameValues(pairs: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  parts.push(u32(pairs.length));
  for (const [n, v] of pairs) parts.push(u32(Buffer.byteLength(n)), Buffer.from(n), u32(Buffer.byteLength(v)), Buffer.from(v));
  return Buffer.concat(parts);
}

/** One sync-flushed run of a zlib stream (ws's permessage-deflate collects the same way). */
function flushed(z: Deflate | Inflate, input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const onData = (d: Buffer) => out.push(d);
    z.on('data', onData);
    z.once('error', reject);
    z.write(input);
    z.flush(constants.Z_SYNC_FLUSH, () => {
      z.off('data', onData);
      z.off('error', reject);
      resolve(Buffer.concat(out));
    });
  });
}

function parsePairs(raw: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let at = 4;
  for (let i = raw.readUInt32BE(0); i > 0; i--) {
    const nl = raw.readUInt32BE(at);
    const name = raw.toString('latin1', at + 4, at + 4 + nl);
    at += 4 + nl;
    const vl = raw.readUInt32BE(at);
    out.set(name.toLowerCase(), raw.toString('latin1', at + 4, at + 4 + vl));
    at += 4 + vl;
  }
  return out;
}

/** The WebSocket handshake answered by hand, then one tunnelled SPDY session on the socket until either side closes. */
export function servePortForward(req: IncomingMessage, socket: Socket, head: Buffer, token: string, sockets: Set<Socket>): void {
  const accept = createHash('sha1').update(`${String(req.headers['sec-websocket-key'])}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${SPDY_PORTFORWARD_PROTOCOL}\r\n\r\n`);
  socket.setNoDelay(true);
  const ws = new TunnelSocket(socket);
  if (head.length > 0) ws.receive(head);
  socket.on('data', (d: Buffer) => ws.receive(d));
  serveSpdy(ws, token, sockets);
}

/** Server-side RFC 6455 framing, as much as the tunnel needs: binary messages out, masked frames in, close and ping answered. */
class TunnelSocket {
  private buffered = Buffer.alloc(0);
  private closed = false;
  onMessage: (m: Buffer) => void = () => undefined;
  onClose: () => void = () => undefined;

  constructor(private readonly socket: Socket) {
    socket.on('close', () => this.gone());
    socket.on('error', () => socket.destroy());
  }

  get open(): boolean {
    return !this.closed && this.socket.writable;
  }

  send(payload: Buffer, opcode = 2): void {
    if (!this.open) return;
    const len = payload.length;
    const head = len < 126 ? Buffer.from([0x80 | opcode, len]) : len < 65536 ? Buffer.from([0x80 | opcode, 126, len >> 8, len & 0xff]) : Buffer.concat([Buffer.from([0x80 | opcode, 127]), u64(len)]);
    this.socket.write(Buffer.concat([head, payload]));
  }

  receive(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    for (;;) {
      const b = this.buffered;
      if (b.length < 2) return;
      let len = b[1]! & 0x7f;
      let at = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      const masked = (b[1]! & 0x80) !== 0;
      if (b.length < at + (masked ? 4 : 0) + len) return;
      const mask = masked ? b.subarray(at, at + 4) : undefined;
      if (masked) at += 4;
      const payload = Buffer.from(b.subarray(at, at + len));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
      this.buffered = b.subarray(at + len);
      const opcode = b[0]! & 0x0f;
      if (opcode === 0x8) {
        this.send(payload.subarray(0, 2), 0x8);
        this.socket.end();
        this.gone();
        return;
      }
      if (opcode === 0x9) this.send(payload, 0xa);
      else if (opcode <= 0x2) this.onMessage(payload);
    }
  }

  close(): void {
    this.send(Buffer.from([0x03, 0xe8]), 0x8);
    this.socket.end();
    this.gone();
  }

  private gone(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function serveSpdy(ws: TunnelSocket, token: string, sockets: Set<Socket>): void {
  const inflate = createInflate({ dictionary: SPDY3_DICTIONARY });
  const deflate = createDeflate({ dictionary: SPDY3_DICTIONARY });
  const connections = new Map<string, { data?: number; error?: number; socket?: Socket }>();
  let buffered = Buffer.alloc(0);
  let queue = Promise.resolve();
  const send = (frame: Buffer) => {
    const half = Math.max(1, frame.length >> 1);
    ws.send(frame.subarray(0, half));
    if (frame.length > half) ws.send(frame.subarray(half));
  };
  const reply = async (stream: number, pairs: [string, string][]) => {
    const id = Buffer.alloc(4);
    id.writeUInt32BE(stream);
    send(control(SYN_REPLY, 0, Buffer.concat([id, await flushed(deflate, nameValues(pairs))])));
  };
  const finish = (conn: { data?: number; error?: number }) => {
    if (conn.data !== undefined) send(data(conn.data, FIN, Buffer.alloc(0)));
    if (conn.error !== undefined) send(data(conn.error, FIN, Buffer.alloc(0)));
  };
  const open = (conn: { data?: number; error?: number; socket?: Socket }, port: number) => {
    const socket = connect(port, '127.0.0.1');
    sockets.add(socket);
    conn.socket = socket;
    socket.on('data', (d: Buffer) => send(data(conn.data!, 0, d)));
    socket.on('error', (err) => {
      if (conn.error !== undefined) send(data(conn.error, 0, Buffer.from(`error forwarding port ${port} to pod: ${err.message}`)));
    });
    socket.on('close', () => {
      sockets.delete(socket);
      finish(conn);
    });
  };
  const onFrame = async (frame: Buffer) => {
    if ((frame[0]! & 0x80) === 0) {
      const stream = frame.readUInt32BE(0);
      const conn = [...connections.values()].find((c) => c.data === stream);
      const body = frame.subarray(8);
      if (conn?.socket === undefined) return;
      if (body.length > 0) conn.socket.write(body);
      if ((frame[4]! & FIN) !== 0) conn.socket.end();
      return;
    }
    const type = frame.readUInt16BE(2);
    if (type === PING) return send(frame);
    if (type === RST_STREAM) {
      const stream = frame.readUInt32BE(8);
      for (const c of connections.values()) if (c.data === stream) c.socket?.destroy();
      return;
    }
    if (type !== SYN_STREAM) return;
    const stream = frame.readUInt32BE(8) & 0x7fffffff;
    const headers = parsePairs(await flushed(inflate, frame.subarray(18)));
    const requestId = headers.get('requestid') ?? '';
    const port = Number(headers.get('port'));
    const conn = connections.get(requestId) ?? {};
    connections.set(requestId, conn);
    if (port === MALFORMED_SPDY_PORT) {
      send(control(SYN_REPLY, 0, Buffer.alloc(4), 2));
      return;
    }
    await reply(stream, port === HEADER_ECHO_PORT ? [['x-echo', `Bearer ${token}`]] : []);
    if (headers.get('streamtype') === 'error') conn.error = stream;
    else {
      conn.data = stream;
      open(conn, port);
    }
  };
  ws.onMessage = (msg: Buffer) => {
    buffered = Buffer.concat([buffered, msg]);
    for (;;) {
      if (buffered.length < 8) break;
      const length = buffered.readUIntBE(5, 3);
      if (buffered.length < 8 + length) break;
      const frame = buffered.subarray(0, 8 + length);
      buffered = buffered.subarray(8 + length);
      queue = queue.then(() => onFrame(frame)).catch(() => ws.close());
    }
  };
  ws.onClose = () => {
    inflate.close();
    deflate.close();
    for (const c of connections.values()) c.socket?.destroy();
  };
}
