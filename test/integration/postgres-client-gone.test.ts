// A client that vanishes while the target runs its statement: the real gateway binary, the real
// `sluice connect` tunnel and direct listener, a real psql killed with SIGKILL and a pg driver
// whose socket is destroyed. What counts is on the target itself (a superuser connection that
// bypasses the gateway): the backend is gone long before its statement would have ended, and a
// transaction's UPDATE did not commit; and the exported audit trail says how the statement ended.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openTunnel, runCli, serviceToken, startGateway, tokenCtx, type GatewayProcess, type Tunnel } from '../support/binaries.js';
import { freshDatabase, rawClient, waitFor } from '../support/pgEngineHarness.js';
import { MessageWriter } from '../../gateway/engines/postgres/codec/wire.js';

const cluster = inject('pgCluster');
const PASSWORD_ENV = 'PG_GONE_PASSWORD';
/** Far longer than any wait below: a backend gone in time was stopped, not finished. */
const SLEEP_S = 60;
const GONE_NOTE = 'cancelled by the gateway: the client went away while the statement ran';

let gw: GatewayProcess;
let db: Awaited<ReturnType<typeof freshDatabase>>;
let token: string;
let open: Tunnel;
let policed: Tunnel;

beforeAll(async () => {
  db = await freshDatabase(cluster, 'client_gone');
  await db.admin.query('create table accounts (id int primary key, balance int not null); insert into accounts select g, 100 from generate_series(1, 10) g');
  const su = cluster.roles.superuser;
  const target = { host: cluster.host, port: cluster.port, database: db.target.database, user: su.user, password: { env: PASSWORD_ENV }, sslmode: 'disable' };
  gw = await startGateway({
    env: { [PASSWORD_ENV]: su.password },
    extra: { listeners: { postgres: '127.0.0.1:0' }, audit: { readers: ['eng'] } },
    connections: [
      { name: 'pg-open', type: 'postgres', target, allow: { groups: ['eng'] } },
      { name: 'pg-policed', type: 'postgres', target, allow: { groups: ['eng'] }, policy: { rules: [{ id: 'no-drop', block: { statements: ['drop'] } }, { id: 'bounded', block: { unboundedWrites: true } }] } },
    ],
  });
  token = serviceToken(gw, 'leaver', 'eng');
  open = await openTunnel('pg-open', tokenCtx(gw, token));
  policed = await openTunnel('pg-policed', tokenCtx(gw, token));
});

afterAll(async () => {
  await open?.stop();
  await policed?.stop();
  await gw?.stop();
  await db?.drop();
});

/** The target's backends running a statement that contains `marker`, other than the admin's own. */
async function backends(marker: string): Promise<{ pid: number; state: string }[]> {
  const r = await db.admin.query('select pid, state from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and query like $1', [`%${marker}%`]);
  return r.rows as { pid: number; state: string }[];
}

async function runningOnTarget(marker: string): Promise<number> {
  let pid = 0;
  await waitFor(`"${marker}" running on the target`, async () => {
    const b = (await backends(marker)).find((x) => x.state === 'active');
    pid = b?.pid ?? 0;
    return b !== undefined;
  }, 20_000);
  return pid;
}

async function backendGone(pid: number): Promise<void> {
  // Well inside SLEEP_S: only a cancel (or the backend's exit) ends it this soon.
  await waitFor(`backend ${pid} gone from the target`, async () => (await db.admin.query('select 1 from pg_stat_activity where pid = $1', [pid])).rowCount === 0, 20_000);
}

function spawnPsql(conninfo: string, sql: string): ChildProcess {
  const child = spawn(cluster.psqlPath, ['-X', '-w', '-At', '-d', conninfo, '-c', sql], { env: { ...process.env, PGPASSWORD: '', PGCONNECT_TIMEOUT: '10' }, stdio: 'ignore' });
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** The exported trail's results marked as cancelled for a vanished client, in the sessions that ran `marker`, once they have ended. */
async function resultsFor(marker: string): Promise<{ result: Record<string, unknown>; end: Record<string, unknown> }[]> {
  let found: { result: Record<string, unknown>; end: Record<string, unknown> }[] = [];
  await waitFor(`the trail to hold the end of the session that ran "${marker}"`, async () => {
    const exp = await runCli(['audit', 'export'], tokenCtx(gw, token));
    if (exp.code !== 0) throw new Error(exp.stderr);
    const events = exp.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((e) => e.type === 'event');
    const body = (e: Record<string, unknown>) => (e.data ?? e.event ?? e) as Record<string, unknown>;
    const sessions = new Set(events.filter((e) => e.kind === 'query' && JSON.stringify(e).includes(marker)).map((e) => e.session));
    found = [];
    for (const session of sessions) {
      const end = events.find((e) => e.kind === 'session.end' && e.session === session);
      if (end === undefined) continue;
      for (const result of events.filter((e) => e.kind === 'result' && e.session === session && JSON.stringify(e).includes(GONE_NOTE))) found.push({ result: body(result), end: body(end) });
    }
    return found.length > 0;
  }, 20_000);
  return found;
}

describe('the client vanishes mid-statement: the target is sent a cancel, then the connection closes', () => {
  it('tunnel, no policy: psql killed during pg_sleep — the backend is gone promptly, the trail says the statement was cancelled', async () => {
    const marker = 'gone_tunnel_sleep';
    const child = spawnPsql(`host=127.0.0.1 port=${open.port} user=x dbname=${db.target.database}`, `select pg_sleep(${SLEEP_S}) /* ${marker} */`);
    const pid = await runningOnTarget(marker);
    await kill(child);
    await backendGone(pid);
    const [r] = await resultsFor(marker);
    expect(r?.result).toMatchObject({ status: 'error', sqlstate: '57014' });
    expect(String(r?.result.message)).toBe(`${GONE_NOTE}; canceling statement due to user request`);
    expect(r?.end).toMatchObject({ status: 'error', sqlstate: '08006' });
    expect(String(r?.end.message)).toContain('the client went away while a statement was running');
    // The gateway keeps serving.
    const c = new pg.Client({ host: '127.0.0.1', port: open.port, user: 'x', database: db.target.database });
    await c.connect();
    expect((await c.query('select 1 as one')).rows[0].one).toBe(1);
    await c.end();
  });

  it('tunnel with a policy, pg driver: BEGIN; a long UPDATE; the socket destroyed — the UPDATE did not commit, no lock is left', async () => {
    const marker = 'gone_tunnel_update';
    const c = new pg.Client({ host: '127.0.0.1', port: policed.port, user: 'x', database: db.target.database });
    await c.connect();
    c.on('error', () => undefined);
    await c.query('begin');
    await c.query('update accounts set balance = 0 where id = 1');
    const pending = c.query(`update accounts set balance = -1 where id = 2 and pg_sleep(${SLEEP_S}) is not null /* ${marker} */`).catch(() => undefined);
    const pid = await runningOnTarget(marker);
    ((c as unknown as { connection: { stream: Socket } }).connection.stream).destroy();
    await pending;
    await backendGone(pid);
    const rows = (await db.admin.query('select id, balance from accounts where id in (1, 2) order by id')).rows;
    expect(rows).toEqual([{ id: 1, balance: 100 }, { id: 2, balance: 100 }]);
    // Nothing holds the rows: an UPDATE of them succeeds at once (lock_timeout would fail it).
    await db.admin.query("set lock_timeout = '2s'");
    await db.admin.query('update accounts set balance = balance where id in (1, 2)');
    await db.admin.query('reset lock_timeout');
    const [r] = await resultsFor(marker);
    expect(r?.result).toMatchObject({ status: 'error', sqlstate: '57014' });
    expect(String(r?.result.message)).toContain(GONE_NOTE);
  });

  it('tunnel, a pipeline of two long Queries: each is cancelled as the target starts it, the backend is gone', async () => {
    const r = await rawClient(open.port, db.target.database);
    const q = (sql: string) => new MessageWriter().cstring(sql).typed('Q');
    r.send(Buffer.concat([q(`select pg_sleep(${SLEEP_S}) /* gone_pipe_1 */`), q(`select pg_sleep(${SLEEP_S}) /* gone_pipe_2 */`)]));
    const pid = await runningOnTarget('gone_pipe_1');
    r.close();
    await backendGone(pid);
    const results = await resultsFor('gone_pipe_');
    expect(results.map((x) => x.result.sqlstate)).toEqual(['57014', '57014']);
  });

  it('direct mode: psql killed during pg_sleep — the backend is gone promptly', async () => {
    const marker = 'gone_direct_sleep';
    const issued = await runCli(['dsn', 'pg-open'], tokenCtx(gw, token));
    expect(issued.code, issued.stderr).toBe(0);
    const child = spawnPsql(`${issued.stdout.trim()} connect_timeout=10`, `select pg_sleep(${SLEEP_S}) /* ${marker} */`);
    const pid = await runningOnTarget(marker);
    await kill(child);
    await backendGone(pid);
    const [r] = await resultsFor(marker);
    expect(r?.result).toMatchObject({ status: 'error', sqlstate: '57014' });
  });

  it('direct mode, pg driver: a long UPDATE in a transaction, the TCP connection reset — cancelled, not committed', async () => {
    const marker = 'gone_direct_reset';
    const res = await runCli(['dsn', 'pg-open', '--json'], tokenCtx(gw, token));
    expect(res.code, res.stderr).toBe(0);
    const d = JSON.parse(res.stdout) as { host: string; port: number; user: string; password: string; database: string };
    const c = new pg.Client({ host: d.host, port: d.port, user: d.user, password: d.password, database: d.database, ssl: { ca: readFileSync(gw.caFile as string, 'utf8'), servername: 'localhost' } });
    await c.connect();
    c.on('error', () => undefined);
    await c.query('begin');
    await c.query('update accounts set balance = 5 where id = 4');
    const pending = c.query(`update accounts set balance = -1 where id = 5 and pg_sleep(${SLEEP_S}) is not null /* ${marker} */`).catch(() => undefined);
    const pid = await runningOnTarget(marker);
    // The TLS socket wraps the TCP one: reset that, as a crashed host's kernel would.
    const tls = (c as unknown as { connection: { stream: Socket & { _parent?: Socket } } }).connection.stream;
    (tls._parent ?? tls).resetAndDestroy();
    await pending;
    await backendGone(pid);
    expect((await db.admin.query('select id, balance from accounts where id in (4, 5) order by id')).rows).toEqual([{ id: 4, balance: 100 }, { id: 5, balance: 100 }]);
    const [r] = await resultsFor(marker);
    expect(r?.result).toMatchObject({ status: 'error', sqlstate: '57014' });
    expect(r?.end).toMatchObject({ status: 'error', sqlstate: '08006' });
    expect(String(r?.end.message)).toContain('(client connection failed (ECONNRESET))');
  });

  it('a client that leaves while idle in a transaction: no cancel is needed, the close rolls it back', async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: open.port, user: 'x', database: db.target.database });
    await c.connect();
    c.on('error', () => undefined);
    await c.query('begin');
    await c.query("update accounts set balance = 7 where id = 3 /* gone_idle_tx */");
    const pid = (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number;
    ((c as unknown as { connection: { stream: Socket } }).connection.stream).destroy();
    await backendGone(pid);
    expect((await db.admin.query('select balance from accounts where id = 3')).rows[0].balance).toBe(100);
  });
});
