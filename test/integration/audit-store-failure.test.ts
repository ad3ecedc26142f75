// The store fails mid-session. With SQLite in WAL mode, chmod or deleting the file changes nothing
// for a connection that is already open (it keeps its descriptors; a deleted file even goes on
// "accepting" writes), so the test does what a full disk does: every write fails. It lowers the
// running gateway's file-size limit to 1 byte (prlimit), which makes each write to the WAL fail
// with EFBIG. Statements must then fail with a clear error and never reach the target, new
// sessions must be refused, and everything must recover once writes succeed again.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { Agent, fetch } from 'undici';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { SessionDetail, SessionSummary } from '../../src/api/contract.js';
import { ensureProgram } from '../support/pgCluster.js';
import { exportAndVerify, openTunnel, runCli, serviceToken, startGateway, tokenCtx, type GatewayProcess } from '../support/binaries.js';

const cluster = inject('pgCluster');
const PRLIMIT = ensureProgram('/usr/bin/prlimit', 'util-linux');
const PASSWORD_ENV = 'PG_TEST_PASSWORD';
const table = `failure_${randomBytes(4).toString('hex')}`;
const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: PASSWORD_ENV }, sslmode: 'disable' };

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

const setFileSizeLimit = (pid: number, soft: string) => execFileSync(PRLIMIT, ['--pid', String(pid), `--fsize=${soft}:`]);

describe('the audit store fails mid-session', () => {
  it('fails statements closed, refuses new sessions, and recovers when writes succeed again', async () => {
    const gw: GatewayProcess = await startGateway({
      env: { [PASSWORD_ENV]: cluster.password },
      connections: [{ name: 'pg-test', type: 'postgres', target, allow: { groups: ['eng'] } }],
      extra: { audit: { readers: ['eng'] } },
    });
    cleanups.push(() => gw.stop());
    const ctx = tokenCtx(gw, serviceToken(gw, 'ci', 'eng'));
    const tunnel = await openTunnel('pg-test', ctx);
    cleanups.push(() => tunnel.stop());
    const local = tunnel.port;
    const through = () => new pg.Client({ host: '127.0.0.1', port: local, database: cluster.database, user: 'x' });
    const dispatcher = new Agent({ connect: gw.caFile ? { ca: readFileSync(gw.caFile) } : {} });
    const health = async () => {
      const res = await fetch(`${gw.url}/healthz`, { dispatcher });
      return { status: res.status, body: await res.json() };
    };

    const admin = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, database: cluster.database });
    await admin.connect();
    cleanups.push(() => admin.end());
    await admin.query(`create table ${table} (n int)`);

    const a = through();
    a.on('error', () => undefined);
    await a.connect();
    await a.query(`insert into ${table} values (1)`);

    setFileSizeLimit(gw.child.pid!, '1');
    try {
      const err = (await a.query(`insert into ${table} values (2)`).then(
        () => undefined,
        (e: unknown) => e,
      )) as { code?: string; message?: string } | undefined;
      expect(err?.code).toBe('58030');
      expect(err?.message).toBe('the gateway cannot record this statement in its audit trail (the audit store is unavailable); it was not executed');
      expect(await health()).toEqual({ status: 503, body: { status: 'degraded', audit: 'unavailable' } });

      const b = through();
      const refused = (await b.connect().then(
        () => undefined,
        (e: unknown) => e,
      )) as { message?: string } | undefined;
      expect(refused?.message).toContain('the gateway cannot write its audit trail right now; new sessions are refused until it can');

      // The target received nothing unrecorded.
      expect((await admin.query(`select n from ${table} order by n`)).rows).toEqual([{ n: 1 }]);
    } finally {
      setFileSizeLimit(gw.child.pid!, 'unlimited');
    }

    await expect.poll(async () => (await health()).status, { timeout: 5_000, interval: 200 }).toBe(200);
    const c = through();
    await c.connect();
    await c.query(`insert into ${table} values (3)`);
    await c.end();
    expect((await admin.query(`select n from ${table} order by n`)).rows).toEqual([{ n: 1 }, { n: 3 }]);

    // The refusal is on record, and the whole trail verifies.
    await new Promise((r) => setTimeout(r, 300));
    const list = JSON.parse((await runCli(['sessions', '--json'], ctx)).stdout) as SessionSummary[];
    const failed = list.find((s) => s.status === 'error')!;
    expect(failed.error).toMatch(/^58030 /);
    const detail = JSON.parse((await runCli(['sessions', 'show', failed.id, '--json'], ctx)).stdout) as SessionDetail;
    const refusal = detail.events.find((e) => e.kind === 'result' && e.data.sqlstate === '58030');
    expect(refusal?.data.message).toBe('not forwarded: the audit store could not record it');
    const { verify } = await exportAndVerify(ctx, gw.dir);
    expect(verify.code, verify.stderr).toBe(0);
    expect(gw.output()).toContain('the audit store cannot be written');
    expect(gw.output()).toContain('the audit store accepts writes again');
  });
});

describe('the PostgreSQL store fails mid-session', () => {
  // Statements are durable once in the gateway's local journal and reach the store in batches
  // ~100 ms later, so the statement right after the store breaks may still run (it is on record in
  // the journal and is stored when the store is back); once an ingest has failed, statements
  // fail closed. What must hold: the target never runs a statement the trail does not have.
  it('fails statements closed while the store role may not insert, and recovers when it may', async () => {
    const su = cluster.roles.superuser;
    const db = `sluice_fail_${randomBytes(4).toString('hex')}`;
    const role = `sluice_store_${randomBytes(4).toString('hex')}`;
    const rolePassword = randomBytes(12).toString('hex');
    const superuser = new pg.Client({ host: cluster.host, port: cluster.port, user: su.user, password: su.password, database: 'postgres' });
    await superuser.connect();
    cleanups.push(() => superuser.end());
    await superuser.query(`CREATE ROLE ${role} LOGIN PASSWORD '${rolePassword}'`);
    await superuser.query(`CREATE DATABASE ${db} OWNER ${role}`);
    const gw = await startGateway({
      env: { [PASSWORD_ENV]: cluster.password, STORE_PASSWORD: rolePassword },
      connections: [{ name: 'pg-test', type: 'postgres', target, allow: { groups: ['eng'] } }],
      extra: { store: { postgres: `postgresql://${role}@${cluster.host}:${cluster.port}/${db}`, password: { env: 'STORE_PASSWORD' } }, audit: { readers: ['eng'] } },
    });
    cleanups.push(() => gw.stop());
    const ctx = tokenCtx(gw, serviceToken(gw, 'ci', 'eng', { STORE_PASSWORD: rolePassword }));
    const tunnel = await openTunnel('pg-test', ctx);
    cleanups.push(() => tunnel.stop());
    const local = tunnel.port;
    const storeDb = new pg.Client({ host: cluster.host, port: cluster.port, user: su.user, password: su.password, database: db });
    await storeDb.connect();
    cleanups.push(() => storeDb.end());
    const pgTable = `pgfail_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, database: cluster.database });
    await admin.connect();
    cleanups.push(() => admin.end());
    await admin.query(`create table ${pgTable} (n int)`);

    const a = new pg.Client({ host: '127.0.0.1', port: local, database: cluster.database, user: 'x' });
    a.on('error', () => undefined);
    await a.connect();
    await a.query(`insert into ${pgTable} values (1)`);
    await storeDb.query(`REVOKE INSERT ON audit_events FROM ${role}`);
    const dispatcher = new Agent({ connect: gw.caFile ? { ca: readFileSync(gw.caFile) } : {} });
    let refusedAt: number | undefined;
    try {
      // Within a second the failed ingest is noticed; from then on every statement is refused.
      for (let n = 2; n < 40 && refusedAt === undefined; n++) {
        const err = (await a.query(`insert into ${pgTable} values (${n})`).then(
          () => undefined,
          (e: unknown) => e,
        )) as { code?: string } | undefined;
        if (err !== undefined) {
          expect(err.code).toBe('58030');
          refusedAt = n;
        } else await new Promise((r) => setTimeout(r, 50));
      }
      expect(refusedAt).toBeDefined();
      expect((await fetch(`${gw.url}/healthz`, { dispatcher })).status).toBe(503);
      const ran = (await admin.query(`select n from ${pgTable} order by n`)).rows.map((r: { n: number }) => r.n);
      expect(ran).toEqual(Array.from({ length: (refusedAt as number) - 1 }, (_, i) => i + 1));
    } finally {
      await storeDb.query(`GRANT INSERT ON audit_events TO ${role}`);
    }
    const insertAfter = async () => {
      const c = new pg.Client({ host: '127.0.0.1', port: local, database: cluster.database, user: 'x' });
      c.on('error', () => undefined);
      try {
        await c.connect();
        await c.query(`insert into ${pgTable} values (1000)`);
        return true;
      } catch {
        return false;
      } finally {
        await c.end().catch(() => undefined);
      }
    };
    await expect.poll(insertAfter, { timeout: 5_000, interval: 500 }).toBe(true);
    await a.end().catch(() => undefined);
    // Every statement the target ran is in the trail, the refused one too (as refused), and it verifies.
    const executed = (await admin.query(`select n from ${pgTable} order by n`)).rows.map((r: { n: number }) => r.n);
    await new Promise((r) => setTimeout(r, 300));
    const { trail, verify } = await exportAndVerify(ctx, gw.dir);
    for (const n of executed) expect(trail).toContain(`insert into ${pgTable} values (${n})`);
    expect(trail).toContain('not forwarded: the audit store could not record it');
    expect(verify.code, verify.stderr).toBe(0);
  });
});
