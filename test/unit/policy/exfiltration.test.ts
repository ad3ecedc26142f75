// Statements that would copy masked values where they are read back unmasked, and catalog objects
// that expose stored values: refused for someone a column mask applies to; reads, and writes that
// touch no masked column, allowed. Pure: the catalog is a map.
import { describe, expect, it } from 'vitest';
import { judgeExfiltration, MASKED_CATALOG_RULE, MASKED_COPY_RULE, type CatalogLookup } from '../../../gateway/policy/mask/exfiltration.js';
import { maskPolicyFor, type MaskPolicy, type NamedRelation, type ResolvedRelation } from '../../../gateway/policy/mask/plan.js';
import { analyzeSql } from '../../../gateway/policy/sql.js';
import { expandWrites } from '../../../gateway/policy/writeRoutes.js';
import { ISSUE_POLICY, policyFromYaml } from './fixtures.js';

const MASK = maskPolicyFor(ISSUE_POLICY, ['eng']) as MaskPolicy;

const CATALOG = new Map<string, ResolvedRelation & { ancestors?: NamedRelation['ancestors'] }>([
  ['customers', { schema: 'public', table: 'customers', columns: new Map([[1, 'id'], [2, 'name'], [3, 'email'], [4, 'card_number']]) }],
  ['orders', { schema: 'public', table: 'orders', columns: new Map([[1, 'id'], [2, 'customer_id'], [3, 'amount']]) }],
  ['archive', { schema: 'public', table: 'archive', columns: new Map([[1, 'id'], [2, 'note']]) }],
  ['users', { schema: 'public', table: 'users', columns: new Map([[1, 'id'], [2, 'email']]) }],
  ['customers_2024', { schema: 'public', table: 'customers_2024', columns: new Map([[1, 'id'], [2, 'email']]), ancestors: [{ schema: 'public', table: 'customers' }] }],
  ['pg_class', { schema: 'pg_catalog', table: 'pg_class', columns: new Map([[1, 'relname']]) }],
  [
    'contacts',
    {
      schema: 'public',
      table: 'contacts',
      columns: new Map([[1, 'who'], [2, 'reach']]),
      sources: new Map([
        [1, [{ schema: 'public', table: 'customers', column: 'name' }]],
        [2, [{ schema: 'public', table: 'customers', column: 'email' }]],
      ]),
    },
  ],
]);
/** Functions written in the test's database; everything else is built in. */
const USER_CODE = new Set(['admin_fn', 'audit_log']);
const lookup: CatalogLookup = {
  relation: (r) => {
    const rel = CATALOG.get(r.name);
    return rel === undefined ? [] : [{ ancestors: [], ...rel }];
  },
  userCode: (name) => USER_CODE.has(name),
};
const NOTHING_KNOWN: CatalogLookup = { relation: () => undefined, userCode: () => undefined };

function judge(sql: string, mask: MaskPolicy = MASK, look: CatalogLookup = lookup) {
  const a = analyzeSql(sql);
  if (!a.ok) throw new Error(a.error);
  const verdicts = a.statements.map((s) => judgeExfiltration(mask, s, look));
  return verdicts.find((v) => v.action !== 'allow') ?? { action: 'allow' as const };
}

const REFUSED_COPIES = [
  'CREATE TABLE leak AS SELECT email FROM customers',
  'create temp table leak as select * from customers',
  'SELECT email INTO leak FROM customers',
  'SELECT c.* INTO leak FROM public.customers c',
  'CREATE MATERIALIZED VIEW leak AS SELECT id, card_number FROM customers',
  'CREATE VIEW leak AS SELECT upper(email) AS e FROM customers',
  'CREATE TABLE leak AS TABLE customers',
  'INSERT INTO archive (id, note) SELECT id, email FROM customers',
  'INSERT INTO archive VALUES (1, (SELECT email FROM customers LIMIT 1))',
  'INSERT INTO archive SELECT 1, c::text FROM customers c',
  'INSERT INTO archive SELECT 1, row_to_json(c.*)::text FROM customers c',
  'INSERT INTO archive SELECT 1, (c).email FROM customers c',
  'INSERT INTO archive SELECT o.id, o.id::text FROM orders o NATURAL JOIN customers',
  'INSERT INTO archive SELECT o.id, \'x\' FROM orders o JOIN customers USING (email)',
  'UPDATE archive SET note = (SELECT card_number FROM customers WHERE id = 1) WHERE id = 1',
  'UPDATE archive a SET note = c.email FROM customers c WHERE c.id = a.id',
  'UPDATE customers SET name = email WHERE id = 1',
  'MERGE INTO archive a USING customers c ON a.id = c.id WHEN NOT MATCHED THEN INSERT VALUES (c.id, c.email)',
  'WITH x AS (SELECT email FROM customers) INSERT INTO archive SELECT 1, * FROM x',
  'WITH d AS (DELETE FROM customers WHERE id = 3 RETURNING *) INSERT INTO archive SELECT id, name FROM d',
  'COPY customers TO \'/tmp/leak.csv\'',
  'COPY (SELECT email FROM customers) TO PROGRAM \'cat > /tmp/x\'',
  'SELECT pg_notify(\'ch\', email) FROM customers',
  'SELECT set_config(\'x.y\', email, false) FROM customers WHERE id = 1',
  'SELECT setval(\'s\', ascii(card_number)) FROM customers',
  'SELECT pg_logical_emit_message(true, \'p\', email) FROM customers',
  'SELECT lo_create(ascii(substr(email, 1, 1))) FROM customers',
  'CREATE FUNCTION leak() RETURNS SETOF text LANGUAGE sql AS $$ SELECT email FROM customers $$',
  'CREATE FUNCTION leak() RETURNS SETOF text LANGUAGE sql BEGIN ATOMIC SELECT card_number FROM customers; END',
  'CREATE FUNCTION leak() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$',
  'DO $$ BEGIN PERFORM 1; END $$',
  'CREATE RULE r AS ON INSERT TO archive DO ALSO INSERT INTO archive SELECT id, email FROM customers',
  'CREATE TRIGGER t AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION f()',
  'ALTER TABLE customers RENAME COLUMN email TO contact',
  'ALTER TABLE customers RENAME TO clients',
  'INSERT INTO archive SELECT 1, reach FROM contacts',
  'INSERT INTO archive SELECT * FROM contacts',
  'INSERT INTO archive SELECT id, email FROM customers_2024',
  'INSERT INTO archive SELECT 1, x FROM nowhere',
  'INSERT INTO nowhere SELECT id FROM orders ON CONFLICT (id) DO UPDATE SET x = nowhere.x',
  'PREPARE p AS INSERT INTO archive SELECT id, email FROM customers',
  'EXPLAIN ANALYZE CREATE TABLE leak AS SELECT email FROM customers',
  'DELETE FROM customers WHERE email LIKE \'a%\'',
  'INSERT INTO archive SELECT i, e FROM customers AS c(i, n, e)',
  'INSERT INTO archive SELECT a, d FROM (customers JOIN orders USING (id)) AS j(a, b, c, d)',
  'INSERT INTO customers (id, name) SELECT 9, email FROM customers WHERE id = 1 RETURNING id',
  'WITH d AS (UPDATE customers SET name = \'x\' WHERE id = 1 RETURNING email) INSERT INTO archive SELECT 1, email FROM d',
];

describe('statements that copy masked values are refused (sluice:masked-copy)', () => {
  it.each(REFUSED_COPIES)('%s', (sql) => {
    const v = judge(sql);
    expect(v).toMatchObject({ action: 'refuse', rule: MASKED_COPY_RULE });
  });

  it('names the masked column and what stores it', () => {
    expect(judge('CREATE TABLE leak AS SELECT email FROM customers')).toMatchObject({ reason: expect.stringMatching(/CREATE TABLE .*customers\.email/) });
    expect(judge('INSERT INTO archive SELECT 1, reach FROM contacts')).toMatchObject({ reason: expect.stringMatching(/contacts\.reach/) });
  });
});

const ALLOWED = [
  'SELECT email FROM customers',
  'SELECT * FROM customers',
  'INSERT INTO archive SELECT id, name FROM customers',
  'CREATE TABLE copy AS SELECT id, name FROM customers',
  'CREATE TABLE copy AS SELECT * FROM orders',
  'INSERT INTO archive SELECT id, email FROM users',
  'INSERT INTO archive SELECT 1, who FROM contacts',
  'INSERT INTO customers (id, name, email) VALUES (4, \'Alan\', \'alan@example.com\')',
  'UPDATE customers SET email = \'new@example.com\' WHERE id = 1',
  'UPDATE orders SET amount = amount + 1 WHERE id = 1',
  'NOTIFY ch, \'constant payload\'',
  'SELECT pg_notify(\'ch\', \'constant\')',
  'SELECT set_config(\'app.tenant\', \'42\', false)',
  'WITH x AS (SELECT id FROM customers) INSERT INTO archive SELECT id, \'x\' FROM x',
  'INSERT INTO archive SELECT 1, relname FROM pg_class',
  'COPY customers TO STDOUT',
  'CREATE FUNCTION ok() RETURNS SETOF int LANGUAGE sql AS $$ SELECT id FROM customers $$',
  'CREATE VIEW names AS SELECT id, name FROM customers',
  'ALTER TABLE orders ADD COLUMN note text',
  'DELETE FROM customers WHERE id = 3',
  'UPDATE customers SET name = name WHERE id = 1 RETURNING email',
  'DELETE FROM customers WHERE id = 3 RETURNING *',
  'INSERT INTO created_in_this_transaction SELECT id, amount FROM orders',
];

describe('reads and writes that touch no masked column are allowed', () => {
  it.each(ALLOWED)('%s', (sql) => {
    expect(judge(sql)).toEqual({ action: 'allow' });
  });
});

describe('catalog objects that expose stored values (sluice:masked-catalog)', () => {
  it.each([
    'SELECT * FROM pg_stats WHERE tablename = \'customers\'',
    'select most_common_vals from pg_catalog.pg_stats',
    'TABLE "pg_stats_ext"',
    'SELECT * FROM pg_stats_ext_exprs',
    'SELECT stavalues1 FROM pg_statistic',
    'SELECT * FROM pg_statistic_ext_data d, pg_mcv_list_items(d.stxdmcv) m',
    'SELECT query FROM pg_stat_activity',
    'SELECT pg_stat_get_backend_activity(1)',
    'SELECT * FROM pg_stat_statements',
    'SELECT * FROM pg_prepared_statements',
    'SELECT * FROM pg_cursors',
    'SELECT data FROM pg_largeobject',
    'SELECT lo_get(16400)',
    'SELECT * FROM heap_page_items(get_raw_page(\'customers\', 0))',
    'SELECT * FROM public.bt_page_items(\'customers_pkey\', 1)',
    'SELECT * FROM pg_logical_slot_peek_changes(\'s\', NULL, NULL)',
    'SELECT * FROM pg_get_wal_records_info(\'0/0\', \'1/0\')',
    'SELECT cursor_to_xml(\'c\', 10, true, false, \'\')',
    'SELECT * FROM crosstab(\'select 1, 2, 3\') AS t(a int, b int)',
    'SELECT pg_read_binary_file(\'base/1/1259\')',
    'CREATE TABLE s AS SELECT * FROM pg_stats',
    'CREATE VIEW v AS SELECT * FROM pg_stats',
    'SELECT query_to_xml(\'select * from pg_stats\', true, true, \'\')',
    'SELECT query_to_xml(\'select email from customers\', true, true, \'\')',
    'INSERT INTO archive SELECT 1, query_to_xml(\'select email from customers\', true, true, \'\')::text',
    'SELECT table_to_xml(\'customers\', true, true, \'\')',
    'CREATE FOREIGN TABLE ft (email text) SERVER loop OPTIONS (table_name \'customers\')',
    'CREATE EXTENSION pageinspect',
    'CREATE DATABASE copy TEMPLATE arena',
  ])('%s', (sql) => {
    expect(judge(sql)).toMatchObject({ action: 'refuse', rule: MASKED_CATALOG_RULE });
  });
});

describe('scope', () => {
  it('does nothing without column masks (detectors alone follow values, not columns)', () => {
    const detectOnly = maskPolicyFor(policyFromYaml('rules:\n  - id: d\n    mask: { detect: [email] }\n'), []) as MaskPolicy;
    expect(judge('CREATE TABLE leak AS SELECT * FROM customers', detectOnly)).toEqual({ action: 'allow' });
    expect(judge('SELECT * FROM pg_stats', detectOnly)).toEqual({ action: 'allow' });
  });

  it('asks for the relations it cannot judge by name, and refuses a CTE only when the catalog does not know it', () => {
    expect(judge('INSERT INTO archive SELECT 1, upper(reach) FROM contacts', MASK, NOTHING_KNOWN)).toEqual({ action: 'lookup', relations: [{ name: 'archive' }, { name: 'contacts' }].map((r) => expect.objectContaining(r)), functions: ['upper'] });
    expect(judge('WITH nowhere AS (SELECT 1 AS x) INSERT INTO archive SELECT 1, x FROM nowhere')).toEqual({ action: 'allow' });
  });

  it('with a glob table pattern, asks the catalog which relations really have a matching column', () => {
    const glob = maskPolicyFor(policyFromYaml('rules: [{ id: g, mask: { columns: ["*.email"] } }]'), []) as MaskPolicy;
    expect(judge('INSERT INTO archive SELECT * FROM orders', glob)).toEqual({ action: 'allow' });
    expect(judge('INSERT INTO archive SELECT * FROM users', glob)).toMatchObject({ action: 'refuse', reason: expect.stringContaining('users.email') });
    expect(judge('INSERT INTO archive SELECT id, reach FROM contacts', glob)).toMatchObject({ action: 'refuse', reason: expect.stringContaining('contacts.reach') });
    expect(judge('INSERT INTO archive SELECT 1, email FROM customers', glob)).toMatchObject({ action: 'refuse', reason: expect.stringContaining('customers.email') });
    expect(judge('INSERT INTO archive SELECT id, name FROM customers', glob)).toEqual({ action: 'allow' });
  });

  it('judges the statement, not the writes that write routes add for block and review rules', () => {
    // writeRoutes.ts adds, for CREATE TABLE, writes of the table it creates (which the catalog
    // cannot know yet); the verdict must be the one the statement gets without them.
    const expanded = (sql: string) => {
      const a = expandWrites(analyzeSql(sql), () => ({ found: false, reached: [] }));
      const s = 'ok' in a && a.ok ? a.statements[0] : undefined;
      if (s === undefined) throw new Error(`no expansion of ${sql}`);
      return s;
    };
    const ok = expanded('CREATE TABLE ok_names AS SELECT id, name FROM customers');
    expect(ok.nested.some((n) => n.via === 'write-route' && n.statement.relations.some((r) => r.name === 'ok_names'))).toBe(true);
    expect(judgeExfiltration(MASK, ok, lookup)).toEqual({ action: 'allow' });
    expect(judgeExfiltration(MASK, expanded('CREATE TABLE leak AS SELECT email FROM customers'), lookup)).toMatchObject({ action: 'refuse', rule: MASKED_COPY_RULE });
  });

  it('skips the catalog for writes that read no column', () => {
    expect(judge('INSERT INTO archive VALUES (1, \'x\')', MASK, NOTHING_KNOWN)).toEqual({ action: 'allow' });
  });

  it('refuses code written in the database where it could read or be handed masked values', () => {
    expect(judge('INSERT INTO archive SELECT 1, admin_fn()')).toMatchObject({ action: 'refuse', rule: MASKED_COPY_RULE, reason: expect.stringContaining('admin_fn()') });
    expect(judge('SELECT audit_log(email) FROM customers')).toMatchObject({ action: 'refuse', reason: expect.stringContaining('customers.email') });
    expect(judge('SELECT audit_log(c) FROM customers c')).toMatchObject({ action: 'refuse' });
    expect(judge('SELECT audit_log(id) FROM customers')).toEqual({ action: 'allow' });
    expect(judge('SELECT admin_fn()')).toEqual({ action: 'allow' });
    expect(judge('SELECT upper(email) FROM customers')).toEqual({ action: 'allow' });
    expect(judge('SELECT audit_log(email) FROM customers', MASK, NOTHING_KNOWN)).toEqual({ action: 'lookup', relations: [], functions: ['audit_log'] });
    expect(judge('INSERT INTO archive SELECT id, now()::text FROM orders')).toEqual({ action: 'allow' });
  });
});
