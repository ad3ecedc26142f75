// Reviews end to end through the real binaries: a gateway whose connection holds writes for
// review, `sluice connect` tunnels for a requester (service token) and for alice (device-flow
// login, herself an approver), the pg driver and psql issuing INSERTs that wait, and approvers
// deciding with `sluice reviews`. The target's table is checked directly after each outcome.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ReviewInfo, SessionDetail, SessionSummary } from '../../src/api/contract.js';
import { collect, login, newConfigDir, openTunnel, runCli, serviceToken, startGateway, type CliEnv, type GatewayProcess } from '../support/binaries.js';

const cluster = inject('pgCluster');
const TABLE = `reviews_e2e_${randomBytes(4).toString('hex')}`;
const RULE = 'writes-need-review';

let gw: GatewayProcess;
const tokens: Record<string, string> = {};
let aliceDir: string;
let admin: pg.Client;
const cleanups: (() => Promise<unknown> | void)[] = [];

beforeAll(async () => {
  admin = new pg.Client({ host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: cluster.password });
  await admin.connect();
  await admin.query(`create table ${TABLE} (id int primary key, note text)`);
  gw = await startGateway({
    env: { PG_TEST_PASSWORD: cluster.password },
    connections: [
      {
        name: 'pg-prod',
        type: 'postgres',
        target: { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: 'PG_TEST_PASSWORD' }, sslmode: 'disable' },
        allow: { groups: ['eng', 'dba'] },
        policy: {
          rules: [
            { id: 'no-drop', block: { statements: ['drop'] } },
            { id: RULE, review: { statements: ['insert', 'update', 'delete'], approvers: ['dba'], timeout: '10s' } },
          ],
        },
      },
    ],
  });
  for (const [name, groups] of [['dev', 'eng'], ['oncall', 'dba'], ['sales', 'sales']]) {
    tokens[name as string] = serviceToken(gw, name as string, groups as string);
  }
  aliceDir = newConfigDir();
  const res = await login(gw, aliceDir, 'alice');
  expect(res.code, res.stderr).toBe(0);
});
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await gw?.stop();
  await admin?.query(`drop table if exists ${TABLE}`);
  await admin?.end();
});

const as = (who: string): CliEnv => ({ configDir: newConfigDir(), env: { SLUICE_TOKEN: tokens[who], SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string } });
const alice = (): CliEnv => ({ configDir: aliceDir });
const rowIds = async () => (await admin.query<{ id: number }>(`select id from ${TABLE} order by id`)).rows.map((r) => r.id);

/** `sluice connect pg-prod --json --port 0` as `ctx`; resolves with its local port. */
async function connect(ctx: CliEnv): Promise<number> {
  const tunnel = await openTunnel('pg-prod', ctx);
  cleanups.push(() => tunnel.stop());
  return tunnel.port;
}

/** A pg client through the tunnel that collects NoticeResponses. */
async function client(port: number): Promise<{ c: pg.Client; notices: string[] }> {
  const c = new pg.Client({ host: '127.0.0.1', port, database: cluster.database, user: 'x', password: 'ignored' });
  const notices: string[] = [];
  c.on('notice', (n) => notices.push(n.message ?? ''));
  c.on('error', () => undefined);
  await c.connect();
  cleanups.push(() => c.end().catch(() => undefined));
  return { c, notices };
}

/** Waits for the notice that names the review and returns its id. */
async function heldAs(notices: string[], ms = 10_000): Promise<string> {
  const until = Date.now() + ms;
  for (;;) {
    for (const n of notices) {
      const m = /^query held for review (R-[2-9A-Z]{4}) by rule writes-need-review; an approver runs: sluice reviews approve \1$/.exec(n);
      if (m) return m[1] as string;
    }
    if (Date.now() > until) throw new Error(`no review notice; notices: ${JSON.stringify(notices)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function reviewsJson(ctx: CliEnv, all = false): Promise<ReviewInfo[]> {
  const res = await runCli(['reviews', 'ls', '--json', ...(all ? ['--all'] : [])], ctx);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as ReviewInfo[];
}

describe('reviews through the tunnel', () => {
  it('an approved INSERT runs unchanged; the review and the approver are in the audit trail', async () => {
    const { c, notices } = await client(await connect(as('dev')));
    const insert = c.query(`insert into ${TABLE} values (1, 'approved') returning id`);
    const id = await heldAs(notices);
    expect(await rowIds()).toEqual([]);

    const listed = (await reviewsJson(as('oncall'))).find((r) => r.id === id);
    expect(listed).toMatchObject({ status: 'pending', canDecide: true, rule: RULE, connection: 'pg-prod', requester: { name: 'dev' }, sql: `insert into ${TABLE} values (1, 'approved') returning id` });
    const table = await runCli(['reviews'], as('oncall'));
    expect(table.stdout).toMatch(new RegExp(`^${id}\\s+pending, expires in \\d+s\\s+.*\\s+dev\\s+pg-prod\\s+${RULE}\\s+may decide\\s+insert into ${TABLE}`, 'm'));

    const ok = await runCli(['reviews', 'approve', id, '--reason', 'ticket OPS-1'], as('oncall'));
    expect(ok.code, ok.stderr).toBe(0);
    expect((await insert).rows).toEqual([{ id: 1 }]);
    expect(await rowIds()).toEqual([1]);

    // The session is still usable after the held statement.
    expect((await c.query('select 40 + 2 as n')).rows).toEqual([{ n: 42 }]);
    const show = await runCli(['sessions', 'show', listed?.session as string, '--json'], as('dev'));
    const events = (JSON.parse(show.stdout) as SessionDetail).events;
    expect(events.map((e) => e.kind)).toEqual(expect.arrayContaining(['review.created', 'review.approved']));
    expect(events.find((e) => e.kind === 'review.approved')?.data).toMatchObject({ review: id, by: 'oncall' });
  });

  it('a rejected INSERT fails with 42501 and the reason (psql); nothing is written', async () => {
    const port = await connect(as('dev'));
    const child = spawn(cluster.psqlPath, ['-X', '-h', '127.0.0.1', '-p', String(port), '-d', cluster.database, '-U', 'x', '-v', 'VERBOSITY=verbose', '-c', `insert into ${TABLE} values (2, 'rejected')`], {
      env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
    });
    const done = collect(child);
    const id = await waitForPending(as('oncall'), `values (2, 'rejected')`);
    const no = await runCli(['reviews', 'reject', id, '--reason', 'use the migration tool'], as('oncall'));
    expect(no.code, no.stderr).toBe(0);
    const res = await done;
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`NOTICE:\\s+(\\w{5}: )?query held for review ${id} by rule ${RULE}`));
    expect(res.stderr).toMatch(/ERROR:\s+42501: .*use the migration tool/);
    expect(await rowIds()).not.toContain(2);
  });

  it('an INSERT nobody decides expires after the rule timeout with 57014', async () => {
    const { c, notices } = await client(await connect(as('dev')));
    const started = Date.now();
    const err = await Promise.all([c.query(`insert into ${TABLE} values (3, 'expired')`).then(() => undefined, (e: unknown) => e as { code?: string }), heldAs(notices)]);
    expect(err[0]?.code).toBe('57014');
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_500);
    expect(await rowIds()).not.toContain(3);
    const late = await runCli(['reviews', 'approve', err[1]], as('oncall'));
    expect(late.code).toBe(1);
    expect(late.stderr).toContain('it expired without a decision');
  }, 30_000);

  it('the requester may not approve their own statement, even as an approver; outsiders may not either', async () => {
    const { c, notices } = await client(await connect(alice()));
    const insert = c.query(`insert into ${TABLE} values (4, 'alice')`).then(() => undefined, (e: unknown) => e as { code?: string; message?: string });
    const id = await heldAs(notices);
    const self = await runCli(['reviews', 'approve', id], alice());
    expect(self.code).toBe(4);
    expect(self.stderr).toContain(`alice@example.com requested review ${id} and may not approve it`);
    const outsider = await runCli(['reviews', 'approve', id], as('sales'));
    expect(outsider.code).toBe(4);
    expect(outsider.stderr).toContain('it needs a member of dba');
    expect(await rowIds()).not.toContain(4);
    await runCli(['reviews', 'reject', id, '--reason', 'no self-service'], as('oncall'));
    const err = await insert;
    expect([err?.code, err?.message]).toEqual(['42501', expect.stringContaining('no self-service')]);
  });

  it('a client that disconnects while waiting cancels its review; two reviews wait at once', async () => {
    const port = await connect(as('dev'));
    const a = await client(port);
    const b = await client(port);
    const pa = a.c.query(`insert into ${TABLE} values (5, 'gone')`).catch(() => undefined);
    const pb = b.c.query(`insert into ${TABLE} values (6, 'kept')`);
    const [ida, idb] = await Promise.all([heldAs(a.notices), heldAs(b.notices)]);
    expect((await reviewsJson(as('oncall'))).map((r) => r.id)).toEqual(expect.arrayContaining([ida, idb]));
    // Kill the socket without a Terminate, as a crashed client would.
    (a.c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await pa;
    await waitUntil(async () => (await reviewsJson(as('oncall'), true)).find((r) => r.id === ida)?.status === 'cancelled');
    expect((await runCli(['reviews', 'approve', ida], as('oncall'))).stderr).toContain('it was cancelled');
    expect((await runCli(['reviews', 'approve', idb], as('oncall'))).code).toBe(0);
    await pb;
    expect(await rowIds()).toEqual(expect.arrayContaining([6]));
    expect(await rowIds()).not.toContain(5);
  });
});

describe('sessions ls counts', () => {
  it('a session with one blocked and one reviewed statement shows 1 and 1 (--json and the table)', async () => {
    const { c, notices } = await client(await connect(as('dev')));
    await expect(c.query(`drop table ${TABLE}`)).rejects.toMatchObject({ code: '42501' });
    const insert = c.query(`insert into ${TABLE} values (7, 'counted')`);
    const id = await heldAs(notices);
    expect((await runCli(['reviews', 'approve', id], as('oncall'))).code).toBe(0);
    await insert;
    const session = (await reviewsJson(as('oncall'), true)).find((r) => r.id === id)?.session as string;
    await c.end();
    let listed: SessionSummary | undefined;
    await waitUntil(async () => {
      const res = await runCli(['sessions', '--json', '--connection', 'pg-prod'], as('dev'));
      listed = (JSON.parse(res.stdout) as SessionSummary[]).find((s) => s.id === session);
      return listed !== undefined && listed.status !== 'open';
    });
    expect(listed).toMatchObject({ queries: 2, blocked: 1, reviewed: 1 });
    const table = await runCli(['sessions', '--connection', 'pg-prod'], as('dev'));
    expect(table.stdout).toMatch(/^ID\s+STARTED\s+USER\s+CONNECTION\s+STATUS\s+QUERIES\s+BLOCKED\s+REVIEWED\s+DURATION$/m);
    expect(table.stdout).toMatch(new RegExp(`^${session}\\s.*\\s(ok|error)\\s+2\\s+1\\s+1\\s+\\d.*$`, 'm'));
  });
});

/** Polls `sluice reviews` as `ctx` until a pending review's SQL contains `sqlPart`. */
async function waitForPending(ctx: CliEnv, sqlPart: string): Promise<string> {
  let found: string | undefined;
  await waitUntil(async () => {
    found = (await reviewsJson(ctx)).find((r) => r.status === 'pending' && r.sql?.includes(sqlPart) === true)?.id;
    return found !== undefined;
  });
  return found as string;
}

async function waitUntil(check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 200));
  }
}
