// Statements that remove tables or rows they do not name as such: CASCADE and its kin drop any
// table (pg_depend), ATTACH PARTITION / INHERIT make a later drop take the attached table,
// TRUNCATE and DROP TABLE remove every row, pg_surgery removes rows by tuple id, and a write to a
// system catalog changes any object. Judged statically, without the catalog.
import { describe, expect, it } from 'vitest';
import { decide, policyFromYaml } from './fixtures.js';

const KEEP = policyFromYaml(`
rules:
  - id: keep-vault
    block: { statements: [drop, delete], tables: ['vault.*'], match: all }
`);
const DROP_TABLE = policyFromYaml(`
rules:
  - id: no-drop-table
    block: { statements: ["drop table"] }
`);
const NO_DDL = policyFromYaml(`
rules:
  - id: no-ddl
    block: { statements: [drop, truncate, alter] }
`);
const NO_DELETE = policyFromYaml(`
rules:
  - id: no-delete
    review: { statements: [delete], approvers: [dba] }
`);

describe('drops that may take any table', () => {
  it.each([
    'drop type t cascade',
    'drop function f(int) cascade',
    'drop domain d cascade',
    'drop collation c cascade',
    'drop access method heap2 cascade',
    'drop table other cascade',
    'drop schema scratch cascade',
    'drop owned by someone',
    'drop extension pageinspect',
    'DROP EXTENSION IF EXISTS "pageinspect" RESTRICT',
  ])('%s: every table, under a tables rule and a `drop table` rule', (sql) => {
    expect(decide(sql, { policy: KEEP })).toMatchObject({ verdict: 'block', rule: 'keep-vault' });
    expect(decide(sql, { policy: DROP_TABLE })).toMatchObject({ verdict: 'block', rule: 'no-drop-table' });
  });

  it.each(['alter table holder attach partition vault.t for values in (1)', 'alter table vault.t inherit holder'])('%s: a drop of the attached table', (sql) => {
    expect(decide(sql, { policy: KEEP })).toMatchObject({ verdict: 'block', rule: 'keep-vault' });
  });

  // Qualified: a rule with a schema matches an unqualified name in any schema.
  it.each(['drop type t', 'drop table public.scratch', 'drop view public.v', 'alter table public.holder attach partition public.other for values in (1)'])('%s: judged by what it names', (sql) => {
    expect(decide(sql, { policy: KEEP }).verdict).toBe('allow');
  });

  it('a rule on the command alone still lets other drops without CASCADE run', () => {
    expect(decide('drop type t', { policy: DROP_TABLE }).verdict).toBe('allow');
  });
});

describe('rows removed without DELETE', () => {
  it.each(['truncate scratch', 'drop table scratch', 'drop type t cascade'])('%s: held by a rule on delete', (sql) => {
    expect(decide(sql, { policy: NO_DELETE })).toMatchObject({ verdict: 'review', rule: 'no-delete' });
  });

  it.each([
    ["select heap_force_kill('vault.t'::regclass, array['(0,1)'::tid])", 'keep-vault'],
    ["select heap_force_freeze('vault.t', array['(0,1)'::tid])", 'keep-vault'],
    ['select heap_force_kill(c.oid::regclass, array[ctid]) from pg_class c', 'keep-vault'],
  ])('%s: a delete of the relation it names (every table when computed)', (sql, rule) => {
    expect(decide(sql, { policy: KEEP })).toMatchObject({ verdict: 'block', rule });
  });

  it("pg_surgery on a relation no rule names is allowed", () => {
    expect(decide("select heap_force_kill('public.scratch'::regclass, array['(0,1)'::tid])", { policy: KEEP }).verdict).toBe('allow');
  });
});

describe('writes to system catalogs', () => {
  it.each(["delete from pg_class where relname = 'x'", "update pg_catalog.pg_attribute set attname = 'y'", 'insert into pg_depend select * from pg_depend', "merge into pg_class c using (select 1) s on false when not matched then do nothing", 'copy pg_description from stdin'])(
    '%s: code the gateway cannot judge (it drops or renames with no DDL)',
    (sql) => {
      expect(decide(sql, { policy: NO_DDL })).toMatchObject({ verdict: 'block', rule: 'sluice:opaque-code' });
    },
  );

  it('reads of them, and writes to a user table named like one in a schema, are judged as before', () => {
    expect(decide('select relname from pg_class', { policy: NO_DDL }).verdict).toBe('allow');
    expect(decide("delete from app.pg_notes where id = 1", { policy: NO_DDL }).verdict).toBe('allow');
  });
});
