// What client libraries expect of a PostgreSQL session, through `sluice connect` with the real
// CLI and gateway binaries: statements with more than 32,767 parameters, session settings given
// at startup (and the ones refused), the client's application_name beside the identity, the
// target's real backend pid for pg_backend_pid()/pg_cancel_backend()/pg_terminate_backend(), and
// masking that no search_path can route around.
import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { collect, newConfigDir, openTunnel, serviceToken, startGateway, type GatewayProcess, type Tunnel } from '../support/binaries.js';
import { stateContains } from '../support/limitsProbes.js';
import { client, freshDatabase, waitFor } from '../support/pgEngineHarness.js';

const cluster = inject('pgCluster');
const PASSWORD_ENV = 'PG_TEST_PASSWORD';
// No detector recognises it: only the column mask can hide it.
const SECRET_EMAIL = 'ada-secret-7731';

let gw: GatewayProcess;
let db: Awaited<ReturnType<typeof freshDatabase>>;
let plain: Tunnel;
let masked: Tunnel;
let noSet: Tunnel;
let blocked: Tunnel;

beforeAll(async () => {
  db = await freshDatabase(cluster, 'fidelity');
  const owner = cluster.user;
  await db.admin.query(`
    create table bulk (a int, b text);
    create schema fid_a authorization ${owner};
    create table fid_a.cust (id int, email text);
    insert into fid_a.cust values (1, '${SECRET_EMAIL}');
    create table public.cust (id int, email text);
    insert into public.cust values (2, 'public-row');
    create schema evil authorization ${owner};
    create view evil.cust as select id, email from fid_a.cust;
    alter table bulk owner to ${owner};
    alter table fid_a.cust owner to ${owner};
    alter table public.cust owner to ${owner};
    alter view evil.cust owner to ${owner};
  `);
  const target = { host: cluster.host, port: cluster.port, database: db.target.database, user: owner, password: { env: PASSWORD_ENV }, sslmode: 'disable' };
  gw = await startGateway({
    env: { [PASSWORD_ENV]: cluster.password },
    connections: [
      { name: 'pg-fid', type: 'postgres', target, allow: { groups: ['eng'] } },
      { name: 'pg-masked', type: 'postgres', target, allow: { groups: ['eng'] }, policy: { rules: [{ id: 'pii', mask: { columns: ['fid_a.cust.email'], with: 'redact' } }] } },
      { name: 'pg-noset', type: 'postgres', target, allow: { groups: ['eng'] }, policy: { rules: [{ id: 'no-set', block: { statements: ['set'] }, message: 'settings are fixed here' }] } },
      { name: 'pg-blocked', type: 'postgres', target, allow: { groups: ['eng'] }, policy: { rules: [{ id: 'no-fid', block: { tables: ['fid_a.cust'] }, message: 'fid_a.cust is off limits' }] } },
    ],
  });
  const ctx = { configDir: newConfigDir(), env: { SLUICE_TOKEN: serviceToken(gw, 'ci', 'eng'), SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string } };
  [plain, masked, noSet, blocked] = await Promise.all([openTunnel('pg-fid', ctx), openTunnel('pg-masked', ctx), openTunnel('pg-noset', ctx), openTunnel('pg-blocked', ctx)]);
});

afterAll(async () => {
  await Promise.all([plain, masked, noSet, blocked].map((t) => t?.stop()));
  await gw?.stop();
  await db?.drop();
});

const connectTo = async (t: Tunnel, extra: Partial<pg.ClientConfig> = {}) => {
  const c = client(t.port, db.target.database, extra);
  await c.connect();
  return c;
};

function psql(t: Tunnel, args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(cluster.psqlPath, ['-X', '-w', '-h', '127.0.0.1', '-p', String(t.port), '-d', db.target.database, '-U', 'whoever', ...args], { env: { ...process.env, PGCONNECT_TIMEOUT: '10', ...env } });
  return collect(child);
}

const errorOf = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected an error');
};

describe('sluice connect: PostgreSQL fidelity', () => {
  it('a bulk INSERT with 40,000 parameters (and a statement with 65,535) runs; the rows are on the target', async () => {
    const c = await connectTo(plain);
    try {
      const rows = 20_000;
      const values: string[] = [];
      const params: (number | string)[] = [];
      for (let i = 0; i < rows; i++) {
        values.push(`($${2 * i + 1}::int, $${2 * i + 2}::text)`);
        params.push(i, `r${i}`);
      }
      const res = await c.query(`insert into bulk values ${values.join(', ')}`, params);
      expect(res.rowCount).toBe(rows);
      const most = Array.from({ length: 65_535 }, (_, i) => i);
      const wide = await c.query(`select array_length(array[${most.map((i) => `$${i + 1}::int`).join(', ')}], 1) as n`, most);
      expect(wide.rows[0].n).toBe(65_535);
    } finally {
      await c.end();
    }
    const onTarget = await db.admin.query('select count(*)::int as n, sum(a)::bigint as s, count(distinct b)::int as d from bulk');
    expect(onTarget.rows[0]).toEqual({ n: 20_000, s: String((19_999 * 20_000) / 2), d: 20_000 });
  });

  it('startup settings from the allow-list reach the target (parameters and options -c), and take effect; they are recorded', async () => {
    const c = await connectTo(plain, {
      statement_timeout: 1234,
      lock_timeout: 2000,
      application_name: 'x:sluice:bob@example.com',
      options: '-c search_path=fid_a,public -c app.tenant=tenant-7 -c DateStyle=German --idle-in-transaction-session-timeout=60s',
    });
    try {
      const r = await c.query(
        "select current_setting('statement_timeout') as st, current_setting('lock_timeout') as lt, current_setting('search_path') as sp, current_setting('app.tenant') as t, " +
          "current_setting('DateStyle') as ds, current_setting('idle_in_transaction_session_timeout') as it, (select application_name from pg_stat_activity where pid = pg_backend_pid()) as app",
      );
      expect(r.rows[0]).toMatchObject({ st: '1234ms', lt: '2s', sp: 'fid_a,public', t: 'tenant-7', ds: 'German, DMY', it: '1min' });
      // The identity first, the client's own name after it with its ':' and '@' made harmless.
      expect(r.rows[0].app).toMatch(/^sluice:[^:]+:x_sluice_bob_example\.com$/);
      expect(r.rows[0].app).not.toContain('sluice:bob');
      const timedOut = await errorOf(c.query('select pg_sleep(20)'));
      expect(timedOut.code).toBe('57014');
      expect((await c.query('select 1 as ok')).rows[0].ok).toBe(1);
    } finally {
      await c.end();
    }
    await waitFor('the startup settings in the audit trail', () => stateContains(gw, 'tenant-7'));
  });

  it("psql: PGOPTIONS settings apply and the target sees psql's own name beside the identity", async () => {
    const res = await psql(plain, ['-tA', '-c', "select current_setting('statement_timeout') || '|' || application_name from pg_stat_activity where pid = pg_backend_pid()"], { PGOPTIONS: '-c statement_timeout=4321' });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.trim()).toMatch(/^4321ms\|sluice:[^:]+:psql$/);
  });

  it('settings off the allow-list and malformed options are refused with 42501/08P01 naming them; the gateway keeps serving; refusals are recorded', async () => {
    for (const options of ['-c session_replication_role=replica', '-c role=postgres', '--session-authorization=postgres', '-c default_transaction_read_only=off']) {
      const err = await errorOf(connectTo(plain, { options }));
      expect(err.code).toBe('42501');
      expect(err.message).toMatch(/does not pass the startup setting "(session_replication_role|role|session_authorization|default_transaction_read_only)"/);
    }
    const bad = await errorOf(connectTo(plain, { options: '-B 100' }));
    expect(bad.code).toBe('08P01');
    const viaPsql = await psql(plain, ['-c', 'select 1'], { PGOPTIONS: '-c session_replication_role=replica' });
    expect(viaPsql.code).not.toBe(0);
    expect(viaPsql.stderr).toContain('does not pass the startup setting "session_replication_role"');
    const c = await connectTo(plain);
    try {
      expect((await c.query("select current_setting('session_replication_role') as r")).rows[0].r).toBe('origin');
    } finally {
      await c.end();
    }
    await waitFor('the refusal in the audit trail', () => stateContains(gw, 'does not pass the startup setting'));
  });

  it("a policy that blocks SET refuses the same setting given at startup, with the rule's message", async () => {
    const err = await errorOf(connectTo(noSet, { statement_timeout: 1000 }));
    expect(err.code).toBe('42501');
    expect(err.message).toContain('startup setting statement_timeout: settings are fixed here');
    // Formatting settings drivers send for themselves (pg: client_encoding; here DateStyle too)
    // are not judged as SET.
    const c = await connectTo(noSet, { options: '-c DateStyle=ISO,YMD' });
    expect((await c.query("select current_setting('DateStyle') as ds")).rows[0].ds).toBe('ISO, YMD');
    await c.end();
  });

  it("the client's pid is its target backend's: pg_backend_pid() agrees, pg_cancel_backend and pg_terminate_backend of it act on its own backend, CancelRequest still works", async () => {
    const c = await connectTo(plain, { application_name: 'pidtest' });
    // Terminated below: its 'error' event is expected.
    c.on('error', () => undefined);
    const other = await connectTo(plain);
    try {
      const pid = (c as unknown as { processID: number }).processID;
      expect((await c.query('select pg_backend_pid() as pid')).rows[0].pid).toBe(pid);
      const seen = await db.admin.query("select application_name from pg_stat_activity where pid = $1", [pid]);
      expect(seen.rows[0]?.application_name).toMatch(/^sluice:[^:]+:pidtest$/);
      // Cancel: the sleeping statement ends with 57014, the session goes on.
      const sleeping = errorOf(c.query('select pg_sleep(30)'));
      await waitFor('the sleep on the target', async () => (await db.admin.query("select 1 from pg_stat_activity where pid = $1 and query like 'select pg_sleep%'", [pid])).rowCount === 1);
      expect((await other.query(`select pg_cancel_backend(${pid}) as ok`)).rows[0].ok).toBe(true);
      expect((await sleeping).code).toBe('57014');
      expect((await c.query('select 2 as v')).rows[0].v).toBe(2);
      // Terminate its own backend by the pid it received.
      const ended = await errorOf(c.query(`select pg_terminate_backend(${pid})`));
      expect(ended.code).toBe('57P01');
      await waitFor('the backend gone from the target', async () => (await db.admin.query('select 1 from pg_stat_activity where pid = $1', [pid])).rowCount === 0);
      expect((await other.query('select 3 as v')).rows[0].v).toBe(3);
    } finally {
      await c.end().catch(() => undefined);
      await other.end();
    }
    // A protocol CancelRequest with the key the client received (pid and the gateway's secret)
    // still reaches the target.
    const d = await connectTo(plain);
    try {
      const dpid = (d as unknown as { processID: number }).processID;
      const running = errorOf(d.query('select pg_sleep(30)'));
      await waitFor('the second sleep on the target', async () => (await db.admin.query("select 1 from pg_stat_activity where pid = $1 and query like 'select pg_sleep%'", [dpid])).rowCount === 1);
      const canceller = client(plain.port, db.target.database) as unknown as { cancel(c: pg.Client, q: unknown): void };
      canceller.cancel(d, (d as unknown as { activeQuery: unknown }).activeQuery);
      expect((await running).code).toBe('57014');
    } finally {
      await d.end();
    }
  });

  it("masking holds whatever search_path the client sets: at startup, with SET, through a view in another schema; COPY too", async () => {
    const c = await connectTo(masked, { options: '-c search_path=fid_a' });
    try {
      const r = await c.query('select id, email from cust');
      expect(r.rows[0].id).toBe(1);
      expect(r.rows[0].email).not.toBe(SECRET_EMAIL);
      await c.query('set search_path = evil, public');
      const viaView = await c.query('select id, email from cust');
      expect(viaView.rows[0].id).toBe(1);
      expect(JSON.stringify(viaView.rows)).not.toContain(SECRET_EMAIL);
    } finally {
      await c.end();
    }
    // COPY of the unqualified name: the gateway's catalog connection would find public.cust
    // (unmasked); the client's search_path makes the server read fid_a.cust.
    for (const searchPath of ['fid_a', 'nosuchschema, fid_a, public']) {
      const res = await psql(masked, ['-c', 'copy cust to stdout'], { PGOPTIONS: `-c search_path=${searchPath.replace(/ /g, '\\ ')}` });
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toMatch(/^1\t/);
      expect(res.stdout).not.toContain(SECRET_EMAIL);
    }
    const set = await psql(masked, ['-c', 'set search_path = fid_a', '-c', 'copy cust to stdout']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/^1\t/m);
    expect(set.stdout).not.toContain(SECRET_EMAIL);
    // The unmasked table stays readable as itself.
    const pub = await psql(masked, ['-tA', '-c', 'copy public.cust to stdout']);
    expect(pub.stdout).toContain('public-row');
  });

  it('a block rule on a table holds whatever search_path the client sets', async () => {
    const c = await connectTo(blocked, { options: '-c search_path=nosuchschema,fid_a' });
    try {
      const err = await errorOf(c.query('select email from cust'));
      expect(err.code).toBe('42501');
      expect(err.message).toContain('fid_a.cust is off limits');
      await c.query('set search_path = evil, public');
      expect((await errorOf(c.query('select email from cust'))).code).toBe('42501');
      expect((await c.query('select email from public.cust')).rows).toEqual([{ email: 'public-row' }]);
    } finally {
      await c.end();
    }
    const copy = await psql(blocked, ['-c', 'copy cust to stdout'], { PGOPTIONS: '-c search_path=fid_a' });
    expect(copy.stderr).toContain('fid_a.cust is off limits');
    expect(copy.stdout).not.toContain(SECRET_EMAIL);
  });
});
