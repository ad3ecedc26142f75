// Adversarial corpus, class "masked values by a side door": statements that copy a masked value
// where it could be read back unmasked (tables, views, functions, settings, notifications,
// sequences, server files, rules, triggers, renames), catalog objects that expose stored values,
// and the detector backstop on errors, notices and notifications. Each case goes through the real
// gateway (recommended policy: customers.email and customers.card_number masked) and a real
// `sluice connect` tunnel, then checks the effect on the target directly (nothing created, no row
// written, no notification sent), the client's bytes and the audit store. Allowed cases show the
// product stays usable. A second arena whose policy has the mask rules alone shows this class's
// own refusals where the recommended block rules (files, DDL, parsing state, opaque code) refuse
// the same statement first.
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { build } from '../unit/postgres/builder.js';
import { RECOMMENDED_POLICY, SECRET_CARDS, SECRET_EMAILS, startArena, type Arena } from '../support/arena.js';
import { waitFor, type RawMessage } from '../support/pgEngineHarness.js';

const cluster = inject('pgCluster');
const SECRETS = [...SECRET_EMAILS, ...SECRET_CARDS];

const SCHEMA = `
  create table archive (id int, note text);
  insert into archive values (1, 'seed'), (2, 'seed'), (3, 'seed');
  create view contacts as select id, email as reach from customers;
  create sequence leak_seq;
  create table customers_archive () inherits (customers);
  insert into customers_archive values (5, 'Old Ada', '${SECRET_EMAILS[0]}', '${SECRET_CARDS[0]}');
  create function admin_fn() returns text language sql as $$ select email from customers where id = 2 $$;
  create function audit_log(t text) returns bool language plpgsql as $$ begin insert into archive values (99, t); return true; end $$;
  create schema shadow;
  create view shadow.orders as select id, email as memo from customers;
  create function shout() returns int language plpgsql as $$
    begin raise notice 'contact %', (select email from customers where id = 1); return 1; end $$;
  create table guestbook (id int);
  create function greet() returns trigger language plpgsql as $$
    begin raise notice 'contact %', (select email from customers where id = 1); return new; end $$;
  create trigger greet after insert on guestbook for each row execute function greet();
  create extension pageinspect;
`;

/** The recommended policy's mask rules without its block and review rules. */
const MASKS_ONLY = { ...RECOMMENDED_POLICY, rules: (RECOMMENDED_POLICY.rules ?? []).filter((r) => 'mask' in r) };

let arena: Arena;
let listener: pg.Client;
const heard: { channel: string; payload: string | undefined }[] = [];

beforeAll(async () => {
  arena = await startArena(cluster, { prefix: 'exfil', schema: SCHEMA });
  // A setting the server hands back unasked for: a FunctionCall result with no source column.
  await arena.admin.query(`ALTER DATABASE "${arena.database}" SET app.contact = '${SECRET_EMAILS[2]}'`);
  listener = directClient();
  await listener.connect();
  listener.on('notification', (n) => heard.push({ channel: n.channel, payload: n.payload }));
  await listener.query('LISTEN leak; LISTEN ok; LISTEN marker');
});

afterAll(async () => {
  await listener?.end();
  await arena?.stop();
});

function directClient(): pg.Client {
  const a = arena.admin;
  return new pg.Client({ host: a.host, port: a.port, user: a.user, database: a.database, ...(a.password !== undefined && a.password !== null ? { password: a.password } : {}) });
}

const one = async (sql: string) => (await arena.admin.query(sql)).rows[0] as Record<string, unknown>;
const exists = async (regclass: string) => (await one(`select to_regclass('${regclass}') is not null as e`)).e as boolean;
const archiveUntouched = async () => expect(await one("select count(*)::int as n, count(*) filter (where note <> 'seed')::int as changed from archive")).toEqual({ n: 3, changed: 0 });

function expectNoSecret(...texts: string[]): void {
  for (const s of SECRETS) {
    for (const t of texts) expect(t).not.toContain(s);
    expect(arena.auditContains(s)).toBe(false);
  }
}

/** Runs statements through the tunnel; expects the last to be refused by `rule` (any rule when undefined). */
async function refused(statements: string | string[], rule?: string): Promise<string> {
  const r = await arena.psql(statements);
  expectNoSecret(r.stdout, r.stderr);
  expect(r.stderr).toMatch(rule === undefined ? /blocked by rule/ : new RegExp(`blocked by rule ${rule}`));
  return r.stdout;
}

describe('copies of masked values are refused before they reach the target', () => {
  const COPY = 'sluice:masked-copy';
  it.each([
    ['CREATE TABLE … AS', 'CREATE TABLE leak1 AS SELECT email FROM customers', 'leak1'],
    ['SELECT … INTO', 'SELECT email, card_number INTO leak2 FROM customers', 'leak2'],
    ['CREATE MATERIALIZED VIEW', 'CREATE MATERIALIZED VIEW leak3 AS SELECT * FROM customers', 'leak3'],
    ['CREATE TABLE … AS TABLE', 'create table leak4 as table public.customers', 'leak4'],
    ['CREATE VIEW over a masked column', 'CREATE VIEW leak5 AS SELECT id, lower(email) AS e FROM customers', 'leak5'],
    ['CREATE TABLE AS from a view over a masked column', 'CREATE TABLE leak6 AS SELECT * FROM contacts', 'leak6'],
    ['EXPLAIN ANALYZE CREATE TABLE AS', 'EXPLAIN ANALYZE CREATE TABLE leak7 AS SELECT email FROM customers', 'leak7'],
    ['temporary table, quoted and commented', 'CREATE /* x */ TEMP TABLE "leak8" AS SELECT "EMAIL" FROM (SELECT email AS "EMAIL" FROM customers) s', 'pg_temp.leak8'],
  ])('%s', async (_name, sql, relation) => {
    await refused(sql, COPY);
    expect(await exists(relation)).toBe(false);
  });

  it.each([
    ['INSERT … SELECT', 'INSERT INTO archive SELECT id, email FROM customers'],
    ['INSERT … VALUES ((subquery))', 'INSERT INTO archive VALUES (7, (SELECT card_number FROM customers WHERE id = 1))'],
    ['a whole-row reference', 'INSERT INTO archive SELECT id, c::text FROM customers c'],
    ['row_to_json of the row', 'INSERT INTO archive SELECT id, row_to_json(c)::text FROM customers AS c'],
    ['a field of a whole row', 'INSERT INTO archive SELECT id, (c).card_number FROM customers c'],
    ['NATURAL JOIN', 'INSERT INTO archive SELECT o.id, o.amount::text FROM orders o NATURAL JOIN customers'],
    ['columns renamed by a FROM alias', 'INSERT INTO archive SELECT i, e FROM customers AS c(i, n, e)'],
    ['UPDATE … FROM', 'UPDATE archive a SET note = c.email FROM customers c WHERE c.id = a.id'],
    ['UPDATE … SET x = (subquery)', 'UPDATE archive SET note = (SELECT email FROM customers WHERE id = 1) WHERE id = 1'],
    ['MERGE … USING', 'MERGE INTO archive a USING customers c ON a.id = c.id WHEN MATCHED THEN UPDATE SET note = c.card_number'],
    ['a CTE feeding an INSERT', 'WITH x AS (SELECT email FROM customers) INSERT INTO archive SELECT 9, email FROM x'],
    ['a writable CTE', 'WITH x AS (INSERT INTO archive SELECT id, email FROM customers RETURNING 1) SELECT count(*) FROM x'],
    ['a view whose column is a masked one', 'INSERT INTO archive SELECT id, reach FROM contacts'],
    ['COPY (INSERT … RETURNING) TO STDOUT', 'COPY (INSERT INTO archive SELECT id, email FROM customers RETURNING id) TO STDOUT'],
  ])('%s', async (_name, sql) => {
    await refused(sql, COPY);
    await archiveUntouched();
  });

  it('from a child table of the masked one (it holds rows the parent returns)', async () => {
    await refused('INSERT INTO archive SELECT id, email FROM customers_archive', COPY);
    await archiveUntouched();
  });

  it('through a view the session finds first on its own search_path', async () => {
    const r = await arena.psql(['SET search_path = shadow, public', 'INSERT INTO archive SELECT id, memo FROM orders']);
    expectNoSecret(r.stdout, r.stderr);
    expect(r.stderr).toMatch(/blocked by rule sluice:masked-copy: .*orders\.memo/);
    await archiveUntouched();
  });

  it('a function written in the database that reads masked data, called by a write', async () => {
    await refused('INSERT INTO archive SELECT 1, admin_fn()', COPY);
    await archiveUntouched();
  });

  it('a masked column handed to a function written in the database (which stores it)', async () => {
    await refused('SELECT audit_log(email) FROM customers', COPY);
    await refused('SELECT audit_log(c::text) FROM customers c', COPY);
    await archiveUntouched();
  });

  it('UPDATE copying a masked column into an unmasked one', async () => {
    await refused('UPDATE customers SET name = email WHERE id = 1', COPY);
    expect(await one('select name from customers where id = 1')).toEqual({ name: 'Ada' });
  });

  it('UPDATE of a reviewed table with a masked value is refused, not held for review', async () => {
    await refused("UPDATE payments SET note = (SELECT email FROM customers WHERE id = 1) WHERE id = 1", COPY);
    expect(await one('select note from payments where id = 1')).toEqual({ note: 'first' });
  });

  it('a write whose WHERE reads a masked column (an oracle that changes data)', async () => {
    await refused("DELETE FROM customers WHERE email LIKE 'a%'", COPY);
    expect(await one('select count(*)::int as n from only customers')).toEqual({ n: 3 });
  });

  it('pg_notify with a masked payload', async () => {
    await refused("SELECT pg_notify('leak', email) FROM customers", COPY);
    await arena.admin.query("NOTIFY marker, 'after pg_notify'");
    await waitFor('the marker notification', () => heard.some((n) => n.channel === 'marker'));
    expect(heard.filter((n) => n.channel === 'leak')).toEqual([]);
  });

  it('set_config read back with current_setting in the same session', async () => {
    const out = await arena.psql(["SELECT set_config('leak.v', email, false) FROM customers WHERE id = 1", "SELECT coalesce(current_setting('leak.v', true), 'unset')"]);
    expectNoSecret(out.stdout, out.stderr);
    expect(out.stderr).toMatch(/blocked by rule sluice:masked-copy/);
    expect(out.stdout.trim()).toBe('unset');
  });

  it('setval stores a value derived from a masked column', async () => {
    await refused("SELECT setval('leak_seq', ascii(card_number)) FROM customers WHERE id = 1", COPY);
    expect(await one('select last_value::int as v, is_called from leak_seq')).toEqual({ v: 1, is_called: false });
  });

  it.each([
    ['a SQL function reading a masked column', 'CREATE FUNCTION leak_fn() RETURNS SETOF text LANGUAGE sql AS $$ SELECT email FROM customers $$', 'leak_fn'],
    ['a SQL-standard function body', 'CREATE FUNCTION leak_std() RETURNS SETOF text LANGUAGE sql BEGIN ATOMIC SELECT card_number FROM customers; END', 'leak_std'],
  ])('%s', async (_name, sql, fn) => {
    await refused(sql, COPY);
    expect(await one(`select to_regproc('${fn}') is null as gone`)).toEqual({ gone: true });
  });

  it('an opaque PL/pgSQL function (refused as opaque code by the recommended block rules, and by masking without them)', async () => {
    await refused('CREATE FUNCTION leak_pl() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT email FROM customers LIMIT 1); END $$');
    expect(await one("select to_regproc('leak_pl') is null as gone")).toEqual({ gone: true });
  });

  it('a rule that copies masked values on a later plain INSERT', async () => {
    await refused('CREATE RULE leak_rule AS ON INSERT TO archive DO ALSO INSERT INTO archive SELECT id, email FROM customers', COPY);
    expect(await one("select count(*)::int as n from pg_rules where rulename = 'leak_rule'")).toEqual({ n: 0 });
  });

  it('a trigger on the masked table (refused for parsing state first; masks alone below)', async () => {
    await refused('CREATE TRIGGER leak_trg AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()');
    expect(await one("select count(*)::int as n from pg_trigger where tgname = 'leak_trg'")).toEqual({ n: 0 });
  });

  it('PREPARE of a copy, then EXECUTE', async () => {
    const out = await arena.psql(['PREPARE leak_p AS INSERT INTO archive SELECT id, email FROM customers', 'EXECUTE leak_p']);
    expectNoSecret(out.stdout, out.stderr);
    expect(out.stderr).toMatch(/blocked by rule sluice:masked-copy/);
    await archiveUntouched();
  });

  it('the extended protocol (Parse/Bind) through the pg driver', async () => {
    const c = await arena.client();
    try {
      await expect(c.query('INSERT INTO archive SELECT $1::int, email FROM customers WHERE id = $1', [1])).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('sluice:masked-copy') });
    } finally {
      await c.end();
    }
    await archiveUntouched();
  });

  it('pipelined behind a harmless Query in one write', async () => {
    const raw = await arena.raw();
    try {
      raw.send(Buffer.concat([build().cstring('SELECT 1').typed('Q'), build().cstring('CREATE TABLE leak9 AS SELECT card_number FROM customers').typed('Q')]));
      const msgs = await raw.until(2);
      const errors = msgs.filter((m) => m.type === 'E').map((m) => m.body.toString());
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain('sluice:masked-copy');
      expectNoSecret(...msgs.map((m) => m.body.toString()));
    } finally {
      raw.close();
    }
    expect(await exists('leak9')).toBe(false);
  });

  it('COPY to a server file and to a program (refused by the file rule first; masks alone below)', async () => {
    const file = join(tmpdir(), `sluice-exfil-${process.pid}.csv`);
    await refused(`COPY customers TO '${file}'`);
    await refused(`COPY (SELECT email FROM customers) TO PROGRAM 'cat > ${file}'`);
    expect(existsSync(file)).toBe(false);
  });

  it('renaming the masked column (refused by the DDL rule first; masks alone below)', async () => {
    await refused('ALTER TABLE customers RENAME COLUMN email TO contact');
    expect(await one("select count(*)::int as n from information_schema.columns where table_name = 'customers' and column_name = 'email'")).toEqual({ n: 1 });
  });
});

describe('catalog objects that expose stored values are refused (sluice:masked-catalog)', () => {
  beforeAll(async () => {
    await arena.admin.query('ANALYZE customers');
  });

  it.each([
    ["SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'customers'"],
    ['TABLE pg_catalog."pg_stats"'],
    ['SELECT stavalues1::text FROM pg_statistic'],
    ['SELECT * FROM pg_stats_ext'],
    ['SELECT query FROM pg_stat_activity'],
    ['SELECT statement FROM pg_prepared_statements'],
    ["SELECT * FROM heap_page_items(get_raw_page('customers', 0))"],
    ["SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL)"],
    ['CREATE VIEW stats_copy AS SELECT * FROM pg_stats'],
    ["SELECT query_to_xml('select email from customers', true, true, '')"],
    ["INSERT INTO archive SELECT 1, query_to_xml('select email from customers', true, true, '')::text"],
    ["SELECT table_to_xml('customers', true, true, '')"],
  ])('%s', async (sql) => {
    await refused(sql, 'sluice:masked-catalog');
  });

  it('another session\'s statement text in pg_stat_activity', async () => {
    const other = directClient();
    await other.connect();
    try {
      await other.query('SELECT email FROM customers WHERE id = 2');
      await refused("SELECT query FROM pg_stat_activity WHERE query LIKE '%customers%'", 'sluice:masked-catalog');
    } finally {
      await other.end();
    }
  });

  it('no view over the statistics was created', async () => {
    expect(await exists('stats_copy')).toBe(false);
  });
});

describe('the detector backstop (no rule lists a detector)', () => {
  it('an error that quotes a masked value', async () => {
    const r = await arena.psql('SELECT card_number::int FROM customers WHERE id = 1');
    expectNoSecret(r.stdout, r.stderr);
    expect(r.stderr).toMatch(/ERROR/);
  });

  it('a data exception that quotes part of a masked value (withheld, not only detected)', async () => {
    const r = await arena.psql('SELECT id FROM customers WHERE substr(email, 1, 9)::int = 1');
    expect(r.stderr).toMatch(/ERROR/);
    expect(r.stderr).not.toContain('ada.lovel');
    expect(arena.auditContains('ada.lovel')).toBe(false);
    const json = await arena.psql('SELECT id FROM customers WHERE card_number::json IS NULL OR email::json IS NULL');
    expect(json.stderr).toMatch(/ERROR/);
    expectNoSecret(json.stdout, json.stderr);
    expect(json.stderr).not.toMatch(/ada|grace|edsger|41111|55555|37828/);
  });

  it('a notice raised by a function the statement names: refused as code the gateway cannot see into', async () => {
    await refused('SELECT shout()', 'sluice:masked-derivation');
  });

  it('a notice raised by a trigger an administrator attached (the statement names no code)', async () => {
    const r = await arena.psql('INSERT INTO guestbook VALUES (1)');
    expectNoSecret(r.stdout, r.stderr);
    expect(r.stderr).toContain('NOTICE:  withheld: raised while running code the gateway cannot see into (masked data)');
    expect(await one('select count(*)::int as n from guestbook')).toEqual({ n: 1 });
  });

  it('a notification payload another session sends', async () => {
    const raw = await arena.raw();
    try {
      raw.send(build().cstring('LISTEN news').typed('Q'));
      await raw.until(1);
      await arena.admin.query("SELECT pg_notify('news', 'new contact ' || email) FROM customers WHERE id = 3");
      // The target delivers a notification between transactions: ask until it has.
      const msgs: RawMessage[] = [];
      for (let i = 0; i < 50 && !msgs.some((m) => m.type === 'A'); i++) {
        raw.send(build().cstring('SELECT 1').typed('Q'));
        msgs.push(...(await raw.until(1)));
      }
      const notes = msgs.filter((m) => m.type === 'A').map((m) => m.body.toString());
      expect(notes).toHaveLength(1);
      // Column masks apply here: the payload is withheld whole (a detector alone would leave "new contact").
      expect(notes[0]).toContain('withheld: masked data');
      expectNoSecret(...msgs.map((m) => m.body.toString()));
    } finally {
      raw.close();
    }
  });
});

/** A FunctionCall of `fn` (a regprocedure) with text arguments through `on`'s tunnel; the answer. */
async function functionCall(on: Arena, fn: string, args: string[] = []): Promise<RawMessage[]> {
  const oid = (await on.admin.query(`select '${fn}'::regprocedure::oid::int as oid`)).rows[0].oid as number;
  const msg = build().int32(oid).int16(0).int16(args.length);
  for (const a of args) msg.int32(Buffer.byteLength(a)).raw(a);
  const raw = await on.raw();
  try {
    raw.send(msg.int16(0).typed('F'));
    return await raw.until(1);
  } finally {
    raw.close();
  }
}

describe('FunctionCall (a function named by OID, as libpq\'s large-object calls do)', () => {
  const call = (fn: string, args: string[] = []) => functionCall(arena, fn, args);

  it('a function that exposes stored values is refused', async () => {
    const msgs = await call('pg_stat_get_backend_activity(integer)', ['1']);
    expect(msgs.find((m) => m.type === 'E')?.body.toString()).toContain('sluice:masked-catalog');
    expect(msgs.some((m) => m.type === 'V')).toBe(false);
  });

  it('raw pages of the masked table (pageinspect is installed)', async () => {
    // The block rules refuse a relation named at run time first; masks alone refuse it as a catalog.
    const msgs = await call('get_raw_page(text, bigint)', ['customers', '0']);
    expect(msgs.find((m) => m.type === 'E')?.body.toString()).toMatch(/sluice:(masked-catalog|opaque-code)/);
    expect(msgs.some((m) => m.type === 'V')).toBe(false);
    expectNoSecret(...msgs.map((m) => m.body.toString('latin1')));
  });

  it('a function written in the database is refused, as SELECT of it is (code the gateway cannot see into)', async () => {
    const msgs = await call('admin_fn()');
    expect(msgs.find((m) => m.type === 'E')?.body.toString()).toContain('sluice:masked-derivation');
    expect(msgs.some((m) => m.type === 'V')).toBe(false);
    expectNoSecret(...msgs.map((m) => m.body.toString()));
  });

  it('the result of a built-in that returns a stored value goes through the backstop', async () => {
    const msgs = await call('current_setting(text)', ['app.contact']);
    const result = msgs.find((m) => m.type === 'V');
    expect(result?.body.toString()).toContain('[redacted]');
    expectNoSecret(...msgs.map((m) => m.body.toString()));
  });
});

describe('what must keep working', () => {
  it('reads of a child table, which row masking does not name, are caught by the backstop', async () => {
    const r = await arena.psql('SELECT email, card_number FROM customers_archive');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('[redacted]');
    expectNoSecret(r.stdout, r.stderr);
  });

  // A function written in the database is code the gateway cannot see into (the lineage rule):
  // calling it is refused in masked sessions, whatever it returns, rather than relying on the
  // detectors to recognise what it returns.
  it('a function written in the database that returns a masked value is refused, not redacted', async () => {
    const r = await arena.psql('SELECT admin_fn()');
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('blocked by rule sluice:masked-derivation');
    expectNoSecret(r.stdout, r.stderr);
  });

  it('reads of masked columns are masked, not refused', async () => {
    const r = await arena.psql('SELECT email, card_number FROM customers ORDER BY id');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('.com');
    expectNoSecret(r.stdout, r.stderr);
  });

  it('CREATE TABLE AS and INSERT … SELECT of unmasked columns', async () => {
    const r = await arena.psql(['CREATE TABLE ok_names AS SELECT id, name FROM customers', 'INSERT INTO ok_names SELECT id + 10, name FROM customers', 'CREATE TABLE ok_orders AS SELECT * FROM public.orders', 'SELECT id, name INTO ok_into FROM customers', 'CREATE MATERIALIZED VIEW ok_mv AS SELECT id, amount FROM orders']);
    expect(r.stderr).toBe('');
    expect(await one('select count(*)::int as n from ok_names')).toEqual({ n: 8 }); // with the child table's row
    expect(await one('select count(*)::int as n from ok_orders')).toEqual({ n: 9 });
    expect(await one('select (select count(*)::int from ok_into) as i, (select count(*)::int from ok_mv) as m')).toEqual({ i: 4, m: 9 });
  });

  it('writes that set a masked column from the client\'s own value, and views over unmasked columns', async () => {
    const r = await arena.psql([
      "INSERT INTO customers (id, name, email) VALUES (4, 'Alan', 'alan@example.net')",
      "UPDATE customers SET name = 'Alan T' WHERE id = 4",
      'CREATE VIEW ok_view AS SELECT id, name FROM customers',
      "SELECT set_config('app.tenant', '42', false)",
    ]);
    expect(r.stderr).toBe('');
    expect(await one('select name, email from customers where id = 4')).toEqual({ name: 'Alan T', email: 'alan@example.net' });
    expect(await exists('ok_view')).toBe(true);
  });

  it('the same with parameters (Parse/Bind): the client\'s own values for masked columns', async () => {
    const c = await arena.client();
    try {
      await c.query('INSERT INTO customers (id, name, email, card_number) VALUES ($1, $2, $3, $4)', [7, 'Barbara', 'barbara@example.net', '6011000990139424']);
      await c.query('UPDATE customers SET email = $1, card_number = $2 WHERE id = $3', ['liskov@example.net', '6011000000000004', 7]);
    } finally {
      await c.end();
    }
    expect(await one('select email, card_number from customers where id = 7')).toEqual({ email: 'liskov@example.net', card_number: '6011000000000004' });
  });

  // Refused by design in masked sessions, though its body reads no masked column: a function is
  // code that can later run where no statement names it (a default, a trigger), and calling one
  // is refused there anyway (the lineage rule), so the definition is refused with it.
  it('a SQL function over unmasked columns: refused as a definition of code', async () => {
    await refused('CREATE FUNCTION ok_fn() RETURNS SETOF int LANGUAGE sql AS $$ SELECT id FROM customers $$', 'sluice:masked-derivation');
    expect(await one("select to_regproc('ok_fn') is null as gone")).toEqual({ gone: true });
  });

  it('psql\'s catalog queries (\\d, \\dt, \\df) and an upsert returning a masked column', async () => {
    const r = await arena.psql(['\\d customers', '\\dt', '\\df admin_fn', "INSERT INTO customers (id, name, email) VALUES (6, 'Kay', 'kay@example.net') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name RETURNING id, email"]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('card_number');
    expect(r.stdout).toContain('admin_fn');
  });

  it('a table created in an open transaction, then filled from unmasked columns', async () => {
    const r = await arena.psql(['BEGIN', 'CREATE TABLE ok_tx (id int, amount numeric)', 'INSERT INTO ok_tx SELECT id, amount FROM public.orders', 'COMMIT']);
    expect(r.stderr).toBe('');
    expect(await one('select count(*)::int as n from ok_tx')).toEqual({ n: 9 });
  });

  it('NOTIFY and pg_notify with a constant payload', async () => {
    const r = await arena.psql(["NOTIFY ok, 'constant payload'", "SELECT pg_notify('ok', 'another')"]);
    expect(r.stderr).toBe('');
    await waitFor('both notifications', () => heard.filter((n) => n.channel === 'ok').length === 2);
    expect(heard.filter((n) => n.channel === 'ok').map((n) => n.payload)).toEqual(['constant payload', 'another']);
  });
});

describe('with the mask rules alone, this class refuses what the block rules refuse first above', () => {
  let masks: Arena;
  beforeAll(async () => {
    masks = await startArena(cluster, { prefix: 'exfil_masks', schema: SCHEMA, policy: MASKS_ONLY });
  });
  afterAll(async () => {
    await masks?.stop();
  });

  async function refusedBy(rule: string, statements: string | string[]): Promise<void> {
    const r = await masks.psql(statements);
    for (const secret of SECRETS) {
      expect(r.stdout + r.stderr).not.toContain(secret);
      expect(masks.auditContains(secret)).toBe(false);
    }
    expect(r.stderr).toContain(`blocked by rule ${rule}`);
  }
  const value = async (sql: string) => (await masks.admin.query(sql)).rows[0] as Record<string, unknown>;

  it('a trigger on the masked table', async () => {
    await refusedBy('sluice:masked-copy', 'CREATE TRIGGER leak_trg AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()');
    expect(await value("select count(*)::int as n from pg_trigger where tgname = 'leak_trg'")).toEqual({ n: 0 });
  });

  it('raw pages of the masked table, by SELECT and by FunctionCall', async () => {
    await refusedBy('sluice:masked-catalog', "SELECT * FROM heap_page_items(get_raw_page('customers', 0))");
    const msgs = await functionCall(masks, 'get_raw_page(text, bigint)', ['customers', '0']);
    expect(msgs.find((m) => m.type === 'E')?.body.toString()).toContain('sluice:masked-catalog');
    expect(msgs.some((m) => m.type === 'V')).toBe(false);
  });

  it('COPY to a server file and to a program', async () => {
    const file = join(tmpdir(), `sluice-exfil-masks-${process.pid}.csv`);
    await refusedBy('sluice:masked-copy', `COPY customers TO '${file}'`);
    await refusedBy('sluice:masked-copy', `COPY (SELECT email FROM customers) TO PROGRAM 'cat > ${file}'`);
    expect(existsSync(file)).toBe(false);
  });

  it('renaming the masked column', async () => {
    await refusedBy('sluice:masked-copy', 'ALTER TABLE customers RENAME COLUMN email TO contact');
    expect(await value("select count(*)::int as n from information_schema.columns where table_name = 'customers' and column_name = 'email'")).toEqual({ n: 1 });
  });

  it('an opaque PL/pgSQL function reading a masked column', async () => {
    await refusedBy('sluice:masked-copy', 'CREATE FUNCTION leak_pl() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT email FROM customers LIMIT 1); END $$');
    expect(await value("select to_regproc('leak_pl') is null as gone")).toEqual({ gone: true });
  });

  it('still allows a copy of unmasked columns', async () => {
    const r = await masks.psql(['CREATE TABLE ok_names AS SELECT id, name FROM customers', 'INSERT INTO ok_names SELECT id + 10, name FROM customers']);
    expect(r.stderr).toBe('');
    expect(await value('select count(*)::int as n from ok_names')).toEqual({ n: 8 });
  });
});

describe('the audit trail', () => {
  it('holds no clear value once everything above is recorded', async () => {
    const marker = `audit marker ${process.pid}`;
    await arena.psql(`SELECT '${marker}'`);
    await waitFor('the marker statement in the audit store', () => arena.auditContains(marker), 20_000);
    for (const s of SECRETS) expect(arena.auditContains(s)).toBe(false);
  });
});
