// Adversarial corpus, class "spellings": statements a block rule forbids, written the ways a
// tokenizer that is not PostgreSQL's own gets wrong — Unicode escapes in identifiers and strings,
// E'' strings, dollar quotes with tags and nesting, nested comments, psql's own variables — plus
// the session-level moves that change what a name means (search_path, pg_temp, SET ROLE). Each
// attack goes through the tunnel with psql; the effect is checked on the target itself.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startArena, type Arena } from '../support/arena.js';

const cluster = inject('pgCluster');

/** Every attack tries to drop, truncate, empty or alter `payments` (rule no-ddl / no-unbounded-writes). */
const ATTACKS: readonly string[] = [
  'drop table U&"p\\0061yments"',
  'drop table U&"p!0061yments" uescape \'!\'',
  'drop table "payments"',
  'drop table public . payments',
  'DROP/**/TABLE/* /* nested */ still comment */payments',
  "select $a$ $$ $a$; drop table payments; select $$ $a$ $$",
  "select $_$ ; $_$ ; drop table payments",
  "select 'it''s'; truncate payments",
  'select 1 -- ; \n; truncate payments',
  'delete from payments where true',
  'delete from payments where 1 = 1',
  'delete from payments p where p.id = p.id or true',
  'update payments set amount = 0 where amount = amount',
  'with d as (delete from payments returning 1) select count(*) from d',
  'explain analyze delete from payments',
  'prepare x as delete from payments',
  'create table t_pay as with d as (delete from payments returning *) select * from d',
  'set search_path = pg_temp, public; drop table payments',
  'set role none; truncate payments',
  'set session authorization default; truncate payments',
  'begin; truncate payments; commit',
  'select 1\\; truncate payments',
  'alter table payments rename to p2',
  "do $$ begin execute 'drop table payments'; end $$",
  "select * from dblink('dbname=x', 'drop table payments') as t(x text)",
  "copy payments from program 'true'",
  "select query_to_xml('delete from payments', true, true, '')",
  'merge into payments p using (select 1 as id) s on true when matched then delete',
  'call pg_catalog.pg_sleep(0); truncate payments',
];

describe('spellings of a blocked statement', () => {
  let arena: Arena;
  beforeAll(async () => {
    arena = await startArena(cluster, { prefix: 'adv_quoting' });
  });
  afterAll(async () => {
    await arena?.stop();
  });

  it.each(ATTACKS)('%s', async (sql) => {
    const r = await arena.psql(sql);
    expect(r.stderr).toMatch(/blocked by rule|syntax error/);
    const left = await arena.admin.query<{ n: number; total: string }>('select count(*)::int as n, sum(amount)::text as total from public.payments');
    expect(left.rows[0]).toEqual({ n: 2, total: '300' });
    expect((await arena.admin.query("select to_regclass('public.t_pay') as t")).rows[0]).toEqual({ t: null });
  });

  it('legitimate statements with the same tokens still run', async () => {
    const r = await arena.psql([
      'select U&"\\0069d" from payments order by 1',
      "select E'\\'; drop table payments; --' as s",
      'select $a$ $$ drop table payments $$ $a$ as d',
      '/* /* nested */ drop table payments */ select count(*) from payments',
      "select 'it''s; truncate payments'",
      'set search_path = pg_temp, public',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual(['1', '2', "'; drop table payments; --", ' $$ drop table payments $$ ', '2', "it's; truncate payments", 'SET', '']);
  });
});
