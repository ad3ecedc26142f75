// DataRow rewriting at the byte level: lengths recomputed, NULLs kept, several columns, binary
// values, JSON kept valid, the same Buffer returned when nothing changes, malformed frames refused.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyResultFormats, createRowMasker, decodeRowDescription, RowMaskError, type RowColumn } from '../../../gateway/policy/mask/dataRow.js';
import { DETECTOR_NAMES } from '../../../gateway/policy/mask/detectors.js';
import { applyStrategy, REDACTED, type DetectPlan, type MaskStrategy } from '../../../gateway/policy/mask/strategies.js';
import { HASH_KEY } from './fixtures.js';
import { column, dataRow, readDataRow, rowDescription } from './wire.js';

const detectAll: DetectPlan = new Map(DETECTOR_NAMES.map((d) => [d, 'redact' as const]));
const texts = (frame: Buffer) => readDataRow(frame).map((v) => (v === null ? null : v.toString('utf8')));

describe('decodeRowDescription', () => {
  it('reads every field of every column', () => {
    const cols = [column('id', { tableOid: 16384, attnum: 1, typeOid: 23, typeSize: 4 }), column('e', { tableOid: 16384, attnum: 3, typeMod: 259, formatCode: 1 }), column('ünï', {})];
    expect(decodeRowDescription(rowDescription(cols))).toEqual(cols);
  });

  it('refuses malformed frames', () => {
    const good = rowDescription([column('a')]);
    expect(() => decodeRowDescription(good.subarray(0, good.length - 1))).toThrow(RowMaskError);
    expect(() => decodeRowDescription(Buffer.concat([good.subarray(0, 1), Buffer.from([0, 0, 0, 7, 0, 2]), Buffer.alloc(1)]))).toThrow(RowMaskError);
    expect(() => decodeRowDescription(dataRow([]))).toThrow(/not a RowDescription/);
  });

  it('applies Bind result formats', () => {
    const cols = [column('a'), column('b')];
    expect(applyResultFormats(cols, []).map((c) => c.formatCode)).toEqual([0, 0]);
    expect(applyResultFormats(cols, [1]).map((c) => c.formatCode)).toEqual([1, 1]);
    expect(applyResultFormats(cols, [0, 1]).map((c) => c.formatCode)).toEqual([0, 1]);
  });
});

describe('maskDataRow: masked columns', () => {
  const cols = [column('id', { typeOid: 23 }), column('email'), column('card'), column('note')];
  const masker = (strategy: MaskStrategy) =>
    createRowMasker({
      columns: cols,
      maskedColumns: new Map([
        [1, strategy],
        [2, strategy],
      ]),
      hashKey: HASH_KEY,
    });

  it('rewrites masked values and recomputes every length', () => {
    const m = masker('partial');
    const out = m.maskDataRow(dataRow(['7', 'alice@example.com', '4111111111111111', 'hi']));
    expect(texts(out)).toEqual(['7', '*************.com', '************1111', 'hi']);
    expect(out.readInt32BE(1)).toBe(out.length - 1);
    expect(m.stats).toMatchObject({ rows: 1, rowsChanged: 1, valuesMasked: 2 });
  });

  it('redact and hash', () => {
    expect(texts(masker('redact').maskDataRow(dataRow(['1', 'a@b.co', 'x', 'y'])))).toEqual(['1', REDACTED, REDACTED, 'y']);
    const h = texts(masker('hash').maskDataRow(dataRow(['1', 'a@b.co', 'a@b.co', 'y'])));
    expect(h[1]).toMatch(/^h:[0-9a-f]{16}$/);
    expect(h[2]).toBe(h[1]); // equal inputs, equal outputs: joins still work
  });

  it('keeps NULLs NULL and masks empty strings', () => {
    const out = masker('redact').maskDataRow(dataRow([null, null, '', null]));
    expect(texts(out)).toEqual([null, null, REDACTED, null]);
  });

  it('matches a byte-exact expected frame', () => {
    const m = createRowMasker({ columns: [column('a'), column('b')], maskedColumns: new Map([[0, 'redact']]) });
    const out = m.maskDataRow(dataRow(['secret', null]));
    const expected = Buffer.concat([Buffer.from('D'), Buffer.from([0, 0, 0, 4 + 2 + 4 + REDACTED.length + 4]), Buffer.from([0, 2]), Buffer.from([0, 0, 0, REDACTED.length]), Buffer.from(REDACTED), Buffer.from([0xff, 0xff, 0xff, 0xff])]);
    expect(out.equals(expected)).toBe(true);
  });

  it('replaces binary values of non-text types with NULL, and masks binary text in place', () => {
    const binCols = [column('n', { typeOid: 23, formatCode: 1 }), column('t', { typeOid: 25, formatCode: 1 }), column('ts', { typeOid: 1184, formatCode: 1 }), column('v', { typeOid: 1043, formatCode: 1 })];
    const m = createRowMasker({
      columns: binCols,
      maskedColumns: new Map<number, MaskStrategy>([
        [0, 'redact'],
        [1, 'partial'],
        [2, 'hash'],
        [3, 'redact'],
      ]),
      hashKey: HASH_KEY,
    });
    const out = m.maskDataRow(dataRow([Buffer.from([0, 0, 0, 42]), 'secret-value', Buffer.alloc(8, 1), 'v']));
    expect(texts(out)).toEqual([null, '********alue', null, REDACTED]);
    expect(m.stats.valuesNulled).toBe(2);
  });

  it('keeps json and jsonb valid, in text and binary format', () => {
    const jc = [column('j', { typeOid: 114 }), column('jb', { typeOid: 3802 }), column('jbb', { typeOid: 3802, formatCode: 1 })];
    const m = createRowMasker({
      columns: jc,
      maskedColumns: new Map<number, MaskStrategy>([
        [0, 'redact'],
        [1, 'partial'],
        [2, 'redact'],
      ]),
    });
    const [j, jb, jbb] = readDataRow(m.maskDataRow(dataRow(['{"a":1}', '{"email":"x@y.z"}', Buffer.concat([Buffer.of(1), Buffer.from('{"k":"v"}')])]))) as Buffer[];
    expect(JSON.parse(j?.toString() ?? '')).toBe(REDACTED);
    expect(JSON.parse(jb?.toString() ?? '')).toBe('*************.z"}');
    expect(jbb?.[0]).toBe(1);
    expect(JSON.parse(jbb?.subarray(1).toString() ?? '')).toBe(REDACTED);
  });
});

describe('maskDataRow: detectors', () => {
  const cols = [column('id', { typeOid: 23 }), column('note'), column('doc', { typeOid: 114 }), column('raw', { typeOid: 17 }), column('b', { typeOid: 25, formatCode: 1 })];
  const m = () => createRowMasker({ columns: cols, maskedColumns: new Map(), detect: detectAll });

  it('masks what detectors find in any text value, whatever the column', () => {
    const out = m().maskDataRow(dataRow(['1', 'call +44 20 7946 0958 or mail ann@example.com', null, null, 'card 4111111111111111']));
    expect(texts(out)).toEqual(['1', `call ${REDACTED} or mail ${REDACTED}`, null, null, `card ${REDACTED}`]);
  });

  it('quotes a replacement that sits outside JSON strings, and keeps one inside a string as is', () => {
    const out = m().maskDataRow(dataRow([null, null, '{"card": 4111111111111111, "mail": "ann@example.com", "n": [4111111111111111]}', null, null]));
    const doc = texts(out)[2] as string;
    expect(JSON.parse(doc)).toEqual({ card: REDACTED, mail: REDACTED, n: [REDACTED] });
  });

  it('masks a whole JSON value when a match crosses a string boundary', () => {
    const out = m().maskDataRow(dataRow([null, null, '{"k": "-----BEGIN PRIVATE KEY-----\\nabc"}', null, null]));
    expect(JSON.parse(texts(out)[2] as string)).toBe(REDACTED);
  });

  it('does not scan types that cannot hold text (int4) and counts hits', () => {
    const mk = m();
    const frame = dataRow(['4111111111111111', 'ssn 123-45-6789, 078-05-1120', null, null, null]);
    const out = mk.maskDataRow(frame);
    expect(texts(out)).toEqual(['4111111111111111', `ssn ${REDACTED}, ${REDACTED}`, null, null, null]);
    expect(mk.stats.detectorHits).toEqual({ us_ssn: 2 });
    mk.resetStats();
    expect(mk.stats).toMatchObject({ rows: 0, valuesMasked: 0, detectorHits: {} });
  });

  it('returns the same Buffer when nothing is masked (zero-copy)', () => {
    const frame = dataRow(['1', 'nothing here', '{"a": 1}', '\\x00ff', 'plain']);
    const mk = m();
    expect(mk.maskDataRow(frame)).toBe(frame);
    const empty = dataRow([null, null, null, null, null]);
    expect(mk.maskDataRow(empty)).toBe(empty);
    expect(mk.stats).toMatchObject({ rows: 2, rowsChanged: 0 });
  });
});

describe('maskDataRow: malformed frames are refused, never passed through', () => {
  const mk = createRowMasker({ columns: [column('a'), column('b')], maskedColumns: new Map([[0, 'redact']]) });
  it.each([
    ['a RowDescription', rowDescription([column('a')])],
    ['a wrong column count', dataRow(['x'])],
    ['a wrong length field', Buffer.concat([Buffer.from('D'), Buffer.from([0, 0, 0, 99]), dataRow(['x', 'y']).subarray(5)])],
    ['a value longer than the frame', Buffer.concat([Buffer.from('D'), Buffer.from([0, 0, 0, 14]), Buffer.from([0, 2, 0, 0, 0, 50, 0x61, 0xff, 0xff, 0xff, 0xff])])],
    ['a negative length', Buffer.concat([Buffer.from('D'), Buffer.from([0, 0, 0, 14]), Buffer.from([0, 2, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0]), Buffer.alloc(0)])],
    ['trailing bytes', Buffer.concat([dataRow(['x', 'y']).subarray(0, 1), Buffer.from([0, 0, 0, 16]), dataRow(['x', 'y']).subarray(5), Buffer.from('zz')])],
  ])('%s', (_label, frame) => {
    expect(() => mk.maskDataRow(frame)).toThrow(RowMaskError);
  });
});

describe('maskDataRow properties', () => {
  const valueArb = fc.oneof(fc.constant(null), fc.string({ unit: 'binary', maxLength: 30 }), fc.constantFrom('4111111111111111', 'ann@example.com', 'jörg@bücher.de 🙂', '123-45-6789'));
  const colArb = fc.record({ masked: fc.option(fc.constantFrom<MaskStrategy>('redact', 'partial', 'hash'), { nil: undefined }), binary: fc.boolean(), typeOid: fc.constantFrom(25, 1043, 23, 114) });

  it('produces a well-formed DataRow: NULLs kept, unmasked values byte-identical, text valid UTF-8', () => {
    const utf8 = new TextDecoder('utf-8', { fatal: true });
    fc.assert(
      fc.property(fc.array(fc.tuple(colArb, valueArb), { minLength: 1, maxLength: 8 }), fc.boolean(), (spec, detect) => {
        const columns: RowColumn[] = spec.map(([c], i) => column(`c${i}`, { typeOid: c.typeOid, formatCode: c.binary ? 1 : 0 }));
        const masked = new Map<number, MaskStrategy>();
        spec.forEach(([c], i) => c.masked !== undefined && masked.set(i, c.masked));
        const mk = createRowMasker({ columns, maskedColumns: masked, hashKey: HASH_KEY, ...(detect ? { detect: detectAll } : {}) });
        const input = spec.map(([, v]) => v);
        const frame = dataRow(input);
        const out = mk.maskDataRow(frame);
        const values = readDataRow(out);
        expect(values).toHaveLength(input.length);
        values.forEach((v, i) => {
          const original = input[i] as string | null;
          const c = columns[i] as RowColumn;
          if (original === null) expect(v).toBeNull();
          else if (!masked.has(i) && !detect) expect(v?.equals(Buffer.from(original))).toBe(true);
          if (v !== null && (c.formatCode === 0 || c.typeOid !== 23)) expect(() => utf8.decode(v)).not.toThrow();
          if (masked.has(i) && original !== null && original.length > 4) expect(v?.toString()).not.toBe(original);
        });
        if (masked.size === 0 && !detect) expect(out).toBe(frame);
      }),
      { numRuns: 500 },
    );
  });

  it('masks each value of a masked text column exactly as its strategy says, wherever the frame sits in a chunk', () => {
    const text = fc.oneof(fc.constant(null), fc.string({ unit: 'binary', maxLength: 30 }), fc.string({ unit: 'grapheme', maxLength: 12 }));
    const colSpec = fc.record({ masked: fc.option(fc.constantFrom<MaskStrategy>('redact', 'partial', 'hash'), { nil: undefined }), binary: fc.boolean(), typeOid: fc.constantFrom(25, 1043, 1042, 19) });
    fc.assert(
      fc.property(fc.array(fc.tuple(colSpec, text), { minLength: 1, maxLength: 8 }), fc.uint8Array({ maxLength: 9 }), fc.uint8Array({ maxLength: 9 }), (spec, before, after) => {
        const columns: RowColumn[] = spec.map(([c], i) => column(`c${i}`, { typeOid: c.typeOid, formatCode: c.binary ? 1 : 0 }));
        const masked = new Map<number, MaskStrategy>();
        spec.forEach(([c], i) => c.masked !== undefined && masked.set(i, c.masked));
        const mk = createRowMasker({ columns, maskedColumns: masked, hashKey: HASH_KEY });
        const input = spec.map(([, v]) => v);
        const frame = dataRow(input);
        const chunk = Buffer.concat([before, frame, after]);
        const out = mk.maskDataRowAt(chunk, before.length, before.length + frame.length);
        const expected = input.map((v, i) => {
          if (v === null) return null;
          const strategy = masked.get(i);
          return strategy === undefined ? Buffer.from(v) : applyStrategy(strategy, Buffer.from(v), HASH_KEY);
        });
        if (out === undefined) expect(expected.every((v, i) => input[i] === null || masked.get(i) === undefined)).toBe(true);
        else expect(readDataRow(out)).toEqual(expected);
        expect(chunk.subarray(before.length, before.length + frame.length).equals(frame)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});
