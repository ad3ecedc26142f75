// Adversarial corpus, class "stored credentials" (rule sluice:credentials): the target role is a
// superuser, so the target itself would answer every read of pg_authid.rolpassword and the other
// credential columns. Each case goes through the real engine on a real cluster (SCRAM and md5
// roles exist there), with and without a policy, and checks the bytes the client receives: a
// 42501 naming the column, and never a SCRAM verifier or an md5 hash.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startEngine, connectionFor, freshDatabase, rawClient, compile, type Engine } from '../support/pgEngineHarness.js';
import type pg from 'pg';

const cluster = inject('pgCluster');

let open: Engine;
let policed: Engine;
let database: string;
let admin: pg.Client;
let drop: () => Promise<void>;

beforeAll(async () => {
  const fresh = await freshDatabase(cluster, 'adv_credentials');
  database = fresh.target.database;
  admin = fresh.admin;
  drop = fresh.drop;
  // The target role holds the superuser's credential: it may read every catalog.
  const su = cluster.roles.superuser;
  const target = { ...fresh.target, user: su.user, password: su.password };
  // Created outside the gateway by the database owner: a view that keeps the column's name.
  await admin.query('create view public.roles_copy as select rolname, rolpassword from pg_authid');
  open = await startEngine(connectionFor(target, 'pg-open'));
  policed = await startEngine(connectionFor(target, 'pg-policed'), { policy: compile({ rules: [{ id: 'no-drop', block: { statements: ['drop'] } }] }) });
});

afterAll(async () => {
  await open?.close();
  await policed?.close();
  await drop?.();
});

function query(sql: string): Buffer {
  const text = Buffer.from(`${sql}\0`, 'utf8');
  const head = Buffer.alloc(5);
  head.write('Q', 0, 'latin1');
  head.writeInt32BE(text.length + 4, 1);
  return Buffer.concat([head, text]);
}

/** Sends `sql` as a simple Query and returns every byte of the answer, as latin1 text. */
async function answer(engine: Engine, sql: string): Promise<string> {
  const c = await rawClient(engine.port, database);
  try {
    c.send(query(sql));
    const messages = await c.until(1);
    return messages.map((m) => `${m.type}${m.body.toString('latin1')}`).join('');
  } finally {
    c.close();
  }
}

const LEAKS = /SCRAM-SHA-256\$|md5[0-9a-f]{32}/;

const refused = [
  'select rolpassword from pg_authid',
  'select rolname, rolpassword from pg_catalog.pg_authid',
  'select "rolpassword" from "pg_catalog"."pg_authid"',
  'SELECT ROLPASSWORD FROM PG_AUTHID',
  'select * from pg_authid',
  'select a.* from pg_authid a',
  'select row_to_json(a) from pg_authid a',
  'select a from pg_authid a',
  'select x.p from pg_authid as x(n, s, i, r, d, c, l, b, cl, p)',
  'select passwd from pg_shadow',
  'select * from pg_shadow',
  'select umoptions from pg_user_mappings',
  'select * from pg_user_mapping',
  'select subconninfo from pg_subscription',
  'with c as (select rolpassword p from pg_authid) select p from c',
  'select (select rolpassword from pg_authid limit 1)',
  'select * from (select * from pg_authid) s',
  'select rolpassword from public.roles_copy',
  // Refused by name though pg_roles shows asterisks: a column so named is refused in any relation.
  'select rolname, rolpassword from pg_roles',
  'select * from public.roles_copy natural join pg_authid',
  'copy pg_authid to stdout',
  'copy pg_authid (rolname, rolpassword) to stdout',
  'copy (select rolpassword from pg_authid) to stdout',
  "select table_to_xml('pg_authid', true, false, '')",
  "select query_to_xml('select rolpassword from pg_authid', true, false, '')",
  "select query_to_xml('select * from pg_' || 'authid', true, false, '')",
  "select schema_to_xml('pg_catalog', true, false, '')",
  'select U&"rolp\\0061ssword" from pg_authid',
  'create view v_leak as select rolpassword from pg_authid',
  "create function f_leak() returns text language sql as 'select rolpassword from pg_authid limit 1'",
  "do $$ declare r text; begin execute 'select rolpass' || 'word from pg_authid limit 1' into r; raise notice '%', r; end $$",
  'explain analyze select rolpassword from pg_authid',
  'prepare p as select rolpassword from pg_authid',
  'declare c cursor for select rolpassword from pg_authid',
];

describe.each([
  ['no policy', () => open],
  ['a policy', () => policed],
])('with %s', (_label, engine) => {
  it.each(refused)('refuses %s', async (sql) => {
    const bytes = await answer(engine(), sql);
    expect(bytes).not.toMatch(LEAKS);
    expect(bytes).toContain('42501');
    expect(bytes).toContain('sluice:credentials');
    expect(bytes).toMatch(/rolpassword|passwd|umoptions|subconninfo|cannot see into/);
  });

  it.each([
    'select rolname, rolsuper, rolcanlogin from pg_roles',
    'select * from pg_roles',
    'select rolname, rolcanlogin from pg_authid',
    'select usename from pg_user',
    'select rolname from pg_authid a where a.rolcanlogin',
  ])('lets the ordinary catalog read %s through', async (sql) => {
    const bytes = await answer(engine(), sql);
    expect(bytes).not.toMatch(LEAKS);
    expect(bytes).not.toContain('42501');
    expect(bytes).toContain('T'); // RowDescription
  });
});

it('the target does hold verifiers and hashes the corpus would have shown', async () => {
  const r = await admin.query('select rolpassword from pg_authid where rolpassword is not null');
  expect(r.rows.map((x: { rolpassword: string }) => x.rolpassword).join(' ')).toMatch(LEAKS);
});
