// Code the gateway cannot see into, and code the server runs without a statement naming it:
// functions in other languages are opaque for rules on functions unless they are shipped, and
// what an administrator attached to a relation (triggers, defaults, checks, domains, policies,
// rules, views) counts as called by every statement that touches the relation, followed through
// partitions, cascading foreign keys and views. The catalog rows are shaped like the ones
// ATTACHED_CODE_SQL / ATTACHED_REACH_SQL / USER_SQL_FUNCTIONS_SQL return (tested against a real
// server in test/integration/adversarial-attached-code.test.ts).
import { describe, expect, it } from 'vitest';
import { attachedCodeFromRows, attachedFunctions, mayChangeReading } from '../../../gateway/policy/attachedCode.js';
import { evaluate } from '../../../gateway/policy/evaluate.js';
import { analyzeSql } from '../../../gateway/policy/sql.js';
import { userObjectsFromRows, type UserObjects } from '../../../gateway/policy/userObjects.js';
import { DEV, policyFromYaml } from './fixtures.js';

const BLOCK = policyFromYaml('rules: [{ id: no-danger, block: { functions: [danger, pg_read_file] } }]');
const ALLOW = policyFromYaml('rules: [{ id: only-these, block: { functions: { allow: [lower, count, app_fn] } } }]');
const BLOCK_LO = policyFromYaml('rules: [{ id: no-lo, block: { functions: [lo_create] } }]');
const REVIEW = policyFromYaml('rules: [{ id: check-danger, review: { functions: [danger], approvers: [dba] } }]');

const decide = (sql: string, objects: UserObjects, policy = BLOCK) => evaluate(DEV, policy, { kind: 'sql', analysis: analyzeSql(sql), text: sql }, { userObjects: objects });

const ATTACHED = attachedCodeFromRows(
  [
    ['public', 'audited', 'w', 'trigger audit_row', 'public', 'audit_fn', 'f'],
    ['public', 'guarded', 'a', 'row security policy p', 'public', 'danger', 'f'],
    ['public', 'defaults', 'w', 'default of column x', 'pg_catalog', 'pg_read_file', 't'],
    ['public', 'serial', 'w', 'default of column id', 'pg_catalog', 'nextval', 't'],
    ['public', 'dview', 'a', 'view definition', 'public', 'danger', 'f'],
    ['public', 'child', 'w', 'trigger on_child', 'public', 'danger', 'f'],
    ['public', 'leaf', 'w', 'trigger on_leaf', 'public', 'danger', 'f'],
    ['public', 'enc', 'w', 'default of column e', 'pg_catalog', 'set_config', 't'],
  ],
  [
    ['public', 'parent', 'w', 'public', 'child'],
    ['public', 'parted', 'a', 'public', 'leaf'],
    ['public', 'loop_a', 'a', 'public', 'loop_b'],
    ['public', 'loop_b', 'a', 'public', 'loop_a'],
  ],
);

const FUNCTIONS = [
  ['public', 'audit_fn', 'begin perform danger(); return new; end', 'plpgsql', 'trigger'],
  ['public', 'danger', 'CREATE FUNCTION public.danger() RETURNS int LANGUAGE sql AS $f$ SELECT 1 $f$', 'sql', 'integer'],
  ['public', 'wrapper', null, 'plpython3u', 'integer'],
  ['public', 'alias', null, 'internal', 'text'],
  ['public', 'innocent_import', 'lo_import', 'internal', 'oid'],
  ['public', 'plperl_fn', null, 'plperlu', 'integer'],
  ['public', 'app_fn', 'CREATE FUNCTION public.app_fn() RETURNS int LANGUAGE sql AS $f$ SELECT 1 $f$', 'sql', 'integer'],
];

const objects = userObjectsFromRows([], FUNCTIONS, ATTACHED);

describe('functions in other languages', () => {
  it.each(['SELECT wrapper()', 'SELECT plperl_fn()', 'SELECT public.alias($1)', 'SELECT * FROM customers WHERE id = wrapper()', 'CALL wrapper()'])('%s is code the gateway cannot see into', (sql) => {
    expect(decide(sql, objects)).toMatchObject({ verdict: 'block', rule: 'sluice:opaque-code' });
    expect(decide(sql, objects).reason).toMatch(/written in (plpython3u|plperlu|internal)/);
  });

  it('an internal or C function with a shipped function’s symbol is that function', () => {
    const lo = policyFromYaml('rules: [{ id: no-lo, block: { functions: [lo_*] } }]');
    expect(decide("SELECT innocent_import('/etc/hostname')", objects, lo).reason).toContain('function lo_import (through function innocent_import)');
  });

  it('is held for review when only review rules apply', () => {
    expect(decide('SELECT wrapper()', objects, REVIEW)).toMatchObject({ verdict: 'review', rule: 'sluice:opaque-code' });
  });

  it('shipped functions (never listed by the catalog query) and SQL functions stay judged by what they call', () => {
    expect(decide("SELECT lower('x'), app_fn()", objects).verdict).toBe('allow');
    expect(decide("SELECT lower('x'), app_fn()", objects, ALLOW).verdict).toBe('allow');
  });

  it('a function in another language reached through an operator is opaque too', () => {
    const viaOp = userObjectsFromRows([['operator', 'public', '###', 'public', 'wrapper']], FUNCTIONS);
    expect(decide("SELECT ### 'x'", viaOp)).toMatchObject({ verdict: 'block', rule: 'sluice:opaque-code' });
  });
});

describe('code attached to relations counts as called', () => {
  it.each([
    ['INSERT INTO audited VALUES (1)', 'function danger (through trigger audit_row on public.audited, function audit_fn)'],
    ['UPDATE audited SET x = 1 WHERE id = 1', 'trigger audit_row'],
    ['SELECT * FROM guarded', 'row security policy p on public.guarded'],
    ['DELETE FROM guarded WHERE id = 1', 'row security policy p'],
    ["INSERT INTO defaults (y) VALUES ('a')", 'function pg_catalog.pg_read_file (through default of column x on public.defaults)'],
    ['SELECT * FROM dview', 'view definition on public.dview'],
    ['DELETE FROM parent WHERE id = 1', 'trigger on_child on public.child'],
    ['INSERT INTO parted VALUES (1)', 'trigger on_leaf on public.leaf'],
    ['WITH d AS (DELETE FROM audited WHERE id = 1 RETURNING id) SELECT * FROM d', 'trigger audit_row'],
    ['INSERT INTO public.audited VALUES (1)', 'trigger audit_row'],
  ])('%s', (sql, why) => {
    const d = decide(sql, objects);
    expect(d.verdict).toBe('block');
    expect(d.reason).toContain(why);
  });

  it.each([
    'SELECT * FROM audited',
    'SELECT * FROM parent',
    'SELECT * FROM defaults',
    'INSERT INTO other.audited VALUES (1)',
    'SELECT * FROM loop_a',
  ])('%s runs none of it', (sql) => {
    expect(decide(sql, objects).verdict).toBe('allow');
  });

  it('an allow list does not need the built-ins an administrator attached, but does need written code', () => {
    expect(decide('INSERT INTO serial (name) VALUES (1)', objects, ALLOW).verdict).toBe('allow');
    expect(decide('SELECT count(*) FROM guarded', objects, ALLOW).reason).toContain('danger (through row security policy p');
  });

  it('attachedFunctions follows cycles once, and mayChangeReading trusts only shipped code that changes no setting', () => {
    const rel = (name: string, access: 'read' | 'write') => [{ name, access }] as const;
    expect(attachedFunctions(ATTACHED, rel('loop_a', 'write'))).toEqual([]);
    expect(attachedFunctions(ATTACHED, rel('serial', 'write')).map(mayChangeReading)).toEqual([false]);
    expect(attachedFunctions(ATTACHED, rel('enc', 'write')).map(mayChangeReading)).toEqual([true]);
    expect(attachedFunctions(ATTACHED, rel('audited', 'write')).map(mayChangeReading)).toEqual([true]);
    expect(attachedFunctions(ATTACHED, rel('audited', 'read'))).toEqual([]);
  });
});

describe('built-ins read from the definitions (pg_depend does not record them)', () => {
  const rows = (what: string, def: string, mode = 'w') => [['public', 't', mode, what, null, null, null, def]];
  it.each([
    ['default of column x', 'SELECT lo_create(0)'],
    ['constraint c', 'ALTER TABLE t ADD CHECK ((lo_create(0) > 0))'],
    ['domain constraint d_check', 'ALTER DOMAIN d ADD CHECK (((lo_create(0) > 0) AND (VALUE > 0)))'],
    ['index i', 'CREATE INDEX i ON public.t USING btree (lo_create(id))'],
    ['trigger tr', 'CREATE TRIGGER tr BEFORE INSERT ON public.t FOR EACH ROW WHEN ((lo_create(0) > 0)) EXECUTE FUNCTION suppress_redundant_updates_trigger()'],
    ['rule r', 'CREATE RULE r AS ON INSERT TO public.t DO ALSO SELECT lo_create(0) AS o;'],
    ['view definition', 'CREATE RULE "_RETURN" AS ON SELECT TO public.t DO INSTEAD SELECT lo_create(0) AS o;'],
  ])('%s', (what, def) => {
    const code = attachedCodeFromRows(rows(what, def), []);
    const found = attachedFunctions(code, [{ name: 't', access: 'write' }]);
    expect(found.map((f) => f.fn.name)).toContain('lo_create');
    const d = evaluate(DEV, BLOCK_LO, { kind: 'sql', analysis: analyzeSql('INSERT INTO t VALUES (1)'), text: '' }, { userObjects: userObjectsFromRows([], [], code) });
    expect(d.reason).toContain(`function lo_create (through ${what} on public.t)`);
  });

  it('a definition that does not parse is code the gateway cannot see into', () => {
    const code = attachedCodeFromRows(rows('default of column x', 'SELECT ((('), []);
    expect(decide('INSERT INTO t VALUES (1)', userObjectsFromRows([], [], code))).toMatchObject({ verdict: 'block', rule: 'sluice:opaque-code' });
    expect(attachedFunctions(code, [{ name: 't', access: 'write' }]).map(mayChangeReading)).toEqual([true]);
  });
});

