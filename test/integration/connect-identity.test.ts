// A running `sluice connect` keeps the identity it started as: alice opens a tunnel, then bob logs
// in with the same config directory (the same token store); new clients of alice's tunnel still run
// as alice, and alice's policy still holds her writes for review. Access tokens live 31 s, one
// more than the CLI's renewal margin, so every new client makes the tunnel renew its login, the
// path where it used to pick up whoever was stored. Also: `connect NAME -- CMD` needs no port notice.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ReviewInfo } from '../../src/api/contract.js';
import { login, newConfigDir, openTunnel, runCli, serviceToken, startGateway, type GatewayProcess, type Tunnel } from '../support/binaries.js';

const cluster = inject('pgCluster');
const TABLE = `identity_e2e_${randomBytes(4).toString('hex')}`;

let gw: GatewayProcess;
let admin: pg.Client;
let tunnel: Tunnel | undefined;
const clients: pg.Client[] = [];

beforeAll(async () => {
  admin = new pg.Client({ host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: cluster.password });
  await admin.connect();
  await admin.query(`create table ${TABLE} (id int primary key)`);
  gw = await startGateway({
    accessTokenTtlSeconds: 31,
    env: { PG_TEST_PASSWORD: cluster.password },
    connections: [
      {
        name: 'pg-shared',
        type: 'postgres',
        target: { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: 'PG_TEST_PASSWORD' }, sslmode: 'disable' },
        allow: { groups: ['eng', 'sales'] },
        // Only alice (eng) needs a review: were the tunnel to switch to bob, the write would run.
        policy: { rules: [{ id: 'eng-writes-reviewed', for: { groups: ['eng'] }, review: { statements: ['insert'], approvers: ['dba'], timeout: '30s' } }] },
      },
    ],
  });
});
afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  await tunnel?.stop();
  await gw?.stop();
  await admin?.query(`drop table if exists ${TABLE}`);
  await admin?.end();
});

async function client(port: number): Promise<{ c: pg.Client; notices: string[] }> {
  const c = new pg.Client({ host: '127.0.0.1', port, database: cluster.database, user: 'x' });
  const notices: string[] = [];
  c.on('notice', (n) => notices.push(n.message ?? ''));
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return { c, notices };
}

async function reviewId(notices: string[]): Promise<string> {
  const until = Date.now() + 10_000;
  for (;;) {
    const m = notices.map((n) => /held for review (R-[2-9A-Z]{4})/.exec(n)).find(Boolean);
    if (m) return m[1] as string;
    if (Date.now() > until) throw new Error(`no review notice; notices: ${JSON.stringify(notices)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('sluice connect keeps its identity', () => {
  it('new clients still run as alice, held for review, after bob logs in with the same config dir', async () => {
    const configDir = newConfigDir();
    expect((await login(gw, configDir, 'alice')).code).toBe(0);
    tunnel = await openTunnel('pg-shared', { configDir });
    expect(tunnel.info).toMatchObject({ connection: 'pg-shared', as: 'alice@example.com' });

    const bob = await login(gw, configDir, 'bob');
    expect(bob.code, bob.stderr).toBe(0);
    const who = await runCli(['whoami', '--json'], { configDir });
    expect(JSON.parse(who.stdout)).toMatchObject({ email: 'bob@example.com' });

    const { c, notices } = await client(tunnel.port);
    expect((await c.query<{ a: string }>(`select current_setting('application_name') as a`)).rows).toEqual([{ a: 'sluice:alice@example.com' }]);

    const insert = c.query(`insert into ${TABLE} values (1)`).then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    const id = await reviewId(notices);
    const oncall = { configDir: newConfigDir(), env: { SLUICE_TOKEN: serviceToken(gw, 'oncall', 'dba'), SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string } };
    const reviews = JSON.parse((await runCli(['reviews', 'ls', '--json'], oncall)).stdout) as ReviewInfo[];
    expect(reviews.find((r) => r.id === id)?.requester).toMatchObject({ name: 'alice@example.com' });
    const rejected = await runCli(['reviews', 'reject', id, '--reason', 'not now'], oncall);
    expect(rejected.code, rejected.stderr).toBe(0);
    expect((await insert)?.code).toBe('42501');
    expect((await admin.query(`select count(*)::int as n from ${TABLE}`)).rows).toEqual([{ n: 0 }]);

    // bob's own login was left as he stored it: his commands still run as bob.
    const again = await runCli(['whoami', '--json'], { configDir });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ email: 'bob@example.com' });
    expect(tunnel.stderr()).not.toContain('could not be connected');
  });

  it('`connect NAME -- CMD` takes any free port without the default-port notice', async () => {
    const configDir = newConfigDir();
    expect((await login(gw, configDir, 'alice')).code).toBe(0);
    // 5433 may already be taken by something else: either way the command gets a port.
    const blocker: Server = createServer();
    await new Promise<void>((res) => blocker.once('error', () => res()).listen(5433, '127.0.0.1', () => res()));
    try {
      const res = await runCli(['connect', 'pg-shared', '--', process.execPath, '-e', 'console.log(process.env.PGPORT)'], { configDir });
      expect(res.code, res.stderr).toBe(0);
      expect(Number(res.stdout.trim())).toBeGreaterThan(0);
      expect(res.stderr).not.toContain('is in use');
    } finally {
      blocker.close();
    }
  });
});
