// The exec stream end to end inside the CLI: NDJSON split however the network chunks it, broken
// streams refused, the real client against a loopback HTTP server, and a 100k-row result through a
// slow stdout without the CLI running ahead of what stdout took.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadTls } from '../../../gateway/tls.js';
import { EXEC_CONTENT_TYPE, type ExecEvent } from '../../../src/api/contract.js';
import { endpointFor } from '../../../src/api/endpoint.js';
import { createExecClient, parseExecStream } from '../../../src/api/exec.js';
import { AuthError, CliError } from '../../../src/errors.js';
import { BufferStream, col, fakeExec, run } from './execFakes.js';

const EVENTS: ExecEvent[] = [
  { type: 'session', id: 's_1' },
  { type: 'columns', statement: 0, columns: [col('name')] },
  { type: 'rows', statement: 0, rows: [['Zoë ✓'], [null]] },
  { type: 'complete', statement: 0, command: 'SELECT 2', rows: 2 },
  { type: 'end', status: 'ok', statements: 1 },
];
const BODY = Buffer.from(EVENTS.map((e) => JSON.stringify(e)).join('\n') + '\n');

async function collectEvents(chunks: (Buffer | string)[]): Promise<ExecEvent[]> {
  const out: ExecEvent[] = [];
  for await (const ev of parseExecStream((async function* () { yield* chunks; })())) out.push(ev);
  return out;
}

describe('parseExecStream', () => {
  it('gives the same events however the body is cut, even inside a UTF-8 character', async () => {
    for (let cut = 0; cut <= BODY.length; cut++) {
      expect(await collectEvents([BODY.subarray(0, cut), BODY.subarray(cut)])).toEqual(EVENTS);
    }
    expect(await collectEvents([...BODY].map((b) => Buffer.from([b])))).toEqual(EVENTS);
  });

  it('accepts a last line without its newline and skips blank lines', async () => {
    expect(await collectEvents(['\n' + BODY.toString().trimEnd().replaceAll('\n', '\n\n')])).toEqual(EVENTS);
  });

  it('raises "broke off" for a body that ends before its end event, a non-JSON line, or a line that is no event', async () => {
    const lines = BODY.toString().split('\n');
    await expect(collectEvents([lines.slice(0, 3).join('\n') + '\n'])).rejects.toThrow(/the gateway's answer broke off: the stream ended before its end event/);
    await expect(collectEvents(['{"type":"session","id":"s"}\nnot json\n'])).rejects.toThrow(/broke off: line 2 is not JSON/);
    await expect(collectEvents(['{"type":"rows","statement":0,"rows":[[1]]}\n'])).rejects.toThrow(/broke off: line 1 is not an exec event/);
  });

  it('stops at the end event and destroys a body left unread', async () => {
    let destroyed = false;
    const body = Object.assign((async function* () { yield BODY.toString() + '{"type":"session","id":"late"}\n'; })(), { destroy: () => (destroyed = true) });
    const out: ExecEvent[] = [];
    for await (const ev of parseExecStream(body)) out.push(ev);
    expect(out).toEqual(EVENTS);
    expect(destroyed).toBe(false);
    const early = Object.assign((async function* () { yield BODY; })(), { destroy: () => (destroyed = true) });
    for await (const _ of parseExecStream(early)) break;
    expect(destroyed).toBe(true);
  });
});

describe('createExecClient (against a loopback HTTP server)', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => close?.());

  async function serve(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void) {
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => handler(req, res, body));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    close = () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); });
    const endpoint = endpointFor(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, undefined);
    return createExecClient(endpoint, { kind: 'env', token: async () => 'slc_test' });
  }

  it('POSTs the request with the bearer token and streams the events', async () => {
    let seen: { url?: string; auth?: string; body?: string } = {};
    const client = await serve((req, res, body) => {
      seen = { url: req.url, auth: req.headers.authorization, body };
      res.writeHead(200, { 'content-type': EXEC_CONTENT_TYPE });
      res.end(BODY);
    });
    const out: ExecEvent[] = [];
    for await (const ev of await client.exec('pg prod', { input: 'select 1', wait: false }, new AbortController().signal)) out.push(ev);
    expect(out).toEqual(EVENTS);
    expect(seen).toEqual({ url: '/v1/connections/pg%20prod/exec', auth: 'Bearer slc_test', body: '{"input":"select 1","wait":false}' });
  });

  it("turns refusals into the CLI's typed errors with the gateway's message", async () => {
    let status = 403;
    const client = await serve((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'forbidden', message: 'you may not use pg-prod' } }));
    });
    const signal = new AbortController().signal;
    await expect(client.exec('pg-prod', { input: 'select 1' }, signal)).rejects.toThrow(AuthError);
    await expect(client.exec('pg-prod', { input: 'select 1' }, signal)).rejects.toThrow('you may not use pg-prod');
    status = 400;
    await expect(client.exec('pg-prod', { input: 'select 1' }, signal)).rejects.toThrow(CliError);
  });

  it('refuses a 2xx answer that is not NDJSON', async () => {
    const client = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>');
    });
    await expect(client.exec('pg-prod', { input: 'select 1' }, new AbortController().signal)).rejects.toThrow(/instead of application\/x-ndjson/);
  });

  it('aborting the signal drops the request, so the gateway sees it go away', async () => {
    let closed: () => void = () => {};
    const gone = new Promise<void>((r) => (closed = r));
    const client = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': EXEC_CONTENT_TYPE });
      res.write(JSON.stringify(EVENTS[0]) + '\n');
      res.on('close', closed);
    });
    const abort = new AbortController();
    const events = await client.exec('pg-prod', { input: 'select pg_sleep(60)' }, abort.signal);
    const it = events[Symbol.asyncIterator]();
    expect((await it.next()).value).toEqual(EVENTS[0]);
    const next = it.next();
    abort.abort();
    await expect(next).rejects.toThrow();
    await gone;
  });

  it('names the gateway when it cannot be reached', async () => {
    const endpoint = endpointFor('http://127.0.0.1:1', undefined);
    const client = createExecClient(endpoint, { kind: 'env', token: async () => 't' });
    await expect(client.exec('pg-prod', { input: 'select 1' }, new AbortController().signal)).rejects.toThrow(/cannot reach the gateway at http:\/\/127\.0\.0\.1:1: connection refused/);
  });
});

describe('createExecClient over TLS (node:https, not undici)', () => {
  it('trusts exactly the CA file given; any other certificate is refused before the token is sent', async () => {
    const dirs = [mkdtempSync(join(tmpdir(), 'sluice-exec-tls-')), mkdtempSync(join(tmpdir(), 'sluice-exec-tls-'))];
    const [gatewayTls, otherTls] = await Promise.all(dirs.map((d) => loadTls({ selfSigned: true }, d, ['127.0.0.1'])));
    const requests: (string | undefined)[] = [];
    const server = createHttpsServer({ cert: gatewayTls!.cert, key: gatewayTls!.key }, (req, res) => {
      requests.push(req.headers.authorization);
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': EXEC_CONTENT_TYPE });
        res.end(BODY);
      });
    });
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const exec = (caFile: string | undefined) =>
      createExecClient(endpointFor(url, caFile), { kind: 'env', token: async () => 'slc_secret' }).exec('pg-prod', { input: 'select 1' }, new AbortController().signal);
    try {
      const out: ExecEvent[] = [];
      for await (const ev of await exec(gatewayTls!.certFile)) out.push(ev);
      expect(out).toEqual(EVENTS);
      expect(requests).toEqual(['Bearer slc_secret']);

      await expect(exec(otherTls!.certFile)).rejects.toThrow(new RegExp(`cannot verify the TLS certificate of ${url} \\(\\w+\\) against ${otherTls!.certFile}`));
      await expect(exec(undefined)).rejects.toThrow(/cannot verify the TLS certificate of .*: pass --ca FILE/);
      // Neither refused attempt reached the server's request handler: the token never left.
      expect(requests).toHaveLength(1);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('a 100k-row result', () => {
  it('streams through a slow stdout without running ahead of what stdout took', async () => {
    const ROWS = 100_000;
    const BATCH = 500;
    const stdout = new BufferStream({ slow: true, highWaterMark: 16 * 1024 });
    let yielded = 0;
    let maxLag = 0;
    const written = () => stdout.lines - 1; // minus the header
    const client = fakeExec(async function* () {
      yield { type: 'columns', statement: 0, columns: [col('id', 'int4', 23), col('payload')] };
      for (let i = 0; i < ROWS; i += BATCH) {
        maxLag = Math.max(maxLag, yielded - written());
        const rows = Array.from({ length: BATCH }, (_, k) => [String(i + k), 'x'.repeat(40)]);
        yielded += BATCH;
        yield { type: 'rows', statement: 0, rows };
      }
      yield { type: 'complete', statement: 0, command: `SELECT ${ROWS}`, rows: ROWS };
      yield { type: 'end', status: 'ok', statements: 1 };
    });
    const r = await run({ format: 'csv' }, { client, stdout });
    expect(r.code).toBe(0);
    expect(written()).toBe(ROWS);
    // At most the batch being written, stdout's own buffer (16 KiB ≈ 350 rows) and one batch more.
    expect(maxLag).toBeLessThanOrEqual(3 * BATCH);
  });
});

describe('a connection that fails mid-stream', () => {
  it('is reported as a broken answer, not as an unreachable gateway', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': EXEC_CONTENT_TYPE });
      res.write(JSON.stringify(EVENTS[0]) + '\n', () => res.socket?.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const endpoint = endpointFor(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, undefined);
      const events = await createExecClient(endpoint, { kind: 'env', token: async () => 't' }).exec('pg-prod', { input: 'select 1' }, new AbortController().signal);
      const seen: ExecEvent[] = [];
      await expect((async () => { for await (const ev of events) seen.push(ev); })()).rejects.toThrow(/the gateway's answer broke off: the connection failed \(\w+\)/);
      expect(seen).toEqual([EVENTS[0]]);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
