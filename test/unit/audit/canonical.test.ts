// Canonical JSON (RFC 8785) and the chain hash: the bytes every hash and signature covers.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson, chainHash, eventHash, GENESIS_HASH } from '../../../src/api/auditTrail.js';

describe('canonicalJson', () => {
  it('sorts keys by UTF-16 code units at every level and writes no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: null, y: true }], c: 'x' } })).toBe('{"a":{"c":"x","d":[3,{"y":true,"z":null}]},"b":1}');
    // RFC 8785 §3.2.3: "\u20ac" (€) sorts after "\r" and before the emoji's high surrogate.
    expect(canonicalJson({ '\u20ac': 1, '\r': 2, '\ud83d\ude00': 3, '1': 4 })).toBe('{"\\r":2,"1":4,"€":1,"😀":3}');
  });

  it('writes numbers and strings as ECMAScript does (RFC 8785 §3.2.2)', () => {
    expect(canonicalJson([1e21, 1e-7, -0, 0.1 + 0.2, Number('333333333.33333329'), 9007199254740991])).toBe('[1e+21,1e-7,0,0.30000000000000004,333333333.3333333,9007199254740991]');
    expect(canonicalJson('a"\\\n\u0000\u001f\u007f é 😀')).toBe('"a\\"\\\\\\n\\u0000\\u001f\u007f é 😀"');
    expect(canonicalJson('\ud800')).toBe('"\\ud800"'); // a lone surrogate stays representable
  });

  it('omits undefined members and rejects what has no canonical form', () => {
    expect(canonicalJson({ a: undefined, b: 2 })).toBe('{"b":2}');
    expect(() => canonicalJson([undefined])).toThrow(/undefined/);
    expect(() => canonicalJson(Number.NaN)).toThrow(/NaN/);
    expect(() => canonicalJson(Infinity)).toThrow();
    expect(() => canonicalJson(new Date(0))).toThrow(/plain objects/);
    expect(() => canonicalJson(10n)).toThrow(/bigint/);
  });

  it('is stable through a JSON round trip (what an export and its verifier rely on)', () => {
    const v = { text: 'select \u0000 \ud800 😀', n: [1.5, 1e300, -2], nested: { k: null } };
    expect(canonicalJson(JSON.parse(JSON.stringify(v)))).toBe(canonicalJson(v));
  });
});

describe('chainHash', () => {
  it('is sha256 over the 32 raw bytes of prev followed by the canonical JSON', () => {
    const prev = 'ab'.repeat(32);
    const expected = createHash('sha256').update(Buffer.from(prev, 'hex')).update('{"a":1}').digest('hex');
    expect(chainHash(prev, { a: 1 })).toBe(expected);
    expect(() => chainHash('xyz', {})).toThrow(/64/);
    // Multi-byte text, short and past the size linkHash assembles in its kept buffer.
    for (const text of ['caf\u00e9 \ud83d\ude00', '\u00e9'.repeat(30_000)]) {
      const body = { text };
      const json = `{"text":${JSON.stringify(text)}}`;
      expect(chainHash(prev, body)).toBe(createHash('sha256').update(Buffer.from(prev, 'hex')).update(json, 'utf8').digest('hex'));
    }
  });

  it('covers every field of an event, so moving, renumbering or editing it changes the hash', () => {
    const e = { session: 's_1', seq: 1, kind: 'query' as const, at: '2026-11-05T10:00:00.000Z', data: { q: 1, text: 'select 1' } };
    const h = eventHash(GENESIS_HASH, e);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    for (const changed of [{ ...e, session: 's_2' }, { ...e, seq: 2 }, { ...e, kind: 'result' as const }, { ...e, at: '2026-11-05T10:00:00.001Z' }, { ...e, data: { q: 1, text: 'select 2' } }]) {
      expect(eventHash(GENESIS_HASH, changed)).not.toBe(h);
    }
    expect(eventHash('1'.repeat(64), e)).not.toBe(h);
  });
});
