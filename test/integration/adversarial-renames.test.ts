// Adversarial corpus, class "other names for protected rows": a block rule on reading a table
// (`statements: [select], tables: [vault.secrets], match: all`, as docs/policy.md shows it) and
// no rule against DDL, so the attacker may alter tables. Each attack gives the rows a name the
// rule does not list (RENAME, SET SCHEMA, a renamed schema, inheritance, a partition, views,
// copies, cursors, quoting) or reads them with a statement of another kind (COPY … TO); what the
// client received is checked for the secret, and the target for the name change.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PolicyInput } from '../../gateway/policy/index.js';
import { startArena, type Arena } from '../support/arena.js';

const cluster = inject('pgCluster');

const SECRET = 'TOPSECRET-ONE';
const SCHEMA = `
  create schema vault;
  create table vault.secrets (id int, body text);
  insert into vault.secrets values (1, '${SECRET}');
  create table vault.notes (id int, body text);
  insert into vault.notes values (1, 'plain note');
`;
const POLICY: PolicyInput = { rules: [{ id: 'no-secrets', block: { statements: ['select'], tables: ['vault.secrets'], match: 'all' } }] };

/** Each attack: statements sent one Query each, in order. */
const ATTACKS: readonly (readonly string[])[] = [
  ['copy vault.secrets to stdout'],
  ['copy vault.secrets (body) to stdout with (format csv, header)'],
  ['copy (select * from vault.secrets) to stdout'],
  ['alter table vault.secrets rename to plain', 'select * from vault.plain'],
  ['alter table if exists vault.secrets rename to plain', 'table vault.plain'],
  ['alter schema vault rename to v2', 'select * from v2.secrets'],
  ['alter table vault.secrets set schema public', 'select * from public.secrets'],
  ['create table par (id int, body text)', 'alter table vault.secrets inherit par', 'select * from par'],
  ['create table pl (id int, body text) partition by list (id)', 'alter table pl attach partition vault.secrets for values in (1)', 'select * from pl'],
  ['select * from U&"v\\0061ult"."secrets"'],
  ['select * from "vault".SECRETS'],
  ['select * from vault.secrets where false union all select * from vault.secrets'],
  ["select query_to_xml('select * from vault.secrets', true, true, '')"],
  ["select table_to_xml('vault.secrets', true, false, '')"],
  ['begin', 'declare c cursor for select * from vault.secrets', 'fetch all from c'],
  ['create view vv as select * from vault.secrets', 'select * from vv'],
  ['create materialized view mv as select * from vault.secrets', 'select * from mv'],
  ['create table cp as select * from vault.secrets', 'select * from cp'],
  ['select * into cp2 from vault.secrets', 'select * from cp2'],
  ['insert into vault.notes select * from vault.secrets', 'select * from vault.notes'],
  ['update vault.notes set body = (select body from vault.secrets limit 1) where id = 1', 'select * from vault.notes'],
  ["insert into vault.notes values (9, 'x') returning (select body from vault.secrets limit 1)"],
  ['update vault.secrets set id = id where id = 1 returning body'],
  ['begin', 'delete from vault.secrets where id = 1 returning *'],
  ['with w as (update vault.notes set id = id where id = 1 returning (select body from vault.secrets limit 1)) select * from w'],
  ["create function f() returns setof text language sql as 'select body from vault.secrets'", 'select f()'],
  ['with x as (select * from vault.secrets) select * from x'],
  ['prepare p as select * from vault.secrets', 'execute p'],
  ['set search_path = vault, public', 'select * from secrets'],
  ['select * from vault.secrets tablesample system (100)'],
  ['table vault.secrets'],
  ['values ((select body from vault.secrets))'],
  ['select * from rows from (generate_series(1, 1)) g, vault.secrets'],
];

describe('other names for rows a rule blocks reading', () => {
  let arena: Arena;
  beforeAll(async () => {
    arena = await startArena(cluster, { prefix: 'adv_renames', schema: SCHEMA, policy: POLICY });
  });
  afterAll(async () => {
    await arena?.stop();
  });

  it.each(ATTACKS.map((a) => [a.join('; '), a] as const))('%s', async (_, statements) => {
    const r = await arena.psql(statements);
    const out = r.stdout + r.stderr;
    expect(out).not.toContain(SECRET);
    expect(r.stderr).toContain('blocked by rule no-secrets');
    const at = await arena.admin.query("select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relname in ('secrets', 'plain') and c.relkind = 'r'");
    expect(at.rows).toEqual([{ nspname: 'vault', relname: 'secrets' }]);
    // Attaching the table to a parent is allowed (reads of the parent are blocked): undo it for the next attack.
    const parents = await arena.admin.query<{ parent: string; partitioned: boolean }>("select i.inhparent::regclass::text as parent, c.relkind = 'p' as partitioned from pg_inherits i join pg_class c on c.oid = i.inhparent where i.inhrelid = 'vault.secrets'::regclass");
    for (const p of parents.rows) await arena.admin.query(p.partitioned ? `alter table ${p.parent} detach partition vault.secrets` : `alter table vault.secrets no inherit ${p.parent}`);
  });

  it('what the rule does not cover keeps working', async () => {
    const ok = await arena.psql([
      'copy vault.notes to stdout',
      'alter table vault.notes rename to notes2',
      'alter table vault.notes2 rename to notes',
      'alter table vault.secrets add column tag text',
      "insert into vault.secrets (id, body) values (2, 'written blind')",
      'copy vault.secrets (id, body) from stdin',
      'select count(*) from vault.notes',
    ], [], '3\tfrom stdin\n\\.\n');
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toContain('plain note');
    expect((await arena.admin.query('select count(*)::int as n from vault.secrets')).rows[0]).toEqual({ n: 3 });
  });

  it('nothing reached the audit store', () => {
    expect(arena.auditContains(SECRET)).toBe(false);
  });
});

describe('other names for functions a rule blocks', () => {
  let arena: Arena;
  beforeAll(async () => {
    arena = await startArena(cluster, { prefix: 'adv_fn_renames', policy: { rules: [{ id: 'no-file-access', block: { functions: ['pg_read_file', 'pg_read_binary_file', 'pg_ls_dir', 'pg_stat_file', 'lo_*'] } }] } });
  });
  afterAll(async () => {
    await arena?.stop();
  });

  it.each([
    ['alter function pg_catalog.pg_read_file(text) rename to rf', "select rf('/etc/passwd')"],
    ['alter function pg_catalog.pg_read_binary_file(text) rename to rbf', "select convert_from(rbf('/etc/passwd'), 'utf8')"],
    ['alter routine pg_catalog.pg_stat_file(text) rename to sf', "select sf('/etc/passwd')"],
    ['alter function pg_catalog.lo_import(text) rename to li', "select li('/etc/passwd')"],
    ['alter function pg_catalog.pg_ls_dir(text) set schema public', "select public.pg_ls_dir('/')"],
  ])('%s', async (rename, use) => {
    const r = await arena.psql([rename, use]);
    expect(r.stdout + r.stderr).not.toMatch(/root:|\d{4}-\d\d-\d\d|^\d+$/m);
    // A rename is refused by the rule (the use then names no function); a move keeps the name the rule matches.
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('ERROR:'));
    if (rename.includes(' rename ')) expect(errors).toEqual([expect.stringContaining('blocked by rule no-file-access'), expect.stringMatching(/function \w+\(unknown\) does not exist/)]);
    else expect(errors).toEqual([expect.stringContaining('blocked by rule no-file-access: function public.pg_ls_dir')]);
    const renamed = await arena.admin.query("select proname from pg_proc where proname in ('rf', 'rbf', 'sf', 'li')");
    expect(renamed.rows).toEqual([]);
  });

  it('the attack works on the target directly (the corpus is not vacuous)', async () => {
    await arena.admin.query('begin');
    try {
      await arena.admin.query('alter function pg_catalog.pg_read_file(text) rename to rf');
      const r = await arena.admin.query<{ rf: string }>("select rf('/etc/passwd')");
      expect(r.rows[0]?.rf).toContain('root:');
    } finally {
      await arena.admin.query('rollback');
    }
  });
});
