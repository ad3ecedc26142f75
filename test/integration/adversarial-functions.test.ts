// Adversarial corpus, class "functions named where the policy does not look for them": a real
// gateway with the recommended policy (plus a table rule), a real tunnel, real psql, and a
// database whose role is a superuser. Every attack tries to read a file only the server can read
// (its random token must never reach the client or the audit store), create a large object,
// define an object that runs a blocked function, or run SQL text through a built-in. Operators,
// aggregates and a type with a cast that run blocked functions are pre-created by the
// administrator, outside the gateway. The effects are checked on the target directly.
// The attacks run twice: under the recommended policy, and under it without its column masks, where
// a masked session's refusals of code and SQL text it cannot trace (sluice:masked-*) do not come
// first, so the refusals shown are this class's own.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { decodeErrorFields } from '../../gateway/engines/postgres/codec/backend.js';
import { RECOMMENDED_POLICY, startArena, type Arena } from '../support/arena.js';
import { build } from '../unit/postgres/builder.js';

const cluster = inject('pgCluster');
const TOKEN = `file-token-${randomBytes(8).toString('hex')}`;
const VAULT = `vault-secret-${randomBytes(8).toString('hex')}`;
const FILE = `/tmp/sluice-arena-${randomBytes(6).toString('hex')}.txt`;

/** What the administrator defined before the attacker came: each runs a blocked function. */
const ADMIN_OBJECTS = `
  create operator ### (function = pg_catalog.pg_read_file, rightarg = text);
  create operator #? (function = pg_catalog.pg_stat_file, leftarg = text, rightarg = boolean);
  create aggregate rd(text) (sfunc = textcat, stype = text, initcond = '', finalfunc = pg_catalog.pg_read_file);
  create aggregate mklo(bytea) (sfunc = pg_catalog.lo_from_bytea, stype = oid, initcond = '0');
  create type ft;
  create function ft_in(cstring) returns ft language internal immutable strict as 'textin';
  create function ft_out(ft) returns cstring language internal immutable strict as 'textout';
  create type ft (input = ft_in, output = ft_out, like = text);
  create cast (ft as text) without function as implicit;
  create cast (ft as bytea) with function pg_catalog.pg_read_binary_file(text);
  create function read_cfg(p text) returns text language sql as $$ select pg_read_file(p) $$;
  create function read_cfg_atomic() returns text begin atomic select read_cfg('${FILE}'); end;
  create function read_cfg_pl(p text) returns text language plpgsql as $$ declare t text; begin t := pg_read_file(p); return t; end $$;
  create function read_cfg_pl_outer(p text) returns text language plpgsql as $$ begin return read_cfg_pl(p); end $$;
  create function run_text(q text) returns void language plpgsql as $$ begin execute q; end $$;
  create schema vault;
  create table vault.secrets (id int, secret text);
  insert into vault.secrets values (1, '${VAULT}');
  copy (select '${TOKEN}') to '${FILE}';
`;

const POLICY = { rules: [...(RECOMMENDED_POLICY.rules ?? []), { id: 'no-secrets', block: { tables: ['secrets'] } }] };
const UNMASKED_POLICY = { rules: POLICY.rules.filter((r) => !('mask' in r)) };

/** Definitions the attacker tries: none of them may exist afterwards. */
const DEFINITIONS: readonly string[] = [
  'CREATE OPERATOR ~#~ (FUNCTION = pg_read_file, RIGHTARG = text)',
  'CREATE OPERATOR ~## (PROCEDURE = pg_catalog.pg_read_file, RIGHTARG = text)',
  'CREATE OPERATOR ~#@ ("function" = "pg_read_file", RIGHTARG = text)',
  "create operator ~#! (function = 'pg_read_file', rightarg = text)",
  'CREATE OPERATOR ~#% (FUNCTION = textcat, LEFTARG = text, RIGHTARG = text, RESTRICT = pg_ls_dir)',
  'CREATE OPERATOR ~#^ (FUNCTION = /* */ PG_CATALOG . PG_STAT_FILE, LEFTARG = text, RIGHTARG = boolean)',
  'CREATE AGGREGATE evil_agg1(text) (SFUNC = textcat, STYPE = text, FINALFUNC = pg_read_file)',
  "CREATE AGGREGATE evil_agg2(bytea) (SFUNC = lo_from_bytea, STYPE = oid, INITCOND = '0')",
  'CREATE AGGREGATE evil_agg3(text) (SFUNC = textcat, STYPE = text, MSFUNC = textcat, MINVFUNC = pg_read_file, MSTYPE = text)',
  'CREATE AGGREGATE evil_agg4 (BASETYPE = text, SFUNC = textcat, STYPE = text, FINALFUNC = pg_catalog.pg_read_file)',
  'CREATE AGGREGATE evil_agg5(text) (SFUNC = textcat, STYPE = text, COMBINEFUNC = lo_import, PARALLEL = SAFE)',
  'CREATE AGGREGATE evil_agg6(text) (SFUNC = ts_rewrite, STYPE = tsquery)',
  'CREATE CAST (ft AS json) WITH FUNCTION pg_read_file(text)',
  'CREATE TYPE evil_type (INPUT = pg_read_file, OUTPUT = textout)',
  'CREATE OPERATOR CLASS evil_opc FOR TYPE ft USING hash AS FUNCTION 1 pg_read_file(text)',
  'CREATE TRANSFORM FOR ft LANGUAGE sql (FROM SQL WITH FUNCTION pg_read_file(text))',
  "CREATE CONVERSION evil_conv FOR 'UTF8' TO 'LATIN1' FROM pg_read_file",
  'CREATE LANGUAGE evil_lang HANDLER pg_read_file',
  'CREATE FOREIGN DATA WRAPPER evil_fdw HANDLER pg_read_file',
  'CREATE ACCESS METHOD evil_am TYPE TABLE HANDLER pg_read_file',
  'CREATE TEXT SEARCH TEMPLATE evil_tst (LEXIZE = pg_read_file)',
  'CREATE TEXT SEARCH PARSER evil_tsp (START = pg_read_file, GETTOKEN = prsd_nexttoken, END = prsd_end, LEXTYPES = prsd_lextype)',
  "CREATE FUNCTION evil_sup(text) RETURNS text SUPPORT pg_read_file LANGUAGE sql AS 'SELECT $1'",
];

/** Uses of what the administrator defined, and built-ins that run SQL text. */
const USES: readonly string[] = [
  `SELECT ### '${FILE}'`,
  `select ###'${FILE}'`,
  `SELECT OPERATOR(public.###) '${FILE}'`,
  `SELECT length(### '${FILE}') > 0`,
  `SELECT 1 WHERE length(### '${FILE}') > 0`,
  `WITH r AS (SELECT ### '${FILE}' AS t) SELECT * FROM r`,
  `SELECT (SELECT ### '${FILE}')`,
  `SELECT 'x' = ANY (SELECT ### '${FILE}')`,
  `SELECT ### "x" FROM (SELECT '${FILE}' AS "x") s`,
  `SELECT x FROM (VALUES ('${FILE}')) v(x) ORDER BY ### x`,
  `SELECT '${FILE}' #? false`,
  `SELECT rd(x) FROM (VALUES ('${FILE}')) v(x)`,
  `SELECT public.rd(x) FROM (VALUES ('${FILE}')) v(x)`,
  `SELECT "rd"(x) OVER () FROM (VALUES ('${FILE}')) v(x)`,
  "SELECT mklo('x'::bytea)",
  `SELECT convert_from(('${FILE}'::ft)::bytea, 'UTF8')`,
  `SELECT convert_from(CAST(CAST('${FILE}' AS public.ft) AS bytea), 'UTF8')`,
  `EXPLAIN ANALYZE SELECT ### '${FILE}'`,
  `COPY (SELECT ### '${FILE}') TO STDOUT`,
  `PREPARE p1 AS SELECT ### $1`,
  `CREATE VIEW evil_view AS SELECT ### '${FILE}' AS t`,
  `CREATE FUNCTION evil_fn() RETURNS text LANGUAGE sql AS $$ SELECT ### '${FILE}' $$`,
  `SELECT (x).pg_read_file FROM (VALUES ('${FILE}')) v(x)`,
  `SELECT ('${FILE}'::text)."pg_read_file"`,
  `SELECT ('${FILE}'::text).PG_READ_FILE AS t`,
  `SELECT ('SELECT to_tsvector(pg_read_file(''${FILE}''))'::text).ts_stat`,
  `SELECT read_cfg('${FILE}')`,
  'SELECT public.read_cfg_atomic()',
  `SELECT * FROM read_cfg('${FILE}')`,
  `SELECT read_cfg_pl('${FILE}')`,
  `SELECT public.read_cfg_pl_outer('${FILE}')`,
  `SELECT run_text('SELECT pg_read_file(''${FILE}'')')`,
  `SELECT query_to_xml('SELECT pg_read_file(''${FILE}'')', true, true, '')`,
  `SELECT query_to_xml($q$SELECT ### '${FILE}'$q$, true, true, '')`,
  `SELECT * FROM ts_stat('SELECT to_tsvector(pg_read_file(''${FILE}''))')`,
  `SELECT * FROM PG_CATALOG."ts_stat"($q$SELECT to_tsvector(### '${FILE}')$q$)`,
  `SELECT ts_rewrite('a'::tsquery, 'SELECT to_tsquery(pg_read_file(''${FILE}'')), ''b''::tsquery')`,
  `SELECT * FROM ts_stat('SELECT to_tsvector(pg_read_file(' || quote_literal('${FILE}') || '))')`,
  `SELECT ts_rewrite('a'::tsquery, format('SELECT to_tsquery(pg_read_file(%L)), ''b''::tsquery', '${FILE}'))`,
  `SELECT query_to_xml(current_setting('application_name'), true, true, '')`,
  `SELECT query_to_xml(nulls => true, query => 'SELECT pg_read_file(''${FILE}'')', tableforest => true, targetns => '')`,
  "SELECT query_to_xml('DELETE FROM orders RETURNING 1', true, true, '')",
  "SELECT database_to_xml(true, true, '')",
  "SELECT schema_to_xml('vault', true, true, '')",
  "SELECT schema_to_xml(nspname, true, true, '') FROM pg_namespace WHERE nspname = 'vault'",
  "SELECT table_to_xml('vault.secrets', true, true, '')",
];

const STILL_ALLOWED: readonly [sql: string, expected: string][] = [
  ['SELECT lower(name) FROM customers WHERE id = 1', 'ada'],
  ['SELECT count(*) FROM orders WHERE amount BETWEEN 10 AND 50', '5'],
  ["SELECT id FROM customers WHERE name = ANY (ARRAY['Grace']) ORDER BY id USING <", '2'],
  ["SELECT 'a'::text || 'b'", 'ab'],
  ["SELECT ts_rewrite('a & b'::tsquery, 'a'::tsquery, 'c'::tsquery)", "'b' & 'c'"],
  ["SELECT 'ok'::ft::text", 'ok'],
];

/**
 * SQL text run by a built-in, reading no blocked function: allowed where no column is masked. In a
 * masked session the text's result columns cannot be traced to their tables, so it is refused there
 * (sluice:masked-catalog, sluice:masked-derivation), whatever it reads.
 */
const SQL_TEXT_ALLOWED: readonly [sql: string, expected: string][] = [
  ["SELECT query_to_xml('SELECT id FROM orders WHERE id = 1', true, true, '') IS NOT NULL", 't'],
  ["SELECT count(*) FROM ts_stat('SELECT to_tsvector(name) FROM customers')", '3'],
];

let arena: Arena;
let unmasked: Arena;
const largeObjects = new Map<Arena, number>();

const adminValue = async (sql: string, on = arena): Promise<unknown> => Object.values((await on.admin.query(sql)).rows[0] as object)[0];

beforeAll(async () => {
  arena = await startArena(cluster, { prefix: 'adv_functions', policy: POLICY, schema: ADMIN_OBJECTS });
  unmasked = await startArena(cluster, { prefix: 'adv_functions_unmasked', policy: UNMASKED_POLICY, schema: ADMIN_OBJECTS });
  for (const on of [arena, unmasked]) largeObjects.set(on, Number(await adminValue('select count(*) from pg_largeobject_metadata', on)));
});

afterAll(async () => {
  await arena?.stop();
  await unmasked?.stop();
  rmSync(FILE, { force: true });
});

/** Runs `sql` through the tunnel and checks it was refused with 42501 and leaked nothing. */
async function refused(sql: string, on = arena): Promise<string> {
  const r = await on.psql(sql, ['-v', 'VERBOSITY=verbose']);
  const out = r.stdout + r.stderr;
  expect(r.code, `${sql}\n${out}`).not.toBe(0);
  expect(out).toMatch(/ERROR:\s+42501/);
  expect(out, 'the case must parse: it is about the policy, not the grammar').not.toContain('sluice:unparseable');
  expect(out).not.toContain(TOKEN);
  expect(out).not.toContain(VAULT);
  if (on === unmasked) expect(out, 'no mask rule may be what refuses it').not.toMatch(/sluice:masked-/);
  return out;
}

describe('the attacks would work without the gateway', () => {
  it('the administrator’s objects read the file and make large objects', async () => {
    expect(await adminValue(`select ### '${FILE}'`)).toContain(TOKEN);
    expect(await adminValue(`select rd(x) from (values ('${FILE}')) v(x)`)).toContain(TOKEN);
    expect(await adminValue(`select convert_from(('${FILE}'::ft)::bytea, 'UTF8')`)).toContain(TOKEN);
  });
});

/** Each attack runs in both arenas: the second shows this class's own refusals, with no mask rule to come first. */
const ARENAS: readonly [policy: string, on: () => Arena][] = [
  ['the recommended policy', () => arena],
  ['the recommended policy without column masks', () => unmasked],
];

describe.each(ARENAS)('under %s', (_policy, on) => {
  describe('definitions that name a blocked function are refused', () => {
    it.each(DEFINITIONS)('%s', async (sql) => {
      await refused(sql, on());
    });

    it('created nothing', async () => {
      const value = (sql: string) => adminValue(sql, on());
      expect(await value("select count(*)::int from pg_operator where oprname like '~#%'")).toBe(0);
      expect(await value("select count(*)::int from pg_proc where proname like 'evil%'")).toBe(0);
      expect(await value("select count(*)::int from pg_type where typname like 'evil%'")).toBe(0);
      expect(await value("select count(*)::int from pg_cast where casttarget = 'json'::regtype and castsource = 'ft'::regtype")).toBe(0);
      expect(await value("select (select count(*) from pg_opclass where opcname like 'evil%') + (select count(*) from pg_conversion where conname like 'evil%') + (select count(*) from pg_language where lanname like 'evil%') + (select count(*) from pg_foreign_data_wrapper where fdwname like 'evil%') + (select count(*) from pg_am where amname like 'evil%') + (select count(*) from pg_ts_template where tmplname like 'evil%') + (select count(*) from pg_ts_parser where prsname like 'evil%') + (select count(*) from pg_transform)")).toBe('0');
    });
  });

  describe('operators, aggregates, casts and SQL-running built-ins are calls', () => {
    it.each(USES)('%s', async (sql) => {
      await refused(sql, on());
      expect(on().auditContains(TOKEN)).toBe(false);
      expect(on().auditContains(VAULT)).toBe(false);
    });

    it('left the target as it was', async () => {
      const value = (sql: string) => adminValue(sql, on());
      expect(Number(await value('select count(*) from pg_largeobject_metadata'))).toBe(largeObjects.get(on()));
      expect(await value('select count(*)::int from orders')).toBe(9);
      expect(await value("select count(*)::int from pg_class where relname in ('evil_view')")).toBe(0);
      expect(await value("select count(*)::int from pg_proc where proname = 'evil_fn'")).toBe(0);
    });
  });

  describe('ordinary use keeps working', () => {
    it.each(STILL_ALLOWED)('%s', async (sql, expected) => {
      const r = await on().psql(sql);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim().toLowerCase()).toContain(expected.toLowerCase());
    });
  });
});

describe('SQL text run by a built-in', () => {
  it.each(SQL_TEXT_ALLOWED)('%s is allowed where no column is masked', async (sql, expected) => {
    const r = await unmasked.psql(sql);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().toLowerCase()).toContain(expected.toLowerCase());
  });

  it.each(SQL_TEXT_ALLOWED)('%s is refused in a masked session', async (sql) => {
    expect(await refused(sql)).toMatch(/sluice:masked-(catalog|derivation)/);
  });
});

// A masked session refuses CREATE OPERATOR and CREATE AGGREGATE whatever function they name
// (sluice:masked-derivation: code that runs where no statement names it), so what these show of
// this class — definitions judged by the functions they name — is shown where no column is masked.
describe('definitions over allowed functions, where no column is masked', () => {
  it('an operator defined through the gateway over an allowed function can be used', async () => {
    const r = await unmasked.psql(['CREATE OPERATOR ~~~> (FUNCTION = textcat, LEFTARG = text, RIGHTARG = text)', "SELECT 'a' ~~~> 'b'"]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('ab');
  });

  it('a definition naming its function in a literal is judged on its own, not as the shape it shares', async () => {
    const define = (fn: string) => `CREATE OR REPLACE AGGREGATE cache_agg(text) (SFUNC = 'textcat', STYPE = text, FINALFUNC = '${fn}')`;
    expect((await unmasked.psql(define('upper'))).stderr).toBe('');
    await refused(define('pg_read_file'), unmasked);
    expect(await adminValue("select aggfinalfn::text from pg_aggregate where aggfnoid = 'cache_agg'::regproc", unmasked)).toBe('pg_catalog.upper');
  });
});

describe('other protocols and placements', () => {
  it('refuses the operator in an extended-protocol Parse (pg driver) and keeps the session', async () => {
    const c = await arena.client();
    try {
      await expect(c.query({ text: 'SELECT ### $1::text AS t', values: [FILE] })).rejects.toMatchObject({ code: '42501' });
      await expect(c.query({ text: 'SELECT rd(x) FROM unnest($1::text[]) x', values: [[FILE]] })).rejects.toMatchObject({ code: '42501' });
      expect((await c.query('SELECT 40 + 2 AS v')).rows).toEqual([{ v: 42 }]);
    } finally {
      await c.end();
    }
  });

  it('refuses a use pipelined behind a harmless statement in one write, and runs neither', async () => {
    const frame = (q: string) => build().raw(Buffer.concat([Buffer.from(q), Buffer.from([0])])).typed('Q');
    const c = await arena.raw();
    try {
      c.send(Buffer.concat([frame('SELECT 1'), frame(`SELECT 1; SELECT ### '${FILE}'`), frame(`SELECT convert_from(('${FILE}'::ft)::bytea, 'UTF8')`)]));
      const msgs = await c.until(3);
      const bytes = Buffer.concat(msgs.map((m) => m.body)).toString('latin1');
      expect(bytes).not.toContain(TOKEN);
      const errors = msgs.filter((m) => m.type === 'E').map((m) => decodeErrorFields(m.body));
      expect(errors.map((e) => e.code)).toEqual(['42501', '42501']);
    } finally {
      c.close();
    }
  });
});

describe('functions: { allow: [...] } for an agent connection', () => {
  let allowArena: Arena;
  const ALLOW_POLICY = {
    rules: [
      { id: 'agent-functions', block: { functions: { allow: ['lower', 'upper', 'count', 'sum', 'now', 'coalesce', 'query_to_xml'] } } },
      { id: 'no-unbounded-writes', block: { unboundedWrites: true } },
    ],
  };

  beforeAll(async () => {
    allowArena = await startArena(cluster, { prefix: 'adv_functions_allow', policy: ALLOW_POLICY, schema: ADMIN_OBJECTS.replace(/copy \(select[^;]*;/, '') });
  });

  afterAll(async () => {
    await allowArena?.stop();
  });

  it.each([
    ['SELECT lower(name) FROM customers WHERE id = 1', 'ada'],
    ['SELECT count(*), sum(amount) FROM orders WHERE amount > 10 AND id IN (SELECT id FROM orders) ORDER BY 1', '8|440'],
    ["SELECT upper(coalesce(name, 'x')) FROM customers WHERE name LIKE 'G%' OR id BETWEEN 5 AND 6", 'grace'],
    ["SELECT now() > '2000-01-01'::timestamptz, 1::text, '2'::int", 't|1|2'],
    ["SELECT query_to_xml('SELECT count(*) FROM orders', true, true, '') IS NOT NULL", 't'],
    ['SELECT c.name FROM customers c WHERE c.id = 3', 'edsger'],
  ])('allows %s', async (sql, expected) => {
    const r = await allowArena.psql(sql);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().toLowerCase()).toBe(expected);
  });

  it.each([
    'SELECT md5(name) FROM customers',
    'SELECT version()',
    "SELECT lower(pg_catalog.current_setting('data_directory'))",
    `SELECT ### '${FILE}'`,
    `SELECT rd(x) FROM (VALUES ('${FILE}')) v(x)`,
    `SELECT convert_from(('${FILE}'::ft)::bytea, 'UTF8')`,
    "SELECT query_to_xml('SELECT pg_read_file(''/etc/hostname'')', true, true, '')",
    'CREATE OPERATOR ~#& (FUNCTION = textcat, LEFTARG = text, RIGHTARG = text)',
    "CREATE FUNCTION md5_of(text) RETURNS text LANGUAGE sql AS 'SELECT md5($1)'",
    'SELECT count(*) FROM orders GROUP BY id HAVING max(amount) > 0',
    'SELECT c.to_json FROM customers c',
    'SELECT (c.name).md5 FROM customers c',
  ])('refuses %s', async (sql) => {
    const r = await allowArena.psql(sql);
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toContain('sluice:unparseable');
    expect(r.stderr).toContain('agent-functions');
    expect(r.stderr).toContain('not in the allow list');
  });

  it('refuses a function shadowing an allowed built-in with a body that calls another', async () => {
    // The parse-state gate refuses the name first (lower is a built-in it trusts not to change
    // client_encoding); the allow list refuses the body, as md5_of above shows on its own.
    const r = await allowArena.psql("CREATE FUNCTION lower(text) RETURNS text LANGUAGE sql AS 'SELECT md5($1)'");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ERROR:\s+blocked by rule (agent-functions|sluice:parse-state)/);
  });

  it('created nothing', async () => {
    expect(await allowArena.admin.query("select count(*)::int as n from pg_operator where oprname = '~#&'")).toMatchObject({ rows: [{ n: 0 }] });
    expect(await allowArena.admin.query("select count(*)::int as n from pg_proc where proname = 'md5_of'")).toMatchObject({ rows: [{ n: 0 }] });
    expect(await allowArena.admin.query("select count(*)::int as n from pg_proc where proname = 'lower' and pronamespace <> 'pg_catalog'::regnamespace")).toMatchObject({ rows: [{ n: 0 }] });
  });
});
