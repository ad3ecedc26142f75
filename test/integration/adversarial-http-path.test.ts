// Attacks on an http connection's block and review rules through the path and the method: every
// other way a service may read a request (method override headers, `_method`, a form POST,
// X-Original-URL / X-Rewrite-URL, a format suffix, trailing dots and spaces, fullwidth letters)
// and every request-target form a rule could miss (absolute-form, `*`, encoded separators,
// backslashes, overlong UTF-8, NUL, `;params`, fragments, double encoding), sent by the real curl
// or a raw socket through `sluice connect`. Each refused request is looked for in the service's
// access log (it must never arrive) and in the exported trail (it must be recorded).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpCorpus, type HttpCorpus } from '../support/httpCorpus.js';

let c: HttpCorpus;

beforeAll(async () => {
  c = await startHttpCorpus([
    { id: 'read-only', block: { methods: ['DELETE'], paths: ['/admin/**'] } },
    { id: 'internal', block: { paths: ['/internal/**'] } },
    { id: 'refunds-need-review', review: { methods: ['POST'], paths: ['/v1/refunds'], approvers: ['finance'], timeout: '1s' } },
  ]);
}, 60_000);

afterAll(async () => {
  await c?.stop();
});

/** Sends with curl; the request must be refused by the gateway and never reach the service. */
async function refused(args: string[], status: number, rule: RegExp): Promise<string> {
  const seen = c.target.log.length;
  const r = await c.curl(args);
  expect(r.status, r.headers + r.body).toBe(status);
  expect(r.headers).toMatch(/sluice-refusal: /i);
  expect(JSON.parse(r.body).error.rule ?? JSON.parse(r.body).error.code).toMatch(rule);
  expect(c.target.log.slice(seen)).toEqual([]);
  return r.body;
}

describe('method overrides are judged as the method they name', () => {
  it.each([
    ['X-HTTP-Method-Override: DELETE'],
    ['X-HTTP-Method: delete'],
    ['X-Method-Override: DELETE'],
    ['X-HTTP-Method-Override: GET,DELETE'],
  ])('POST /admin/users/1 with %s', async (header) => {
    const body = await refused(['-X', 'POST', '-H', header, `${c.base}/admin/users/1`], 403, /^read-only$/);
    expect(JSON.parse(body).error.message).toMatch(/read as DELETE \/admin\/users\/1/);
  });

  it('a _method query parameter, and a form POST whose body may carry _method', async () => {
    await refused(['-X', 'POST', `${c.base}/admin/users/1?_method=DELETE`], 403, /^read-only$/);
    await refused(['--data', '_method=DELETE', `${c.base}/admin/users/2`], 403, /^read-only$/);
    await refused(['-F', '_method=DELETE', `${c.base}/admin/users/3`], 403, /^read-only$/);
  });

  it('the same requests without an override still pass', async () => {
    const r = await c.curl(['-X', 'POST', '-H', 'content-type: application/json', '--data', '{}', `${c.base}/admin/users/1`]);
    expect(r.status).toBe(200);
    expect(c.target.log.at(-1)).toMatchObject({ method: 'POST', target: '/admin/users/1' });
  });

  it('an override naming a method is held for review like the method itself', async () => {
    await refused(['-X', 'PUT', '-H', 'X-HTTP-Method-Override: POST', `${c.base}/v1/refunds`], 403, /^refunds-need-review$/);
  });
});

describe('the path the service may route by', () => {
  it.each([
    ['X-Original-URL: /internal/keys', '/'],
    ['X-Rewrite-URL: /internal/keys', '/public'],
    ['X-Original-URL: /public/../internal/keys', '/'],
  ])('%s on %s', async (header, path) => {
    await refused(['-H', header, `${c.base}${path}`], 403, /^internal$/);
  });

  it('a path-override header that cannot be judged is refused', async () => {
    await refused(['-H', 'X-Original-URL: /a%2finternal', `${c.base}/`], 400, /unjudgeable/);
  });

  it.each(['/internal.json', '/internal/keys.json', '/internal./keys', '/internal%20/keys', '/internal.%20/keys', '/%EF%BD%89%EF%BD%8E%EF%BD%94%EF%BD%85%EF%BD%92%EF%BD%8E%EF%BD%81%EF%BD%8C/keys', '/INTERNAL/keys', '/Internal./KEYS.xml'])('%s', async (path) => {
    await refused([`${c.base}${path}`], 403, /^internal$/);
  });

  it.each(['/internal/../internal/keys', '/public/..%2finternal', '/public\\..\\internal', '/public/%2e%2e/internal', '/public/%252e%252e/internal', '/%c0%ae%c0%ae/internal', '/internal%00/keys', '/internal;jsessionid=1/keys', '/public/%EF%BC%8E%EF%BC%8E/internal'])('%s', async (path) => {
    const seen = c.target.log.length;
    const r = await c.curl([`${c.base}${path}`]);
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(c.target.log.slice(seen)).toEqual([]);
  });
});

describe('request-targets that are not a path', () => {
  const rawRefused = async (request: string) => {
    const seen = c.target.log.length;
    const text = await c.raw(request);
    expect(text).toMatch(/^HTTP\/1\.1 4\d\d/);
    expect(c.target.log.slice(seen)).toEqual([]);
    return text;
  };

  it('absolute-form, asterisk-form and a fragment', async () => {
    expect(await rawRefused('GET http://localhost/internal/keys HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')).toMatch(/sluice-refusal: unjudgeable_request/i);
    expect(await rawRefused('GET https://127.0.0.1:1/internal/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatch(/unjudgeable_request/);
    expect(await rawRefused('OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatch(/unjudgeable_request/);
    expect(await rawRefused('GET /public#/../internal/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);
  });

  it('a Host naming another service changes nothing: the service gets its own', async () => {
    const r = await c.curl(['-H', 'Host: internal.example', '-H', 'X-Forwarded-Host: internal.example', `${c.base}/echo/host`]);
    expect(r.status).toBe(200);
    expect(c.target.log.at(-1)!.headers.host).toMatch(/^localhost:\d+$/);
  });

  it('an upgrade to a protocol the gateway does not pass (h2c) is refused', async () => {
    const text = await rawRefused('GET /h2c-probe HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 400/);
  });

  // A CONNECT would make the gateway a tunnel to an address the client names: the core answers 405.
  it('CONNECT (authority-form) is refused with an answer, not dropped', async () => {
    const text = await rawRefused('CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 405/);
    expect(text).toMatch(/CONNECT is not accepted/);
  });
});

describe('every refusal is recorded', () => {
  it('the exported trail has an action and a block decision for the refused requests', async () => {
    const trail = await c.trail();
    const actions = trail.split('\n').filter((l) => l.includes('"action"') && l.includes('"kind":"http"'));
    for (const t of ['POST /admin/users/1', 'POST /admin/users/1?_method=DELETE', 'GET /internal.json', 'GET http://localhost/internal/keys', 'OPTIONS *', 'GET /h2c-probe', 'CONNECT localhost:443']) {
      expect(actions.some((l) => l.includes(JSON.stringify(t).slice(1, -1))), t).toBe(true);
    }
    expect(trail).toContain('http.unjudgeable-request');
  });
});
