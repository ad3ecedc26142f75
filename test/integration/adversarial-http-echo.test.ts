// Attacks on the held credential of an http connection: every way a service could hand back the
// Authorization the gateway injects — echoed by TRACE, quoted by a refused WebSocket upgrade (in
// WWW-Authenticate, in the body, gzip-coded), repeated in a 101's headers, coded as a transfer
// coding, or cut into pieces by byte ranges — is tried through the real `sluice connect`, and
// everything the client received (and the exported trail) is searched for the credential.
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORPUS_SECRET, startHttpCorpus, type HttpCorpus } from '../support/httpCorpus.js';

let c: HttpCorpus;
const received: string[] = [];

beforeAll(async () => {
  c = await startHttpCorpus([{ id: 'internal', block: { paths: ['/internal/**'] } }]);
}, 60_000);

afterAll(async () => {
  await c?.stop();
});

/** What the client received, kept for the final search, and checked now. */
function noSecret(text: string): void {
  received.push(text);
  expect(text).not.toContain(CORPUS_SECRET);
}

const upgrade = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;

describe('the held credential, echoed', () => {
  it('TRACE: the service echoes the request, credential included; the client sees stars', async () => {
    const r = await c.curl(['-X', 'TRACE', `${c.base}/echo/trace`]);
    expect(r.status).toBe(200);
    expect(c.target.log.at(-1)!.method).toBe('TRACE');
    noSecret(r.headers + r.body);
    expect(JSON.parse(r.body).headers.authorization).toMatch(/^\*+$/);
  });

  it('HEAD: headers echoing the credential are scrubbed on a response without a body', async () => {
    const r = await c.curl(['-I', `${c.base}/echo/head?header`]);
    expect(r.status).toBe(200);
    noSecret(r.headers);
    expect(r.headers).toMatch(/x-echo-authorization: \*+/i);
  });

  it('a service refusing an upgrade quotes the credential in WWW-Authenticate and its body: scrubbed', async () => {
    const text = await c.raw(upgrade('/ws-deny'));
    expect(text).toMatch(/^HTTP\/1\.1 401/);
    expect(c.target.log.at(-1)!.target).toBe('/ws-deny');
    noSecret(text);
    expect(text).toMatch(/www-authenticate: Bearer error="invalid_token", got="\*+"/i);
  });

  it('the same refusal gzip-coded: decoded and scrubbed, never passed on coded', async () => {
    const text = await c.raw(upgrade('/ws-deny?gzip'));
    expect(text).toMatch(/^HTTP\/1\.1 401/);
    expect(text).not.toMatch(/content-encoding/i);
    noSecret(text);
    expect(text).toContain('"got":"*');
  });

  it('a 101 answer repeating the credential in a header: scrubbed', async () => {
    const text = await c.raw(upgrade('/ws-head'), /\r\n\r\n/);
    expect(text).toMatch(/^HTTP\/1\.1 101/);
    noSecret(text);
    expect(text).toMatch(/x-echo-authorization: \*+/i);
  });

  it('Transfer-Encoding: gzip — a body coded as a transfer coding reaches the client decoded or not at all', async () => {
    const r = await c.curl(['--tr-encoding', `${c.base}/te-gzip`]);
    noSecret(r.headers + r.body);
    // Still gzip-coded without a Content-Encoding, the client could decode it by hand.
    const decoded = (() => {
      try {
        return gunzipSync(Buffer.from(r.body, 'latin1')).toString('utf8');
      } catch {
        return '';
      }
    })();
    noSecret(decoded);
    expect(JSON.parse(r.body).headers.authorization).toMatch(/^\*+$/);
  });

  it('byte ranges cannot cut the credential into pieces the scrubber does not recognise', async () => {
    const whole = await c.curl([`${c.base}/echo-range`]);
    expect(whole.status).toBe(200);
    noSecret(whole.body);
    const at = whole.body.indexOf('"authorization":"') + '"authorization":"'.length + 'Bearer '.length;
    // Each piece lies inside the credential: alone none is the credential, together they are.
    const pieces: string[] = [];
    for (let from = at; from < at + CORPUS_SECRET.length; from += 8) {
      const r = await c.curl(['-H', `Range: bytes=${from}-${Math.min(from + 7, at + CORPUS_SECRET.length - 1)}`, `${c.base}/echo-range`]);
      noSecret(r.headers + r.body);
      pieces.push(r.status === 206 ? r.body : '');
    }
    expect(pieces.join('')).not.toBe(CORPUS_SECRET);
    expect(pieces.join('')).not.toContain(CORPUS_SECRET.slice(0, 8));
  });

  it('the exported trail holds the credential nowhere', async () => {
    noSecret(await c.trail());
    expect(received.join('\n')).not.toContain(CORPUS_SECRET);
  });
});
