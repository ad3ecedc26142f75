// HTTP through the gateway, end to end: a real HTTPS service of the test's own (with an access
// log), the real gateway and `sluice` binaries, and real clients through `sluice connect`: curl,
// Node's fetch (undici) and a WebSocket client. Each refused request is checked at the service's
// access log; the held credential is checked absent from everything the client, the logs and the
// audit trail see.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ensureProgram } from '../support/pgCluster.js';
import { exportAndVerify, openTunnel, waitForStderr, runCli, serviceToken, startGateway, tokenCtx, type CliEnv, type GatewayProcess, type Tunnel } from '../support/binaries.js';
import { curl } from '../support/httpCorpus.js';
import { startHttpTarget, type HttpTarget } from '../support/httpTarget.js';

const execFileAsync = promisify(execFile);
const SECRET = 'billing-secret-token-7f3a9c2e51';
const AUTH = `Bearer ${SECRET}`;

let target: HttpTarget;
let gw: GatewayProcess;
let ctx: CliEnv & { env: Record<string, string> };
let tunnel: Tunnel;
let base: string;
let work: string;

beforeAll(async () => {
  ensureProgram('/usr/bin/curl', 'curl');
  work = mkdtempSync(join(tmpdir(), 'sluice-http-'));
  target = await startHttpTarget();
  const caFile = join(work, 'target-ca.pem');
  writeFileSync(caFile, target.ca);
  gw = await startGateway({
    env: { BILLING_TOKEN: AUTH },
    extra: { audit: { readers: ['auditors'] }, limits: { httpHeadersTimeoutMs: 1_500 } },
    connections: [
      {
        name: 'billing-api',
        type: 'http',
        target: { url: target.url, ca: caFile, headers: { Authorization: { env: 'BILLING_TOKEN' } } },
        allow: { groups: ['eng'] },
        policy: {
          rules: [
            { id: 'read-only', block: { methods: ['DELETE'], paths: ['/admin/**'] } },
            { id: 'internal', block: { paths: ['/internal/**'] } },
            { id: 'refunds-need-review', review: { methods: ['POST'], paths: ['/v1/refunds'], approvers: ['finance'] } },
            { id: 'pii', mask: { json: ['$.customers[*].email', '$..card_number'], strategy: 'partial', paths: ['/v1/customers'] } },
          ],
        },
      },
    ],
  });
  ctx = tokenCtx(gw, serviceToken(gw, 'ci', 'eng'));
  tunnel = await openTunnel('billing-api', ctx);
  base = `http://127.0.0.1:${tunnel.port}`;
}, 60_000);

afterAll(async () => {
  await tunnel?.stop();
  await gw?.stop();
  await target?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('sluice connect billing-api', () => {
  it('prints a curl line, and `connect -- CMD` runs CMD with SLUICE_URL', async () => {
    const banner = new RegExp(`curl http://127\\.0\\.0\\.1:${tunnel.port}/`);
    if (!banner.test(tunnel.stderr())) await waitForStderr(tunnel.child, banner);
    const r = await runCli(['connect', 'billing-api', '--', 'sh', '-c', 'curl -sS "$SLUICE_URL/echo/from-child"'], ctx);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ method: 'GET', target: '/echo/from-child' });
  });

  it('`sluice connections` names the injected header, never its value', async () => {
    const r = await runCli(['connections', '--json'], ctx);
    expect(r.stdout).toContain('"injectedHeaders":["Authorization"]');
    expect(r.stdout).not.toContain(SECRET);
  });
});

describe('requests through the tunnel', () => {
  it('injects the credential over the client\'s own, and the client never sees it (even echoed)', async () => {
    const r = await curl(['-H', 'Authorization: Bearer client-guess', `${base}/echo/who`]);
    expect(r.status).toBe(200);
    const arrived = target.log.at(-1)!;
    expect(arrived.target).toBe('/echo/who');
    expect(arrived.headers.authorization).toBe(AUTH);
    expect(r.headers + r.body).not.toContain(SECRET);
    expect(JSON.parse(r.body).headers.authorization).toBe('*'.repeat(AUTH.length));
  });

  it.each(['gzip', 'deflate', 'br'])('a credential echoed in a %s-coded body is found: the gateway asks for identity, decodes what comes coded anyway, and scrubs', async (coding) => {
    const r = await curl(['--compressed', `${base}/echo/who?encode=${coding}&header`]);
    expect(r.status).toBe(200);
    expect(target.log.at(-1)!.headers['accept-encoding']).toBe('identity');
    expect(r.headers).not.toMatch(/content-encoding/i);
    expect(r.headers + r.body).not.toContain(SECRET);
    expect(r.headers).toMatch(new RegExp(`x-echo-authorization: \\*{${AUTH.length}}`, 'i'));
    expect(JSON.parse(r.body).headers.authorization).toBe('*'.repeat(AUTH.length));
    // Without --compressed, curl shows the bytes as they came: still decoded JSON, never a coded body.
    const raw = await curl([`${base}/echo/who?encode=${coding}`]);
    expect(JSON.parse(raw.body).headers.authorization).toBe('*'.repeat(AUTH.length));
  });

  it('a body in a coding the gateway cannot decode is refused with 502, never passed on', async () => {
    const r = await curl([`${base}/echo/who?encode=compress`]);
    expect(r.status).toBe(502);
    expect(r.headers).toMatch(/sluice-refusal: unscannable_response/i);
    expect(JSON.parse(r.body).error.message).toMatch(/encoded as "compress", which the gateway cannot decode, so it cannot be scanned for the held credential/);
    expect(r.body).not.toContain('method');
  });

  it.each(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])('%s reaches the service with its body', async (method) => {
    const r = await curl(['-X', method, '--data-binary', `body of ${method}`, '-H', 'content-type: text/plain', `${base}/echo/m`]);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ method, target: '/echo/m', body: `body of ${method}` });
  });

  it('a client that never finishes its request head gets 408 and is closed; the tunnel keeps serving', async () => {
    const seen = target.log.length;
    const got = await new Promise<string>((resolve, reject) => {
      let text = '';
      const s = connect(tunnel.port, '127.0.0.1', () => s.write('GET /echo/stalled HTTP/1.1\r\nHost: x\r\nX-Half: '));
      s.setEncoding('latin1');
      s.on('data', (d: string) => (text += d));
      s.on('error', reject);
      s.on('close', () => resolve(text));
    });
    expect(got).toMatch(/^HTTP\/1\.1 408 /);
    expect(got).toContain('no complete request head within 1.5 s');
    expect(target.log.length).toBe(seen);
    expect((await curl([`${base}/echo/after`])).status).toBe(200);
  });

  it('HEAD gets the headers and no body', async () => {
    const r = await curl(['-I', `${base}/bytes/1000`]);
    expect(r.status).toBe(200);
    expect(r.headers).toMatch(/content-length: 1000/i);
  });

  it('keep-alive: Node fetch sends many requests on one client connection (one tunnel)', async () => {
    const agent = new Agent({ connections: 1 });
    try {
      const sessionsBefore = await sessionCount();
      for (let i = 0; i < 20; i++) {
        const res = await request(`${base}/echo/ka/${i}`, { dispatcher: agent });
        expect(res.statusCode).toBe(200);
        await res.body.text();
      }
      const res = await fetch(`${base}/echo/fetch`, { method: 'POST', body: JSON.stringify({ a: 1 }), headers: { 'content-type': 'application/json' } });
      expect(await res.json()).toMatchObject({ method: 'POST', body: '{"a":1}' });
      expect(await sessionCount()).toBeLessThanOrEqual(sessionsBefore + 2);
    } finally {
      await agent.close();
    }
  });

  it('streams 100 MB up (chunked) and down (chunked and sized) with equal checksums', async () => {
    const file = join(work, 'up.bin');
    writeFileSync(file, randomBytes(100 * 1024 * 1024));
    const want = await sha256(file);
    const up = await curl(['-H', 'Transfer-Encoding: chunked', '--data-binary', `@${file}`, `${base}/upload`]);
    expect(JSON.parse(up.body)).toEqual({ size: 100 * 1024 * 1024, sha256: want });
    for (const q of ['', '?chunked']) {
      const out = join(work, `down${q === '' ? '' : '-chunked'}.bin`);
      await execFileAsync('curl', ['-sS', '-o', out, `${base}/bytes/${100 * 1024 * 1024}${q}`]);
      const direct = createHash('sha256');
      const res = await request(`${target.url}/bytes/${100 * 1024 * 1024}${q}`, { dispatcher: new Agent({ connect: { ca: target.ca } }) });
      for await (const c of res.body) direct.update(c as Buffer);
      expect(await sha256(out)).toBe(direct.digest('hex'));
    }
  }, 180_000);

  it('a WebSocket echo passes through', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${tunnel.port}/ws`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const payload = randomBytes(300_000);
    const echoed = new Promise<Buffer>((resolve) => ws.once('message', (d) => resolve(d as Buffer)));
    ws.send(payload);
    expect((await echoed).equals(payload)).toBe(true);
    ws.close();
  });
});

describe('policy', () => {
  it('a blocked request is refused with 403 and the rule, and never reaches the service', async () => {
    const seen = target.log.length;
    const r = await curl(['-X', 'DELETE', `${base}/admin/users/1`]);
    expect(r.status).toBe(403);
    expect(r.headers).toMatch(/sluice-refusal: blocked/i);
    expect(JSON.parse(r.body).error).toMatchObject({ code: 'blocked', rule: 'read-only' });
    expect(target.log.length).toBe(seen);
    // Paths match whatever their case: a service that routes /ADMIN like /admin is still covered.
    const shouted = await curl(['-X', 'DELETE', `${base}/ADMIN/Users/1`]);
    expect(shouted.status).toBe(403);
    expect(JSON.parse(shouted.body).error).toMatchObject({ code: 'blocked', rule: 'read-only' });
    expect(target.log.length).toBe(seen);
    const allowed = await curl([`${base}/admin/users/1`]);
    expect(allowed.status).toBe(200);
  });

  it.each([
    '/internal/x',
    '//internal/x',
    '/./internal/x',
    '/public/../internal/x',
    '/%69nternal/x',
    '/%2e/internal/x',
    '/public/%2e%2e/internal/x',
    '/public/%2E%2E/internal/x',
    '/internal%2fx',
    '/public%2f..%2finternal/x',
    '/public/..%2finternal/x',
    '/public/..%5cinternal/x',
    '/public\\..\\internal\\x',
    '/internal;param/x',
    '/internal%3bparam/x',
    '/internal%00/x',
    '/%252e%252e/internal/x',
    '/public/%252e%252e/internal/x',
    '/..',
    '/public/../../internal/x',
    '/internal/',
    '/internal',
    '/internal?x=/public',
    '/INTERNAL/x',
    '/Internal/x',
    '/%49NTERNAL/x',
    '/public/../iNtErNaL',
    '/%C4%B0nternal/x',
    '/%C4%B1nternal/x',
  ])('path attack %s never reaches the service', async (path) => {
    const seen = target.log.length;
    const r = await curl([`${base}${path}`]);
    expect([400, 403]).toContain(r.status);
    expect(target.log.slice(seen)).toEqual([]);
  });

  it('the service receives the normalised path the policy judged', async () => {
    const r = await curl([`${base}/public/./x/../../echo//%61bc`]);
    expect(r.status).toBe(200);
    expect(target.log.at(-1)!.target).toBe('/echo/abc');
  });

  it('masks JSON fields by path, plain or gzip-encoded, and refuses a body it cannot parse', async () => {
    target.json = { customers: [{ name: 'Ada', email: 'ada@example.com' }], billing: { card_number: '4111111111111111' }, note: 'call bob@example.org' };
    // The service routes case-insensitively; the mask rule's `paths:` follows it there.
    for (const q of ['', '?gzip', '/V1/Customers', '/V1/CUSTOMERS?gzip']) {
      const r = await curl([q.startsWith('/') ? `${base}${q}` : `${base}/v1/customers${q}`]);
      expect(r.status).toBe(200);
      const body = JSON.parse(r.body) as { customers: { name: string; email: string }[]; billing: { card_number: string }; note: string };
      expect(body.customers[0]).toEqual({ name: 'Ada', email: '***********.com' });
      expect(body.billing.card_number).toBe('************1111');
      expect(body.note).not.toContain('bob@example.org');
    }
    const broken = await curl([`${base}/v1/customers?broken`]);
    expect(broken.status).toBe(502);
    expect(broken.body).not.toContain('oops');
    expect(JSON.parse(broken.body).error).toMatchObject({ code: 'unmaskable_response', rule: 'pii' });
    expect(broken.body).toMatch(/not JSON/);
    // Numbers come back exactly as the service wrote them, beyond 2^53 too.
    target.json = '{"id":9007199254740993,"ratio":1.0,"big":1e400,"customers":[{"email":"ada@example.com"}]}';
    const exact = await curl([`${base}/v1/customers`]);
    expect(exact.body).toBe('{"id":9007199254740993,"ratio":1.0,"big":1e400,"customers":[{"email":"***********.com"}]}');
        // A partial answer is refused before its body is read, and the gateway goes on serving.
    const partial = await curl([`${base}/v1/customers?partial`]);
    expect(partial.status).toBe(502);
    expect(partial.body).not.toContain('ada@example.com');
    expect((await curl([`${base}/v1/customers`])).status).toBe(200);
  });

  it('a held request waits for its review: approved, it is sent; rejected, it never is', async () => {
    const approver = tokenCtx(gw, serviceToken(gw, 'fin', 'finance'));
    for (const verb of ['approve', 'reject'] as const) {
      const seen = target.log.length;
      const pending = curl(['-X', 'POST', '--data-binary', `{"amount":${verb === 'approve' ? 10 : 20}}`, `${base}/v1/refunds`]);
      const id = await pendingReview(approver);
      expect(target.log.length).toBe(seen);
      const d = await runCli(['reviews', verb, id, '--reason', `${verb} in test`], approver);
      expect(d.code, d.stderr).toBe(0);
      const r = await pending;
      if (verb === 'approve') {
        expect(r.status).toBe(200);
        expect(target.log.slice(seen).map((e) => `${e.method} ${e.target}`)).toEqual(['POST /v1/refunds']);
      } else {
        expect(r.status).toBe(403);
        expect(r.headers).toMatch(new RegExp(`sluice-review: ${id}`, 'i'));
        expect(JSON.parse(r.body).error).toMatchObject({ code: 'review_rejected', review: id });
        expect(target.log.length).toBe(seen);
      }
    }
  }, 60_000);

  it('the audit trail records requests, verdicts and masked paths, verifies, and holds no credential; nor do the logs', async () => {
    const auditor = tokenCtx(gw, serviceToken(gw, 'aud', 'auditors'));
    const { trail, verify } = await exportAndVerify(auditor, work);
    expect(verify.code, verify.stderr).toBe(0);
    expect(trail).toContain('"http.request"');
    expect(trail).toContain('"http.response"');
    expect(trail).toContain('$.customers[0].email');
    expect(trail).toContain('read-only');
    expect(trail).not.toContain(SECRET);
    expect(trail).not.toContain('ada@example.com');
    expect(gw.output()).not.toContain(SECRET);
  });
});

async function sessionCount(): Promise<number> {
  const auditor = tokenCtx(gw, serviceToken(gw, `aud-${Math.random().toString(36).slice(2)}`, 'auditors'));
  const r = await runCli(['sessions', '--json', '--limit', '1000'], auditor);
  const parsed = JSON.parse(r.stdout) as unknown[] | { sessions: unknown[] };
  return (Array.isArray(parsed) ? parsed : parsed.sessions).length;
}

async function pendingReview(approver: CliEnv): Promise<string> {
  // The request is held without a word to curl: the approver finds it in the list.
  for (;;) {
    const r = await runCli(['reviews', '--json'], approver);
    const list = JSON.parse(r.stdout) as { id: string; status: string; kind?: string; connection: string }[] | { reviews: { id: string; status: string; kind?: string }[] };
    const reviews = Array.isArray(list) ? list : list.reviews;
    const held = reviews.find((x) => x.status === 'pending' && x.kind === 'http');
    if (held) return held.id;
  }
}

function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file).on('data', (c) => h.update(c)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });
}

