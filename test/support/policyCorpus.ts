// The policy corpus: statements a typical production policy must block — with the evasions
// people try (comments, case, quoting, schemas, several statements in one message, CTEs, EXPLAIN
// ANALYZE, PREPARE, CREATE … AS, DO blocks, dynamic SQL) — and statements it must let through.
// Used by the engine tests and through the real binaries; each entry names the rule that blocks it.
import type { PolicyInput } from '../../gateway/policy/index.js';

/** The policy the corpus is written for (compile with the harness's `compile`). */
export const CORPUS_POLICY: PolicyInput = {
  rules: [
    { id: 'no-ddl', block: { statements: ['drop', 'truncate', 'alter'] }, message: 'DDL is not allowed on production' },
    { id: 'no-unbounded-writes', block: { unboundedWrites: true } },
    { id: 'no-file-access', block: { functions: ['pg_read_file', 'pg_ls_dir', 'lo_export', 'dblink', 'lowrite'], copyProgram: true } },
    { id: 'pii', mask: { columns: ['customers.email'], with: 'partial' } },
  ],
};

/** Tables the corpus touches (run as a superuser in a fresh database; the app role owns them). */
export const CORPUS_SCHEMA = `
  create table customers (id int primary key, name text, email text, card_number text);
  create table orders (id int primary key, customer_id int references customers(id), amount numeric);
  insert into customers select g, 'name ' || g, 'user' || g || '@example.com', '4111111111111111' from generate_series(1, 5) g;
  insert into orders select g, 1 + g % 5, g * 10 from generate_series(1, 20) g;
  alter table customers owner to app;
  alter table orders owner to app;
`;

/** [statement, rule that blocks it] */
export const BLOCKED: readonly (readonly [string, string])[] = [
  ['DROP TABLE orders', 'no-ddl'],
  ['drop table orders', 'no-ddl'],
  ['/* harmless */ DrOp   TaBlE "orders"', 'no-ddl'],
  ['-- a comment\nDROP TABLE public.orders', 'no-ddl'],
  ['TRUNCATE orders', 'no-ddl'],
  ['truncate table only orders restart identity', 'no-ddl'],
  ['ALTER TABLE orders ADD COLUMN x int', 'no-ddl'],
  ['alter table orders drop column amount', 'no-ddl'],
  ['DROP SCHEMA public CASCADE', 'no-ddl'],
  ['SELECT 1; DROP TABLE orders', 'no-ddl'],
  ['insert into orders values (100, 1, 1); select 2; truncate customers cascade', 'no-ddl'],
  ['UPDATE orders SET amount = 0', 'no-unbounded-writes'],
  ['DELETE FROM orders', 'no-unbounded-writes'],
  ['delete from orders where true', 'no-unbounded-writes'],
  ['delete from orders where 1 = 1', 'no-unbounded-writes'],
  ['WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d', 'no-unbounded-writes'],
  ['EXPLAIN ANALYZE DELETE FROM orders', 'no-unbounded-writes'],
  ['explain (analyze, format json) update orders set amount = amount + 1', 'no-unbounded-writes'],
  ['PREPARE wipe AS DELETE FROM orders', 'no-unbounded-writes'],
  ['CREATE TABLE gone AS WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d', 'no-unbounded-writes'],
  ["SELECT pg_read_file('/etc/passwd')", 'no-file-access'],
  ["select PG_CATALOG.PG_READ_FILE('postgresql.conf')", 'no-file-access'],
  ["select * from pg_ls_dir('.')", 'no-file-access'],
  ["select (select pg_read_file('x')) as sneaky", 'no-file-access'],
  ["select dblink('dbname=app', 'drop table orders')", 'no-ddl'],
  ["COPY orders TO PROGRAM 'cat > /tmp/sluice-orders'", 'no-file-access'],
  ["copy orders from program 'echo 1'", 'no-file-access'],
  ["DO $$ BEGIN EXECUTE 'DROP TABLE orders'; END $$", 'sluice:opaque-code'],
  ['do language plpgsql $x$ begin delete from orders; end $x$', 'sluice:opaque-code'],
  ['SELEC 1 FROM orders', 'sluice:unparseable'],
  ['EXECUTE never_prepared', 'sluice:unknown-prepared-statement'],
  ['DROP TABLE IF EXISTS orders', 'no-ddl'],
  ['drop view if exists some_view', 'no-ddl'],
  ['DROP INDEX IF EXISTS orders_pkey', 'no-ddl'],
  ['ALTER ROLE app SUPERUSER', 'no-ddl'],
  ["alter system set work_mem = '1GB'", 'no-ddl'],
  ['TRUNCATE orders, customers', 'no-ddl'],
  ['select 1;;drop table orders', 'no-ddl'],
  ['update orders set amount = 1 where true', 'no-unbounded-writes'],
  ['UPDATE public.orders o SET amount = 1', 'no-unbounded-writes'],
  ['with u as (update orders set amount = 0 returning 1) select count(*) from u', 'no-unbounded-writes'],
  ["select * from pg_read_file('x', 0, 10)", 'no-file-access'],
  ["SELECT lo_export(1, '/tmp/x')", 'no-file-access'],
  ['select "pg_read_file"(\'/etc/passwd\')', 'no-file-access'],
  ["copy (select 1) to program 'cat'", 'no-file-access'],
];

export const ALLOWED: readonly string[] = [
  'SELECT count(*) FROM orders',
  "SELECT 'drop table orders' AS text",
  'select 1 /* ; drop table orders */',
  '-- drop table orders\nselect 2',
  'UPDATE orders SET amount = amount WHERE id = 1',
  'DELETE FROM orders WHERE id = -1',
  'EXPLAIN DELETE FROM orders WHERE id = 1',
  'with x as (select * from orders where id < 3) select count(*) from x',
  "select $$drop table orders$$ as dollar_quoted",
  'insert into orders values (1000, 1, 5) on conflict (id) do nothing',
  'select dblink_is_not_blocked from (select 1 as dblink_is_not_blocked) s',
  'begin; select 1; commit',
  'select * from orders where id = 1 for update',
  'insert into orders select 2000, 1, 1 where false',
  'update orders set amount = amount where id in (select id from orders order by id limit 1)',
  'delete from orders where id = 999999 returning *',
  'select pg_catalog.now()',
  'show search_path',
  "set statement_timeout = '5s'",
  'explain select * from orders',
  "select 'pg_read_file(' || 'x' || ')' as t",
  'values (1), (2)',
];

