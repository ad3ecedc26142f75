// The proxy core against a real HTTPS target with the malformed-request corpus: every head the
// core refuses (Node's parser or its own checks) is answered with its status and the connection
// closed, and neither it nor a request glued behind it (the smuggled one) appears in the target's
// access log; a refusal whose request line could be read is reported to onOutcome; bytes that
// are no request behind a sound one never take the place of its answer; a malformed
// chunked body is refused even when the request's head was already allowed, and nothing of the
// request reaches the target.
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { EventEmitter, once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpProxy, requestLine } from '../../../gateway/httpProxy/proxy.js';
import type { ExchangeOutcome, ProxyHooks } from '../../../gateway/httpProxy/types.js';
import { createUpstream, type Upstream } from '../../../gateway/httpProxy/upstream.js';
import { startHttpTarget, type HttpTarget } from '../../support/httpTarget.js';
import { LENIENT_HEADS, MALFORMED_CHUNKED, MALFORMED_HEADS, MAX_HEAD } from './corpus.js';

let target: HttpTarget;
let upstream: Upstream;
let server: Server;
const sockets = new Set<Socket>();
const aborter = new AbortController();
/** Emits 'outcome' (rawTarget, outcome) per exchange, and 'held' (rawTarget) when a /held request waits. */
const reported = new EventEmitter();
/** Requests whose target starts with /held wait here until the test lets them go. */
const gates = new Map<string, () => void>();
/** Every exchange reported, in order. */
const outcomes: { action: string | undefined; target: string; outcome: ExchangeOutcome }[] = [];

const hooks: ProxyHooks<string> = {
  classify: (req) => ({ action: req.rawTarget, target: req.rawTarget }),
  async decide(action) {
    if (action.startsWith('/held'))
      await new Promise<void>((resolve) => {
        gates.set(action, resolve);
        reported.emit('held', action);
      });
    return { verdict: 'allow' };
  },
  onOutcome: (action, req, outcome) => {
    outcomes.push({ action, target: req.rawTarget, outcome });
    reported.emit('outcome', req.rawTarget, outcome);
  },
};

beforeAll(async () => {
  target = await startHttpTarget();
  upstream = createUpstream({ url: target.url, ca: target.ca });
  const proxy = createHttpProxy({ upstream, hooks, maxHeaderBytes: MAX_HEAD });
  server = createServer((socket) => {
    sockets.add(socket);
    void proxy.handle(socket, aborter.signal).finally(() => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  aborter.abort();
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await upstream.close();
  await target.close();
});

/** Writes `bytes` in one write and resolves with all that came back once the core closed the connection. */
function exchange(bytes: Buffer, onData?: (text: string) => void): Promise<string> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    let got = '';
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      got += d;
      onData?.(got);
    });
    s.on('error', reject);
    s.on('close', () => resolve(got));
  });
}

const smuggled = (n: number) => Buffer.from(`GET /smuggled-${n} HTTP/1.1\r\nHost: x\r\n\r\n`, 'latin1');

describe('malformed request heads', () => {
  it.each(MALFORMED_HEADS.map(([name, head, status], n) => [name, status, head, n] as const))('refuses %s with %i, closes, and nothing reaches the target', async (_name, status, head, n) => {
    const seen = target.log.length;
    const reportedBefore = outcomes.length;
    const got = await exchange(Buffer.concat([head, Buffer.from(`X${'y'.repeat(10)}`), smuggled(n)]));
    expect(got).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(got).toMatch(/\r\nconnection: close\r\n/i);
    // One response only: the glued request was never read as one.
    expect(got.match(/HTTP\/1\.1 \d{3} /g)).toHaveLength(1);
    // Reported as refused before any hook, once, when its request line could be read.
    const recorded = outcomes.slice(reportedBefore);
    expect(recorded.map((r) => [r.action, r.outcome.result, r.outcome.status])).toEqual(requestLine(head) === undefined && recorded.length === 0 ? [] : [[undefined, 'refused', status]]);
    // A request that did reach the target would be in its log before the response came back.
    const check = await exchange(Buffer.from(`GET /after-${n} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 'latin1'));
    expect(check).toMatch(/^HTTP\/1\.1 200 /);
    expect(target.log.slice(seen).map((e) => e.target)).toEqual([`/after-${n}`]);
  });
});

describe('heads read leniently but as one request only', () => {
  it.each(LENIENT_HEADS.map(([name, head, read], n) => [name, read, head, n] as const))('%s is read as %s and forwarded as that', async (_name, read, head, n) => {
    const seen = target.log.length;
    const got = await exchange(Buffer.concat([head, Buffer.from(`X${'y'.repeat(10)}`), smuggled(n)]));
    // The glued bytes are no request: the one before them is answered, then the connection ends.
    expect(got.match(/HTTP\/1\.1 \d{3} /g)).toEqual(['HTTP/1.1 200 ']);
    expect(target.log.slice(seen).map((e) => `${e.method} ${e.target}`)).toEqual([read]);
  });
});

describe('malformed chunked bodies', () => {
  it.each(MALFORMED_CHUNKED.map(([name, body, status], n) => [name, status ?? 400, body, n] as const))('refuses %s with %i and sends nothing of it upstream', async (_name, status, body, n) => {
    const seen = target.log.length;
    const path = `/held-${n}`;
    const outcome = new Promise<ExchangeOutcome>((resolve) => {
      const on = (t: string, o: ExchangeOutcome) => {
        if (t !== path) return;
        reported.off('outcome', on);
        resolve(o);
      };
      reported.on('outcome', on);
    });
    const got = await exchange(Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body}`, 'latin1'), smuggled(n)]));
    expect(got).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(got.match(/HTTP\/1\.1 \d{3} /g)).toHaveLength(1);
    // The head was judged allowable; it is let go only now that the client has its 400.
    gates.get(path)!();
    expect((await outcome).result).toBe('failed');
    expect(target.log.slice(seen)).toEqual([]);
  });
});

describe('well-formed requests around the checks', () => {
  it('answers pipelined requests in order on one connection, a chunked upload re-framed', async () => {
    const seen = target.log.length;
    const text = 'POST /echo/p1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n' + 'GET /echo/p2 HTTP/1.1\r\nHost: x\r\n\r\n' + 'POST /echo/p3 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz';
    const got = await exchange(Buffer.from(text, 'latin1'));
    const bodies = [...got.matchAll(/"target":"([^"]+)".*?"body":"([^"]*)"/g)].map((m) => `${m[1]}=${m[2]}`);
    expect(bodies).toEqual(['/echo/p1=abcde', '/echo/p2=', '/echo/p3=xyz']);
    expect(target.log.slice(seen).map((e) => e.target)).toEqual(['/echo/p1', '/echo/p2', '/echo/p3']);
    // The chunk extension and the trailer stopped at the gateway.
    expect(target.log.at(-3)!.headers['x-trailer']).toBeUndefined();
  });

  it('sends 100 Continue only once the request is allowed, then takes the body', async () => {
    const { port } = server.address() as AddressInfo;
    const s = connect(port, '127.0.0.1');
    s.setEncoding('latin1');
    let got = '';
    s.on('data', (d: string) => (got += d));
    await once(s, 'connect');
    const held = once(reported, 'held');
    s.write('PUT /held-continue HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n');
    expect(await held).toEqual(['/held-continue']);
    // Judged but not yet allowed: the client has been told nothing.
    expect(got).toBe('');
    gates.get('/held-continue')!();
    while (!got.includes('100 Continue')) await once(s, 'data');
    s.write('body');
    while (!/\r\n\r\nHTTP\/1\.1 \d{3} [^]*\r\n\r\n/.test(got)) await once(s, 'data');
    s.destroy();
    expect(got).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 /);
  });

  it('keeps an HTTP/1.0 client alive only when it asks, and closes it otherwise', async () => {
    const closed = await exchange(Buffer.from('GET /echo/ten HTTP/1.0\r\n\r\n', 'latin1'));
    expect(closed).toMatch(/^HTTP\/1\.1 200 /);
    expect(closed).toMatch(/\r\nconnection: close\r\n/i);
    expect(closed).not.toContain('transfer-encoding');
    const { port } = server.address() as AddressInfo;
    const s = connect(port, '127.0.0.1');
    s.setEncoding('latin1');
    let got = '';
    s.on('data', (d: string) => (got += d));
    s.write('GET /bytes/10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    while (!got.includes('\r\n\r\n') || got.length < got.indexOf('\r\n\r\n') + 14) await once(s, 'data');
    expect(got).toMatch(/\r\nconnection: keep-alive\r\n/i);
    expect(s.destroyed).toBe(false);
    s.destroy();
  });
});
