// What the postgres.js and pg drivers expect of a server, checked on every path a client can take:
// straight to the target (the reference), `sluice connect` (the real CLI's local port) and direct
// mode (`sluice dsn`, the gateway's own listener, TLS verified against the gateway's CA), each
// without a policy and with one whose block and mask rules name tables these checks never touch
// (the policy's presence alone must not change what a driver sees).
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { newConfigDir, openTunnel, runCli, serviceToken, startGateway, tokenCtx, type GatewayProcess, type Tunnel } from '../support/binaries.js';
import { freshDatabase, waitFor } from '../support/pgEngineHarness.js';

const cluster = inject('pgCluster');
const PASSWORD_ENV = 'PG_TEST_PASSWORD';
const APP = 'driver-fidelity';

let gw: GatewayProcess;
let db: Awaited<ReturnType<typeof freshDatabase>>;
const tunnels: Tunnel[] = [];

/** One way to reach the target, as each driver is configured for it. */
interface Path {
  readonly name: string;
  readonly viaGateway: boolean;
  readonly js: postgres.Options<Record<string, postgres.PostgresType>>;
  readonly pg: pg.ClientConfig;
}
const paths: Path[] = [];

beforeAll(async () => {
  db = await freshDatabase(cluster, 'driver');
  const owner = cluster.user;
  await db.admin.query(`
    create table drv_vault (id int, secret text);
    create table drv_people (id int, email text);
    insert into drv_vault values (1, 'vault-row');
    insert into drv_people values (1, 'ada@example.com');
    alter table drv_vault owner to ${owner};
    alter table drv_people owner to ${owner};
  `);
  const target = { host: cluster.host, port: cluster.port, database: db.target.database, user: owner, password: { env: PASSWORD_ENV }, sslmode: 'disable' };
  const policy = {
    rules: [
      { id: 'no-vault', block: { tables: ['public.drv_vault'] }, message: 'the vault is off limits' },
      { id: 'pii', mask: { columns: ['public.drv_people.email'], with: 'redact' } },
    ],
  };
  gw = await startGateway({
    env: { [PASSWORD_ENV]: cluster.password },
    extra: { listeners: { postgres: '127.0.0.1:0' } },
    connections: [
      { name: 'pg-drv', type: 'postgres', target, allow: { groups: ['eng'] } },
      { name: 'pg-drv-policy', type: 'postgres', target, allow: { groups: ['eng'] }, policy },
    ],
  });
  const ctx = tokenCtx(gw, serviceToken(gw, 'ci', 'eng'));
  const ca = readFileSync(gw.caFile as string);
  const database = db.target.database;
  paths.push({
    name: 'direct to the target',
    viaGateway: false,
    js: { host: cluster.host, port: cluster.port, user: owner, pass: cluster.password, db: database },
    pg: { host: cluster.host, port: cluster.port, user: owner, password: cluster.password, database },
  });
  for (const name of ['pg-drv', 'pg-drv-policy']) {
    const t = await openTunnel(name, { configDir: newConfigDir(), env: ctx.env });
    tunnels.push(t);
    const label = name === 'pg-drv' ? '' : ' with a policy';
    paths.push({
      name: `sluice connect${label}`,
      viaGateway: true,
      js: { host: '127.0.0.1', port: t.port, user: 'whoever', db: database },
      pg: { host: '127.0.0.1', port: t.port, user: 'whoever', database },
    });
    const res = await runCli(['dsn', name, '--json'], ctx);
    expect(res.code, res.stderr).toBe(0);
    const issued = JSON.parse(res.stdout) as { host: string; port: number; user: string; password: string; database: string };
    paths.push({
      name: `direct mode${label}`,
      viaGateway: true,
      js: { host: issued.host, port: issued.port, user: issued.user, pass: issued.password, db: issued.database, ssl: { ca } },
      pg: { host: issued.host, port: issued.port, user: issued.user, password: issued.password, database: issued.database, ssl: { ca } },
    });
  }
});

afterAll(async () => {
  await Promise.all(tunnels.map((t) => t.stop()));
  await gw?.stop();
  await db?.drop();
});

const each = (title: string, fn: (p: Path) => Promise<void>) =>
  it(title, async () => {
    for (const p of paths) {
      try {
        await fn(p);
      } catch (err) {
        throw new Error(`${p.name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    }
  });

const sqlOn = (p: Path, extra: postgres.Options<Record<string, postgres.PostgresType>> = {}) => postgres({ ...p.js, max: 1, idle_timeout: 5, connect_timeout: 10, onnotice: () => undefined, ...extra });

const codeOf = (q: Promise<unknown>) => q.then(() => 'no error', (e: { code?: string }) => e.code ?? String(e));

describe('client libraries through the gateway', () => {
  const cancelOn = async (p: Path, extra: postgres.Options<Record<string, postgres.PostgresType>> = {}) => {
    const sql = sqlOn(p, extra);
    try {
      await sql`select 1`;
      const marker = `drv_cancel_${Math.random().toString(36).slice(2)}`;
      const q = sql.unsafe(`select pg_sleep(60) as ${marker}`);
      const outcome = codeOf(q);
      const running = async () => (await db.admin.query("select count(*)::int as n from pg_stat_activity where state = 'active' and query like $1", [`%${marker}%`])).rows[0].n as number;
      await waitFor('the statement to run on the target', async () => (await running()) === 1);
      q.cancel();
      expect(await outcome).toBe('57014');
      expect((await sql`select 2 as x`)[0]?.x).toBe(2);
      // Cancelled on the target, not only abandoned by the client.
      expect(await running()).toBe(0);
    } finally {
      await sql.end({ timeout: 5 });
    }
  };

  each('postgres.js query.cancel() (a CancelRequest, then a half-close) cancels the running statement, and the connection goes on', async (p) => {
    await cancelOn(p);
    // The same inside TLS on the local hop (sslmode=require against the CLI's own certificate).
    if (p.viaGateway && p.js.ssl === undefined) await cancelOn(p, { ssl: 'require' });
  });

  each('application_name: the client is told its own name (ParameterStatus), the target sees the identity beside it', async (p) => {
    let reported: string | undefined;
    const sql = sqlOn(p, { connection: { application_name: APP }, onparameter: (k: string, v: string) => void (k === 'application_name' && (reported = v)) });
    try {
      const [row] = await sql`select current_setting('application_name') as a`;
      expect(reported).toBe(APP);
      expect(sql.parameters.application_name).toBe(APP);
      if (p.viaGateway) expect(row?.a).toMatch(new RegExp(`^sluice:[^:]+:${APP}$`));
      else expect(row?.a).toBe(APP);
      // Another name (the gateway's prefix kept, as it must be) is reported as the target has it;
      // back to the startup's name, the client is told its own again.
      const other = `${String(row?.a)}-2`;
      await sql.unsafe(`set application_name = '${other}'`);
      expect(reported).toBe(other);
      await sql`reset application_name`;
      expect(reported).toBe(APP);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  each('a statement that does not parse is 42601 syntax_error, policy or not; the session stays usable', async (p) => {
    const sql = sqlOn(p);
    try {
      const err = (await sql`selec ${1}`.then(() => undefined, (e: unknown) => e)) as { code?: string; message?: string } | undefined;
      expect(err?.code).toBe('42601');
      expect(err?.message).toMatch(/syntax error at or near "selec"/);
      expect(await codeOf(sql.unsafe('select 1; wat; select 3'))).toBe('42601');
      expect((await sql`select 3 as x`)[0]?.x).toBe(3);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  each('replication connections (postgres.js subscribe, pg replication=database) are refused with 0A000 naming the reason', async (p) => {
    if (!p.viaGateway) return;
    const c = new pg.Client({ ...p.pg, replication: 'database' } as pg.ClientConfig);
    const err = (await c.connect().then(() => undefined, (e: unknown) => e)) as { code?: string; message?: string } | undefined;
    await c.end().catch(() => undefined);
    expect(err?.code).toBe('0A000');
    expect(err?.message).toMatch(/replication connections are not served by connection pg-drv/);
    const sql = sqlOn(p, { publications: 'drv_all' } as postgres.Options<Record<string, postgres.PostgresType>>);
    try {
      expect(await codeOf(sql.subscribe('*', () => undefined))).toBe('0A000');
    } finally {
      await sql.end({ timeout: 5 });
    }
  });
});
