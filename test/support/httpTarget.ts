// A real HTTPS server of the tests' own, standing in for an internal API behind the http engine:
// every request that reaches it is written to its access log (so a test proves a refused request
// never arrived), and it offers echo, streaming, upload-digest, JSON and WebSocket-echo routes.
// The echo can be coded (`?encode=gzip|deflate|br|compress`) whatever the client accepts, as some
// services do, and can repeat the Authorization it got in a response header (`?header`).
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { generate } from 'selfsigned';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { WebSocketServer, type WebSocket } from 'ws';

export interface AccessLogEntry {
  readonly method: string;
  /** The request-target exactly as it arrived. */
  readonly target: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface HttpTarget {
  readonly url: string;
  /** PEM of the target's self-signed certificate (the CA the gateway must verify against). */
  readonly ca: string;
  readonly log: AccessLogEntry[];
  /** JSON served at /v1/customers (tests change it); a string is served as it is. */
  json: unknown;
  close(): Promise<void>;
}

/** Deterministic bytes of a given length (a repeating pattern), served by /bytes/N. */
export function patternChunk(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

export async function startHttpTarget(): Promise<HttpTarget> {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
  });
  const log: AccessLogEntry[] = [];
  const state = { json: { customers: [{ name: 'Ada', email: 'ada@example.com' }], card_number: '4111111111111111' } as unknown };
  const server: Server = createServer({ cert: pems.cert, key: pems.private }, (req, res) => {
    log.push({ method: req.method ?? '', target: req.url ?? '', headers: req.headers });
    const url = new URL(req.url ?? '/', 'https://x');
    const bytes = /^\/bytes\/(\d+)$/.exec(url.pathname);
    if (bytes) {
      const total = Number(bytes[1]);
      const chunk = patternChunk(64 * 1024);
      res.writeHead(200, { 'content-type': 'application/octet-stream', ...(url.searchParams.has('chunked') ? {} : { 'content-length': String(total) }) });
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          const part = chunk.subarray(0, Math.min(chunk.length, total - sent));
          sent += part.length;
          if (!res.write(part)) return void res.once('drain', pump);
        }
        res.end();
      };
      return pump();
    }
    if (url.pathname === '/upload') {
      const hash = createHash('sha256');
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        hash.update(c);
      });
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ size, sha256: hash.digest('hex') }));
      });
      return;
    }
    // Routed whatever the path's case, as many services do (the rules must follow).
    if (url.pathname.toLowerCase() === '/v1/customers') {
      // ?gzip: compressed whatever was asked (as some services do); ?broken: not JSON despite its type.
      // A string is served as the JSON text itself (numbers JavaScript cannot hold, exact literals).
      const json = typeof state.json === 'string' ? state.json : JSON.stringify(state.json);
      const body = url.searchParams.has('broken') ? Buffer.from('<html>oops</html>') : Buffer.from(json);
      const gzip = url.searchParams.has('gzip');
      // ?partial: a 206 answer, as to a Range request.
      const partial = url.searchParams.has('partial');
      res.writeHead(partial ? 206 : 200, { 'content-type': 'application/json', ...(gzip ? { 'content-encoding': 'gzip' } : {}), ...(partial ? { 'content-range': `bytes 0-${body.length - 1}/${body.length * 2}` } : {}) });
      return void res.end(gzip ? gzipSync(body) : body);
    }
    // The echo gzip-coded as a transfer coding (`Transfer-Encoding: gzip, chunked`), which a
    // client decodes like a content coding but which names no Content-Encoding.
    if (url.pathname === '/te-gzip') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'gzip, chunked' });
      return void res.end(gzipSync(JSON.stringify({ headers: req.headers })));
    }
    // The echo served by byte ranges (`Range: bytes=A-B` answered 206 with that slice), as static
    // file servers do: a range can cut an echoed credential anywhere.
    if (url.pathname === '/echo-range') {
      const text = Buffer.from(JSON.stringify({ headers: req.headers }));
      const range = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range ?? ''));
      if (range === null) {
        res.writeHead(200, { 'content-type': 'application/json', 'accept-ranges': 'bytes' });
        return void res.end(text);
      }
      const from = Number(range[1]);
      const to = Math.min(Number(range[2]), text.length - 1);
      res.writeHead(206, { 'content-type': 'application/json', 'content-range': `bytes ${from}-${to}/${text.length}` });
      return void res.end(text.subarray(from, to + 1));
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.from(JSON.stringify({ method: req.method, target: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }));
      const coding = url.searchParams.get('encode');
      // "compress" (LZW) stands for any coding the gateway cannot decode: its bytes are never read.
      const coded = coding === null ? text : ({ gzip: gzipSync, deflate: deflateSync, br: brotliCompressSync } as Record<string, (b: Buffer) => Buffer>)[coding]?.(text) ?? text;
      res.writeHead(200, {
        'content-type': 'application/json',
        'x-target': 'echo',
        ...(coding !== null ? { 'content-encoding': coding } : {}),
        ...(url.searchParams.has('header') ? { 'x-echo-authorization': req.headers.authorization ?? '' } : {}),
      });
      res.end(coded);
    });
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    log.push({ method: req.method ?? '', target: req.url ?? '', headers: req.headers });
    if (req.url === '/ws-ext') {
      // A server that names an extension the client never offered (as a broken or hostile one could).
      const accept = createHash('sha1').update(`${String(req.headers['sec-websocket-key'])}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n`);
      socket.end(Buffer.from([0xc1, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]));
      return;
    }
    const auth = /^\/ws-auth\?how=([a-z-]+)$/.exec(req.url ?? '');
    if (auth !== null) {
      wss.handleUpgrade(req, socket, head, (ws) => sendAuthorization(socket as Socket, ws, auth[1]!, String(req.headers.authorization ?? '')));
      return;
    }
    // A service that refuses the upgrade and quotes the credential it got, as error pages and
    // WWW-Authenticate challenges do (`?gzip`: the quote gzip-coded).
    const deny = /^\/ws-deny(\?gzip)?$/.exec(req.url ?? '');
    if (deny !== null) {
      const quoted = Buffer.from(JSON.stringify({ error: 'unauthorized', got: req.headers.authorization ?? '' }));
      const body = deny[1] !== undefined ? gzipSync(quoted) : quoted;
      socket.end(
        Buffer.concat([
          Buffer.from(`HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer error="invalid_token", got="${String(req.headers.authorization ?? '')}"\r\ncontent-type: application/json\r\n${deny[1] !== undefined ? 'content-encoding: gzip\r\n' : ''}content-length: ${body.length}\r\nconnection: close\r\n\r\n`),
          body,
        ]),
      );
      return;
    }
    // A WebSocket echo whose 101 answer repeats the credential in a header.
    if (req.url === '/ws-head') {
      wss.once('headers', (headers) => headers.push(`x-echo-authorization: ${String(req.headers.authorization ?? '')}`));
      wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
      return;
    }
    // A server that answers 101 without switching protocols (a proxy fooled by a health check of its
    // backend): what follows on the socket is read as more HTTP requests, each logged and answered.
    if (req.url === '/ws-fake') {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      let pending = head.toString('latin1');
      const serve = (chunk: string) => {
        pending += chunk;
        for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
          const [method = '', target = ''] = pending.slice(0, pending.indexOf('\r\n')).split(' ');
          log.push({ method, target, headers: {} });
          pending = pending.slice(end + 4);
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nsmuggled!');
        }
      };
      serve('');
      socket.on('data', (d: Buffer) => serve(d.toString('latin1')));
      return;
    }
    if (req.url !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, binary) => ws.send(data, { binary }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://localhost:${port}`,
    ca: pems.cert,
    log,
    get json() {
      return state.json;
    },
    set json(v: unknown) {
      state.json = v;
    },
    close: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * `/ws-auth?how=…`: a WebSocket service that prints the Authorization it was sent (as a debug
 * endpoint would) in text frames written by hand: `one-frame`, `two-frames` (one message in two
 * fragments), `two-writes` (one frame in two TCP writes), the split inside the value, or `rsv` (a
 * frame with RSV1 set, as compression would, after a plain one); then closes.
 */
function sendAuthorization(socket: Socket, ws: WebSocket, how: string, value: string): void {
  const frame = (opcode: number, payload: string, fin = true) => Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, Buffer.byteLength(payload)]), Buffer.from(payload)]);
  const text = `you sent: ${value}`;
  const half = 10 + Math.floor(value.length / 2);
  const parts =
    how === 'two-frames'
      ? [frame(1, text.slice(0, half), false), frame(0, text.slice(half))]
      : how === 'two-writes'
        ? ((f) => [f.subarray(0, 2 + half), f.subarray(2 + half)])(frame(1, text))
        : how === 'rsv'
          ? [frame(1, 'first'), Buffer.concat([Buffer.from([0xc1]), frame(1, text).subarray(1)])]
          : [frame(1, text)];
  socket.setNoDelay(true);
  socket.write(parts[0]!);
  // A pause so the parts leave as separate TCP segments and reach the gateway in separate reads.
  setTimeout(() => {
    for (const p of parts.slice(1)) socket.write(p);
    ws.close(1000);
  }, 150);
}
