// Attacks on an http connection's JSON masking: bodies a client's parser could read otherwise than
// the gateway's (duplicate keys, \u-escaped key names, a BOM, exact huge numbers, deep nesting,
// JSON inside a string), bodies that are not plain JSON (ndjson, an XSSI prefix), codings, partial
// answers and bodiless methods, each served by the tests' own service through the real
// `sluice connect` and curl. The clear values must never reach the client: each answer is masked
// or refused (502), and the gateway keeps serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpCorpus, type HttpCorpus } from '../support/httpCorpus.js';

let c: HttpCorpus;
const EMAIL = 'ada@example.com';
const CARD = '4111111111111111';

beforeAll(async () => {
  c = await startHttpCorpus([{ id: 'pii', mask: { json: ['$.customers[*].email', '$..card_number'], strategy: 'redact', paths: ['/v1/customers'] } }]);
}, 60_000);

afterAll(async () => {
  await c?.stop();
});

/** Serves `json` (text as it is) at /v1/customers and fetches it through the tunnel with `args`. */
async function served(json: string, args: string[] = []) {
  c.target.json = json;
  const r = await c.curl([...args, `${c.base}/v1/customers`]);
  expect(r.body).not.toContain(EMAIL);
  expect(r.body).not.toContain(CARD);
  return r;
}

describe('JSON a client could read otherwise', () => {
  it.each([
    ['a key given twice (the clear value last, then first)', `{"customers":[{"email":"x@y.z","email":"${EMAIL}"}]}`],
    ['a key given twice, clear value first', `{"customers":[{"email":"${EMAIL}","email":"x"}]}`],
    ['a \\u-escaped key name', `{"customers":[{"\\u0065mail":"${EMAIL}"}]}`],
    ['a \\u-escaped value', `{"customers":[{"email":"\\u0061da@example.com"}]}`],
    ['a byte order mark', `\uFEFF{"customers":[{"email":"${EMAIL}"}]}`],
    ['a card number as a number', `{"card_number":${CARD}}`],
    ['a card number beyond 2^53 next to an exact id', `{"id":9007199254740993,"card_number":41111111111111111111}`],
    ['JSON inside a string', `{"customers":[{"profile":"{\\"email\\":\\"${EMAIL}\\"}"}]}`],
    ['a __proto__ key', `{"customers":[{"__proto__":{"email":"${EMAIL}"},"email":"${EMAIL}"}]}`],
  ])('%s', async (_name, json) => {
    const r = await served(json);
    expect([200, 502]).toContain(r.status);
    if (r.status === 502) expect(r.headers).toMatch(/sluice-refusal: unmaskable_response/i);
  });

  it('a key given twice with an exact number is refused without quoting the key or the value', async () => {
    const r = await served(`{"id":9007199254740993,"customers":[{"email":"${EMAIL}","email":"x"}]}`);
    expect(r.status).toBe(502);
  });

  it('deep nesting is refused or masked, and the gateway keeps serving', async () => {
    const depth = 20_000;
    const r = await served(`${'['.repeat(depth)}{"card_number":"${CARD}"}${']'.repeat(depth)}`);
    expect([200, 502]).toContain(r.status);
    const after = await served(`{"customers":[{"email":"${EMAIL}"}]}`);
    expect(after.status).toBe(200);
    expect(JSON.parse(after.body).customers[0].email).not.toBe(EMAIL);
  });
});

describe('bodies that are not one JSON document', () => {
  it.each([
    ['ndjson', `{"customers":[{"email":"${EMAIL}"}]}\n{"customers":[{"email":"${EMAIL}"}]}`],
    ['an XSSI prefix', `)]}',\n{"customers":[{"email":"${EMAIL}"}]}`],
    ['JSONP', `cb({"customers":[{"email":"${EMAIL}"}]})`],
  ])('%s is refused', async (_name, text) => {
    const r = await served(text);
    expect(r.status).toBe(502);
    expect(r.headers).toMatch(/sluice-refusal: unmaskable_response/i);
  });
});

describe('codings, ranges and bodiless answers', () => {
  const doc = `{"customers":[{"name":"Ada","email":"${EMAIL}"}],"card_number":"${CARD}"}`;

  it('a gzip body the service codes unasked is decoded and masked', async () => {
    c.target.json = doc;
    const r = await c.curl(['--compressed', `${c.base}/v1/customers?gzip`]);
    expect(r.status).toBe(200);
    expect(r.body).not.toContain(EMAIL);
    expect(r.headers).not.toMatch(/content-encoding/i);
  });

  it('a 206 partial answer is refused; a Range the service ignores gets the masked whole', async () => {
    c.target.json = doc;
    const partial = await c.curl(['-H', 'Range: bytes=20-60', `${c.base}/v1/customers?partial`]);
    expect(partial.status).toBe(502);
    expect(partial.body).not.toContain(EMAIL);
    const ignored = await served(doc, ['-H', 'Range: bytes=20-60']);
    expect(ignored.status).toBe(200);
  });

  it('HEAD carries no body to leak, and the next request is still masked', async () => {
    c.target.json = doc;
    const head = await c.curl(['-I', `${c.base}/v1/customers`]);
    expect(head.status).toBe(200);
    expect(head.body.trim()).toBe('');
    expect((await served(doc)).status).toBe(200);
  });

  it('a method override or a suffix still reaches the mask rule', async () => {
    c.target.json = doc;
    const r = await c.curl(['-X', 'POST', '-H', 'X-HTTP-Method-Override: GET', `${c.base}/V1/Customers`]);
    expect(r.status).toBe(200);
    expect(r.body).not.toContain(EMAIL);
  });
});
