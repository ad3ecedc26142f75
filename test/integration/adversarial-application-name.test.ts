// Adversarial corpus, class "session identity": the target shows each session as
// `sluice:<identity>[:<program>]` in pg_stat_activity and its log, and an attacker tries to replace
// that name after connecting (SET, set_config, a function SET clause, a DO block, a function the
// gateway never saw defined). Each case goes through the real gateway and tunnel with psql or the
// pg driver, and checks on the target itself (a superuser connection that bypasses the gateway)
// that no session of the target shows a name without the prefix once the attempt is over.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import pg from 'pg';
import { MessageWriter } from '../../gateway/engines/postgres/codec/wire.js';
import { SET_CONFIG_OID } from '../../gateway/policy/applicationName.js';
import { RECOMMENDED_POLICY, startArena, type Arena } from '../support/arena.js';

const cluster = inject('pgCluster');
const PREFIX = 'sluice:attacker';

/** Created by the database's owner, outside the gateway: no statement text shows what it does. */
const SCHEMA = `
  create function app_rename(n text) returns text language plpgsql as $$ begin perform set_config('application_name', n, false); return n; end $$;
`;

let policed: Arena;
let open: Arena;

beforeAll(async () => {
  // The recommended policy without its column masks, which refuse calls of user-written functions
  // (sluice:masked-derivation) before this class's last case could reach the target.
  policed = await startArena(cluster, { prefix: 'adv_appname', schema: SCHEMA, policy: { rules: (RECOMMENDED_POLICY.rules ?? []).filter((r) => !('mask' in r)) } });
  // No rule at all for this connection: the gateway parses nothing, and the backstop must hold.
  open = await startArena(cluster, { prefix: 'adv_appname_open', schema: SCHEMA, policy: { rules: [] } });
});

afterAll(async () => {
  await policed?.stop();
  await open?.stop();
});

/** Application names of the target's client sessions on the arena database other than the admin's own. */
async function names(a: Arena): Promise<string[]> {
  const r = await a.admin.query('select application_name from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and backend_type = $1', ['client backend']);
  return r.rows.map((row: { application_name: string }) => row.application_name);
}

async function until(cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

const withoutPrefix = async (a: Arena) => (await names(a)).filter((n) => !n.startsWith(PREFIX) && !n.startsWith('sluice-catalog:'));

/**
 * Runs `sql` on a new client of `a` that the gateway must end for it: returns the error the client
 * got (its statement's, or the connection's when the FATAL came after the result), once no
 * session of the target shows a name without the prefix.
 */
async function endedBy(a: Arena, sql: string): Promise<{ code?: string; message?: string }> {
  const c: pg.Client = await a.client();
  const ended = new Promise<{ code?: string; message?: string }>((resolve) => c.on('error', (e: { code?: string; message?: string }) => resolve(e)));
  const res = await c.query(sql).then(() => undefined, (e: { code?: string; message?: string }) => e);
  const err = res ?? (await ended);
  await until(async () => (await withoutPrefix(a)).length === 0);
  await c.end().catch(() => undefined);
  return err;
}

describe('with a policy: refused before it runs, the session goes on', () => {
  it.each([
    "SET application_name = 'payroll-batch'",
    "SET SESSION application_name TO 'sluice:alice@example.com'",
    `SET U&"applic\\0061tion_name" = 'x'`,
    "select set_config('application_name', 'x', false)",
    "begin; set local application_name = 'x'; commit",
    "DO $$ begin perform set_config('application_name', 'x', false); end $$",
    "create function f_rename() returns void language sql set application_name = 'x' as 'select pg_sleep(0)'",
  ])('%s → 42501 naming application_name (pg driver)', async (sql) => {
    const c = await policed.client();
    try {
      const err = (await c.query(sql).then(() => undefined, (e: unknown) => e)) as { code?: string; message?: string } | undefined;
      expect(err?.code).toBe('42501');
      expect(err?.message).toContain('sluice:application-name');
      expect(err?.message).toContain(`"${PREFIX}" prefix`);
      expect((await c.query("select current_setting('application_name') as n")).rows[0].n).toMatch(/^sluice:attacker(:|$)/);
      expect(await withoutPrefix(policed)).toEqual([]);
    } finally {
      await c.end();
    }
    expect((await policed.admin.query("select count(*)::int as n from pg_proc where proname = 'f_rename'")).rows[0].n).toBe(0);
  });

  it('psql: SET refused with the rule named; RESET and a name that keeps the prefix are allowed', async () => {
    const refused = await policed.psql("SET application_name = 'evil'", ['-v', 'ON_ERROR_STOP=1']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('sluice:application-name');
    const ok = await policed.psql(["SET application_name = 'sluice:attacker:nightly'", "select current_setting('application_name')", 'RESET application_name', "select current_setting('application_name')"], ['-v', 'ON_ERROR_STOP=1']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.split('\n')).toEqual(expect.arrayContaining(['sluice:attacker:nightly', 'sluice:attacker:psql']));
  });

  it('a set_config whose setting name is computed: the target reports the new name and the session ends (FATAL 42501)', async () => {
    const err = await endedBy(policed, "select set_config(n, 'computed-name', false) from (values ('application_' || 'name')) t(n)");
    expect(err.code).toBe('42501');
    expect(err.message).toContain('computed-name');
  });

  it('a function written outside the gateway that renames the session: the session ends (FATAL 42501) and its backend with it', async () => {
    const err = await endedBy(policed, "select app_rename('innocent-report')");
    expect(err.code).toBe('42501');
    expect(err.message).toContain('innocent-report');
    expect(policed.auditContains('sluice:application-name')).toBe(true);
  });
});

describe('without any policy: refused before it runs, the session goes on', () => {
  it.each([
    "SET application_name = 'evil'",
    "SET SESSION application_name TO 'evil'",
    `SET U&"applic\\0061tion_name" = 'x'`,
    'SET "application_name" = \'x\'',
    "select set_config('application_name', 'evil', false)",
    "select PG_CATALOG.SET_CONFIG('APPLICATION_NAME', $$evil$$, true)",
    `select "set_config"(U&'applic\\0061tion_name', 'evil', false)`,
    "select 1; select set_config('application_name', 'evil', false)",
    "DO $$ begin perform set_config('application_name', 'x', false); end $$",
  ])('%s → ERROR 42501 naming what to do; the target never changed the name', async (sql) => {
    const c = await open.client();
    try {
      const err = (await c.query(sql).then(() => undefined, (e: unknown) => e)) as { code?: string; message?: string; severity?: string } | undefined;
      expect(err?.code).toBe('42501');
      expect(err?.severity).toBe('ERROR');
      expect(err?.message).toContain('sluice:application-name');
      expect(err?.message).toContain(`set "${PREFIX}:NAME" or RESET it`);
      expect((await c.query("select current_setting('application_name') as n")).rows[0].n).toBe(PREFIX);
      expect(await withoutPrefix(open)).toEqual([]);
    } finally {
      await c.end();
    }
  });

  it('the simple protocol on the wire: an ErrorResponse and ReadyForQuery, no ParameterStatus (the target never changed the name)', async () => {
    const r = await open.raw();
    try {
      r.send(new MessageWriter().cstring("SET application_name = 'evil'").typed('Q'));
      const got = await r.until(1);
      expect(got.map((m) => m.type)).toEqual(['E', 'Z']);
      expect(got[0]!.body.toString('latin1')).toContain('C42501\0');
      r.send(new MessageWriter().cstring("select current_setting('application_name')").typed('Q'));
      const after = await r.until(1);
      expect(after.find((m) => m.type === 'D')?.body.toString('latin1')).toContain(PREFIX);
    } finally {
      r.close();
    }
  });

  it('the extended protocol: a set_config with a bound value is refused at Parse, the pipeline to Sync skipped, the session goes on', async () => {
    const c = await open.client();
    try {
      const err = (await c.query({ text: "select set_config('application_name', $1, false)", values: ['evil'] }).then(() => undefined, (e: unknown) => e)) as { code?: string; message?: string } | undefined;
      expect(err?.code).toBe('42501');
      expect(err?.message).toContain('sluice:application-name');
      expect((await c.query({ text: 'select $1::int + 1 as n', values: [41] })).rows[0].n).toBe(42);
      expect((await c.query("select current_setting('application_name') as n")).rows[0].n).toBe(PREFIX);
    } finally {
      await c.end();
    }
    expect(open.auditContains("select set_config('application_name', $1, false)")).toBe(true);
  });

  it('SET LOCAL inside a transaction: refused, and the transaction is aborted as PostgreSQL aborts it on an error', async () => {
    const c = await open.client();
    try {
      await c.query('begin');
      const err = (await c.query("set local application_name = 'x'").then(() => undefined, (e: unknown) => e)) as { code?: string } | undefined;
      expect(err?.code).toBe('42501');
      const next = (await c.query('select 1').then(() => undefined, (e: unknown) => e)) as { code?: string } | undefined;
      expect(next?.code).toBe('25P02');
      await c.query('rollback');
      expect((await c.query("select current_setting('application_name') as n")).rows[0].n).toBe(PREFIX);
    } finally {
      await c.end();
    }
  });

  it.each([
    ['without a policy', () => open],
    ['with a policy', () => policed],
  ])('FunctionCall of set_config by its OID (the fast path), %s: refused with 42501, the session goes on', async (_, arena) => {
    const r = await arena().raw();
    try {
      const call = new MessageWriter().int32(SET_CONFIG_OID).int16(1).int16(0).int16(3);
      for (const v of ['application_name', 'evil', 'false']) call.int32(Buffer.byteLength(v)).bytes(Buffer.from(v));
      r.send(call.int16(0).typed('F'));
      const got = await r.until(1);
      expect(got.map((m) => m.type)).toEqual(['E', 'Z']);
      expect(got[0]!.body.toString('latin1')).toContain('C42501\0');
      r.send(new MessageWriter().cstring("select current_setting('application_name')").typed('Q'));
      expect((await r.until(1)).find((m) => m.type === 'D')?.body.toString('latin1')).toContain(PREFIX);
    } finally {
      r.close();
    }
  });

  it('psql: the refused SET leaves the session on, the next command runs in it', async () => {
    const out = await open.psql(["SET application_name = 'evil'", "select current_setting('application_name')"]);
    expect(out.stderr).toContain('sluice:application-name');
    expect(out.stdout.trim()).toBe(`${PREFIX}:psql`);
  });

  it('options in the startup packet (-c application_name=…): the client part only, after the identity', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: open.port, user: 'x', database: open.database, options: '-c application_name=evil' });
    await c.connect();
    try {
      expect((await c.query("select current_setting('application_name') as n")).rows[0].n).toBe(`${PREFIX}:evil`);
      expect(await withoutPrefix(open)).toEqual([]);
    } finally {
      await c.end();
    }
  });

  it.each(["select set_config(n, 'computed-name', false) from (values ('application_' || 'name')) t(n)", "select app_rename('evil')"])('what no text shows (%s): the backstop still ends the session (FATAL 42501)', async (sql) => {
    const err = await endedBy(open, sql);
    expect(err.code).toBe('42501');
    expect(err.message).toContain("drops the gateway's identity prefix");
  });

  it('RESET, RESET ALL and a name keeping the prefix leave the session alone', async () => {
    const c = await open.client();
    try {
      await c.query("SET application_name = 'sluice:attacker:etl'");
      expect((await c.query("select current_setting('application_name') as n")).rows[0].n).toBe('sluice:attacker:etl');
      await c.query('RESET application_name');
      expect((await c.query("select current_setting('application_name') as n")).rows[0].n).toBe(PREFIX);
      await c.query("SET application_name = 'sluice:attacker:etl'");
      await c.query('RESET ALL');
      expect((await c.query("select current_setting('application_name') as n")).rows[0].n).toBe(PREFIX);
    } finally {
      await c.end();
    }
  });
});
