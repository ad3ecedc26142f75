// Attacks on an http connection's rules through the connection rather than the request:
// pipelined requests whose second is blocked, WebSocket upgrades to a blocked path (directly and
// through X-Original-URL), an upgrade the service refuses with bytes glued behind it, and a
// service that answers 101 without switching protocols (a proxy fooled by its backend), behind
// which the client's next bytes would be read as HTTP requests no rule judged. Raw sockets through
// the real `sluice connect`; every refused request must be absent from the service's access log.
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpCorpus, type HttpCorpus } from '../support/httpCorpus.js';

let c: HttpCorpus;

beforeAll(async () => {
  c = await startHttpCorpus([
    { id: 'read-only', block: { methods: ['DELETE'], paths: ['/admin/**'] } },
    { id: 'internal', block: { paths: ['/internal/**'] } },
  ]);
}, 60_000);

afterAll(async () => {
  await c?.stop();
});

/** Writes `bytes` on a fresh tunnel connection and reads until the gateway closes it. */
function exchange(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const s = connect(c.port, '127.0.0.1', () => s.write(bytes));
    s.setEncoding('latin1');
    s.on('data', (d: string) => (text += d));
    s.on('error', reject);
    s.on('close', () => resolve(text));
  });
}

const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
const wsHead = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n${extra}\r\n`;
const logged = (method: string, target: string) => c.target.log.some((e) => e.method === method && e.target === target);

describe('pipelined requests', () => {
  it('a blocked request between two allowed ones is answered 403 and never reaches the service', async () => {
    const text = await exchange('GET /public/a HTTP/1.1\r\nHost: x\r\n\r\nDELETE /admin/x HTTP/1.1\r\nHost: x\r\n\r\nGET /public/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(statuses(text)).toEqual([200, 403, 200]);
    expect(logged('GET', '/public/a')).toBe(true);
    expect(logged('GET', '/public/b')).toBe(true);
    expect(logged('DELETE', '/admin/x')).toBe(false);
  });
});

describe('WebSocket upgrades', () => {
  it('to a blocked path, directly or named by X-Original-URL, are refused before the service', async () => {
    for (const head of [wsHead('/internal/ws'), wsHead('/ws', 'X-Original-URL: /internal/ws\r\n'), wsHead('/%69nternal/ws')]) {
      const seen = c.target.log.length;
      const text = await exchange(head);
      expect(statuses(text)).toEqual([403]);
      expect(c.target.log.slice(seen)).toEqual([]);
    }
  });

  it('bytes glued behind an upgrade the service refuses never reach it as a request', async () => {
    const text = await exchange(`${wsHead('/no-ws-here')}DELETE /admin/glued HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(statuses(text)[0]).toBe(404);
    expect(logged('DELETE', '/admin/glued')).toBe(false);
  });

  it('a 101 without the Sec-WebSocket-Accept the key calls for is answered 502; the bytes behind it never reach the service', async () => {
    const text = await exchange(`${wsHead('/ws-fake')}DELETE /admin/smuggled HTTP/1.1\r\nHost: x\r\n\r\nGET /internal/keys HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(statuses(text)).toEqual([502]);
    expect(text).toMatch(/Sec-WebSocket-Accept/);
    expect(logged('DELETE', '/admin/smuggled')).toBe(false);
    expect(logged('GET', '/internal/keys')).toBe(false);
  });

  it('a real WebSocket upgrade still passes', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      let got = '';
      const s = connect(c.port, '127.0.0.1', () => s.write(wsHead('/ws')));
      s.setEncoding('latin1');
      s.on('data', (d: string) => {
        got += d;
        if (got.includes('\r\n\r\n')) s.destroy();
      });
      s.on('error', reject);
      s.on('close', () => resolve(got));
    });
    expect(statuses(text)).toEqual([101]);
  });

  it('the refusals are in the trail', async () => {
    const trail = await c.trail();
    expect(trail).toContain('"text":"DELETE /admin/x"');
    expect(trail).toContain('"text":"GET /internal/ws"');
    expect(trail).toMatch(/Sec-WebSocket-Accept/);
  });
});
