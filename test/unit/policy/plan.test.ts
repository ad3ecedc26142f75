// From policy + RowDescription to a masker: source columns through aliases, joins and views,
// group scoping, unresolved OIDs, and COPY decisions (mask, refuse, pass).
import { describe, expect, it } from 'vitest';
import { cachingResolver, maskPolicyFor, planCopyMask, planRowMask, planRowMaskWith, tableOidsToResolve, type ColumnNameResolver, type ResolvedRelation } from '../../../gateway/policy/mask/plan.js';
import { REDACTED } from '../../../gateway/policy/mask/strategies.js';
import { analyzeSql, type StatementAnalysis } from '../../../gateway/policy/sql.js';
import { ISSUE_POLICY, policyFromYaml } from './fixtures.js';
import { column, dataRow, readDataRow } from './wire.js';

const CUSTOMERS = 16_401;
const ORDERS = 16_402;
const V_CUSTOMERS = 16_403;

const RELATIONS = new Map<number, ResolvedRelation>([
  [CUSTOMERS, { schema: 'public', table: 'customers', columns: new Map([[1, 'id'], [2, 'name'], [3, 'email'], [5, 'card_number']]) }],
  [ORDERS, { schema: 'public', table: 'orders', columns: new Map([[1, 'id'], [2, 'email']]) }],
  [
    V_CUSTOMERS,
    {
      schema: 'public',
      table: 'customer_contacts',
      columns: new Map([[1, 'who'], [2, 'contact']]),
      sources: new Map([
        [1, [{ schema: 'public', table: 'customers', column: 'name' }]],
        [2, [{ schema: 'public', table: 'customers', column: 'email' }]],
      ]),
    },
  ],
]);

function fakeResolver(): ColumnNameResolver & { calls: number[][] } {
  const calls: number[][] = [];
  return {
    calls,
    async resolve(oids) {
      calls.push([...oids]);
      return new Map([...RELATIONS].filter(([oid]) => oids.includes(oid)));
    },
    async relationColumns(rel) {
      return [...RELATIONS.values()].find((r) => r.table === rel.name && (rel.schema === undefined || rel.schema === r.schema));
    },
  };
}

const strings = (frame: Buffer) => readDataRow(frame).map((v) => (v === null ? null : v.toString()));
const onlyStatement = (sql: string): StatementAnalysis => {
  const a = analyzeSql(sql);
  if (!a.ok || a.statements.length !== 1) throw new Error('expected one statement');
  return a.statements[0] as StatementAnalysis;
};

describe('maskPolicyFor', () => {
  it('merges the applicable mask rules', () => {
    const m = maskPolicyFor(ISSUE_POLICY, ['eng']);
    expect(m?.rules).toEqual(['pii', 'pii-anywhere']);
    expect(m?.columns.map((c) => [c.pattern.text, c.strategy])).toEqual([
      ['customers.email', 'partial'],
      ['customers.card_number', 'partial'],
    ]);
    expect([...(m?.detect ?? [])]).toEqual([
      ['credit_card', 'redact'],
      ['email', 'redact'],
      ['us_ssn', 'redact'],
      ['iban', 'redact'],
      ['phone', 'redact'],
      ['secret', 'redact'],
    ]);
  });

  it('keeps the stronger strategy when rules overlap, and honours for/except', () => {
    const p = policyFromYaml(`
rules:
  - { id: a, mask: { detect: [email], with: partial } }
  - { id: b, mask: { detect: [email], with: hash } }
  - { id: c, mask: { columns: [t.c] }, except: { groups: [support] } }
`);
    expect(maskPolicyFor(p, [])?.detect?.get('email')).toBe('hash');
    expect(maskPolicyFor(p, ['support'])?.rules).toEqual(['a', 'b']);
    expect(maskPolicyFor(policyFromYaml('rules: [{ id: c, mask: { columns: [t.c] }, for: { groups: [contractors] } }]'), ['eng'])).toBeUndefined();
  });
});

describe('planRowMask', () => {
  const mask = maskPolicyFor(ISSUE_POLICY, ['eng']);

  it('masks by source column, whatever the alias, and detects in the rest', async () => {
    // SELECT c.email AS e, o.email, c.name, upper(c.email) FROM customers c JOIN orders o …
    const cols = [
      column('e', { tableOid: CUSTOMERS, attnum: 3 }),
      column('email', { tableOid: ORDERS, attnum: 2 }),
      column('name', { tableOid: CUSTOMERS, attnum: 2 }),
      column('upper', { tableOid: 0, attnum: 0 }),
    ];
    const resolver = fakeResolver();
    const masker = await planRowMaskWith(mask, cols, resolver);
    expect(resolver.calls).toEqual([[CUSTOMERS, ORDERS]]);
    const out = masker?.maskDataRow(dataRow(['ann@example.com', 'bob@example.com', 'Ann', 'ANN@EXAMPLE.COM']));
    expect(strings(out as Buffer)).toEqual(['***********.com', REDACTED, 'Ann', REDACTED]);
    expect([...(masker?.plan.maskedColumns ?? [])].map(([i, s]) => [masker?.plan.columns[i]?.name, s])).toEqual([['e', 'partial']]);
    expect(masker?.stats.detectorHits).toEqual({ email: 2 });
  });

  it('masks view columns computed from masked columns', () => {
    const cols = [column('who', { tableOid: V_CUSTOMERS, attnum: 1 }), column('contact', { tableOid: V_CUSTOMERS, attnum: 2 })];
    const noDetect = maskPolicyFor(policyFromYaml('rules: [{ id: pii, mask: { columns: [public.customers.email] } }]'), []);
    const masker = planRowMask(noDetect, cols, RELATIONS);
    expect(strings(masker?.maskDataRow(dataRow(['Ann', 'ann@example.com'])) as Buffer)).toEqual(['Ann', REDACTED]);
  });

  it('fails closed on a table OID the resolver could not name', () => {
    const cols = [column('x', { tableOid: 99_999, attnum: 1 }), column('y')];
    const masker = planRowMask(mask, cols, RELATIONS);
    expect(strings(masker?.maskDataRow(dataRow(['anything', 'plain'])) as Buffer)).toEqual([REDACTED, 'plain']);
  });

  it('returns no masker when nothing can need masking, and resolves nothing without column rules', async () => {
    const detectOnly = maskPolicyFor(policyFromYaml('rules: [{ id: d, mask: { detect: [email] } }]'), []);
    expect(detectOnly && tableOidsToResolve(detectOnly, [column('a', { tableOid: CUSTOMERS, attnum: 3 })])).toEqual([]);
    const columnsOnly = maskPolicyFor(policyFromYaml('{ backstop: false, rules: [{ id: c, mask: { columns: [customers.email] } }] }'), []);
    expect(planRowMask(columnsOnly, [column('id', { tableOid: CUSTOMERS, attnum: 1 }), column('n')], RELATIONS)).toBeUndefined();
    expect(await planRowMaskWith(undefined, [column('a')], fakeResolver())).toBeUndefined();
  });

  it('runs every detector with redact as a backstop for anyone a mask rule applies to, unless the policy says otherwise', () => {
    const byDefault = maskPolicyFor(policyFromYaml('rules: [{ id: c, mask: { columns: [customers.email] } }, { id: d, mask: { detect: [email], with: partial } }]'), []);
    expect(byDefault?.detect).toEqual(new Map([['email', 'partial'], ['credit_card', 'redact'], ['us_ssn', 'redact'], ['iban', 'redact'], ['phone', 'redact'], ['secret', 'redact']]));
    const listed = maskPolicyFor(policyFromYaml('{ backstop: [credit_card], rules: [{ id: c, mask: { columns: [customers.email] } }] }'), []);
    expect(listed?.detect).toEqual(new Map([['credit_card', 'redact']]));
    expect(maskPolicyFor(policyFromYaml('{ backstop: false, rules: [{ id: c, mask: { columns: [customers.email] } }] }'), [])?.detect).toBeUndefined();
    expect(maskPolicyFor(policyFromYaml('rules: [{ id: c, mask: { columns: [customers.email] }, for: { groups: [ops] } }]'), ['eng'])).toBeUndefined();
    const masker = planRowMask(byDefault, [column('id', { tableOid: CUSTOMERS, attnum: 1 }), column('n')], RELATIONS);
    expect(strings(masker?.maskDataRow(dataRow(['1', 'card 4111 1111 1111 1111'])) as Buffer)).toEqual(['1', `card ${REDACTED}`]);
  });

  it('caches resolver answers per session', async () => {
    const inner = fakeResolver();
    const cached = cachingResolver(inner);
    await cached.resolve([CUSTOMERS, ORDERS]);
    await cached.resolve([CUSTOMERS]);
    const again = await cached.resolve([ORDERS, V_CUSTOMERS]);
    expect(inner.calls).toEqual([[CUSTOMERS, ORDERS], [V_CUSTOMERS]]);
    expect([...again.keys()]).toEqual([ORDERS, V_CUSTOMERS]);
  });
});

describe('planCopyMask', () => {
  const mask = maskPolicyFor(ISSUE_POLICY, ['eng']);

  it('masks COPY table TO STDOUT by column position, all columns or a column list', async () => {
    const all = await planCopyMask(mask, onlyStatement('COPY customers TO STDOUT'), fakeResolver());
    expect(all.action === 'mask' && [...all.options.columns]).toEqual([
      [2, 'partial'],
      [3, 'partial'],
    ]);
    const list = await planCopyMask(mask, onlyStatement('COPY public.customers (card_number, id) TO STDOUT (FORMAT csv, HEADER)'), fakeResolver());
    expect(list).toMatchObject({ action: 'mask', options: { format: 'csv', header: true } });
    expect(list.action === 'mask' && [...list.options.columns]).toEqual([[0, 'partial']]);
  });

  it('refuses binary COPY of anything that needs masking, and COPY (query) over masked tables', async () => {
    expect(await planCopyMask(mask, onlyStatement('COPY customers TO STDOUT (FORMAT binary)'), fakeResolver())).toMatchObject({ action: 'refuse', reason: expect.stringContaining('binary COPY') });
    expect(await planCopyMask(mask, onlyStatement('COPY orders TO STDOUT (FORMAT binary)'), fakeResolver())).toMatchObject({ action: 'refuse' }); // detectors apply everywhere
    expect(await planCopyMask(mask, onlyStatement('COPY (SELECT email FROM customers) TO STDOUT'), fakeResolver())).toMatchObject({ action: 'refuse', reason: expect.stringContaining('customers, which has masked columns') });
    expect(await planCopyMask(mask, onlyStatement('COPY (WITH x AS (SELECT * FROM public.customers) SELECT * FROM x) TO STDOUT'), fakeResolver())).toMatchObject({ action: 'refuse' });
  });

  it('masks COPY (query) of other tables with detectors only', async () => {
    const plan = await planCopyMask(mask, onlyStatement('COPY (SELECT * FROM orders) TO STDOUT'), fakeResolver());
    expect(plan).toMatchObject({ action: 'mask' });
    expect(plan.action === 'mask' && plan.options.columns.size).toBe(0);
  });

  it('leaves COPY FROM, COPY to files and unmasked connections alone', async () => {
    expect(await planCopyMask(mask, onlyStatement('COPY customers FROM STDIN'), fakeResolver())).toEqual({ action: 'none' });
    expect(await planCopyMask(mask, onlyStatement("COPY customers TO '/tmp/x'"), fakeResolver())).toEqual({ action: 'none' });
    expect(await planCopyMask(undefined, onlyStatement('COPY customers TO STDOUT'), fakeResolver())).toEqual({ action: 'none' });
    const columnsOnly = maskPolicyFor(policyFromYaml('{ backstop: false, rules: [{ id: c, mask: { columns: [customers.email] } }] }'), []);
    expect(await planCopyMask(columnsOnly, onlyStatement('COPY orders TO STDOUT (FORMAT binary)'), fakeResolver())).toEqual({ action: 'none' });
  });

  it("masks COPY of an unqualified name as every schema's relation of that name: the client's search_path cannot pick an unmasked one", async () => {
    const billingOnly = maskPolicyFor(policyFromYaml('{ backstop: false, rules: [{ id: c, mask: { columns: [billing.customers.email] } }] }'), []);
    const publicCustomers = { schema: 'public', table: 'customers', columns: new Map([[1, 'id'], [2, 'email']]) };
    const billingCustomers = { schema: 'billing', table: 'customers', columns: new Map([[1, 'email'], [2, 'id']]) };
    // The catalog connection's own search_path finds public.customers; a client with
    // search_path=billing reads billing.customers.
    const r: ColumnNameResolver = {
      resolve: async () => new Map(),
      relationColumns: async () => publicCustomers,
      relationsNamed: async () => [
        { ...publicCustomers, ancestors: [] },
        { ...billingCustomers, ancestors: [] },
      ],
    };
    const plan = await planCopyMask(billingOnly, onlyStatement('COPY customers TO STDOUT'), r);
    expect(plan.action === 'mask' && [...plan.options.columns.keys()]).toEqual([0]);
    const listed = await planCopyMask(billingOnly, onlyStatement('COPY customers (id, email) TO STDOUT'), r);
    expect(listed.action === 'mask' && [...listed.options.columns.keys()]).toEqual([1]);
    // Qualified, the name denotes one relation: public.customers has nothing masked.
    expect(await planCopyMask(billingOnly, onlyStatement('COPY public.customers TO STDOUT'), r)).toEqual({ action: 'none' });
    expect(await planCopyMask(billingOnly, onlyStatement('COPY customers TO STDOUT'), { ...r, relationsNamed: async () => [] })).toMatchObject({ action: 'refuse' });
  });

  it('refuses when the masked table cannot be resolved', async () => {
    const r: ColumnNameResolver = { resolve: async () => new Map(), relationColumns: async () => undefined };
    expect(await planCopyMask(mask, onlyStatement('COPY customers TO STDOUT'), r)).toMatchObject({ action: 'refuse' });
  });
});
