// What errors and notices quote from the data, for someone a mask applies to: the values in an
// integrity violation's DETAIL withheld (failing rows, keys of masked columns, any other wording),
// detectors over every text field, nothing else touched.
import { describe, expect, it } from 'vitest';
import { maskNoticeFields, maskPolicyFor, WITHHELD, WITHHELD_RAISED, type NoticeField } from '../../../gateway/policy/index.js';
import { compilePolicy, policySchema } from '../../../gateway/policy/schema.js';

function maskFor(rules: unknown[]) {
  return maskPolicyFor(compilePolicy(policySchema.parse({ rules }), {}), ['eng'])!;
}

const fields = (o: Record<string, string>): NoticeField[] => Object.entries(o).map(([k, v]) => ({ code: k.charCodeAt(0), value: v }));
const asObject = (f: NoticeField[] | undefined) => (f === undefined ? undefined : Object.fromEntries(f.map((x) => [String.fromCharCode(x.code), x.value])));
const detailOf = (f: NoticeField[] | undefined) => asObject(f)?.D;

const COLUMNS = maskFor([{ id: 'pii', mask: { columns: ['customers.email', 'customers.card_number'], with: 'partial' } }]);
const DETECT = maskFor([{ id: 'any', mask: { detect: ['email', 'credit_card'], with: 'redact' } }]);

describe('masking what errors quote', () => {
  it('withholds a failing row, whatever table (it may be a partition of a masked one)', () => {
    const e = fields({ S: 'ERROR', C: '23502', M: 'null value in column "name" of relation "customers" violates not-null constraint', D: 'Failing row contains (1, null, ann@example.com, 4111111111111111).', s: 'public', t: 'customers', c: 'name' });
    expect(asObject(maskNoticeFields(e, COLUMNS))).toMatchObject({ D: `Failing row contains (${WITHHELD}).`, M: 'null value in column "name" of relation "customers" violates not-null constraint', t: 'customers' });
    expect(detailOf(maskNoticeFields(fields({ C: '23514', D: 'Failing row contains (1, x).', t: 'customers_2024' }), COLUMNS))).toBe(`Failing row contains (${WITHHELD}).`);
  });

  it('withholds the values of a key with a masked column name or an expression, keeps other keys', () => {
    expect(detailOf(maskNoticeFields(fields({ C: '23505', D: 'Key (email)=(ann@example.com) already exists.', t: 'customers' }), COLUMNS))).toBe(`Key (email)=(${WITHHELD}) already exists.`);
    expect(detailOf(maskNoticeFields(fields({ C: '23505', D: 'Key (id, "email")=(1, ann@example.com) already exists.', t: 'customers_p1' }), COLUMNS))).toBe(`Key (id, "email")=(${WITHHELD}) already exists.`);
    expect(detailOf(maskNoticeFields(fields({ C: '23505', D: 'Key (lower(name))=(ann) already exists.', t: 'people' }), COLUMNS))).toBe(`Key (lower(name))=(${WITHHELD}) already exists.`);
    expect(maskNoticeFields(fields({ C: '23505', D: 'Key (id)=(1) already exists.', t: 'customers' }), COLUMNS)).toBeUndefined();
    expect(maskNoticeFields(fields({ C: '23503', D: 'Key (customer_id)=(7) is not present in table "customers".', t: 'orders' }), COLUMNS)).toBeUndefined();
  });

  it('withholds an integrity DETAIL in a wording it does not know (another lc_messages); other errors keep theirs', () => {
    expect(detailOf(maskNoticeFields(fields({ C: '23505', D: 'Schlüssel »(email)=(ann@example.com)« existiert bereits.' }), COLUMNS))).toBe(WITHHELD);
    expect(maskNoticeFields(fields({ C: '42P01', D: 'some detail' }), COLUMNS)).toBeUndefined();
  });

  it('withholds what a data exception quotes from the value that failed to convert', () => {
    expect(asObject(maskNoticeFields(fields({ C: '22P02', M: 'invalid input syntax for type integer: "ann@e"' }), COLUMNS))).toMatchObject({ M: `invalid input syntax for type integer: "${WITHHELD}"` });
    expect(asObject(maskNoticeFields(fields({ C: '22003', M: 'value "41111111" is out of range for type integer' }), COLUMNS))).toMatchObject({ M: `value "${WITHHELD}" is out of range for type integer` });
    expect(asObject(maskNoticeFields(fields({ C: '22P02', M: 'invalid input syntax for type json', D: 'Token "ann" is invalid.', W: 'JSON data, line 1: ann...' }), COLUMNS))).toMatchObject({ M: 'invalid input syntax for type json', D: WITHHELD, W: WITHHELD });
    expect(asObject(maskNoticeFields(fields({ C: '22021', M: 'invalid byte sequence for encoding "UTF8": 0x61 0xff' }), COLUMNS))?.M).not.toMatch(/0x61|UTF8/);
    expect(asObject(maskNoticeFields(fields({ C: '22P02', M: 'invalid input syntax for type integer: "ann@e"' }), DETECT))).toBeUndefined();
    expect(maskNoticeFields(fields({ C: '22012', M: 'division by zero' }), COLUMNS)).toBeUndefined();
  });

  it('runs the detectors over message, detail, hint, context and internal query', () => {
    const n = fields({ S: 'NOTICE', C: '00000', M: 'contact ann@example.com', D: 'card 4111 1111 1111 1111', H: 'ok', W: 'PL/pgSQL function leak() line 3 at RAISE' });
    const m = asObject(maskNoticeFields(n, DETECT))!;
    expect(m.M).toBe('contact [redacted]');
    expect(m.D).toBe('card [redacted]');
    expect(m.H).toBe('ok');
    expect(m.S).toBe('NOTICE');
    // Without column rules, an integrity DETAIL without sensitive values is kept.
    expect(maskNoticeFields(fields({ C: '23505', M: 'nothing here', D: 'Key (id)=(1) already exists.' }), DETECT)).toBeUndefined();
  });
});

describe('notices and errors raised while running code', () => {
  const raised = (w: string) => fields({ S: 'NOTICE', C: '00000', M: 'welcome Ada', D: 'owner Ada', H: 'Ada', W: w, q: "select 'Ada'", t: 'guestbook' });
  it.each([
    ['PL/pgSQL', 'PL/pgSQL function greet() line 2 at RAISE'],
    ['a SQL function', 'SQL function "greet" statement 1'],
    ['dynamic SQL under a function', 'SQL statement "select \'Ada\'::regclass"\nPL/pgSQL function greet() line 3 at EXECUTE'],
    ['a language the gateway has not heard of', 'plv9 function greet'],
    ['a JSON line followed by a function', 'JSON data, line 1: x\nPL/pgSQL function greet() line 2 at assignment'],
  ])('%s: message, detail, hint, context and internal query withheld for column masks; names kept', (_n, w) => {
    const m = asObject(maskNoticeFields(raised(w), COLUMNS))!;
    expect(m).toMatchObject({ M: WITHHELD_RAISED, D: WITHHELD, H: WITHHELD, W: WITHHELD, q: WITHHELD, t: 'guestbook', C: '00000', S: 'NOTICE' });
  });

  it('context about the input being read (JSON, COPY) is not code; detector-only masks keep the text', () => {
    expect(maskNoticeFields(fields({ C: '23505', M: 'duplicate key value violates unique constraint "k"', D: 'Key (id)=(1) already exists.', W: 'COPY orders, line 3' }), COLUMNS)).toBeUndefined();
    expect(maskNoticeFields(fields({ C: '00000', M: 'welcome Ada', W: 'PL/pgSQL function greet() line 2 at RAISE' }), DETECT)).toBeUndefined();
  });
});
