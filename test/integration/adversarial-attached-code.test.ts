// Adversarial corpus, class "code the gateway cannot see into": functions written in a language
// whose code the gateway does not read (here `internal` and `c`, which a superuser can create
// from code the server already has: another name for a shipped function counts as that function,
// any other symbol is opaque; PL/Python and PL/Perl are not installed on these machines and are
// opaque by language, unit-tested in test/unit/policy/attachedCode.test.ts), and code an administrator attached to relations that
// the server runs without the statement naming it (triggers, column defaults, domain checks, row
// security policies, views, cascading foreign keys). A real gateway with the recommended policy
// (without its column masks, so the refusals shown are this class's own), a real tunnel, real
// psql and a raw wire client; every effect is checked on the target itself: no large object was
// created, no row written, the victim table of a pipelined SJIS attack is still there.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { decodeErrorFields } from '../../gateway/engines/postgres/codec/backend.js';
import { RECOMMENDED_POLICY, startArena, type Arena } from '../support/arena.js';
import { build } from '../unit/postgres/builder.js';

const cluster = inject('pgCluster');
const POLICY = { rules: (RECOMMENDED_POLICY.rules ?? []).filter((r) => !('mask' in r)) };

/** What the administrator made before the attacker came, outside the gateway. */
const ADMIN_OBJECTS = `
  create function innocent_import(text) returns oid language internal strict as 'be_lo_import';
  create function innocent_create(oid) returns oid language internal strict as 'be_lo_create';
  create function innocent_wrapper() returns oid language plpgsql as $$ begin return innocent_create(0); end $$;
  create function sneaky_stat(regclass) returns record language c strict as '$libdir/pgstattuple', 'pgstattuplebyid_v1_5';
  create function opaque_stat(regclass) returns record language c strict as '$libdir/pgstattuple', 'pgstattuplebyid';
  create extension pgstattuple;
  create function mk_lo() returns trigger language plpgsql as $$ begin perform lo_create(0); return coalesce(new, old); end $$;
  create table ledger (id int primary key, note text);
  create trigger ledger_audit before insert or update or delete on ledger for each row execute function mk_lo();
  create table tickets (id int primary key, blob oid default lo_create(0));
  create view blob_view as select lo_create(0) as o;
  create domain lo_checked as int check (lo_create(0) > 0 and value > 0);
  create table checked (id int, v lo_checked);
  create table parent_acct (id int primary key);
  create table child_acct (id int, parent int references parent_acct(id) on delete cascade);
  create trigger child_audit before delete on child_acct for each row execute function mk_lo();
  insert into parent_acct values (1);
  insert into child_acct values (1, 1);
  create table guarded (id int);
  alter table guarded enable row level security;
  create policy guarded_lo on guarded using (lo_create(0) > 0);
  create table plain (id serial primary key, note text, parent int references parent_acct(id));

  create function enc_trg() returns trigger language plpgsql as $$ begin perform set_config('client_encoding', 'SJIS', false); return new; end $$;
  create table enc_log (id int);
  create trigger enc_log_trg after insert on enc_log for each row execute function enc_trg();
  create function app_set_encoding(e text) returns text language sql as $$ select set_config('client_encoding', e, false) $$;
  create table enc_default (id int, e text default app_set_encoding('SJIS'));
  create table enc_parent (id int primary key);
  create table enc_child (id int, parent int references enc_parent(id) on delete cascade);
  create trigger enc_child_trg after delete on enc_child for each row execute function enc_trg();
  insert into enc_parent values (1), (2);
  insert into enc_child values (1, 1), (2, 2);
  create view enc_view as select * from enc_log;
`;

let arena: Arena;

beforeAll(async () => {
  arena = await startArena(cluster, { prefix: 'adv_code', policy: POLICY, schema: ADMIN_OBJECTS });
});

afterAll(async () => {
  await arena?.stop();
});

async function count(sql: string): Promise<number> {
  const r = await arena.admin.query(`select (${sql})::int as n`);
  return (r.rows[0] as { n: number }).n;
}

const largeObjects = () => count('select count(*) from pg_largeobject_metadata');

/** Runs `sql` through the tunnel with psql and checks the gateway refused it with 42501 naming `rule`. */
async function refused(sql: string, rule: string): Promise<string> {
  const r = await arena.psql(sql, ['-v', 'VERBOSITY=verbose']);
  const out = r.stdout + r.stderr;
  expect(r.code, `${sql}\n${out}`).not.toBe(0);
  expect(out).toMatch(/ERROR:\s+42501/);
  expect(out).toContain(rule);
  return out;
}

describe('the attacks would work without the gateway', () => {
  it('the administrator’s objects make large objects when used directly', async () => {
    await arena.admin.query('begin');
    try {
      const before = await largeObjects();
      await arena.admin.query('select innocent_wrapper(); insert into ledger values (100); insert into tickets (id) values (100); select * from blob_view; delete from parent_acct where id = 1');
      expect(await largeObjects()).toBe(before + 5);
    } finally {
      await arena.admin.query('rollback');
    }
  });
});

describe('functions in languages the gateway does not read', () => {
  it.each([
    ["select innocent_import('/etc/hostname')", 'lo_import (through function innocent_import)'],
    ['select innocent_create(0)', 'lo_create (through function innocent_create)'],
    ['select innocent_wrapper()', 'lo_create (through function innocent_wrapper)'],
    ['select * from customers where id = innocent_create(0)', 'lo_create (through function innocent_create)'],
  ])('%s, an internal-language alias of a built-in, counts as that built-in: refused, nothing made', async (sql, why) => {
    const before = await largeObjects();
    const out = await refused(sql, 'no-file-access');
    expect(out).toContain(`function ${why}`);
    expect(await largeObjects()).toBe(before);
  });

  it('a C function with a symbol no shipped function has is code the gateway cannot see into', async () => {
    const out = await refused("select * from opaque_stat('customers') as t(a bigint, b bigint, c bigint, d float8, e bigint, f bigint, g float8, h bigint, i float8)", 'sluice:opaque-code');
    expect(out).toContain('written in c with a symbol no shipped function has');
  });

  it.each([
    ["select tuple_count from pgstattuple('customers')", 'a member of an installed extension'],
    ["select t.b from sneaky_stat('customers') as t(a bigint, b bigint, c bigint, d float8, e bigint, f bigint, g float8, h bigint, i float8)", 'a C function with an extension function’s library and symbol'],
  ])('%s (%s) is shipped code, judged by its name: allowed', async (sql) => {
    const r = await arena.psql(sql);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('3');
  });
});

describe('code attached to relations counts as called by the statement that touches them', () => {
  it.each([
    ["insert into ledger values (1, 'a')", 'trigger ledger_audit on public.ledger', 'select count(*) from ledger'],
    ['insert into tickets (id) values (1)', 'default of column blob on public.tickets', 'select count(*) from tickets'],
    ['insert into checked values (1, 1)', 'domain constraint lo_checked_check', 'select count(*) from checked'],
    ['delete from parent_acct where id = 1', 'trigger child_audit on public.child_acct', 'select 1 - count(*) from parent_acct'],
    ['select * from blob_view', 'view definition on public.blob_view', 'select 0'],
    ['select * from guarded', 'row security policy guarded_lo on public.guarded', 'select 0'],
    ["with w as (insert into ledger values (2, 'b') returning id) select * from w", 'trigger ledger_audit', 'select count(*) from ledger'],
  ])('%s is refused: no large object, no row', async (sql, why, rows) => {
    const before = await largeObjects();
    const out = await refused(sql, 'no-file-access');
    expect(out).toContain(`function lo_create (through ${why}`);
    expect(await largeObjects()).toBe(before);
    expect(await count(rows)).toBe(0);
  });

  it('tables whose attached code is built-in keep working (serial default, foreign key checks)', async () => {
    const r = await arena.psql(["insert into plain (note, parent) values ('x', 1) returning id", 'select count(*) from plain']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['1', 'INSERT 0 1', '1']);
  });
});

// ---- Parsing state: attached code that changes client_encoding is a barrier for the pipeline.

const query = (sql: string | Buffer) => build().raw(Buffer.concat([Buffer.from(sql), Buffer.of(0)])).typed('Q');
const parse = (sql: string | Buffer, name = '') => build().cstring(name).raw(Buffer.from(sql)).byte(0).int16(0).typed('P');
const bind = () => build().cstring('').cstring('').int16(0).int16(0).int16(0).typed('B');
const execute = () => build().cstring('').int32(0).typed('E');
const sync = () => build().typed('S');

let victims = 0;
async function victim(): Promise<string> {
  const name = `victim_${++victims}`;
  await arena.admin.query(`create table ${name} (id int)`);
  return name;
}

async function exists(table: string): Promise<boolean> {
  const r = await arena.admin.query('select to_regclass($1) is not null as present', [table]);
  return (r.rows[0] as { present: boolean }).present;
}

/** In SJIS 0x95 0x5C is one character; read as UTF-8 the 0x5C escapes the quote and the DROP is inside the literal. */
const sjisDropText = (table: string) => Buffer.concat([Buffer.from("select E'"), Buffer.of(0x95, 0x5c), Buffer.from(`'; drop table ${table}; --'`)]);

async function pipeline(frames: Buffer[], readies: number): Promise<{ severity: string; code: string; message: string }[]> {
  const c = await arena.raw();
  try {
    c.send(Buffer.concat(frames));
    const messages = await c.until(readies);
    return messages.filter((m) => m.type === 'E').map((m) => {
      const e = decodeErrorFields(m.body);
      return { severity: e.severity, code: e.code, message: e.message };
    });
  } finally {
    c.close();
  }
}

const endedByParseState = (errors: { severity: string; code: string; message: string }[]) => errors.some((e) => e.severity === 'FATAL' && e.code === '0A000' && e.message.includes('sluice:parse-state'));

describe('a statement whose attached code may change client_encoding: nothing pipelined behind it is forwarded before its answer', () => {
  it.each([
    ['insert into enc_log values (1)', 'an insert whose trigger calls set_config'],
    ['insert into enc_default (id) values (1)', "an insert whose column default calls the administrator's function"],
    ['delete from enc_parent where id = 1', "a delete that cascades to a table whose trigger calls set_config"],
    ['insert into enc_view values (1)', 'an insert through a view into that table'],
  ])('%s (%s), in the same write as a DROP: the session ends, the table stays', async (sql) => {
    const table = await victim();
    const errors = await pipeline([query(sql), query(sjisDropText(table))], 2);
    expect(endedByParseState(errors), JSON.stringify(errors)).toBe(true);
    expect(await exists(table)).toBe(true);
  });

  it('the extended protocol, the DROP after the Sync: the session ends, the table stays', async () => {
    const table = await victim();
    const errors = await pipeline([parse('insert into enc_log values (2)'), bind(), execute(), sync(), query(sjisDropText(table))], 2);
    expect(endedByParseState(errors), JSON.stringify(errors)).toBe(true);
    expect(await exists(table)).toBe(true);
  });

  it('the extended protocol, the DROP in the same cycle: refused before it is forwarded', async () => {
    const table = await victim();
    const errors = await pipeline([parse('insert into enc_log values (3)'), bind(), execute(), parse(sjisDropText(table)), bind(), execute(), sync()], 1);
    expect(errors.some((e) => e.code === '42501' && e.message.includes('sluice:parse-state') && e.message.includes('trigger enc_log_trg')), JSON.stringify(errors)).toBe(true);
    expect(await exists(table)).toBe(true);
  });

  it('statements on tables with only built-in attached code are pipelined as before', async () => {
    const errors = await pipeline([query("insert into plain (note) values ('p')"), query('select count(*) from plain'), query('select 1')], 3);
    expect(errors).toEqual([]);
  });
});
