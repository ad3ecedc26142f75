// Writes by routes a statement does not name: the pure expander (writeRoutes.ts) with a catalog
// answer given by the test, then evaluate() on the result, under the review rule the arena uses.
import { describe, expect, it } from 'vitest';
import { evaluate } from '../../../gateway/policy/evaluate.js';
import { analyzeSql } from '../../../gateway/policy/sql.js';
import { expandWrites, routesMatter, siteKey, writeSites, type RouteAnswer, type WriteSite } from '../../../gateway/policy/writeRoutes.js';
import { policyFromYaml } from './fixtures.js';

const POLICY = policyFromYaml(`
rules:
  - id: no-file-access
    block: { functions: [pg_read_file] }
  - id: payments-review
    review: { statements: [insert, update, delete, merge], tables: [payments], match: all, approvers: [dba], timeout: 2s }
`);
const ENG = { groups: ['eng'] };

/**
 * The catalog of the test: payments_view and payments_2024 reach payments; reading payments_view
 * reads payments, reading logging_view runs a function that writes payments, reading opaque_view
 * runs one the gateway cannot see into; everything else nothing.
 */
function answer(site: WriteSite): RouteAnswer {
  if (site.class === 'read') {
    if (site.name === 'payments_view') return { found: true, reached: [{ schema: 'public', name: 'payments', viaRule: false, read: true }] };
    if (site.name === 'logging_view') return { found: true, reached: [{ schema: 'public', name: 'payments', viaRule: true }] };
    if (site.name === 'opaque_view') return { opaque: 'a read of opaque_view reaches public.opaque_view, whose view query or row security runs function f, which runs SQL built at run time' };
    return { found: true, reached: [] };
  }
  if (site.class === 'trigger' || site.class === 'call') {
    if (site.name === 'pay_fn') return { found: true, reached: [{ schema: 'public', name: 'payments', viaRule: true }] };
    return site.name === 'dynamic_fn' ? { opaque: 'a trigger would run function dynamic_fn, which runs SQL built at run time' } : { found: true, reached: [] };
  }
  if (site.name === 'payments_view' || site.name === 'payments_2024') return { found: true, reached: [{ schema: 'public', name: 'payments', viaRule: site.name === 'payments_view' }] };
  if (site.name === 'audited') return { opaque: 'a write to audited fires trigger t (function f), code the gateway cannot see into' };
  return { found: site.name !== 'fresh', reached: [] };
}

function verdict(sql: string): string {
  const analysis = analyzeSql(sql);
  const expanded = expandWrites(analysis, answer);
  if ('missing' in expanded) throw new Error('all sites are answered');
  return evaluate(ENG, POLICY, { kind: 'sql', analysis: expanded, text: sql }).verdict;
}

describe('write routes', () => {
  it('are looked for only when a rule names tables', () => {
    expect(routesMatter(POLICY, ['eng'])).toBe(true);
    expect(routesMatter(policyFromYaml('rules: [{ id: r, block: { statements: [drop] } }]'), ['eng'])).toBe(false);
  });

  it('asks the catalog about every written or defined relation, and only those', () => {
    const sites = (sql: string) => writeSites(analyzeSql(sql)).map(siteKey).sort();
    expect(sites('select 1')).toEqual([]);
    expect(sites('select * from payments_view where id = 1')).toEqual([siteKey({ name: 'payments_view', class: 'read' })]);
    expect(sites('insert into payments_view values (1)')).toEqual([siteKey({ name: 'payments_view', class: 'insert' })]);
    expect(sites('update public.orders set amount = 1 where id = 2')).toEqual([siteKey({ schema: 'public', name: 'orders', class: 'modify' })]);
    expect(sites('copy payments_2024 from stdin')).toEqual([siteKey({ name: 'payments_2024', class: 'insert' })]);
    expect(sites('truncate orders')).toEqual([siteKey({ name: 'orders', class: 'truncate' })]);
    expect(sites('create view v as select * from payments_view')).toContain(siteKey({ name: 'payments_view', class: 'define' }));
    const missing = expandWrites(analyzeSql('insert into payments_view values (1)'), () => undefined);
    expect('missing' in missing && missing.missing.length).toBe(1);
  });

  it('returns the same analysis when nothing is read or written, or what is read reaches nothing', () => {
    const none = analyzeSql('select 1, $1::int');
    expect(expandWrites(none, () => undefined)).toBe(none);
    const a = analyzeSql('select abalance from pgbench_accounts where aid = $1');
    expect(expandWrites(a, answer)).toBe(a);
  });

  it('judges a read of a view by what its query writes, and as a read of the rows it returns', () => {
    expect(verdict('select * from logging_view')).toBe('review');
    expect(verdict('select count(*) from (select * from logging_view) s')).toBe('review');
    expect(verdict('select * from opaque_view')).toBe('block');
    const expanded = expandWrites(analyzeSql('select * from payments_view'), answer);
    expect('missing' in expanded).toBe(false);
    const nested = 'missing' in expanded || !expanded.ok ? [] : (expanded.statements[0]?.nested ?? []);
    expect(nested.map((n) => [n.statement.command, n.statement.relations[0]])).toEqual([['select', { schema: 'public', name: 'payments', access: 'read' }]]);
  });

  it.each([
    'insert into payments_view values (1, 1)',
    'update payments_2024 set amount = 0 where id = 1',
    'delete from PUBLIC.payments_2024 where id = 1',
    'with w as (insert into payments_view values (1, 1) returning *) select * from w',
    'explain analyze insert into payments_2024 values (1, 1)',
    'merge into payments_2024 p using orders o on p.id = o.id when matched then delete',
    'insert into payments_2024 values (1, 1) on conflict (id) do update set amount = 2',
    'copy payments from stdin',
    'copy payments_2024 from stdin',
    'truncate payments',
    'truncate payments_2024',
    'create view v as select * from payments',
    'create table p2 () inherits (payments)',
    'create table p3 partition of payments for values in (1)',
    'alter table orders inherit payments',
    'alter view payments_view rename to orders',
    'alter table payments attach partition p2025 for values in (2025)',
    'create rule r as on insert to orders do also insert into payments values (new.id, 1)',
    'create rule r as on insert to orders do instead insert into payments_view values (new.id, 1)',
    "create function f() returns void language sql as $$ insert into payments values (9, 9) $$",
    'create trigger t after insert on orders for each row execute function pay_fn()',
    'create trigger t before insert on payments for each row execute function touch_fn()',
    'create function f() returns void language sql begin atomic; delete from payments_2024 where id = 1; end',
    'create schema s create view v as select * from payments',
    'select pay_fn()',
    'select * from orders where id = public.pay_fn()',
    'call pay_fn()',
    'create view v as select pay_fn()',
  ])('holds %s for review', (sql) => {
    expect(verdict(sql)).toBe('review');
  });

  it.each([
    ['insert into audited values (1)', 'block'],
    ['create trigger t after insert on orders for each row execute function dynamic_fn()', 'block'],
    ['create event trigger e on ddl_command_start execute function f()', 'block'],
    ['select dynamic_fn()', 'block'],
  ])('refuses %s, whose writes it cannot see', (sql, expected) => {
    expect(verdict(sql)).toBe(expected);
  });

  it.each([
    'insert into orders values (10, 1, 5)',
    'update orders set amount = 1 where id = 2',
    'select * from payments',
    'select * from payments_view where id = 1',
    'insert into fresh values (1)',
    'create view order_totals as select sum(amount) from orders',
    'create table t as select * from payments',
    'create trigger t before update on orders for each row execute function pg_catalog.suppress_redundant_updates_trigger()',
    'create trigger t before update on orders for each row execute function touch_fn()',
    'explain insert into payments_view values (1, 1)',
    'select lower(name), now() from customers',
    'select touch_fn()',
  ])('allows %s', (sql) => {
    expect(verdict(sql)).toBe('allow');
  });

  it('keeps the reached writes of a prepared statement for its EXECUTE', () => {
    const a = expandWrites(analyzeSql('prepare p as insert into payments_view values (1, 1)'), answer);
    if ('missing' in a || !a.ok) throw new Error('expanded');
    const inner = a.statements[0]?.nested.find((n) => n.via === 'prepare')?.statement;
    expect(inner?.nested.some((n) => n.via === 'write-route' && n.statement.relations[0]?.name === 'payments')).toBe(true);
  });
});
