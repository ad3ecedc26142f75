// Statement analysis: kinds and commands, relations (read/written, schema-qualified, quoted),
// functions, nested statements, COPY details, statement text, parse errors.
import { describe, expect, it } from 'vitest';
import { analyzeSql, type SqlAnalysis, type StatementAnalysis } from '../../../gateway/policy/sql.js';

function only(sql: string): StatementAnalysis {
  const a = analyzeSql(sql);
  if (!a.ok) throw new Error(a.error);
  expect(a.statements).toHaveLength(1);
  return a.statements[0] as StatementAnalysis;
}

function all(sql: string): readonly StatementAnalysis[] {
  const a = analyzeSql(sql);
  if (!a.ok) throw new Error(a.error);
  return a.statements;
}

describe('statement kinds and commands', () => {
  it.each([
    ['SELECT 1', 'select', 'select'],
    ['VALUES (1)', 'select', 'select'],
    ['TABLE customers', 'select', 'select'],
    ['INSERT INTO t VALUES (1)', 'insert', 'insert'],
    ['UPDATE t SET a = 1 WHERE b', 'update', 'update'],
    ['DELETE FROM t WHERE a = 1', 'delete', 'delete'],
    ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', 'merge', 'merge'],
    ['DROP TABLE t', 'drop', 'drop table'],
    ['DROP MATERIALIZED VIEW mv', 'drop', 'drop materialized view'],
    ['DROP INDEX i', 'drop', 'drop index'],
    ['DROP ROLE r', 'drop', 'drop role'],
    ['DROP DATABASE d', 'drop', 'drop database'],
    ['TRUNCATE t', 'truncate', 'truncate'],
    ['ALTER TABLE t ADD COLUMN c int', 'alter', 'alter table'],
    ['ALTER TABLE t RENAME TO u', 'alter', 'alter table'],
    ['ALTER VIEW v RENAME TO w', 'alter', 'alter view'],
    ['ALTER FUNCTION f() OWNER TO bob', 'alter', 'alter function'],
    ['ALTER ROLE r WITH SUPERUSER', 'alter', 'alter role'],
    ['ALTER SYSTEM SET work_mem = 1', 'alter', 'alter system'],
    ['CREATE TABLE t (a int)', 'create', 'create table'],
    ['CREATE TABLE t AS SELECT 1', 'create', 'create table'],
    ['SELECT 1 INTO t', 'create', 'create table'],
    ['CREATE MATERIALIZED VIEW mv AS SELECT 1', 'create', 'create materialized view'],
    ['CREATE VIEW v AS SELECT 1', 'create', 'create view'],
    ['CREATE INDEX ON t (a)', 'create', 'create index'],
    ['CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$', 'create', 'create function'],
    ['CREATE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$', 'create', 'create procedure'],
    ['CREATE USER u', 'create', 'create user'],
    ['CREATE EXTENSION dblink', 'create', 'create extension'],
    ['CREATE SCHEMA s', 'create', 'create schema'],
    ['GRANT SELECT ON t TO u', 'grant', 'grant'],
    ['REVOKE SELECT ON t FROM u', 'revoke', 'revoke'],
    ['GRANT admin TO u', 'grant', 'grant'],
    ['COPY t TO STDOUT', 'copy', 'copy'],
    ['DO $$ BEGIN NULL; END $$', 'do', 'do'],
    ['CALL p()', 'call', 'call'],
    ['SET search_path = x', 'set', 'set'],
    ['SET LOCAL statement_timeout = 0', 'set', 'set'],
    ['RESET ALL', 'reset', 'reset'],
    ['SHOW ALL', 'show', 'show'],
    ['BEGIN', 'begin', 'begin'],
    ['START TRANSACTION READ ONLY', 'begin', 'start transaction'],
    ['COMMIT', 'commit', 'commit'],
    ['ROLLBACK', 'rollback', 'rollback'],
    ['ROLLBACK TO SAVEPOINT s', 'rollback', 'rollback to savepoint'],
    ['SAVEPOINT s', 'savepoint', 'savepoint'],
    ["PREPARE TRANSACTION 'x'", 'prepare transaction', 'prepare transaction'],
    ["COMMIT PREPARED 'x'", 'commit prepared', 'commit prepared'],
    ['EXPLAIN SELECT 1', 'explain', 'explain'],
    ['PREPARE p AS SELECT 1', 'prepare', 'prepare'],
    ['EXECUTE p', 'execute', 'execute'],
    ['DEALLOCATE p', 'deallocate', 'deallocate'],
    ['VACUUM t', 'vacuum', 'vacuum'],
    ['ANALYZE t', 'analyze', 'analyze'],
    ['LISTEN c', 'listen', 'listen'],
    ["LOAD 'x'", 'load', 'load'],
    ['DISCARD ALL', 'discard', 'discard'],
    ['REFRESH MATERIALIZED VIEW mv', 'refresh', 'refresh materialized view'],
    ['DECLARE c CURSOR FOR SELECT 1', 'declare', 'declare'],
    ['FETCH 10 FROM c', 'fetch', 'fetch'],
    ['MOVE 10 IN c', 'move', 'move'],
    ["COMMENT ON TABLE t IS 'x'", 'comment', 'comment'],
    ['LOCK TABLE t', 'lock', 'lock'],
    ['CHECKPOINT', 'checkpoint', 'checkpoint'],
  ])('%s → %s / %s', (sql, kind, command) => {
    expect(only(sql)).toMatchObject({ kind, command });
  });
});

describe('relations', () => {
  it('keeps schema qualification, folds unquoted names and keeps quoted ones', () => {
    expect(only('SELECT * FROM Public.Customers c, "Billing"."Invoices" i, orders').relations).toEqual([
      { schema: 'public', name: 'customers', access: 'read' },
      { schema: 'Billing', name: 'Invoices', access: 'read' },
      { name: 'orders', access: 'read' },
    ]);
    expect(only('SELECT * FROM db.s.t').relations).toEqual([{ catalog: 'db', schema: 's', name: 't', access: 'read' }]);
  });

  it('marks DML targets written and everything else read', () => {
    expect(only('INSERT INTO a SELECT * FROM b').relations).toEqual([
      { name: 'a', access: 'write' },
      { name: 'b', access: 'read' },
    ]);
    expect(only('UPDATE a SET x = b.x FROM b WHERE a.id = b.id').relations).toEqual([
      { name: 'a', access: 'write' },
      { name: 'b', access: 'read' },
    ]);
    expect(only('DELETE FROM a USING b WHERE a.id = b.id').relations.map((r) => r.access)).toEqual(['write', 'read']);
    expect(only('MERGE INTO a USING b ON a.id = b.id WHEN MATCHED THEN DELETE').relations.map((r) => `${r.name}:${r.access}`)).toEqual(['a:write', 'b:read']);
  });

  it('finds relations in joins, subqueries, sublinks, set operations and lateral', () => {
    const s = only('SELECT (SELECT max(x) FROM a) FROM b JOIN c ON true WHERE EXISTS (SELECT 1 FROM d) UNION SELECT 1 FROM e, LATERAL (SELECT * FROM f) l');
    expect(s.relations.map((r) => r.name).sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
  });

  it('names the relations DDL and utility statements touch, as written', () => {
    expect(only('DROP TABLE a, s.b').relations).toEqual([
      { name: 'a', access: 'write' },
      { schema: 's', name: 'b', access: 'write' },
    ]);
    expect(only('TRUNCATE a').relations).toEqual([{ name: 'a', access: 'write' }]);
    expect(only('ALTER TABLE a ADD COLUMN x int').relations).toEqual([{ name: 'a', access: 'write' }]);
    expect(only('CREATE INDEX ON a (x)').relations).toEqual([{ name: 'a', access: 'write' }]);
    expect(only('DROP TRIGGER t ON s.a').relations).toEqual([{ schema: 's', name: 'a', access: 'write' }]);
    expect(only('DROP SCHEMA s, u CASCADE').schemas).toEqual(['s', 'u']);
    expect(only('ALTER SCHEMA s RENAME TO u').schemas).toEqual(['s']);
  });

  it('reads a relation named in a string by table_to_xml', () => {
    expect(only(`SELECT table_to_xml('"Vault".secrets', true, true, '')`).relations).toEqual([{ schema: 'Vault', name: 'secrets', access: 'read' }]);
  });
});

describe('functions', () => {
  it('finds calls anywhere: target list, FROM, WHERE, ORDER BY, window, CTE, subquery, defaults, CALL', () => {
    const s = only('SELECT a(), s.b() FROM c() WHERE d(x) > 0 ORDER BY e() OFFSET f()');
    expect(s.functions).toEqual([{ name: 'a' }, { schema: 's', name: 'b' }, { name: 'c' }, { name: 'd' }, { name: 'e' }, { name: 'f' }]);
    expect(only('SELECT sum(x) OVER (PARTITION BY g(y)) FROM t').functions.map((f) => f.name)).toEqual(['sum', 'g']);
    expect(only('CREATE TABLE t (a int DEFAULT h(), CHECK (i(a)))').functions.map((f) => f.name)).toEqual(['h', 'i']);
    expect(only('CALL s.p(j())').functions).toEqual([{ schema: 's', name: 'p' }, { name: 'j' }]);
    expect(only('CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION k()').functions).toEqual([{ name: 'k' }]);
  });

  it('does not count the function being created as a call', () => {
    expect(only('CREATE FUNCTION pg_read_file() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$').functions).toEqual([]);
  });
});

describe('nested statements', () => {
  it('splits off CTEs, data-modifying or not', () => {
    const s = only('WITH a AS (SELECT 1), d AS (DELETE FROM t RETURNING *) SELECT * FROM a, d');
    expect(s.nested.map((n) => [n.via, n.executes, n.statement.command])).toEqual([
      ['cte', true, 'select'],
      ['cte', true, 'delete'],
    ]);
  });

  it('finds a CTE inside a subquery and a recursive CTE', () => {
    expect(only('SELECT * FROM (WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d) x').nested[0]?.statement.command).toBe('delete');
    expect(only('WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r').nested).toHaveLength(1);
  });

  it('EXPLAIN ANALYZE runs its statement; plain EXPLAIN does not', () => {
    expect(only('EXPLAIN ANALYZE DELETE FROM t').nested[0]).toMatchObject({ via: 'explain-analyze', executes: true });
    expect(only('EXPLAIN ANALYSE DELETE FROM t').nested[0]).toMatchObject({ via: 'explain-analyze', executes: true });
    expect(only('EXPLAIN (VERBOSE, ANALYZE 1) DELETE FROM t').nested[0]).toMatchObject({ executes: true });
    expect(only('EXPLAIN (ANALYZE on) DELETE FROM t').nested[0]).toMatchObject({ executes: true });
    expect(only('EXPLAIN (ANALYZE off) DELETE FROM t').nested[0]).toMatchObject({ via: 'explain', executes: false });
    expect(only('EXPLAIN (ANALYZE 0) DELETE FROM t').nested[0]).toMatchObject({ executes: false });
    expect(only('EXPLAIN DELETE FROM t').nested[0]).toMatchObject({ via: 'explain', executes: false });
  });

  it('PREPARE defines without running; CREATE … AS, COPY (query), DECLARE and CREATE SCHEMA run', () => {
    expect(only('PREPARE p(int) AS UPDATE t SET a = $1').nested[0]).toMatchObject({ via: 'prepare', executes: false, statement: { command: 'update' } });
    expect(only('PREPARE p(int) AS UPDATE t SET a = $1').prepares).toBe('p');
    expect(only('CREATE TABLE x AS SELECT * FROM t').nested[0]).toMatchObject({ via: 'create-as', executes: true });
    expect(only('CREATE MATERIALIZED VIEW x AS SELECT * FROM t').nested[0]).toMatchObject({ via: 'create-as', executes: true });
    expect(only('SELECT * INTO x FROM t').nested[0]).toMatchObject({ via: 'create-as', executes: true, statement: { command: 'select', relations: [{ name: 't', access: 'read' }] } });
    expect(only('COPY (SELECT * FROM t) TO STDOUT').nested[0]).toMatchObject({ via: 'copy', executes: true });
    expect(only('DECLARE c CURSOR FOR SELECT * FROM t').nested[0]).toMatchObject({ via: 'cursor', executes: true });
    expect(only('CREATE SCHEMA s CREATE TABLE a (x int) CREATE VIEW v AS SELECT 1').nested.map((n) => n.statement.command)).toEqual(['create table', 'create view']);
  });

  it('views, rules and SQL function bodies are deferred', () => {
    expect(only('CREATE VIEW v AS SELECT * FROM t').nested[0]).toMatchObject({ via: 'view', executes: false });
    expect(only('CREATE RULE r AS ON INSERT TO t DO ALSO DELETE FROM u').nested[0]).toMatchObject({ via: 'rule', executes: false, statement: { command: 'delete' } });
    expect(only("CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'DELETE FROM t'").nested[0]).toMatchObject({ via: 'function-body', executes: false });
    expect(only('CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1').nested[0]).toMatchObject({ via: 'function-body' });
  });

  it('MERGE actions and upserts appear as the statements they perform on the target', () => {
    const m = only('MERGE INTO s.t USING u ON true WHEN MATCHED AND u.x THEN DELETE WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT DEFAULT VALUES');
    expect(m.nested.map((n) => [n.via, n.executes, n.statement.command, n.statement.relations])).toEqual([
      ['merge-action', true, 'delete', [{ schema: 's', name: 't', access: 'write' }]],
      ['merge-action', true, 'insert', [{ schema: 's', name: 't', access: 'write' }]],
    ]);
    expect(only('INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 2').nested.map((n) => [n.via, n.statement.command])).toEqual([['on-conflict', 'update']]);
    expect(only('INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING').nested).toEqual([]);
  });

  it('parses dynamic SQL given as a constant', () => {
    const s = only(`SELECT query_to_xml('DELETE FROM t RETURNING 1', true, true, '')`);
    expect(s.nested[0]).toMatchObject({ via: 'dynamic-sql', executes: true, statement: { command: 'delete' } });
    expect(s.opaque).toBeUndefined();
    expect(only(`SELECT * FROM dblink('myconn', 'SELECT 1') t(a int)`).nested).toHaveLength(1);
    expect(only(`SELECT dblink_exec(conn_name(), 'DELETE FROM t')`).opaque).toMatch(/computed at run time/);
  });
});

describe('unbounded writes', () => {
  it.each([
    ['DELETE FROM t', true],
    ['UPDATE t SET a = 1', true],
    ['UPDATE t SET a = 1 WHERE true', true],
    ['DELETE FROM t WHERE 1 = 1', true],
    ["DELETE FROM t WHERE 'a' = 'a' OR NULL", true],
    ['DELETE FROM t WHERE id = 1', false],
    ['DELETE FROM t WHERE id > 0', false],
    ['DELETE FROM t WHERE CURRENT OF c', false],
    ['DELETE FROM t WHERE EXISTS (SELECT 1)', true],
    ['DELETE FROM t WHERE now() > $1', true],
    ['INSERT INTO t VALUES (1)', false],
    ['MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE', false],
  ])('%s → %s', (sql, unbounded) => {
    expect(only(sql).unboundedWrite).toBe(unbounded);
  });
});

describe('COPY', () => {
  it('describes direction, target, format and options', () => {
    expect(only("COPY s.t (a, b) TO STDOUT WITH (FORMAT csv, HEADER, DELIMITER ';', NULL 'NA', QUOTE '''', ESCAPE '\\')").copy).toEqual({
      direction: 'to',
      target: 'stdio',
      format: 'csv',
      header: true,
      relation: { schema: 's', name: 't', access: 'read' },
      columns: ['a', 'b'],
      delimiter: ';',
      null: 'NA',
      quote: "'",
      escape: '\\',
    });
    expect(only('COPY t FROM STDIN').copy).toMatchObject({ direction: 'from', target: 'stdio', format: 'text', header: false, relation: { access: 'write' } });
    expect(only("COPY t TO PROGRAM 'gzip > /tmp/x'").copy).toMatchObject({ target: 'program' });
    expect(only("COPY t FROM '/etc/passwd'").copy).toMatchObject({ target: 'file', direction: 'from' });
    expect(only('COPY t TO STDOUT (FORMAT binary)').copy?.format).toBe('binary');
    expect(only('COPY t TO STDOUT CSV HEADER').copy).toMatchObject({ format: 'csv', header: true });
    expect(only('COPY t TO STDOUT BINARY').copy?.format).toBe('binary');
    expect(only('COPY t TO STDOUT (HEADER false)').copy?.header).toBe(false);
    expect(only('COPY (SELECT 1) TO STDOUT').copy?.relation).toBeUndefined();
  });
});

describe('text, multi-statements and errors', () => {
  it('gives each statement its own text, also after multi-byte characters', () => {
    expect(all("SELECT 'é'; /* ü */ DELETE FROM t WHERE a = 'ß';  SELECT 3").map((s) => s.text)).toEqual(["SELECT 'é'", "DELETE FROM t WHERE a = 'ß'", 'SELECT 3']);
  });

  it('treats empty and comment-only text as no statements', () => {
    for (const sql of ['', '   ', ';', ' ; ; ', '-- x', '/* x */']) expect(analyzeSql(sql)).toEqual({ ok: true, statements: [] });
  });

  it('reports a parse error with its position', () => {
    expect(analyzeSql('SELECT * FROM t WHERE')).toEqual<SqlAnalysis>({ ok: false, error: 'syntax error at end of input', position: 21 });
  });

  it('analyses deep but legitimate nesting', () => {
    const deep = `SELECT ${Array.from({ length: 300 }, () => 'x').join(' || ')}`;
    expect(analyzeSql(deep).ok).toBe(true);
    const sub = `SELECT ${'(SELECT '.repeat(40)}pg_read_file('x')${')'.repeat(40)}`;
    const a = analyzeSql(sub);
    expect(a.ok).toBe(true);
    if (a.ok) expect(a.statements[0]?.functions).toEqual([{ name: 'pg_read_file' }]);
  });

  it('fails closed (unparseable) rather than crash on absurd nesting', () => {
    // The parser gives up ("memory exhausted"), or walking the tree would overflow the stack:
    // either way the result is an unparseable analysis, never an exception.
    expect(analyzeSql(`SELECT ${'(SELECT '.repeat(20_000)}1${')'.repeat(20_000)}`).ok).toBe(false);
    expect(() => analyzeSql(`SELECT ${'(SELECT '.repeat(2000)}1${')'.repeat(2000)}`)).not.toThrow();
    expect(() => analyzeSql(`SELECT ${Array.from({ length: 20_000 }, () => 'x').join('||')}`)).not.toThrow();
  });
});

describe('names a statement gives to rows and portals', () => {
  it('reports the portal DECLARE, CLOSE and DISCARD ALL make or drop', () => {
    expect(all('DECLARE "Cur" CURSOR WITH HOLD FOR SELECT 1; CLOSE c; CLOSE ALL; DISCARD ALL; FETCH 1 FROM c').map((s) => s.portals)).toEqual([
      { all: false, name: 'Cur' },
      { all: false, name: 'c' },
      { all: true },
      { all: true },
      undefined,
    ]);
  });

  it('marks renames and moves of relations, and writes that read their rows back', () => {
    const flags = (sql: string) => all(sql).map((s) => [s.renamesRelation ?? false, s.returnsRows ?? false]);
    expect(flags('ALTER TABLE t RENAME TO u; ALTER VIEW v SET SCHEMA s; ALTER SCHEMA s RENAME TO s2; ALTER TABLE t RENAME COLUMN a TO b; ALTER TABLE t ADD COLUMN c int')).toEqual([
      [true, false],
      [true, false],
      [true, false],
      [false, false],
      [false, false],
    ]);
    expect(flags('UPDATE t SET a = 1 WHERE id = 1 RETURNING a; DELETE FROM t WHERE id = 1; INSERT INTO t VALUES (1) RETURNING *')).toEqual([
      [false, true],
      [false, false],
      [false, true],
    ]);
  });

  it('names the routine a rename renames', () => {
    expect(all('ALTER FUNCTION pg_catalog.pg_read_file(text) RENAME TO rf')[0]?.functions).toEqual([{ schema: 'pg_catalog', name: 'pg_read_file' }]);
  });
});
