// What errors and notices quote from the data, for someone a mask applies to: failing rows and
// unique keys of masked columns withheld, detectors over every text field, nothing else touched.
import { describe, expect, it } from 'vitest';
import { maskNoticeFields, maskPolicyFor, WITHHELD, type NoticeField } from '../../../gateway/policy/index.js';
import { compilePolicy, policySchema } from '../../../gateway/policy/schema.js';

function maskFor(rules: unknown[]) {
  return maskPolicyFor(compilePolicy(policySchema.parse({ rules }), {}), ['eng'])!;
}

const fields = (o: Record<string, string>): NoticeField[] => Object.entries(o).map(([k, v]) => ({ code: k.charCodeAt(0), value: v }));
const asObject = (f: NoticeField[] | undefined) => (f === undefined ? undefined : Object.fromEntries(f.map((x) => [String.fromCharCode(x.code), x.value])));

const COLUMNS = maskFor([{ id: 'pii', mask: { columns: ['customers.email', 'customers.card_number'], with: 'partial' } }]);
const DETECT = maskFor([{ id: 'any', mask: { detect: ['email', 'credit_card'], with: 'redact' } }]);

describe('masking what errors quote', () => {
  it('withholds a failing row of a table with masked columns, whatever column failed', () => {
    const e = fields({ S: 'ERROR', C: '23502', M: 'null value in column "name" of relation "customers" violates not-null constraint', D: 'Failing row contains (1, null, ann@example.com, 4111111111111111).', s: 'public', t: 'customers', c: 'name' });
    expect(asObject(maskNoticeFields(e, COLUMNS))).toMatchObject({ D: `Failing row contains (${WITHHELD}).`, M: 'null value in column "name" of relation "customers" violates not-null constraint' });
    // Another table: its rows are not masked data.
    expect(maskNoticeFields(fields({ D: 'Failing row contains (1, x).', t: 'orders' }), COLUMNS)).toBeUndefined();
    // No table named: withheld (it could be any).
    expect(asObject(maskNoticeFields(fields({ D: 'Failing row contains (1, x).' }), COLUMNS))?.D).toBe(`Failing row contains (${WITHHELD}).`);
  });

  it('withholds a unique key of a masked column, keeps other keys', () => {
    expect(asObject(maskNoticeFields(fields({ D: 'Key (email)=(ann@example.com) already exists.', s: 'public', t: 'customers' }), COLUMNS))?.D).toBe(`Key (email)=(${WITHHELD}) already exists.`);
    expect(asObject(maskNoticeFields(fields({ D: 'Key (id, "email")=(1, ann@example.com) already exists.', t: 'customers' }), COLUMNS))?.D).toBe(`Key (id, "email")=(${WITHHELD}) already exists.`);
    expect(asObject(maskNoticeFields(fields({ D: 'Key (lower(email))=(ann@example.com) already exists.', t: 'customers' }), COLUMNS))?.D).toBe(`Key (lower(email))=(${WITHHELD}) already exists.`);
    expect(maskNoticeFields(fields({ D: 'Key (id)=(1) already exists.', t: 'customers' }), COLUMNS)).toBeUndefined();
    expect(maskNoticeFields(fields({ D: 'Key (customer_id)=(7) is not present in table "customers".', t: 'orders' }), COLUMNS)).toBeUndefined();
  });

  it('runs the detectors over message, detail, hint, context and internal query', () => {
    const n = fields({ S: 'NOTICE', C: '00000', M: 'contact ann@example.com', D: 'card 4111 1111 1111 1111', H: 'ok', W: 'PL/pgSQL function leak() line 3 at RAISE' });
    const m = asObject(maskNoticeFields(n, DETECT))!;
    expect(m.M).toBe('contact [redacted]');
    expect(m.D).toBe('card [redacted]');
    expect(m.H).toBe('ok');
    expect(m.S).toBe('NOTICE');
    expect(maskNoticeFields(fields({ M: 'nothing here', D: 'Key (id)=(1) already exists.' }), DETECT)).toBeUndefined();
  });
});
