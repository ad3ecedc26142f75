// The proxy core against a real HTTPS target: a plain TCP listener hands each accepted socket to
// the core as the tunnel would, and real clients (undici's fetch, ws) talk to it.
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, request as httpRequest, type Server as HttpServer, type ServerResponse } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { EventEmitter, once } from 'node:events';
import { Readable, Transform } from 'node:stream';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createHttpProxy } from '../../../gateway/httpProxy/proxy.js';
import { plainResponse } from '../../../gateway/httpProxy/sampler.js';
import type { ExchangeOutcome, ProxyHooks, ProxyRequest } from '../../../gateway/httpProxy/types.js';
import { ProxyRefusal } from '../../../gateway/httpProxy/types.js';
import { createUpstream, type Upstream } from '../../../gateway/httpProxy/upstream.js';
import { patternChunk, startHttpTarget, type HttpTarget } from '../../support/httpTarget.js';

let target: HttpTarget;
const outcomes: { action: string | undefined; req: ProxyRequest; outcome: ExchangeOutcome }[] = [];
/** Emits 'outcome' (rawTarget, outcome) as each exchange is reported. */
const reported = new EventEmitter();
/** Bytes that went through the response filter (requests with `filter` in their query). */
let filtered = 0;

/** The outcome of the next exchange for `rawTarget`. */
function outcomeOf(rawTarget: string): Promise<ExchangeOutcome> {
  return new Promise((resolve) => {
    const on = (t: string, o: ExchangeOutcome) => {
      if (t !== rawTarget) return;
      reported.off('outcome', on);
      resolve(o);
    };
    reported.on('outcome', on);
  });
}

const hooks: ProxyHooks<string> = {
  classify(req) {
    if (req.rawTarget.startsWith('/refuse-classify')) throw new ProxyRefusal(plainResponse(400, 'cannot classify'));
    // Rewrites one path to show that what is forwarded is the classification's target.
    return { action: `${req.method} ${req.rawTarget}`, target: req.rawTarget === '/rewrite-me' ? '/rewritten' : req.rawTarget };
  },
  async decide(action) {
    if (action.includes('/blocked')) return { verdict: 'block', refusal: plainResponse(403, 'blocked by test') };
    return { verdict: 'allow' };
  },
  inject: () => ({ Authorization: 'Bearer upstream-secret' }),
  async transformResponse(_action, req, res) {
    // Replaced once undici has the whole body but nobody read it: the core destroys it unread,
    // and undici, its request complete, no longer listens for the error that raises.
    if (req.rawTarget.endsWith('?replace-unread')) {
      const size = Number(/^\/bytes\/(\d+)/.exec(req.rawTarget)![1]);
      while (res.body.readableLength < size) await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      return plainResponse(200, 'replaced');
    }
    if (req.rawTarget !== '/v1/customers?transform') return undefined;
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c as Buffer);
    return { status: res.status, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ transformed: JSON.parse(Buffer.concat(chunks).toString()) })) };
  },
  responseFilter(_action, req) {
    if (!req.rawTarget.includes('filter')) return undefined;
    if (req.rawTarget.includes('inline')) {
      // Holds back each chunk's last byte until the next, as a scrubber holds a secret's prefix.
      let carry: Buffer | undefined;
      return {
        push(chunk: Buffer) {
          filtered += chunk.length;
          const buf = carry !== undefined ? Buffer.concat([carry, chunk]) : chunk;
          carry = Buffer.from(buf.subarray(buf.length - 1));
          return buf.subarray(0, buf.length - 1);
        },
        end: () => carry,
      };
    }
    return new Transform({
      transform(chunk: Buffer, _enc, done) {
        filtered += chunk.length;
        done(null, chunk);
      },
    });
  },
  onOutcome: (action, req, outcome) => {
    outcomes.push({ action, req, outcome });
    reported.emit('outcome', req.rawTarget, outcome);
  },
};

interface Harness {
  url: string;
  server: Server;
  upstream: Upstream;
  close(): Promise<void>;
}

async function startProxy(upstreamUrl: string, ca: string | undefined, timeouts: { headersTimeoutMs?: number; keepAliveMs?: number } = {}): Promise<Harness> {
  const upstream = createUpstream({ url: upstreamUrl, ...(ca !== undefined ? { ca } : {}) });
  const proxy = createHttpProxy({ upstream, hooks, sampleBytes: 64, ...timeouts });
  const sockets = new Set<Socket>();
  const aborter = new AbortController();
  const server = createServer((socket) => {
    sockets.add(socket);
    void proxy.handle(socket, aborter.signal).finally(() => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    upstream,
    close: async () => {
      aborter.abort();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await upstream.close();
    },
  };
}

let proxy: Harness;
const client = new Agent({ connections: 1, pipelining: 1 });

beforeAll(async () => {
  target = await startHttpTarget();
  proxy = await startProxy(target.url, target.ca);
});
afterAll(async () => {
  await client.close();
  await proxy?.close();
  await target?.close();
});

/** Opens a raw connection, writes `text`, and resolves with everything received once the proxy closes it. */
function rawExchange(url: string, text: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    let got = '';
    const s = connect(Number(port), '127.0.0.1', () => s.write(text));
    s.setEncoding('latin1');
    s.on('data', (d: string) => (got += d));
    s.on('error', reject);
    s.on('close', () => resolve(got));
  });
}

describe('client timeouts', () => {
  let quick: Harness;
  beforeAll(async () => {
    quick = await startProxy(target.url, target.ca, { headersTimeoutMs: 300, keepAliveMs: 300 });
  });
  afterAll(() => quick?.close());

  it('answers 408 and closes a connection whose request head never completes (or never starts)', async () => {
    const seen = target.log.length;
    for (const partial of ['GET /echo/slow HTTP/1.1\r\nHost: x\r\nX-Slow: 1', '']) {
      const got = await rawExchange(quick.url, partial);
      expect(got).toMatch(/^HTTP\/1\.1 408 /);
      expect(got).toContain('no complete request head within 0.3 s');
    }
    expect(target.log.length).toBe(seen);
  });

  it('closes an idle keep-alive connection after its last response, quietly', async () => {
    const got = await rawExchange(quick.url, 'GET /echo/once HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(got).toMatch(/^HTTP\/1\.1 200 /);
    expect(got).not.toContain('408');
  });

  it('does not time a request whose head is in, however long its body takes', async () => {
    const { port } = new URL(quick.url);
    const got = await new Promise<string>((resolve, reject) => {
      let text = '';
      const s = connect(Number(port), '127.0.0.1', () => s.write('POST /echo/late HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab'));
      s.setEncoding('latin1');
      // The rest of the body follows only once the proxy has forwarded the head upstream, past the 0.3 s limit.
      const late = setInterval(() => {
        if (target.log.at(-1)?.target === '/echo/late') {
          clearInterval(late);
          setTimeout(() => s.write('cd'), 600);
        }
      }, 20);
      s.on('data', (d: string) => {
        text += d;
        if (text.includes('"body":"abcd"')) s.end();
      });
      s.on('error', reject);
      s.on('close', () => resolve(text));
    });
    expect(got).toMatch(/^HTTP\/1\.1 200 /);
    expect(got).toContain('"body":"abcd"');
  });
});

describe('http proxy core', () => {
  it('forwards with the injected credential replacing the client\'s and hop-by-hop fields dropped', async () => {
    // Node's client, since undici will not send a Connection field naming other fields.
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(`${proxy.url}/echo?x=1`, { headers: { authorization: 'Bearer client-guess', connection: 'keep-alive, x-hop', 'x-hop': 'secret-hop', 'x-end': 'kept' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end();
    });
    const echo = JSON.parse(text) as { target: string; headers: Record<string, string> };
    expect(status).toBe(200);
    expect(echo.target).toBe('/echo?x=1');
    expect(echo.headers.authorization).toBe('Bearer upstream-secret');
    expect(echo.headers['x-hop']).toBeUndefined();
    expect(echo.headers['x-end']).toBe('kept');
    expect(echo.headers.host).toBe(new URL(target.url).host);
    const arrived = target.log.at(-1)!;
    expect(arrived.headers.authorization).toBe('Bearer upstream-secret');
  });

  it('keeps one client connection alive across requests and reports each outcome', async () => {
    const before = outcomes.length;
    for (let i = 0; i < 3; i++) {
      const res = await request(`${proxy.url}/echo/${i}`, { dispatcher: client });
      await res.body.text();
    }
    const mine = outcomes.slice(before);
    expect(mine.map((o) => o.action)).toEqual(['GET /echo/0', 'GET /echo/1', 'GET /echo/2']);
    expect(mine.map((o) => o.req.sequence)).toEqual([mine[0]!.req.sequence, mine[0]!.req.sequence + 1, mine[0]!.req.sequence + 2]);
    expect(mine.every((o) => o.outcome.result === 'forwarded' && o.outcome.status === 200)).toBe(true);
    expect(mine[0]!.outcome.responseSample.length).toBe(64);
  });

  it('refuses a blocked request without it reaching the target, and keeps serving', async () => {
    const seen = target.log.length;
    const res = await request(`${proxy.url}/blocked/x`, { dispatcher: client, method: 'DELETE' });
    expect(res.statusCode).toBe(403);
    expect(await res.body.text()).toContain('blocked by test');
    const bad = await request(`${proxy.url}/refuse-classify`, { dispatcher: client });
    expect(bad.statusCode).toBe(400);
    await bad.body.text();
    expect(target.log.length).toBe(seen);
    const ok = await request(`${proxy.url}/echo`, { dispatcher: client });
    expect(ok.statusCode).toBe(200);
    await ok.body.text();
    expect(outcomes.at(-2)!.outcome.result).toBe('refused');
  });

  it('sends upstream the target the classification chose', async () => {
    const res = await request(`${proxy.url}/rewrite-me`, { dispatcher: client });
    await res.body.text();
    expect(target.log.at(-1)!.target).toBe('/rewritten');
  });

  it('streams bodies both ways (upload digest, chunked download)', async () => {
    const chunk = patternChunk(64 * 1024);
    const total = 8 * 1024 * 1024;
    async function* body() {
      for (let sent = 0; sent < total; sent += chunk.length) yield chunk;
    }
    const expected = createHash('sha256');
    for (let sent = 0; sent < total; sent += chunk.length) expected.update(chunk);
    const up = await request(`${proxy.url}/upload`, { dispatcher: client, method: 'POST', body: Readable.from(body()) });
    expect(JSON.parse(await up.body.text())).toEqual({ size: total, sha256: expected.digest('hex') });
    const down = await request(`${proxy.url}/bytes/${total}?chunked`, { dispatcher: client });
    const got = createHash('sha256');
    let size = 0;
    for await (const c of down.body) {
      size += (c as Buffer).length;
      got.update(c as Buffer);
    }
    expect(size).toBe(total);
    const want = createHash('sha256');
    for (let sent = 0; sent < total; sent += chunk.length) want.update(chunk.subarray(0, Math.min(chunk.length, total - sent)));
    expect(got.digest('hex')).toBe(want.digest('hex'));
  });

  it.each(['filter', 'inline-filter'])('streams a download through the engine\'s response filter (%s), counted and sampled', async (query) => {
    const total = 4 * 1024 * 1024 + 17;
    const path = `/bytes/${total}?${query}`;
    const reportedOutcome = outcomeOf(path);
    filtered = 0;
    const down = await request(`${proxy.url}${path}`, { dispatcher: client });
    const got = createHash('sha256');
    for await (const c of down.body) got.update(c as Buffer);
    const want = createHash('sha256');
    const chunk = patternChunk(64 * 1024);
    for (let sent = 0; sent < total; sent += chunk.length) want.update(chunk.subarray(0, Math.min(chunk.length, total - sent)));
    expect(got.digest('hex')).toBe(want.digest('hex'));
    expect(filtered).toBe(total);
    const outcome = await reportedOutcome;
    expect(outcome).toMatchObject({ status: 200, result: 'forwarded', responseBytes: total });
    expect(outcome.responseSample.equals(chunk.subarray(0, 64))).toBe(true);
  });

  it('a client leaving mid-download fails the exchange and abandons the upstream body; the core keeps serving', async () => {
    const total = 256 * 1024 * 1024;
    const path = `/bytes/${total}`;
    const reportedOutcome = outcomeOf(path);
    const req = httpRequest(`${proxy.url}${path}`);
    req.end();
    const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
    await once(res, 'data');
    req.destroy();
    const outcome = await reportedOutcome;
    expect(outcome).toMatchObject({ status: 200, result: 'failed', error: 'the client closed the connection' });
    expect(outcome.responseBytes).toBeGreaterThan(0);
    expect(outcome.responseBytes).toBeLessThan(total);
    const next = await request(`${proxy.url}/v1/customers`, { dispatcher: client });
    expect(next.statusCode).toBe(200);
    expect(await next.body.json()).toEqual(target.json);
  });

  it('lets the engine replace a response', async () => {
    const res = await request(`${proxy.url}/v1/customers?transform`, { dispatcher: client });
    expect(JSON.parse(await res.body.text())).toEqual({ transformed: target.json });
  });

  it('survives replacing a response whose body was never read (destroying it raises an error)', async () => {
    // Unheard, undici's RequestAbortedError would end the gateway process; here it would land in this list.
    const crashes: unknown[] = [];
    const onCrash = (err: unknown) => crashes.push(err);
    process.on('uncaughtException', onCrash);
    try {
      const outcome = outcomeOf('/bytes/64?replace-unread');
      const res = await request(`${proxy.url}/bytes/64?replace-unread`, { dispatcher: client });
      expect(await res.body.text()).toContain('replaced');
      expect((await outcome).result).toBe('forwarded');
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('uncaughtException', onCrash);
    }
    expect(crashes).toEqual([]);
    const next = await request(`${proxy.url}/v1/customers`, { dispatcher: client });
    expect(await next.body.json()).toEqual(target.json);
  });

  it('passes a WebSocket upgrade through and echoes frames', async () => {
    const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/ws`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const reply = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
    ws.send('hello through the proxy');
    expect(await reply).toBe('hello through the proxy');
    ws.close();
    await new Promise((resolve) => ws.once('close', resolve));
    expect(target.log.at(-1)!.headers.authorization).toBe('Bearer upstream-secret');
  });

  it('relays a non-101 answer to an upgrade and closes', async () => {
    const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/nows`);
    const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    expect(status).toBe(404);
    ws.on('error', () => undefined);
    ws.terminate();
  });

  it('refuses a blocked upgrade before it reaches the target', async () => {
    const seen = target.log.length;
    const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/blocked`);
    const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    expect(status).toBe(403);
    ws.on('error', () => undefined);
    ws.terminate();
    expect(target.log.length).toBe(seen);
  });

  it('refuses an h2c (or any unlisted) upgrade before it reaches the target', async () => {
    const seen = target.log.length;
    const { createConnection } = await import('node:net');
    const port = Number(new URL(proxy.url).port);
    const reply = await new Promise<string>((resolve) => {
      const s = createConnection(port, '127.0.0.1', () => s.write('GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n'));
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('close', () => resolve(got));
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(reply).toContain('not passed through');
    expect(target.log.length).toBe(seen);
  });

  it('answers 502 when the upstream certificate is not trusted', async () => {
    const untrusted = await startProxy(target.url, undefined);
    try {
      const res = await request(`${untrusted.url}/echo`);
      expect(res.statusCode).toBe(502);
      const text = await res.body.text();
      expect(text).toMatch(/certificate that is not trusted/);
      expect(text).not.toContain('upstream-secret');
    } finally {
      await untrusted.close();
    }
  });
});

describe('http proxy core: an upstream that breaks off, a client that leaves (seen at the upstream)', () => {
  // A plain HTTP upstream of the test's own, so each test can watch its own response's fate.
  const served: { path: string; res: ServerResponse }[] = [];
  const arrived = new EventEmitter();
  let upstreamServer: HttpServer;
  let plain: Harness;
  const chunk = patternChunk(64 * 1024);
  beforeAll(async () => {
    upstreamServer = createHttpServer((req, res) => {
      served.push({ path: req.url ?? '', res });
      arrived.emit('request', req.url, res);
      if (req.url === '/break-off') {
        // Promises a megabyte, sends 64 KiB, then drops the connection.
        res.writeHead(200, { 'content-length': String(1024 * 1024) });
        res.write(chunk, () => res.destroy());
      } else if (req.url === '/endless') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const pump = (): void => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', pump);
        };
        pump();
      } else res.end('ok');
    });
    await new Promise<void>((resolve) => upstreamServer.listen(0, '127.0.0.1', resolve));
    plain = await startProxy(`http://127.0.0.1:${(upstreamServer.address() as AddressInfo).port}`, undefined);
  });
  afterAll(async () => {
    await plain?.close();
    upstreamServer?.closeAllConnections();
    await new Promise<void>((resolve) => upstreamServer?.close(() => resolve()));
  });

  it('a body cut short upstream fails the exchange and ends the client connection (no short body taken as whole); the core keeps serving', async () => {
    const outcome = outcomeOf('/break-off');
    const req = httpRequest(`${plain.url}/break-off`);
    req.end();
    const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
    let got = 0;
    res.on('data', (d: Buffer) => (got += d.length));
    const [err] = (await once(res, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNRESET');
    expect(got).toBeLessThan(1024 * 1024);
    expect(await outcome).toMatchObject({ status: 200, result: 'failed' });
    const next = await request(`${plain.url}/ok`);
    expect(await next.body.text()).toBe('ok');
  });

  it('a client leaving mid-download aborts the upstream request: the upstream sees its response closed unfinished', async () => {
    const atUpstream = new Promise<ServerResponse>((resolve) => arrived.once('request', (_url: string, res: ServerResponse) => resolve(res)));
    const outcome = outcomeOf('/endless');
    const req = httpRequest(`${plain.url}/endless`);
    req.end();
    const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
    await once(res, 'data');
    const upstreamRes = await atUpstream;
    const upstreamClosed = upstreamRes.closed ? Promise.resolve() : once(upstreamRes, 'close');
    req.destroy();
    await upstreamClosed;
    expect(upstreamRes.writableFinished).toBe(false);
    expect(await outcome).toMatchObject({ status: 200, result: 'failed', error: 'the client closed the connection' });
  });
});
