// Adversarial corpus, class "drops that take what they do not name": PostgreSQL drops, through
// pg_depend, tables a statement never names — a partitioned table's partitions, and with CASCADE
// an inheritance child, a typed table, a table partitioned by a function's result or a collation,
// one on an access method or a domain; DROP OWNED takes a role's tables and DROP EXTENSION its
// members (ALTER EXTENSION … ADD TABLE makes any table one); a superuser's DELETE FROM pg_class
// drops one with no DDL at all. A real gateway whose rule protects tables `v_*` from drops and
// deletes, attacked through a `sluice connect` tunnel (and once through `sluice dsn`), with every
// victim table checked on the target afterwards: still there, its row still in it. A rule on
// deletes alone holds for TRUNCATE and pg_surgery's heap_force_kill, which remove rows without one.
import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PolicyInput } from '../../gateway/policy/index.js';
import { collect, runCli, serviceToken, tokenCtx } from '../support/binaries.js';
import { startArena, type Arena } from '../support/arena.js';

const cluster = inject('pgCluster');
const OWNER = 'adv_drop_dependents_owner';

const KEEP: PolicyInput = { rules: [{ id: 'keep-vault', block: { statements: ['drop', 'delete'], tables: ['v_*'], match: 'all' } }] };
/** A rule on the command alone: a CASCADE that drops tables is a `drop table` too. */
const NO_DROP_TABLE: PolicyInput = {
  rules: [
    { id: 'no-drop-table', block: { statements: ['drop table'] } },
    // Rows go without a DELETE: TRUNCATE, and pg_surgery's heap_force_kill.
    { id: 'no-delete', block: { statements: ['delete'] } },
  ],
};

/** Victims (`v_*`, one row each) and the objects through which a drop reaches them. */
const SCHEMA = `
  create table holder (id int) partition by list (id); create table v_part partition of holder for values in (1);
  create table base (id int); create table v_inh () inherits (base);
  create type row_t as (id int); create table v_typed of row_t;
  create type row2_t as (id int); create table v_typed2 of row2_t;
  create function part_key(int) returns int immutable language sql as 'select $1';
  create table v_keyed (id int) partition by range (part_key(id)); create table v_keyed_1 partition of v_keyed for values from (0) to (10);
  create role ${OWNER}; create table v_owned (id int); alter table v_owned owner to ${OWNER};
  create access method heap2 type table handler heap_tableam_handler; create table v_am (id int) using heap2;
  create table v_ext (id int); create extension pageinspect;
  create collation mycoll (locale = 'C'); create table v_coll (id int, t text) partition by list (t collate mycoll); create table v_coll_1 partition of v_coll for values in ('a');
  create domain dom_t as int; create table v_dom (id dom_t) partition by list (id); create table v_dom_1 partition of v_dom for values in (1);
  create table holder3 (id int) partition by list (id); create table v_att (id int);
  create table v_cat (id int);
  create extension pg_surgery; create table v_surg (id int); create table v_trunc (id int);
  create schema vs; create table vs.v_schema (id int);
  create table scratch (id int); create table scratch_parent (id int) partition by list (id); create table scratch_child partition of scratch_parent for values in (1);
  create type lonely_t as (id int); create view plain_v as select 1 as one;
  insert into v_part values (1); insert into v_inh values (1); insert into v_typed values (1); insert into v_typed2 values (1);
  insert into v_keyed values (1); insert into v_owned values (1); insert into v_am values (1); insert into v_ext values (1);
  insert into v_coll values (1, 'a'); insert into v_dom values (1); insert into v_att values (1); insert into v_cat values (1);
  insert into vs.v_schema values (1); insert into v_surg values (1); insert into v_trunc values (1);
`;

let keep: Arena;
let commandOnly: Arena;

beforeAll(async () => {
  keep = await startArena(cluster, { prefix: 'adv_drop_dep', policy: KEEP, schema: SCHEMA, gateway: { listeners: { postgres: '127.0.0.1:0' } } });
  commandOnly = await startArena(cluster, { prefix: 'adv_drop_cmd', policy: NO_DROP_TABLE, schema: SCHEMA.replace(`create role ${OWNER}; `, '') });
});

afterAll(async () => {
  await keep?.stop();
  await commandOnly?.stop();
  // The role outlives the databases it owned tables in.
  const su = new pg.Client({ host: cluster.host, port: cluster.port, database: 'postgres', user: cluster.roles.superuser.user, password: cluster.roles.superuser.password });
  await su.connect();
  await su.query(`drop role if exists ${OWNER}`);
  await su.end();
});

/** The victim's row count on the target, or null when the table is gone. */
async function rows(a: Arena, table: string): Promise<number | null> {
  const r = await a.admin.query(`select to_regclass('${table}') is not null as present`);
  if ((r.rows[0] as { present: boolean }).present !== true) return null;
  return ((await a.admin.query(`select count(*)::int as n from ${table}`)).rows[0] as { n: number }).n;
}

describe('a drop that reaches a protected table it does not name is judged as dropping it', () => {
  it.each([
    ['a partitioned parent takes its partitions', 'drop table holder', 'v_part', 'table public.v_part'],
    ['DROP TABLE … CASCADE takes inheritance children', 'drop table base cascade', 'v_inh', 'every table of the database'],
    ['DROP TYPE … CASCADE takes a typed table', 'drop type row_t cascade', 'v_typed', 'every table of the database'],
    ['DROP FUNCTION … CASCADE takes a table partitioned by it', 'drop function part_key(int) cascade', 'v_keyed', 'every table of the database'],
    ['DROP OWNED BY takes every table the role owns', `drop owned by ${OWNER}`, 'v_owned', 'every table of the database'],
    ['DROP ACCESS METHOD … CASCADE takes the tables stored with it', 'drop access method heap2 cascade', 'v_am', 'every table of the database'],
    ['DROP COLLATION … CASCADE takes a table partitioned under it', 'drop collation mycoll cascade', 'v_coll', 'every table of the database'],
    ['DROP DOMAIN … CASCADE takes a table partitioned by a column of it', 'drop domain dom_t cascade', 'v_dom', 'every table of the database'],
    ['DROP SCHEMA … CASCADE', 'drop schema vs cascade', 'vs.v_schema', 'schema vs'],
  ])('%s', async (_name, sql, victim, why) => {
    const r = await keep.psql(sql);
    expect(r.stderr).toContain(`ERROR:  blocked by rule keep-vault: statement drop, ${why}`);
    expect(await rows(keep, victim)).toBe(1);
  });

  it('ALTER EXTENSION … ADD TABLE, then DROP EXTENSION (which takes its members)', async () => {
    const r = await keep.psql(['alter extension pageinspect add table v_ext', 'drop extension pageinspect']);
    expect(r.stderr).toContain('blocked by rule keep-vault: statement drop, every table of the database');
    expect(await rows(keep, 'v_ext')).toBe(1);
    await keep.admin.query('alter extension pageinspect drop table v_ext');
  });

  it('ATTACH PARTITION then DROP TABLE of the parent, in one Query: refused whole', async () => {
    const r = await keep.psql('alter table holder3 attach partition v_att for values in (1); drop table holder3');
    expect(r.stderr).toContain('blocked by rule keep-vault: statement drop, table v_att');
    expect(await rows(keep, 'v_att')).toBe(1);
    expect(await rows(keep, 'holder3')).toBe(0);
    const parent = await keep.admin.query("select count(*)::int as n from pg_inherits where inhrelid = 'v_att'::regclass");
    expect((parent.rows[0] as { n: number }).n).toBe(0);
  });

  it('a superuser DELETE FROM pg_class drops with no DDL: refused as code the gateway cannot judge', async () => {
    for (const sql of ["delete from pg_class where relname = 'v_cat'", "delete from pg_catalog.pg_class where relname = 'v_cat'", "update pg_class set relname = 'plain' where relname = 'v_cat'"]) {
      const r = await keep.psql(sql);
      expect(r.stderr).toMatch(/blocked by rule sluice:opaque-code: a write to the system catalog pg_class/);
    }
    expect(await rows(keep, 'v_cat')).toBe(1);
  });

  it('through direct mode (`sluice dsn`) as through the tunnel', async () => {
    const ctx = tokenCtx(keep.gw, serviceToken(keep.gw, 'direct-attacker', 'eng'));
    const issued = await runCli(['dsn', 'pg-prod'], ctx);
    expect(issued.code, issued.stderr).toBe(0);
    const child = spawn(cluster.psqlPath, ['-X', '-At', issued.stdout.trim(), '-c', 'drop type row2_t cascade'], { env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
    const out = await collect(child);
    expect(out.stderr).toContain('blocked by rule keep-vault: statement drop, every table of the database');
    expect(await rows(keep, 'v_typed2')).toBe(1);
  });

  it('drops that take nothing protected still run', async () => {
    const r = await keep.psql(['drop table scratch', 'drop table scratch_parent', 'drop type lonely_t', 'drop view plain_v']);
    expect(r.stderr).toBe('');
    for (const t of ['scratch', 'scratch_parent', 'scratch_child', 'plain_v']) expect(await rows(keep, t)).toBeNull();
  });
});

describe('a rule on the command `drop table` holds for drops that take tables by CASCADE', () => {
  it.each([
    ['DROP TYPE … CASCADE', 'drop type row_t cascade', 'v_typed'],
    ['DROP SCHEMA … CASCADE', 'drop schema vs cascade', 'vs.v_schema'],
    ['DROP EXTENSION', 'drop extension pageinspect', null],
  ])('%s', async (_name, sql, victim) => {
    const r = await commandOnly.psql(sql);
    expect(r.stderr).toContain('ERROR:  blocked by rule no-drop-table: statement drop table');
    if (victim !== null) expect(await rows(commandOnly, victim)).toBe(1);
  });

  it.each([
    ['TRUNCATE, under a rule on delete alone', 'truncate v_trunc', 'v_trunc', 'statement delete (truncate removes every row)'],
    ["pg_surgery's heap_force_kill, which removes a row by its tuple id", "select heap_force_kill('v_surg'::regclass, array['(0,1)'::tid])", 'v_surg', 'statement delete'],
  ])('%s', async (_name, sql, victim, why) => {
    const r = await commandOnly.psql(sql);
    expect(r.stderr).toContain(`ERROR:  blocked by rule no-delete: ${why}`);
    expect(await rows(commandOnly, victim)).toBe(1);
  });

  it('a drop without CASCADE of what no table depends on still runs', async () => {
    const r = await commandOnly.psql(['drop type lonely_t', 'drop view plain_v']);
    expect(r.stderr).toBe('');
  });
});
