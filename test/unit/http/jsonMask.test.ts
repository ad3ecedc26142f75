import { describe, expect, it } from 'vitest';
import { compileJsonPath, selectJsonPath, type JsonPath } from '../../../gateway/engines/http/jsonPath.js';
import { maskJsonDocument } from '../../../gateway/engines/http/jsonMask.js';
import type { MaskPlan } from '../../../gateway/engines/http/policy.js';

const path = (p: string) => compileJsonPath(p) as JsonPath;
const plan = (paths: string[], strategy: 'redact' | 'partial' = 'partial', backstop: MaskPlan['backstop'] = []): MaskPlan => ({ paths: paths.map((p) => ({ path: path(p), strategy, rule: 'pii' })), backstop });

describe('JSON paths', () => {
  it('compiles the subset and refuses the rest', () => {
    expect(path('$.a.b').steps).toEqual([{ kind: 'child', name: 'a' }, { kind: 'child', name: 'b' }]);
    expect(path("$.a[*]['x y'][2]..z").steps.map((s) => s.kind)).toEqual(['child', 'wildcard', 'child', 'index', 'descendant']);
    for (const bad of ['a.b', '$', '$.', '$..', '$[?(@.x)]', '$.a[-1]']) expect(compileJsonPath(bad)).toHaveProperty('problem');
  });

  it('selects every place once', () => {
    const doc = { a: [{ n: 1, b: { n: 2 } }, { n: 3 }], n: 0 };
    expect(selectJsonPath(doc, path('$..n')).map((p) => p.where).sort()).toEqual(['$.a[0].b.n', '$.a[0].n', '$.a[1].n', '$.n']);
    expect(selectJsonPath(doc, path('$.a[*].n')).map((p) => p.where)).toEqual(['$.a[0].n', '$.a[1].n']);
    expect(selectJsonPath(doc, path('$.missing.x'))).toEqual([]);
  });
});

describe('maskJsonDocument', () => {
  it('masks by path with the strategy and lists the places', () => {
    const doc = { customers: [{ name: 'Ada', email: 'ada@example.com' }, { name: 'Bob', email: 'bob@example.org' }], card_number: 4111111111111111, nested: { card_number: { full: 'x' } } };
    const r = maskJsonDocument(doc, plan(['$.customers[*].email', '$..card_number']), undefined);
    const out = r.doc as typeof doc;
    expect(out.customers[0]!.email).toBe('***********.com');
    expect(out.customers[1]!.name).toBe('Bob');
    expect(out.card_number).toBe('************1111');
    expect(out.nested.card_number).toBe('[redacted]');
    expect(r.maskedPaths.sort()).toEqual(['$.card_number', '$.customers[0].email', '$.customers[1].email', '$.nested.card_number']);
  });

  it('masks an own "__proto__" key (JSON.parse makes one), never the prototype', () => {
    const doc = JSON.parse('{"__proto__": {"email": "ada@example.com"}, "list": [{"__proto__": "secret-value"}]}') as unknown;
    const r = maskJsonDocument(doc, plan(['$..__proto__'], 'redact'), undefined);
    expect(JSON.stringify(r.doc)).toBe('{"__proto__":"[redacted]","list":[{"__proto__":"[redacted]"}]}');
  });

  it('the backstop detectors catch what no path named, in values, numbers and keys', () => {
    const doc = JSON.parse('{"note": "mail ada@example.com now", "n": 4111111111111111, "by_email": {"bob@example.org": 1}, "ok": "plain"}') as unknown;
    const r = maskJsonDocument(doc, plan([], 'redact', ['email', 'credit_card']), undefined);
    const text = JSON.stringify(r.doc);
    expect(text).not.toContain('ada@example.com');
    expect(text).not.toContain('bob@example.org');
    expect(text).not.toContain('4111111111111111');
    expect(text).toContain('plain');
    expect(r.detectorHits.email).toBe(2);
    expect(r.detectorHits.credit_card).toBe(1);
  });
});

describe('masked responses keep the service\'s numbers', () => {
  const roundTrip = async (body: string, paths: string[], backstop: MaskPlan['backstop'] = []) => {
    const { maskJsonResponse } = await import('../../../gateway/engines/http/responseMask.js');
    const { Readable } = await import('node:stream');
    const res = { status: 200, headers: { 'content-type': 'application/json' }, body: Readable.from([Buffer.from(body)]) };
    return (await maskJsonResponse(res, plan(paths, 'partial', backstop), undefined, 'pii')).response.body.toString();
  };

  it('writes every unmasked number literal back exactly as it was sent (2^53 + 1, 1.0, 1e2, -0)', async () => {
    const out = await roundTrip('{"id":9007199254740993,"ids":[12345678901234567890,-9007199254740993],"f":1.0,"e":1e2,"z":-0,"d":0.1000,"n":42,"email":"ada@example.com"}', ['$.email']);
    expect(out).toBe('{"id":9007199254740993,"ids":[12345678901234567890,-9007199254740993],"f":1.0,"e":1e2,"z":-0,"d":0.1000,"n":42,"email":"***********.com"}');
  });

  it('masks a big number by its exact digits, and its `.value` is no JSON path', async () => {
    expect(await roundTrip('{"card":4111111111111111111,"x":{"value":"v"}}', ['$.card', '$..value'])).toBe('{"card":"***************1111","x":{"value":"*"}}');
    // The backstop reads the literal's own digits: a 19-digit card number is found whole.
    expect(await roundTrip('{"n":4111111111111111110,"m":7}', [], ['credit_card'])).toBe('{"n":"[redacted]","m":7}');
  });

  it('a key held twice: the last value wins, as JSON.parse has it; with exact numbers to keep, refused without quoting it', async () => {
    expect(await roundTrip('{"k":1,"k":2}', ['$.x'])).toBe('{"k":2}');
    const twice = '{"ada@example.com":1,"ada@example.com":2,"id":9007199254740993}';
    await expect(roundTrip(twice, ['$.x'])).rejects.toThrow(/holds a key twice/);
    await expect(roundTrip(twice, ['$.x'])).rejects.not.toThrow(/ada/);
  });
});

describe('hasInexactNumber', () => {
  it('finds the literals a JS number would change, and nothing inside strings', async () => {
    const { hasInexactNumber } = await import('../../../gateway/engines/http/jsonNumbers.js');
    for (const t of ['9007199254740993', '[1.0]', '{"a":1e2}', '-0', '[0.10]', '[1e21]', '{"x":"1.0","y":12345678901234567890}', '1E5']) expect(hasInexactNumber(t), t).toBe(true);
    for (const t of ['{"a":"9007199254740993","b":"1.0"}', '[1,-2,0.5,1.25,123456789012345,9007199254740991]', '{"s":"\\"1.0\\"","n":3}', 'true', '[1e+21]', '[1.5e-7]']) expect(hasInexactNumber(t), t).toBe(false);
  });
});
