// TLS on the local hop of `sluice connect`, end to end: the real CLI and gateway, the real psql
// with sslmode=require and verify-full against the certificate the CLI generates and keeps per
// user, and the pg driver with ssl on. Plaintext clients keep working beside them.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { collect, newConfigDir, openTunnel, serviceToken, startGateway, type GatewayProcess, type Tunnel } from '../support/binaries.js';

const cluster = inject('pgCluster');
const PSQL = cluster.psqlPath;

let gw: GatewayProcess;
let token: string;
let configDir: string;
const tunnels: Tunnel[] = [];

beforeAll(async () => {
  gw = await startGateway({
    env: { PG_TEST_PASSWORD: cluster.password },
    connections: [
      {
        name: 'pg-test',
        type: 'postgres',
        target: { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: 'PG_TEST_PASSWORD' }, sslmode: 'disable' },
        allow: { groups: ['eng'] },
      },
    ],
  });
  token = serviceToken(gw, 'ci', 'eng');
  configDir = newConfigDir();
});
afterAll(async () => {
  for (const t of tunnels) await t.stop();
  await gw?.stop();
});

const ctx = () => ({ configDir, env: { SLUICE_TOKEN: token, SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string } });

async function tunnel(): Promise<Tunnel & { sslrootcert: string }> {
  const t = await openTunnel('pg-test', ctx());
  tunnels.push(t);
  const { sslrootcert } = t.info as unknown as { sslrootcert?: string };
  expect(sslrootcert, 'connect --json names the local certificate').toBeTypeOf('string');
  return { ...t, sslrootcert: sslrootcert as string };
}

function psql(conninfo: string, sql: string) {
  const child = spawn(PSQL, ['-X', '-tA', conninfo, '-c', sql, '-c', '\\conninfo'], { env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
  return collect(child);
}

describe('sluice connect: TLS on the local hop', () => {
  it('psql with sslmode=require gets TLS; verify-full passes with the CLI certificate as root, by name and by address', async () => {
    const t = await tunnel();
    expect(dirname(t.sslrootcert)).toBe(configDir);
    expect(statSync(t.sslrootcert).mode & 0o777).toBe(0o600);
    expect(statSync(join(configDir, 'local-tls.pem')).mode & 0o777).toBe(0o600);

    const req = await psql(`host=127.0.0.1 port=${t.port} dbname=${cluster.database} user=x sslmode=require`, 'select 40 + 2');
    expect(req.code, req.stderr).toBe(0);
    expect(req.stdout).toMatch(/^42$/m);
    expect(req.stdout).toMatch(/SSL connection \(protocol: TLSv1\.[23]/);

    for (const host of ['localhost', '127.0.0.1']) {
      const full = await psql(`host=${host} port=${t.port} dbname=${cluster.database} user=x sslmode=verify-full sslrootcert=${t.sslrootcert}`, 'select current_database()');
      expect(full.code, full.stderr).toBe(0);
      expect(full.stdout).toContain(cluster.database);
      expect(full.stdout).toContain('SSL connection');
    }
  });

  it('verify-full against another root fails: the client really checks the certificate', async () => {
    const t = await tunnel();
    const res = await psql(`host=localhost port=${t.port} dbname=${cluster.database} user=x sslmode=verify-full sslrootcert=${gw.caFile as string}`, 'select 1');
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/certificate verify failed/);
  });

  it('the certificate is generated once per user: a second connect presents the same one', async () => {
    const a = await tunnel();
    const first = readFileSync(a.sslrootcert, 'utf8');
    const b = await tunnel();
    expect(b.sslrootcert).toBe(a.sslrootcert);
    expect(readFileSync(b.sslrootcert, 'utf8')).toBe(first);
  });

  it('the pg driver with ssl (verifying the CLI certificate) and without, side by side', async () => {
    const t = await tunnel();
    const secure = new pg.Client({ host: 'localhost', port: t.port, database: cluster.database, user: 'x', ssl: { ca: readFileSync(t.sslrootcert), servername: 'localhost' } });
    const plain = new pg.Client({ host: '127.0.0.1', port: t.port, database: cluster.database, user: 'x' });
    await Promise.all([secure.connect(), plain.connect()]);
    try {
      const stream = (c: pg.Client) => (c as unknown as { connection: { stream: unknown } }).connection.stream;
      expect(stream(secure)).toBeInstanceOf(TLSSocket);
      expect(stream(plain)).not.toBeInstanceOf(TLSSocket);
      const [s, p] = await Promise.all([secure.query('select $1::int * 2 as v', [21]), plain.query('select $1::text as t', ['plain'])]);
      expect(s.rows[0]).toEqual({ v: 42 });
      expect(p.rows[0]).toEqual({ t: 'plain' });
      // A large result crosses the TLS hop whole (backpressure on the TLS socket).
      const big = await secure.query("select repeat('y', 1048576) as chunk from generate_series(1, 20)");
      expect(big.rows.every((r: { chunk: string }) => r.chunk.length === 1048576)).toBe(true);
      // And the other way: 12 MB up in one Bind (the gateway's default cap is 16 MB), more than any socket buffer holds.
      const up = await secure.query('select length($1::text) as n, md5($1::text) as h', ['z'.repeat(12 << 20)]);
      expect(up.rows[0].n).toBe(12 << 20);
    } finally {
      await Promise.all([secure.end(), plain.end()]);
    }
  });

  it('a client that closes during the TLS handshake does not take the tunnel down', async () => {
    const t = await tunnel();
    const { connect } = await import('node:net');
    const raw = connect(t.port, '127.0.0.1');
    raw.on('error', () => undefined);
    await new Promise((r) => raw.once('connect', r));
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8, 0);
    ssl.writeInt32BE(80877103, 4);
    raw.write(ssl);
    await new Promise((r) => raw.once('data', r));
    raw.destroy();
    const res = await psql(`host=localhost port=${t.port} dbname=${cluster.database} user=x sslmode=require`, 'select 7');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^7$/m);
  });

  it('without a place for the certificate it warns and serves plaintext; a client that requires TLS is refused', async () => {
    const dir = newConfigDir();
    // A directory where the key file belongs: nothing can be written or read there.
    mkdirSync(join(dir, 'local-tls.pem'));
    const t = await openTunnel('pg-test', { configDir: dir, env: ctx().env });
    tunnels.push(t);
    expect((t.info as unknown as { sslrootcert?: string }).sslrootcert).toBeUndefined();
    // stderr and stdout are separate pipes: the warning, written first, may be read second.
    if (!/warning: no TLS/.test(t.stderr())) await once(t.child.stderr!, 'data');
    expect(t.stderr()).toMatch(/warning: no TLS on the local port/);
    const plain = await psql(`host=127.0.0.1 port=${t.port} dbname=${cluster.database} user=x sslmode=prefer`, 'select 5');
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^5$/m);
    const required = await psql(`host=127.0.0.1 port=${t.port} dbname=${cluster.database} user=x sslmode=require`, 'select 5');
    expect(required.code).not.toBe(0);
    expect(required.stderr).toMatch(/server does not support SSL/);
  });
});
