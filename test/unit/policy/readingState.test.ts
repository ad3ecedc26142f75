// Settings that change how the server reads text, judged on the parse tree: what is refused
// (a value the gateway would not read as the server does), what is uncertain (statements behind
// it wait for the server's answer) and what is left alone — in every spelling, nested anywhere,
// and never reused from the shape cache for a text whose literals differ.
import { describe, expect, it } from 'vitest';
import { readingProblem } from '../../../gateway/policy/readingState.js';
import { createSqlAnalyzer } from '../../../gateway/policy/shape.js';
import { analyzeSql } from '../../../gateway/policy/sql.js';

/** 'refuse', 'uncertain' or 'none' for the whole text (the strongest of its statements). */
function effect(sql: string): string {
  const a = analyzeSql(sql);
  if (!a.ok) throw new Error(a.error);
  const effects = a.statements.map((s) => s.reading?.effect ?? 'none');
  return effects.includes('refuse') ? 'refuse' : effects.includes('uncertain') ? 'uncertain' : 'none';
}

describe('refused: a value the gateway would not read as the server does', () => {
  it.each([
    "SET client_encoding TO 'SJIS'",
    "set client_encoding = 'big5'",
    'SET client_encoding = sjis',
    "SET SESSION client_encoding TO 'GBK'",
    "SET LOCAL client_encoding TO 'LATIN1'",
    "set /* c */ \"client_encoding\" /* c */ to 'SJIS'",
    'SET "Client_Encoding" TO \'SJIS\'',
    "SET NAMES 'SJIS'",
    "set names 'win1252'",
    "SET client_encoding TO 'UTF8', 'SJIS'",
    'SET client_encoding TO 6',
    'SET standard_conforming_strings = off',
    'SET standard_conforming_strings TO false',
    "set standard_conforming_strings = 'of'",
    'SET standard_conforming_strings = 0',
    "SET LOCAL standard_conforming_strings TO 'no'",
    "SELECT set_config('client_encoding', 'SJIS', false)",
    "select pg_catalog.set_config('CLIENT_ENCODING', 'sjis', true)",
    `select "set_config"('standard_conforming_strings', 'off', false)`,
    "SELECT * FROM set_config('client_encoding', 'SJIS', false)",
    "WITH x AS (SELECT set_config('client_encoding', 'SJIS', false)) SELECT * FROM x",
    "SELECT (SELECT set_config('client_encoding', 'SJIS', false))",
    "EXPLAIN ANALYZE SELECT set_config('client_encoding', 'SJIS', false)",
    "PREPARE p AS SELECT set_config('client_encoding', 'SJIS', false)",
    "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT set_config('client_encoding', 'SJIS', false) $$",
    "CREATE FUNCTION f() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT set_config('client_encoding', 'SJIS', false); END",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET client_encoding = 'SJIS' AS 'SELECT 1'",
    'CREATE FUNCTION f() RETURNS int LANGUAGE sql SET standard_conforming_strings = off AS \'SELECT 1\'',
    "ALTER FUNCTION f() SET client_encoding = 'SJIS'",
    "ALTER ROLE app SET client_encoding = 'SJIS'",
    'ALTER DATABASE app SET standard_conforming_strings TO off',
    "ALTER SYSTEM SET client_encoding = 'SJIS'",
    "CREATE VIEW v AS SELECT set_config('client_encoding', 'SJIS', false)",
    "SELECT query_to_xml('SET client_encoding = ''SJIS''', true, true, '')",
  ])('%s', (sql) => {
    expect(effect(sql)).toBe('refuse');
  });

  it('a setting changed to a value the gateway cannot check inside a definition that runs later', () => {
    expect(effect('CREATE FUNCTION f(e text) RETURNS text LANGUAGE sql AS $$ SELECT set_config($1, e, false) $$')).toBe('refuse');
    expect(effect("CREATE FUNCTION f(e text) RETURNS text LANGUAGE sql AS $$ SELECT set_config('client_encoding', e, false) $$")).toBe('refuse');
    expect(effect('CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ RESET client_encoding $$')).toBe('refuse');
    expect(effect('PREPARE p(text) AS SELECT set_config($1, $1, false)')).toBe('refuse');
    expect(effect('CREATE VIEW v AS SELECT set_config(current_user, current_user, false)')).toBe('refuse');
    expect(effect("CREATE TABLE t (a text DEFAULT set_config('client_encoding', current_user, false))")).toBe('refuse');
  });

  it('a function that would pass for a trusted built-in', () => {
    expect(effect("CREATE FUNCTION public.lower(int) RETURNS text LANGUAGE sql AS 'SELECT 1::text'")).toBe('refuse');
    expect(effect("CREATE FUNCTION set_config(text, text, int) RETURNS text LANGUAGE sql AS 'SELECT 1::text'")).toBe('refuse');
    expect(effect("CREATE FUNCTION pg_catalog.anything() RETURNS int LANGUAGE sql AS 'SELECT 1'")).toBe('refuse');
    expect(effect('ALTER FUNCTION f() RENAME TO now')).toBe('refuse');
    expect(effect('ALTER FUNCTION f() SET SCHEMA pg_catalog')).toBe('refuse');
    expect(effect("CREATE FUNCTION my_lower(text) RETURNS text LANGUAGE sql AS 'SELECT lower($1)'")).toBe('none');
    expect(effect('CREATE AGGREGATE sum(int8range) (sfunc = range_merge, stype = int8range)')).toBe('refuse');
  });

  it("names the operator's function as such in the reason", () => {
    const a = analyzeSql('CREATE OPERATOR ### (procedure = evil, leftarg = text, rightarg = text)');
    expect(a.ok && a.statements[0]?.reading).toMatchObject({ effect: 'refuse', reason: expect.stringMatching(/^evil\(\) as a function of an operator would run/) });
  });

  it('a call of code that may change the settings, in an object that runs it where no statement names it', () => {
    expect(effect("CREATE VIEW v AS SELECT app_set_encoding('SJIS')")).toBe('refuse');
    expect(effect('CREATE TABLE t (a text DEFAULT app.f())')).toBe('refuse');
    expect(effect('ALTER TABLE t ADD CHECK (app.f(a))')).toBe('refuse');
    expect(effect('CREATE INDEX ON t (app.f(a))')).toBe('refuse');
    expect(effect('CREATE POLICY p ON t USING (app.f(a))')).toBe('refuse');
    expect(effect('CREATE RULE r AS ON INSERT TO t DO ALSO SELECT app.f()')).toBe('refuse');
    expect(effect('CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW WHEN (app.f(NEW.a)) EXECUTE FUNCTION trg()')).toBe('refuse');
    expect(effect('CREATE OPERATOR ### (function = evil, leftarg = text, rightarg = text)')).toBe('refuse');
    expect(effect('CREATE AGGREGATE agg(int) (sfunc = public.step, stype = int)')).toBe('refuse');
    expect(effect('CREATE CAST (text AS int) WITH FUNCTION my_cast(text)')).toBe('refuse');
    expect(effect('CREATE OPERATOR CLASS oc FOR TYPE int USING btree AS OPERATOR 1 <, FUNCTION 1 my_cmp(int, int)')).toBe('refuse');
    expect(effect('CREATE TYPE r AS RANGE (subtype = float8, subtype_diff = my_diff)')).toBe('refuse');
    expect(effect("CREATE CONVERSION c FOR 'SJIS' TO 'UTF8' FROM sjis_to_utf8")).toBe('refuse');
    // Built-ins stay usable in definitions; a function body runs only when called (which waits).
    expect(effect('CREATE TABLE t (id serial, at timestamptz DEFAULT now(), u uuid DEFAULT gen_random_uuid(), n int DEFAULT nextval(\'s\'))')).toBe('none');
    expect(effect('CREATE INDEX ON t (lower(name))')).toBe('none');
    expect(effect('CREATE VIEW v AS SELECT id, upper(name) FROM t')).toBe('none');
    expect(effect('CREATE OPERATOR === (function = pg_catalog.int4eq, leftarg = int, rightarg = int)')).toBe('none');
    expect(effect('CREATE OPERATOR ~~~> (function = textcat, leftarg = text, rightarg = text)')).toBe('none');
    expect(effect('CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION trg()')).toBe('refuse');
    expect(effect('CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION app.on_ddl()')).toBe('refuse');
    expect(effect('CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()')).toBe('refuse');
    expect(effect('CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION pg_catalog.suppress_redundant_updates_trigger()')).toBe('none');
    expect(effect("CREATE FUNCTION g() RETURNS text LANGUAGE sql AS 'SELECT app.f()'")).toBe('uncertain');
    expect(effect("CREATE MATERIALIZED VIEW mv AS SELECT app.f()")).toBe('uncertain');
    expect(effect('REFRESH MATERIALIZED VIEW mv')).toBe('uncertain');
  });
});

describe('uncertain: the statements behind it wait for the server', () => {
  it.each([
    'RESET client_encoding',
    'reset standard_conforming_strings',
    'SET client_encoding TO DEFAULT',
    'SET NAMES DEFAULT',
    'set standard_conforming_strings = default',
    'RESET ALL',
    'DISCARD ALL',
    "SELECT set_config($1, 'SJIS', false)",
    "SELECT set_config(current_setting('x.y'), 'SJIS', false)",
    "SELECT set_config('client_encoding', $1, false)",
    "SELECT set_config('client_encoding', 'SJ' || 'IS', false)",
    "SELECT set_config(setting_name => 'client_encoding', new_value => 'SJIS', is_local => false)",
    "SELECT set_config('client_encoding', 'SJIS' COLLATE \"C\", false)",
    'SELECT pg_reload_conf()',
    'SELECT pg_catalog.pg_reload_conf()',
    'SELECT my_function()',
    'SELECT public.lower(1)',
    'SELECT * FROM orders WHERE id = app.lookup(1)',
    'CALL do_things()',
    'EXECUTE p',
    'FETCH 10 FROM c',
    'MOVE 1 IN c',
    'DO $$ BEGIN NULL; END $$',
    "LOAD 'auto_explain'",
    'CREATE EXTENSION hstore',
    "SELECT query_to_xml('SELECT my_function()', true, true, '')",
    'EXPLAIN ANALYZE SELECT my_function()',
    'SELECT 1; SELECT my_function()',
    "SELECT 'SJIS' ### 'x'",
    'SELECT a OPERATOR(public.=) b FROM t',
  ])('%s', (sql) => {
    expect(effect(sql)).toBe('uncertain');
  });
});

describe('left alone', () => {
  it.each([
    "SET client_encoding TO 'UTF8'",
    "SET client_encoding = 'utf-8'",
    "SET NAMES 'UNICODE'",
    "set client_encoding to 'SQL_ASCII'",
    'SET standard_conforming_strings = on',
    'SET standard_conforming_strings TO true',
    "set standard_conforming_strings = 'yes'",
    'SET standard_conforming_strings = 1',
    "SET search_path TO app, public",
    "SET statement_timeout = '5s'",
    'RESET search_path',
    'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
    "SET TIME ZONE 'UTC'",
    'DISCARD PLANS',
    "SELECT set_config('search_path', '', false)",
    "SELECT pg_catalog.set_config('application_name', 'x', false)",
    'SELECT abalance FROM pgbench_accounts WHERE aid = $1',
    'SELECT count(*), max(id), now() FROM orders',
    "SELECT -a, a IS DISTINCT FROM b, a LIKE 'x%', a BETWEEN 1 AND 2, a NOT BETWEEN SYMMETRIC 2 AND 1, a IN (1, 2), a = ANY(b), a || 'x', j ->> 'k' FROM t",
    'SELECT a OPERATOR(pg_catalog.+) b FROM t',
    "SELECT lower(name), coalesce(email, ''), pg_catalog.upper(name) FROM customers",
    'SELECT extract(year FROM now()), substring(name FROM 1 FOR 2) FROM customers',
    "SELECT current_setting('client_encoding')",
    'INSERT INTO orders VALUES (1, 1, 1)',
    'UPDATE orders SET amount = 2 WHERE id = 1',
    'BEGIN; SELECT 1; COMMIT',
    'CREATE FUNCTION f() SET client_encoding FROM CURRENT AS $$ SELECT 1 $$ LANGUAGE sql',
    'ALTER ROLE app RESET client_encoding',
    "ALTER ROLE app SET client_encoding = 'UTF8'",
  ])('%s', (sql) => {
    expect(effect(sql)).toBe('none');
  });
});

describe('the shape cache', () => {
  it('never answers a value-dependent verdict for another text of the same shape', () => {
    const analyzer = createSqlAnalyzer();
    const verdict = (sql: string) => {
      const a = analyzer.analyze(sql);
      return a.ok ? (a.statements[0]?.reading?.effect ?? 'none') : 'error';
    };
    expect(verdict("SET client_encoding TO 'UTF8'")).toBe('none');
    expect(verdict("SET client_encoding TO 'SJIS'")).toBe('refuse');
    expect(verdict("SELECT set_config('search_path', 'x', false)")).toBe('none');
    expect(verdict("SELECT set_config('client_encoding', 'SJIS', false)")).toBe('refuse');
    expect(verdict('SET standard_conforming_strings = 1')).toBe('none');
    expect(verdict('SET standard_conforming_strings = 0')).toBe('refuse');
  });

  it('reuses the analysis of the hot path, which changes nothing', () => {
    const analyzer = createSqlAnalyzer();
    analyzer.analyze('SELECT abalance FROM pgbench_accounts WHERE aid = 1');
    const a = analyzer.analyze('SELECT abalance FROM pgbench_accounts WHERE aid = 2');
    expect(analyzer.stats.hits).toBe(1);
    expect(a.ok && a.statements[0]?.reading).toBeUndefined();
  });
});

describe('readingProblem (what a ParameterStatus may say)', () => {
  it.each([
    ['client_encoding', 'UTF8', false],
    ['client_encoding', 'SQL_ASCII', false],
    ['client_encoding', 'SJIS', true],
    ['client_encoding', 'LATIN1', true],
    ['client_encoding', 'EUC_JP', true],
    ['standard_conforming_strings', 'on', false],
    ['standard_conforming_strings', 'off', true],
    ['DateStyle', 'ISO, MDY', false],
    ['server_encoding', 'SQL_ASCII', false],
  ])('%s = %s', (name, value, problem) => {
    expect(readingProblem(name, value) !== undefined).toBe(problem);
  });
});
