// Every function reference is a call: definitions that name a function, operators, types,
// built-ins that run SQL text, the allow-list form, and user-defined operators, aggregates, types
// and casts of the target expanded into the functions behind them.
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { evaluate } from '../../../gateway/policy/evaluate.js';
import { policySchema } from '../../../gateway/policy/schema.js';
import { createSqlAnalyzer } from '../../../gateway/policy/shape.js';
import { analyzeSql, type StatementAnalysis } from '../../../gateway/policy/sql.js';
import { userObjectsFromRows, type UserObjects } from '../../../gateway/policy/userObjects.js';
import { DEV, policyFromYaml } from './fixtures.js';

function only(sql: string): StatementAnalysis {
  const a = analyzeSql(sql);
  if (!a.ok) throw new Error(a.error);
  expect(a.statements).toHaveLength(1);
  return a.statements[0] as StatementAnalysis;
}

const names = (refs: readonly { schema?: string; name: string }[] | undefined) => (refs ?? []).map((r) => (r.schema === undefined ? r.name : `${r.schema}.${r.name}`));

describe('definitions that name a function', () => {
  it.each([
    ['CREATE OPERATOR ### (FUNCTION = pg_read_file, RIGHTARG = text)', ['pg_read_file']],
    ['CREATE OPERATOR ### (PROCEDURE = pg_catalog.pg_read_file, RIGHTARG = text, RESTRICT = r1, JOIN = j1)', ['pg_catalog.pg_read_file', 'r1', 'j1']],
    ["CREATE OPERATOR ### (\"function\" = 'pg_read_file', RIGHTARG = text)", ['pg_read_file']],
    ['ALTER OPERATOR ### (NONE, text) SET (RESTRICT = r2, JOIN = j2)', ['r2', 'j2']],
    ['CREATE AGGREGATE a(text) (SFUNC = s, STYPE = text, FINALFUNC = f, COMBINEFUNC = c, SERIALFUNC = se, DESERIALFUNC = de, MSFUNC = m, MINVFUNC = mi, MFINALFUNC = mf, MSTYPE = text)', ['s', 'f', 'c', 'se', 'de', 'm', 'mi', 'mf']],
    ['CREATE AGGREGATE a (BASETYPE = text, SFUNC = pg_read_file, STYPE = text)', ['pg_read_file']],
    ['CREATE TYPE t (INPUT = i, OUTPUT = o, RECEIVE = r, SEND = s, TYPMOD_IN = ti, TYPMOD_OUT = tou, ANALYZE = an, SUBSCRIPT = su)', ['i', 'o', 'r', 's', 'ti', 'tou', 'an', 'su']],
    ['ALTER TYPE t SET (SEND = s2)', ['s2']],
    ['CREATE TYPE r AS RANGE (SUBTYPE = float8, SUBTYPE_DIFF = d, CANONICAL = c)', ['d', 'c']],
    ['CREATE CAST (text AS int) WITH FUNCTION pg_read_file(text)', ['pg_read_file']],
    ['CREATE OPERATOR CLASS c DEFAULT FOR TYPE t USING btree AS OPERATOR 1 <#, FUNCTION 1 cmp(t, t)', ['cmp']],
    ['ALTER OPERATOR FAMILY f USING btree ADD FUNCTION 1 s.g(int, int)', ['s.g']],
    ['CREATE TRANSFORM FOR t LANGUAGE sql (FROM SQL WITH FUNCTION a(internal), TO SQL WITH FUNCTION b(internal))', ['a', 'b']],
    ["CREATE CONVERSION c FOR 'UTF8' TO 'LATIN1' FROM myconv", ['myconv']],
    ['CREATE LANGUAGE l HANDLER h INLINE i VALIDATOR v', ['h', 'i', 'v']],
    ['CREATE FOREIGN DATA WRAPPER w HANDLER h VALIDATOR v', ['h', 'v']],
    ['ALTER FOREIGN DATA WRAPPER w HANDLER h2', ['h2']],
    ['CREATE ACCESS METHOD m TYPE TABLE HANDLER h', ['h']],
    ['CREATE TEXT SEARCH PARSER p (START = s, GETTOKEN = g, END = e, LEXTYPES = l, HEADLINE = h)', ['s', 'g', 'e', 'l', 'h']],
    ['CREATE TEXT SEARCH TEMPLATE t (INIT = i, LEXIZE = l)', ['i', 'l']],
    ["CREATE FUNCTION f(int) RETURNS int SUPPORT sup LANGUAGE sql AS 'SELECT 1'", ['sup']],
    ['ALTER FUNCTION f(int) SUPPORT sup2', ['sup2']],
    ['CREATE TRIGGER t AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION tf()', ['tf']],
  ])('%s', (sql, expected) => {
    expect(names(only(sql).functions)).toEqual(expect.arrayContaining(expected));
  });

  it('is never answered from the shape cache (a function may be named by a literal)', () => {
    const analyzer = createSqlAnalyzer();
    const first = analyzer.analyze("CREATE OPERATOR ~#! (FUNCTION = 'lower', RIGHTARG = text)");
    const second = analyzer.analyze("CREATE OPERATOR ~#! (FUNCTION = 'pg_read_file', RIGHTARG = text)");
    expect(first.ok && names(first.statements[0]?.functions)).toEqual(['lower']);
    expect(second.ok && names(second.statements[0]?.functions)).toEqual(['pg_read_file']);
  });

  it('does not take type-valued options for functions', () => {
    expect(names(only('CREATE AGGREGATE a(text) (SFUNC = s, STYPE = text)').functions)).toEqual(['s']);
    expect(names(only('CREATE OPERATOR ### (FUNCTION = f, LEFTARG = int, RIGHTARG = int, COMMUTATOR = ###)').functions)).toEqual(['f']);
  });

  it('makes a definition attaching a SQL-running built-in opaque', () => {
    expect(only('CREATE AGGREGATE a(text) (SFUNC = ts_rewrite, STYPE = tsquery)').opaque).toMatch(/ts_rewrite/);
    expect(only('CREATE OPERATOR ### (FUNCTION = pg_catalog.ts_rewrite, LEFTARG = tsquery, RIGHTARG = text)').opaque).toMatch(/ts_rewrite/);
  });
});

describe('operators and types', () => {
  it('records operators however they are written', () => {
    const s = only("SELECT 1 ### 'x', a OPERATOR(pg_catalog.+) b, x = ANY(y), a IS DISTINCT FROM b, a LIKE 'x', a BETWEEN 1 AND 2 FROM t ORDER BY a USING ~<~");
    expect(names(s.operators)).toEqual(expect.arrayContaining(['###', 'pg_catalog.+', '=', '~~', '<=', '>=', '~<~']));
    expect(names(only('SELECT 1 WHERE 1 IN (SELECT 1)').operators)).toContain('=');
    expect(names(only('SELECT 1 WHERE 1 < ALL (SELECT 1)').operators)).toContain('<');
    expect(names(only('CREATE OPERATOR CLASS c FOR TYPE t USING btree AS OPERATOR 1 <#').operators)).toContain('<#');
    expect(names(only('SELECT * FROM a JOIN b USING (id)').operators)).toEqual(['=']);
    expect(names(only('SELECT * FROM a NATURAL JOIN b').operators)).toEqual(['=']);
    expect(names(only('SELECT CASE x WHEN 1 THEN 2 END FROM t').operators)).toEqual(['=']);
    expect(names(only('CREATE TABLE x (c int, EXCLUDE USING gist (c WITH &&#))').operators)).toEqual(['&&#']);
    expect(only('SELECT CASE WHEN x THEN 2 END FROM t').operators).toBeUndefined();
  });

  it('records types named by casts and definitions', () => {
    expect(names(only("SELECT 'x'::mytype, CAST(a AS public.t2) FROM t").types)).toEqual(expect.arrayContaining(['mytype', 'public.t2']));
    expect(names(only('CREATE TABLE x (c mytype)').types)).toContain('mytype');
  });
});

describe('column notation', () => {
  it('records `(x).f` and `t.f` as possible calls', () => {
    expect(only("SELECT (x).pg_read_file, c.email, s.t.to_json, ('q'::text).ts_stat FROM t").columnNotation).toEqual([
      { name: 'pg_read_file' },
      { name: 'email', ofRow: true },
      { name: 'to_json', ofRow: true },
      { name: 'ts_stat' },
    ]);
    expect(only('SELECT email FROM t').columnNotation).toBeUndefined();
  });

  const BLOCK = policyFromYaml('rules: [{ id: no-file-access, block: { functions: [pg_read_file, lo_*] } }, { id: no-json, block: { functions: [to_json] } }]');
  it('does not take a qualified column for a call of a function that cannot take a row', () => {
    expect(evaluate(DEV, BLOCK, { kind: 'sql', analysis: analyzeSql('SELECT r.lo_bound, r.pg_read_file FROM ranges r'), text: '' }).verdict).toBe('allow');
  });

  it.each([
    ["SELECT (x).pg_read_file FROM (VALUES ('/etc/passwd')) v(x)", 'no-file-access'],
    ["SELECT v.to_json FROM (VALUES ('/etc/passwd')) v(x)", 'no-json'],
    ["SELECT ('SELECT to_tsvector(pg_read_file(''/etc/passwd''))'::text).ts_stat", 'sluice:opaque-code'],
  ])('blocks %s', (sql, rule) => {
    expect(evaluate(DEV, BLOCK, { kind: 'sql', analysis: analyzeSql(sql), text: sql })).toMatchObject({ verdict: 'block', rule });
  });
});

describe('built-ins that run SQL text', () => {
  it.each([
    ["SELECT * FROM ts_stat('DELETE FROM t RETURNING to_tsvector(a)')", 'delete'],
    ["SELECT ts_rewrite('a'::tsquery, 'SELECT pg_read_file(''x'')::tsquery, ''b''::tsquery')", 'select'],
    ["SELECT query_to_xml(query => 'DROP TABLE t', nulls => true, tableforest => true, targetns => '')", 'drop table'],
  ])('%s runs a nested %s', (sql, command) => {
    const s = only(sql);
    expect(s.nested.map((n) => n.statement.command)).toContain(command);
    expect(s.nested[0]).toMatchObject({ via: 'dynamic-sql', executes: true });
    expect(s.literalSensitive).toBe(true);
  });

  it('reads tablefunc and pageinspect calls', () => {
    expect(only("SELECT * FROM crosstab('SELECT a, b, c FROM t', 'SELECT DISTINCT b FROM u') AS ct(a text, x int)").nested.flatMap((n) => n.statement.relations.map((r) => r.name))).toEqual(['t', 'u']);
    expect(only("SELECT * FROM connectby('vault.tree', 'id', 'parent', '1', 0) AS t(id int, p int, l int)").relations).toContainEqual({ schema: 'vault', name: 'tree', access: 'read' });
    expect(only("SELECT get_raw_page('secrets', 0)").relations).toContainEqual({ name: 'secrets', access: 'read' });
  });

  it('is opaque when the SQL is computed', () => {
    expect(only("SELECT * FROM ts_stat('SELECT ' || 'x')").opaque).toMatch(/computed at run time/);
    expect(only('SELECT ts_rewrite(q, sql) FROM t').opaque).toMatch(/computed at run time/);
    expect(only("SELECT query_to_xml(nulls => true, query => current_setting('x'), tableforest => true, targetns => '')").opaque).toMatch(/computed/);
  });

  it('leaves the three-argument ts_rewrite alone', () => {
    expect(only('SELECT ts_rewrite(q, a, b) FROM t').opaque).toBeUndefined();
  });

  it('counts schema_to_xml as its schema and database_to_xml as every table', () => {
    expect(only("SELECT schema_to_xml('billing', true, true, '')").schemas).toEqual(['billing']);
    expect(only("SELECT database_to_xml(true, true, '')").everyTable).toBe(true);
    expect(only("SELECT schema_to_xml(s, true, true, '') FROM t").everyTable).toBe(true);
    expect(only("SELECT cursor_to_xml('c', 1, true, true, '')").everyTable).toBeUndefined();
  });
});

const ALLOW_POLICY = policyFromYaml(`
rules:
  - id: agent-functions
    block: { functions: { allow: [lower, count, now, "pg_catalog.upper", "app_*"] } }
  - id: no-secrets
    block: { tables: [secrets] }
`);

const decide = (sql: string, userObjects?: UserObjects, policy = ALLOW_POLICY) => evaluate(DEV, policy, { kind: 'sql', analysis: analyzeSql(sql), text: sql }, userObjects === undefined ? {} : { userObjects });

describe('functions: { allow: [...] }', () => {
  it.each([
    'SELECT lower(name), count(*) FROM customers WHERE id = 1',
    "SELECT now(), upper('x'), app_total(1)",
    'SELECT id FROM customers WHERE id BETWEEN 1 AND 3 ORDER BY id',
    "SELECT 1::text, '2'::int",
  ])('allows %s', (sql) => {
    expect(decide(sql).verdict).toBe('allow');
  });

  it.each([
    ["SELECT pg_read_file('x')", 'function pg_read_file, which is not in the allow list'],
    ['SELECT lower(md5(name)) FROM customers', 'function md5'],
    ["CREATE OPERATOR ### (FUNCTION = pg_read_file, RIGHTARG = text)", 'function pg_read_file'],
    ["SELECT 1 FROM customers WHERE id IN (SELECT length('x'))", 'function length'],
    ['WITH x AS (SELECT version()) SELECT * FROM x', 'function version'],
    ["CREATE FUNCTION lower(text) RETURNS text LANGUAGE sql AS 'SELECT pg_read_file($1)'", 'function pg_read_file'],
  ])('blocks %s', (sql, because) => {
    const d = decide(sql);
    expect(d.verdict).toBe('block');
    expect(d.rule).toBe('agent-functions');
    expect(d.reason).toContain(because);
  });

  it('counts column notation that calls a function, not a qualified column', () => {
    expect(decide('SELECT c.name, c.email FROM customers c WHERE c.id = 1').verdict).toBe('allow');
    expect(decide('SELECT c.to_json FROM customers c').reason).toContain('function to_json (through column notation)');
    expect(decide('SELECT (c.email).md5 FROM customers c').reason).toContain('function md5');
    const objects = userObjectsFromRows([['row', '', '', 'public', 'full_name']]);
    expect(decide('SELECT c.full_name FROM customers c', objects).reason).toContain('function full_name');
  });

  it('reports configuration mistakes at the key', () => {
    const issues = (y: string) => policySchema.safeParse(parseYaml(y)).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues('rules: [{ id: r, block: { functions: { allow: [] } } }]')).toEqual(['rules.0.block.functions.allow: expected at least one function']);
    expect(issues('rules: [{ id: r, block: { functions: { alow: [x] } } }]')).toEqual(['rules.0.block.functions: expected a list of functions, or { allow: [...] } listing the only functions allowed']);
    expect(issues('rules: [{ id: r, block: { functions: { allow: ["\\"x"] } } }]')?.[0]).toMatch(/^rules\.0\.block\.functions\.allow\.0: invalid function/);
  });
});

describe('user-defined objects of the target', () => {
  const objects = userObjectsFromRows([
    ['operator', 'public', '###', 'pg_catalog', 'pg_read_file'],
    ['operator', 'public', '@@@', 'pg_catalog', 'ts_rewrite'],
    ['aggregate', 'public', 'collect', 'pg_catalog', 'pg_read_file'],
    ['type', 'public', 'filetext', 'pg_catalog', 'pg_read_file'],
  ]);
  const BLOCK = policyFromYaml('rules: [{ id: no-file-access, block: { functions: [pg_read_file] } }]');

  it.each([
    ["SELECT ### 'x'", 'operator ###'],
    ["SELECT 1 FROM t WHERE 'x' OPERATOR(public.###) 'y'", 'operator public.###'],
    ['SELECT collect(name) FROM customers', 'aggregate collect'],
    ["SELECT 'x'::filetext", 'type filetext'],
    ["SELECT (SELECT ### 'x')", 'operator ###'],
  ])('counts %s as calling the function behind it', (sql, via) => {
    const d = decide(sql, objects, BLOCK);
    expect(d.verdict).toBe('block');
    expect(d.reason).toContain(`through ${via}`);
  });

  it('does not match another schema’s operator when one is named', () => {
    expect(decide("SELECT 'x' OPERATOR(other.###) 'y'", objects, BLOCK).verdict).toBe('allow');
    expect(decide("SELECT ### 'x'", undefined, BLOCK).verdict).toBe('allow');
  });

  it('refuses an operator whose function runs SQL text', () => {
    const d = decide("SELECT 'a'::tsquery @@@ 'SELECT 1'", objects, BLOCK);
    expect(d).toMatchObject({ verdict: 'block', rule: 'sluice:opaque-code' });
  });

  it('counts what SQL functions created outside the gateway call, to the end', () => {
    const bodies = userObjectsFromRows(
      [['operator', 'public', '###', 'pg_catalog', 'pg_read_file']],
      [
        ['public', 'read_cfg', 'CREATE FUNCTION public.read_cfg(p text) RETURNS text LANGUAGE sql AS $f$ SELECT pg_read_file(p) $f$'],
        ['public', 'read_cfg2', "CREATE FUNCTION public.read_cfg2() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT read_cfg('x'); END"],
        ['app', 'via_op', "CREATE FUNCTION app.via_op() RETURNS text LANGUAGE sql AS $f$ SELECT ### 'x' $f$"],
        ['app', 'loop', 'CREATE FUNCTION app.loop() RETURNS int LANGUAGE sql AS $f$ SELECT loop() $f$'],
        ['app', 'dyn', "CREATE FUNCTION app.dyn(q text) RETURNS xml LANGUAGE sql AS $f$ SELECT query_to_xml(q, true, true, '') $f$"],
      ],
    );
    expect(decide('SELECT read_cfg2()', bodies, BLOCK).reason).toContain('function pg_read_file (through function read_cfg2)');
    expect(decide('SELECT app.via_op()', bodies, BLOCK).reason).toContain('pg_catalog.pg_read_file');
    expect(decide('SELECT other.via_op()', bodies, BLOCK).verdict).toBe('allow');
    expect(decide('SELECT loop()', bodies, BLOCK).verdict).toBe('allow');
    expect(decide("SELECT dyn('SELECT 1')", bodies, BLOCK)).toMatchObject({ verdict: 'block', rule: 'sluice:opaque-code' });
    expect(decide("SELECT lower(read_cfg('x'))", bodies).reason).toContain('read_cfg, which is not in the allow list');
  });

  it('counts what PL/pgSQL functions created outside the gateway call, and refuses one that runs SQL built at run time', () => {
    const bodies = userObjectsFromRows(
      [],
      [
        ['app', 'read_any', 'declare t text; begin t := pg_read_file(p); return t; end', 'plpgsql', 'text'],
        ['app', 'wrapper', 'begin return app.read_any(p); end', 'plpgsql', 'text'],
        ['app', 'dyn_pl', "begin execute 'select 1'; return 1; end", 'plpgsql', 'integer'],
        ['app', 'harmless_pl', 'begin return lower(p); end', 'plpgsql', 'text'],
      ],
    );
    expect(decide("SELECT app.read_any('/etc/passwd')", bodies, BLOCK).reason).toContain('pg_read_file (through function app.read_any)');
    expect(decide("SELECT wrapper('/etc/passwd')", bodies, BLOCK).verdict).toBe('block');
    expect(decide('SELECT dyn_pl()', bodies, BLOCK)).toMatchObject({ verdict: 'block', rule: 'sluice:opaque-code' });
    expect(decide("SELECT harmless_pl('X')", bodies, BLOCK).verdict).toBe('allow');
  });

  it('requires user-defined operators’ functions on the allow list', () => {
    expect(decide("SELECT ### 'x'", objects).verdict).toBe('block');
    expect(decide('SELECT lower(name) FROM customers WHERE id = 1', objects).verdict).toBe('allow');
    const ambient = userObjectsFromRows([['ambient', '', '', 'public', 'evil_cast']]);
    expect(decide('SELECT 1', ambient).reason).toContain('evil_cast (through an implicit cast');
  });
});
