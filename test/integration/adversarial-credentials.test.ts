// Adversarial corpus, class "stored credentials" (rule sluice:credentials): the target role is a
// superuser, so the target itself would answer every read of pg_authid.rolpassword and the other
// credential columns. Each case goes through the real gateway binary on a real cluster (SCRAM and
// md5 roles exist there), with no rule and with the recommended policy, in tunnel mode (a raw
// wire client through `sluice connect`: every byte it receives is checked) and in direct mode
// (psql with the DSN `sluice dsn` issues): a 42501 naming the column, never a SCRAM verifier or
// an md5 hash, and none in the audit trail either.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { collect, runCli, serviceToken, tokenCtx } from '../support/binaries.js';
import { RECOMMENDED_POLICY, startArena, type Arena } from '../support/arena.js';

const cluster = inject('pgCluster');

/** Created by the database owner, outside the gateway: a view that keeps the column's name. */
const SCHEMA = 'create view public.roles_copy as select rolname, rolpassword from pg_authid;';

let open: Arena;
let policed: Arena;

beforeAll(async () => {
  const direct = { listeners: { postgres: '127.0.0.1:0' } };
  open = await startArena(cluster, { prefix: 'adv_cred_open', schema: SCHEMA, policy: { rules: [] }, gateway: direct });
  policed = await startArena(cluster, { prefix: 'adv_cred', schema: SCHEMA, policy: RECOMMENDED_POLICY, gateway: direct });
});

afterAll(async () => {
  await open?.stop();
  await policed?.stop();
});

function query(sql: string): Buffer {
  const text = Buffer.from(`${sql}\0`, 'utf8');
  const head = Buffer.alloc(5);
  head.write('Q', 0, 'latin1');
  head.writeInt32BE(text.length + 4, 1);
  return Buffer.concat([head, text]);
}

/** Sends `sql` as a simple Query through the tunnel and returns every byte of the answer, as latin1 text. */
async function tunnel(a: Arena, sql: string): Promise<string> {
  const c = await a.raw();
  try {
    c.send(query(sql));
    const messages = await c.until(1);
    return messages.map((m) => `${m.type}${m.body.toString('latin1')}`).join('');
  } finally {
    c.close();
  }
}

/** Runs `sql` with psql on the direct listener, with a credential `sluice dsn` issued; returns all it printed. */
async function direct(a: Arena, sql: string): Promise<string> {
  const ctx = tokenCtx(a.gw, serviceToken(a.gw, `direct-${Math.random().toString(36).slice(2)}`, 'eng'));
  const issued = await runCli(['dsn', 'pg-prod'], ctx);
  expect(issued.code, issued.stderr).toBe(0);
  const child = spawn(cluster.psqlPath, ['-X', '-At', issued.stdout.trim(), '-c', sql], { env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
  const out = await collect(child);
  return `${out.stdout}${out.stderr}`;
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
  // pg_authid's rows as stored: its file, its pages, the WAL.
  "select pg_read_binary_file('global/1260')",
  "select get_raw_page('pg_authid', 0)",
  "copy (select 1) to program 'cat global/1260'",
  "select * from pg_logical_slot_peek_changes('s', null, null)",
];

describe.each([
  ['no rule', () => open, true],
  // A configured block (no-file-access, sluice:opaque-code) that matches is what the client is told.
  ['the recommended policy', () => policed, false],
])('with %s', (_label, arena, always) => {
  it.each(refused)('refuses %s', async (sql) => {
    const bytes = await tunnel(arena(), sql);
    expect(bytes).not.toMatch(LEAKS);
    expect(bytes).toContain('42501');
    if (always || bytes.includes('sluice:credentials')) {
      expect(bytes).toContain('sluice:credentials');
      expect(bytes).toMatch(/rolpassword|passwd|umoptions|subconninfo/);
    }
  });

  it.each([
    'select rolname, rolsuper, rolcanlogin from pg_roles',
    'select * from pg_roles',
    'select rolname, rolcanlogin from pg_authid',
    'select usename from pg_user',
    'select rolname from pg_authid a where a.rolcanlogin',
  ])('lets the ordinary catalog read %s through', async (sql) => {
    const bytes = await tunnel(arena(), sql);
    expect(bytes).not.toMatch(LEAKS);
    expect(bytes).not.toContain('42501');
    expect(bytes).toContain('T'); // RowDescription
  });

  it("direct mode: refused the same, psql's \\du still works", async () => {
    for (const sql of ['select rolname, rolpassword from pg_authid', 'select * from pg_shadow', 'select row_to_json(a) from pg_authid a']) {
      const out = await direct(arena(), sql);
      expect(out).not.toMatch(LEAKS);
      expect(out).toContain('sluice:credentials');
    }
    const du = await direct(arena(), '\\du');
    expect(du).toContain(cluster.roles.superuser.user);
    expect(du).not.toContain('ERROR');
  });

  it('the audit trail holds no verifier or hash', () => {
    expect(arena().auditContains('SCRAM-SHA-256$')).toBe(false);
  });
});

it('the target does hold verifiers and hashes the corpus would have shown', async () => {
  const r = await open.admin.query('select rolpassword from pg_authid where rolpassword is not null');
  expect(r.rows.map((x: { rolpassword: string }) => x.rolpassword).join(' ')).toMatch(LEAKS);
});
