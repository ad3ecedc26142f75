// View column lineage from pg_get_viewdef text: through aliases, joins, subqueries, CTEs, set
// operations, scalar subqueries and whole-row references; undefined where it cannot follow.
import { describe, expect, it } from 'vitest';
import { maskPolicyFor, planRowMask, type ResolvedRelation } from '../../../gateway/policy/mask/plan.js';
import { REDACTED } from '../../../gateway/policy/mask/strategies.js';
import { viewColumnSources } from '../../../gateway/policy/mask/viewLineage.js';
import { policyFromYaml } from './fixtures.js';
import { column, dataRow, readDataRow } from './wire.js';

const fmt = (sql: string) => viewColumnSources(sql)?.map((cols) => cols.map((c) => `${c.schema !== undefined ? `${c.schema}.` : ''}${c.table}.${c.column}`).sort());

describe('viewColumnSources', () => {
  it.each([
    [' SELECT customers.name AS who, customers.email AS contact FROM customers;', [['customers.name'], ['customers.email']]],
    [' SELECT c.id, upper((c.email)::text) AS e, o.total FROM (billing.customers c JOIN orders o ON ((o.customer_id = c.id)));', [['billing.customers.id'], ['billing.customers.email'], ['orders.total']]],
    [' SELECT x.e FROM ( SELECT customers.email AS e FROM customers) x;', [['customers.email']]],
    [' SELECT x.a FROM ( SELECT customers.email FROM customers) x(a);', [['customers.email']]],
    [' WITH x AS ( SELECT customers.email AS e, customers.id FROM customers ) SELECT x.e, x.id FROM x;', [['customers.email'], ['customers.id']]],
    [' SELECT customers.email FROM customers UNION SELECT orders.note FROM orders;', [['customers.email', 'orders.note']]],
    [' SELECT o.id, ( SELECT c.email FROM customers c WHERE (c.id = o.customer_id)) AS e FROM orders o;', [['orders.id'], ['customers.email']]],
    [' SELECT row_to_json(c.*) AS j FROM customers c;', [['customers.*']]],
    [' SELECT email FROM customers, orders;', [['customers.email', 'orders.email']]],
    [" SELECT 'x'::text AS k, now() AS t;", [[], []]],
    [' SELECT t.v FROM customers c, LATERAL unnest(ARRAY[c.email, c.name]) t(v);', [['customers.email', 'customers.name']]],
    [' WITH RECURSIVE r(n, e) AS ( SELECT 1, customers.email FROM customers UNION ALL SELECT (r.n + 1), r.e FROM r) SELECT r.n, r.e FROM r;', [['customers.email'], ['customers.email']]],
  ])('%s', (sql, expected) => {
    expect(fmt(sql)).toEqual(expected);
  });

  it('gives up (undefined) where it cannot follow', () => {
    expect(viewColumnSources(' SELECT * FROM customers;')).toBeUndefined();
    expect(viewColumnSources('not sql')).toBeUndefined();
    expect(viewColumnSources('SELECT 1; SELECT 2')).toBeUndefined();
  });

  it('feeds planRowMask through ResolvedRelation.sources', () => {
    const sql = ' SELECT c.id, c.email AS contact, row_to_json(c.*) AS doc FROM customers c;';
    const lineage = viewColumnSources(sql) ?? [];
    const view: ResolvedRelation = {
      schema: 'public',
      table: 'contacts',
      columns: new Map([[1, 'id'], [2, 'contact'], [3, 'doc']]),
      sources: new Map(lineage.map((s, i) => [i + 1, s])),
    };
    const mask = maskPolicyFor(policyFromYaml('rules: [{ id: pii, mask: { columns: [customers.email] } }]'), []);
    const cols = [1, 2, 3].map((attnum) => column(`c${attnum}`, { tableOid: 77, attnum }));
    const masker = planRowMask(mask, cols, new Map([[77, view]]));
    const out = readDataRow(masker?.maskDataRow(dataRow(['1', 'ann@example.com', '{"email":"ann@example.com"}'])) as Buffer).map((v) => v?.toString());
    expect(out).toEqual(['1', REDACTED, REDACTED]);
  });
});
