// Result-column lineage without a database: pass-throughs keep their mask, anything computed
// from a masked column is derived, the predicate rule refuses what reads a value piecewise or in
// order, and what cannot be resolved counts as derived.
import { describe, expect, it } from 'vitest';
import { alignColumns, analyzeLineage, type StatementLineage } from '../../../gateway/policy/mask/lineage.js';
import type { LineageCatalog, OutputColumn, RelationFacts } from '../../../gateway/policy/mask/lineageModel.js';
import { maskPolicyFor, type MaskPolicy } from '../../../gateway/policy/mask/plan.js';
import { compilePolicy, policySchema } from '../../../gateway/policy/schema.js';

const MASK = maskPolicyFor(
  compilePolicy(
    policySchema.parse({
      rules: [
        { id: 'pii', mask: { columns: ['customers.email'], with: 'partial' } },
        { id: 'cards', mask: { columns: ['customers.card_number'], with: 'redact' } },
        { id: 'billing', mask: { columns: ['billing.accounts.iban'], with: 'hash' } },
      ],
    }),
    { hashKey: Buffer.alloc(32, 1) },
  ),
  [],
) as MaskPolicy;

const table = (schema: string, name: string, columns: string[]): RelationFacts => ({ schema, name, kind: 'table', columns });
const view = (schema: string, name: string, columns: string[], definition: string): RelationFacts => ({ schema, name, kind: 'view', columns, definition });

const RELATIONS: RelationFacts[] = [
  table('public', 'customers', ['id', 'name', 'email', 'card_number']),
  table('public', 'orders', ['id', 'customer_id', 'amount']),
  table('public', 'contacts', ['id', 'email']),
  table('billing', 'accounts', ['id', 'iban']),
  view('public', 'customer_emails', ['who', 'contact'], ' SELECT customers.name AS who,\n    customers.email AS contact\n   FROM customers;'),
  view('public', 'shouty', ['loud'], ' SELECT upper(customers.email) AS loud\n   FROM customers;'),
  view('public', 'a_customers', ['id'], " SELECT customers.id\n   FROM customers\n  WHERE customers.email ~~ 'a%'::text;"),
  view('public', 'nested', ['c'], ' SELECT customer_emails.contact AS c\n   FROM customer_emails;'),
];
const USER_FUNCTIONS = new Set(['leak', 'digest']);
const VOLATILE = new Set(['pg_notify', 'set_config', 'pg_sleep', 'random']);

function catalog(seen: { relations: string[]; functions: string[] } = { relations: [], functions: [] }): LineageCatalog {
  return {
    relations(ref) {
      seen.relations.push(ref.name);
      return RELATIONS.filter((r) => r.name === ref.name && (ref.schema === undefined || ref.schema === r.schema));
    },
    functionKind(ref) {
      seen.functions.push(ref.name);
      return USER_FUNCTIONS.has(ref.name) ? 'user' : VOLATILE.has(ref.name) ? 'volatile' : 'stable';
    },
  };
}

function lineage(sql: string): StatementLineage {
  const a = analyzeLineage(sql, MASK, catalog());
  if (!a.ok) throw new Error(`needs ${JSON.stringify(a.needs)}`);
  return a.statements[a.statements.length - 1] as StatementLineage;
}

const kinds = (sql: string) => lineage(sql).columns?.map((c) => (c.lineage.kind === 'pass' ? `pass:${c.lineage.strategy}` : c.lineage.kind));
const refusal = (sql: string) => lineage(sql).refusal;

describe('output columns', () => {
  it.each([
    ['select id, name from customers', ['clean', 'clean']],
    ['select email as e, card_number from customers', ['pass:partial', 'pass:redact']],
    ['select c.email from public.customers c', ['pass:partial']],
    ['select * from customers', ['clean', 'clean', 'pass:partial', 'pass:redact']],
    ['select o.*, c.* from orders o join customers c on c.id = o.customer_id', ['clean', 'clean', 'clean', 'clean', 'clean', 'pass:partial', 'pass:redact']],
    ['table customers', ['clean', 'clean', 'pass:partial', 'pass:redact']],
    ['select email::varchar, email::text, email collate "C", cast(email as bpchar) from customers', ['pass:partial', 'pass:partial', 'pass:partial', 'pass:partial']],
    ['select email::varchar(4), email::char, email::name, email::bytea from customers', ['derived', 'derived', 'derived', 'derived']],
    ['select upper(email), substr(email, 1, 1), md5(email), length(email), email || \'\' from customers', ['derived', 'derived', 'derived', 'derived', 'derived']],
    ["select encode(convert_to(email, 'UTF8'), 'base64') from customers", ['derived']],
    ['select min(email), count(email), string_agg(name, \',\' order by email) from customers', ['derived', 'derived', 'derived']],
    ['select count(*), max(id) from customers', ['clean', 'clean']],
    ['select c from customers c', ['derived']],
    ['select row_to_json(c), to_jsonb(c.*), (c).email from customers c', ['derived', 'derived', 'derived']],
    ["select json_build_object('e', email), row(email), array[email] from customers", ['derived', 'derived', 'derived']],
    ['select (select email from customers limit 1)', ['derived']],
    ['select (select max(id) from customers) as n', ['clean']],
    ['select email from customers union all select email from customers', ['pass:partial']],
    ['select email from customers union all select \'\'', ['derived']],
    ['select email from customers union all select card_number from customers', ['pass:redact']],
    ['select name from customers join contacts using (id)', ['clean']],
    ['select email from customers join orders on orders.customer_id = customers.id', ['pass:partial']],
    ['select x.e from (select email as e from customers) x', ['pass:partial']],
    ['select e from customers c(i, n, e)', ['pass:partial']],
    ['with x as (select email from customers) select * from x', ['pass:partial']],
    ['with x(a) as (select upper(email) from customers) select a from x', ['derived']],
    ['with recursive r(e, n) as (select email, 1 from customers union all select e, n + 1 from r where n < 3) select e, n from r', ['pass:partial', 'clean']],
    ['with recursive r(e, n) as (select email, 1 from customers union all select substr(e, 2), n + 1 from r where n < 3) select e from r', ['derived']],
    ['select l.e from customers c, lateral (select c.email as e) l', ['pass:partial']],
    ['select (select c.email) from customers c', ['derived']],
    ['select who, contact from customer_emails', ['clean', 'pass:partial']],
    ['select c from nested', ['pass:partial']],
    ['select loud from shouty', ['derived']],
    ['select id from a_customers', ['derived']],
    ['select leak(id) from orders', ['derived']],
    ['select * from generate_series(1, 3) g, customers', ['clean', 'clean', 'clean', 'pass:partial', 'pass:redact']],
    ["select query_to_xml('select 1', true, true, '')", ['derived']],
    ['select iban from accounts', ['pass:hash']],
    ['select iban from billing.accounts', ['pass:hash']],
    ['select email from nowhere', ['derived']],
    ['select id from customers where email = $1', ['clean']],
  ])('%s', (sql, expected) => {
    expect(kinds(sql)).toEqual(expected);
  });

  it('RETURNING sees the written values', () => {
    expect(kinds('delete from customers where id = 1 returning email, id')).toEqual(['pass:partial', 'clean']);
    expect(kinds('update customers set name = email where id = 1 returning name')).toEqual(['pass:partial']);
    expect(kinds('update customers set name = upper(email) where id = 1 returning name, id')).toEqual(['derived', 'clean']);
    expect(kinds("insert into orders values (1, 1, 1) returning *")).toEqual(['clean', 'clean', 'clean']);
    expect(lineage('update customers set name = $1 where id = 1').columns).toBeUndefined();
  });

  it('COPY (query), cursors, PREPARE and CALL', () => {
    expect(lineage('copy (select upper(email) from customers) to stdout')).toMatchObject({ copy: true, columns: [{ lineage: { kind: 'derived' } }] });
    expect(lineage('declare c cursor for select email from customers')).toMatchObject({ declares: 'c', columns: [{ lineage: { kind: 'pass' } }] });
    expect(lineage('fetch 2 from c')).toEqual({ fetches: 'c' });
    expect(lineage('move 2 in c')).toEqual({});
    expect(lineage('prepare p as select md5(email) from customers')).toMatchObject({ prepares: 'p', columns: [{ lineage: { kind: 'derived' } }] });
    expect(lineage('execute p')).toEqual({ executes: 'p' });
    expect(lineage('call leak(1)').columns?.[0]).toMatchObject({ spread: true, lineage: { kind: 'derived' } });
  });
});

describe('writes of masked values', () => {
  it.each([
    ['update customers set name = email where id = 1', 'into customers.name'],
    ['update orders set amount = length(c.email) from customers c where c.id = orders.customer_id', 'into orders.amount'],
    ['insert into contacts select id, email from customers', 'into contacts'],
    ["insert into orders values (1, 1, 1) on conflict (id) do update set amount = (select length(email) from customers limit 1)", 'into orders.amount'],
    ["select pg_notify('c', email) from customers", 'to pg_notify()'],
    ["select set_config('my.v', email, false) from customers", 'to set_config()'],
    ['select pg_sleep(length(email)) from customers', 'to pg_sleep()'],
  ])('%s is refused', (sql, what) => {
    expect(lineage(sql).copies).toContain(what);
  });

  it('writing clean values or into the masked column itself is not', () => {
    expect(lineage("update customers set email = lower(email), name = 'x' where id = 1").copies).toBeUndefined();
    expect(lineage('insert into orders select id, id, 1 from customers').copies).toBeUndefined();
    expect(lineage('select random(), pg_sleep(1), email from customers').copies).toBeUndefined();
    expect(lineage("insert into customers values (1, 'a', 'b', 'c') on conflict (id) do update set name = excluded.name returning email")).toMatchObject({ columns: [{ lineage: { kind: 'pass' } }] });
    expect(lineage("insert into customers values (1, 'a', 'b', 'c') on conflict (id) do update set name = excluded.name").copies).toBeUndefined();
  });
});

describe('code the gateway cannot see into', () => {
  it.each([
    ['select leak(id) from orders', 'leak()'],
    ['select id from orders order by digest(id)', 'digest()'],
    ["select query_to_xml('select 1', true, true, '')", 'query_to_xml()'],
    ["do $$ begin raise notice '%', 1; end $$", 'a DO block'],
    ['call leak(1)', 'leak()'],
  ])('%s is opaque', (sql, what) => {
    expect(lineage(sql).opaque).toContain(what);
  });

  it('built-in functions are not', () => {
    expect(lineage('select upper(name), now(), count(*) from customers group by 1').opaque).toBeUndefined();
  });
});

describe('the predicate rule', () => {
  it.each([
    "select id from customers where email = 'a@b.c'",
    'select id from customers where email = $1 and name like $2',
    "select id from customers where email in ('a', 'b') or email is null",
    'select id from customers where email = any($1)',
    'select id from customers where email is not distinct from $1',
    'select id from customers where email in (select email from contacts)',
    'select c.id from customers c join contacts k on k.email = c.email',
    'select count(*) from customers group by name order by 1',
    'select id, name from customers order by name, id limit 2',
    "select count(*) filter (where email = 'x') from customers",
    "delete from customers where email = 'gone@example.com'",
    'select exists (select 1 from customers where email = $1)',
    'select id from customers where email = $1 collate "C"',
    'select id from customers where lower(email) = lower($1)',
    'set enable_seqscan to default',
    'reset enable_seqscan',
    "set statement_timeout = '5s'",
    "select id from customers where upper(email) in ('A@B.C')",
  ])('allows %s', (sql) => {
    expect(refusal(sql)).toBeUndefined();
  });

  it.each([
    ["select id from customers where substr(email, 1, 1) = 'a'", 'WHERE uses public.customers.email'],
    ["select id from customers where email like 'a%'", 'WHERE'],
    ["select id from customers where email > 'm'", 'WHERE'],
    ["select id from customers where not (email = 'x')", 'WHERE'],
    ['select id from customers where email is not null', 'WHERE'],
    ["select id from customers where email::bytea = 'x'", 'WHERE'],
    ["select id from customers where lower(substr(email, 1, 1)) = 'a'", 'WHERE'],
    ["select id from customers where lower(email, 'x') = 'a'", 'WHERE'],
    ['select id from customers order by email', 'ORDER BY'],
    ['select email e, id from customers order by e', 'ORDER BY'],
    ['select id, email from customers order by 1', 'ORDER BY'],
    ['select count(*) from customers group by email', 'GROUP BY'],
    ['select distinct email, id from customers', 'DISTINCT'],
    ['select distinct on (email) id from customers', 'DISTINCT ON'],
    ['select email from customers union select email from customers', 'UNION'],
    ['select id from customers limit (select length(email) from customers limit 1)', 'LIMIT'],
    ['select row_number() over (order by email) from customers', 'window ORDER BY'],
    ['select a.id from customers a join customers b on a.email = b.email', 'compares masked columns'],
    ['select a.id from customers a join customers b using (email)', 'USING (email)'],
    ["select count(*) filter (where email like 'a%') from customers", 'FILTER'],
    ["select id from customers group by id having max(email) > 'm'", 'HAVING'],
    ["select exists (select 1 from customers where email like 'a%')", 'WHERE'],
    ["select 1 where (select substr(email, 1, 1) from customers limit 1) = 'a'", 'WHERE'],
    ["delete from customers where email like 'a%'", 'WHERE'],
    ["explain analyze select id from customers where email like 'a%'", 'WHERE'],
    ['select id from orders where leak(id)', 'WHERE uses leak()'],
    ["with x as (select id from customers where left(email, 1) = 'a') select * from x", 'WHERE'],
    ["select id from customers where email = 'a' collate ci", 'collation "ci"'],
    ['set enable_seqscan = off', 'SET enable_seqscan'],
    ["set local random_page_cost to '0.01'", 'SET random_page_cost'],
    ["select set_config('enable_seqscan', 'off', false)", "set_config('enable_seqscan'"],
    ["select set_config(name, 'off', false) from orders", 'computed at run time'],
    ["select id from customers where email collate \"und-x-icu\" in ('a')", 'collation'],
  ])('refuses %s', (sql, reason) => {
    expect(refusal(sql)).toContain(reason);
  });
});

describe('catalog facts', () => {
  it('reports what it has not looked up, and asks for nothing on a clean statement twice', () => {
    const seen = { relations: [] as string[], functions: [] as string[] };
    const empty: LineageCatalog = { relations: () => undefined, functionKind: () => undefined };
    const a = analyzeLineage('select upper(email) from customers join v using (id)', MASK, empty);
    expect(a.ok).toBe(false);
    if (!a.ok) expect(a.needs).toEqual({ relations: [{ name: 'customers' }, { name: 'v' }], functions: [{ name: 'upper' }] });
    analyzeLineage('select id from orders', MASK, catalog(seen));
    expect(seen).toEqual({ relations: ['orders'], functions: [] });
  });

  it('an unqualified name that could be a masked relation in another schema is masked', () => {
    const two: LineageCatalog = { ...catalog(), relations: (ref) => (ref.name === 'customers' ? [table('public', 'customers', ['id', 'email']), table('crm', 'customers', ['id', 'email'])] : []) };
    const a = analyzeLineage('select email from customers', MASK, two);
    expect(a.ok && a.statements[0]?.columns?.[0]?.lineage.kind).toBe('pass');
  });

  it('relations that differ in shape make `*` a spread of the worst', () => {
    const two: LineageCatalog = { ...catalog(), relations: (ref) => (ref.name === 'customers' ? [table('public', 'customers', ['id', 'email']), table('crm', 'customers', ['id'])] : []) };
    const a = analyzeLineage('select * from customers', MASK, two);
    expect(a.ok && a.statements[0]?.columns).toEqual([{ name: undefined, lineage: { kind: 'pass', strategy: 'partial', source: 'public.customers.email' }, spread: true }]);
  });
});

describe('the derived: key', () => {
  it('defaults to refuse, accepts redact, and names what it expected otherwise', () => {
    expect(compilePolicy(policySchema.parse({ rules: [] })).derived).toBeUndefined();
    expect(compilePolicy(policySchema.parse({ derived: 'redact' })).derived).toBe('redact');
    const bad = policySchema.safeParse({ derived: 'mask' });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]).toMatchObject({ path: ['derived'], message: 'expected refuse or redact' });
  });
});

describe('alignColumns', () => {
  const c = (kind: 'clean' | 'derived', spread = false): OutputColumn => ({ name: undefined, lineage: kind === 'clean' ? { kind } : { kind, source: 'x' }, ...(spread ? { spread: true as const } : {}) });
  it('fills one spread and refuses what does not fit', () => {
    expect(alignColumns([c('clean'), c('derived', true), c('clean')], 4)?.map((x) => x.lineage.kind)).toEqual(['clean', 'derived', 'derived', 'clean']);
    expect(alignColumns([c('clean'), c('clean')], 3)).toBeUndefined();
    expect(alignColumns([c('clean', true), c('derived', true)], 3)).toBeUndefined();
  });
});

describe('deep statements', () => {
  it('are traced as deep as the stack allows; deeper ones throw a RangeError (the engine refuses the statement)', () => {
    const nested = (n: number) => `select ${'upper('.repeat(n)}email${')'.repeat(n)} from customers`;
    expect(lineage(nested(500)).columns?.[0]?.lineage.kind).toBe('derived');
    let thrown: unknown;
    try {
      analyzeLineage(nested(5000), MASK, catalog());
    } catch (err) {
      thrown = err;
    }
    if (thrown !== undefined) expect(thrown).toBeInstanceOf(RangeError);
  });
});
