// `sluice connect` end to end: the real CLI and gateway binaries, a throwaway PostgreSQL cluster
// with SCRAM auth, the real psql and the pg driver through the tunnel.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { collect, login, newConfigDir, openTunnel, runCli, serviceToken, spawnCli, startGateway, type GatewayProcess, type Tunnel } from '../support/binaries.js';

const cluster = inject('pgCluster');
const PSQL = cluster.psqlPath;
const PASSWORD_ENV = 'PG_TEST_PASSWORD';

let gw: GatewayProcess;
let token: string;
let configDir: string;
const cleanups: (() => Promise<unknown> | void)[] = [];

const target = (extra: Record<string, unknown> = {}) => ({
  host: cluster.host,
  port: cluster.port,
  database: cluster.database,
  user: cluster.user,
  password: { env: PASSWORD_ENV },
  sslmode: 'disable',
  ...extra,
});

beforeAll(async () => {
  gw = await startGateway({
    env: { [PASSWORD_ENV]: cluster.password, WRONG_PASSWORD: 'definitely-wrong' },
    connections: [
      { name: 'pg-test', type: 'postgres', description: 'the test cluster', target: target(), allow: { groups: ['eng'] } },
      { name: 'pg-dba', type: 'postgres', target: target(), allow: { groups: ['dba'] } },
      { name: 'pg-wrong-password', type: 'postgres', target: target({ password: { env: 'WRONG_PASSWORD' } }), allow: { groups: ['eng'] } },
      { name: 'pg-down', type: 'postgres', target: target({ port: 1 }), allow: { groups: ['eng'] } },
    ],
  });
  token = serviceToken(gw, 'ci', 'eng');
  configDir = newConfigDir();
});
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await gw?.stop();
});

const cliCtx = () => ({ configDir, env: { SLUICE_TOKEN: token, SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string } });

/** Starts `sluice connect NAME --json` and resolves with its port once it is ready. */
async function connect(name: string, extra: string[] = []): Promise<Tunnel> {
  const tunnel = await openTunnel(name, cliCtx(), extra);
  expect(tunnel.info).toMatchObject({ connection: name, type: 'postgres', host: '127.0.0.1', database: cluster.database });
  cleanups.push(() => tunnel.stop());
  return tunnel;
}

function psql(port: number, args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(PSQL, ['-X', '-h', '127.0.0.1', '-p', String(port), '-d', cluster.database, '-U', 'whoever', '-v', 'ON_ERROR_STOP=0', ...args], {
    env: { ...process.env, PGCONNECT_TIMEOUT: '10', ...env },
  });
  return { child, done: collect(child) };
}

describe('sluice connect (postgres)', () => {
  it('lists the connections a caller may use, without secrets', async () => {
    const res = await runCli(['connections', '--json'], cliCtx());
    expect(res.code, res.stderr).toBe(0);
    const list = JSON.parse(res.stdout) as { name: string }[];
    expect(list.map((c) => c.name)).toEqual(['pg-test', 'pg-wrong-password', 'pg-down']);
    expect(res.stdout).not.toContain(cluster.password);
  });

  it('psql works through the tunnel: queries, transactions, errors keep the session usable, \\copy both ways', async () => {
    const { port } = await connect('pg-test');
    const script = [
      'select current_user, 40 + 2 as answer;',
      'create temporary table t (id int, name text);',
      'begin; insert into t values (1, $$one$$); rollback;',
      'select count(*) as after_rollback from t;',
      'select 1/0;',
      'select $$still usable$$ as status;',
      "\\copy t from program 'printf \"1\\tone\\n2\\ttwo\\n\"'",
      '\\copy t to stdout',
    ].join('\n');
    const file = psql(port, ['-f', '-']);
    file.child.stdin?.end(script);
    const res2 = await file.done;
    expect(res2.stdout).toMatch(/app\s+\|\s+42/);
    expect(res2.stdout).toMatch(/after_rollback\s*\n-+\n\s+0/);
    expect(res2.stderr).toContain('ERROR:  division by zero');
    expect(res2.stdout).toContain('still usable');
    expect(res2.stdout).toContain('COPY 2');
    expect(res2.stdout).toMatch(/1\tone\n2\ttwo/);
  });

  it('the pg driver: parameterised queries (extended protocol), 50 concurrent clients, a 100 MB result', async () => {
    const { port } = await connect('pg-test');
    const clientFor = () => new pg.Client({ host: '127.0.0.1', port, database: cluster.database, user: 'x', password: 'ignored' });
    const c = clientFor();
    await c.connect();
    try {
      const r = await c.query('select $1::int + $2::int as sum, $3::text as t', [2, 3, 'héllo']);
      expect(r.rows[0]).toEqual({ sum: 5, t: 'héllo' });
      const big = await c.query("select count(*)::int as n, sum(length(x))::bigint as bytes from (select repeat('x', 1000) || g as x from generate_series(1, 100000) g) s");
      expect(big.rows[0].n).toBe(100000);
      // 100 MB actually crossing the tunnel:
      const stream = await c.query("select repeat('y', 1048576) as chunk from generate_series(1, 100)");
      expect(stream.rows).toHaveLength(100);
      expect(stream.rows.every((row: { chunk: string }) => row.chunk.length === 1048576)).toBe(true);
    } finally {
      await c.end();
    }
    const clients = Array.from({ length: 50 }, clientFor);
    await Promise.all(clients.map((cl) => cl.connect()));
    try {
      const results = await Promise.all(clients.map((cl, i) => cl.query('select $1::int * 2 as v, pg_backend_pid() as pid', [i])));
      expect(results.map((r) => r.rows[0].v)).toEqual(Array.from({ length: 50 }, (_, i) => i * 2));
      expect(new Set(results.map((r) => r.rows[0].pid)).size).toBe(50);
    } finally {
      await Promise.all(clients.map((cl) => cl.end()));
    }
  });

  it('Ctrl-C in psql cancels a running query through the tunnel', async () => {
    const { port } = await connect('pg-test');
    const { child, done } = psql(port, ['-c', 'select pg_sleep(30)']);
    await new Promise((r) => setTimeout(r, 1_500));
    const sent = Date.now();
    child.kill('SIGINT');
    const res = await done;
    expect(res.stderr).toContain('canceling statement due to user request');
    expect(Date.now() - sent).toBeLessThan(10_000); // a cancel, not the 30 s sleep running out
  });

  it('`connect NAME -- CMD` runs CMD against the tunnel and exits with its code', async () => {
    const ok = await runCli(['connect', 'pg-test', '--port', '0', '--', PSQL, '-X', '-tAc', 'select 6 * 7'], cliCtx());
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim()).toBe('42');
    const code = await runCli(['connect', 'pg-test', '--port', '0', '--', 'sh', '-c', 'test -n "$DATABASE_URL" && test "$PGDATABASE" = app && exit 3'], cliCtx());
    expect(code.code).toBe(3);
  });

  it('--local-password requires the one-time password from local clients', async () => {
    const { port, stderr } = await connect('pg-test', ['--local-password']);
    const pw = /local password \(required from every local client, shown once\): (\S+)/.exec(stderr())?.[1];
    expect(pw).toBeTruthy();
    const wrong = await psql(port, ['-c', 'select 1'], { PGPASSWORD: 'nope' }).done;
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain('wrong local password');
    const right = await psql(port, ['-tAc', 'select 5'], { PGPASSWORD: pw }).done;
    expect(right.stdout.trim()).toBe('5');
  });

  it('refusals: unknown connection (exit 1, lists what exists), wrong group (exit 4)', async () => {
    const unknown = await runCli(['connect', 'pg-nope'], cliCtx());
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no connection named "pg-nope"; you may use: pg-test, pg-wrong-password, pg-down');
    const forbidden = await runCli(['connect', 'pg-dba'], cliCtx());
    expect(forbidden.code).toBe(4);
    expect(forbidden.stderr).toContain('ci may not use connection "pg-dba" (it needs one of the groups: dba)');
    const noToken = await runCli(['connect', 'pg-test'], { configDir: newConfigDir(), env: { SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string } });
    expect(noToken.code).toBe(4);
  });

  it('target down: the client gets 08006 naming the connection; wrong held password: 28P01 without the secret', async () => {
    const attempt = async (port: number) => {
      const c = new pg.Client({ host: '127.0.0.1', port, database: cluster.database, user: 'x' });
      const err = (await c.connect().then(() => c.end(), (e: unknown) => e)) as { code?: string; message?: string } | undefined;
      return { code: err?.code, message: err?.message ?? '' };
    };
    const down = await connect('pg-down');
    const r1 = await attempt(down.port);
    expect(r1.code).toBe('08006');
    expect(r1.message).toContain('pg-down');
    const p1 = await psql(down.port, ['-c', 'select 1']).done;
    expect(p1.code).not.toBe(0);
    expect(p1.stderr).toContain('pg-down');

    const wrong = await connect('pg-wrong-password');
    const r2 = await attempt(wrong.port);
    expect(r2).toEqual({ code: '28P01', message: "the gateway's credential for pg-wrong-password was rejected" });
    for (const text of [r1.message, r2.message, p1.stderr, down.stderr(), wrong.stderr(), gw.output()]) {
      expect(text).not.toContain('definitely-wrong');
      expect(text).not.toContain(cluster.password);
    }
  });

  it('the default port: taken → the next free one, said clearly; an explicit taken port is an error', async () => {
    const blockers: Server[] = [];
    const block = async (port: number) => {
      const s = createServer();
      await new Promise<void>((res, rej) => s.once('error', rej).listen(port, '127.0.0.1', () => res()));
      blockers.push(s);
    };
    try {
      await block(5433).catch(() => undefined); // may already be taken by something else: fine either way
      const child = spawnCli(['connect', 'pg-test'], cliCtx());
      const res = collect(child);
      await new Promise((r) => setTimeout(r, 2_500));
      child.kill('SIGINT');
      const out = await res;
      expect(out.stderr).toMatch(/port 5433 is in use; listening on (\d+) instead/);
      expect(out.stderr).toMatch(/psql "host=127\.0\.0\.1 port=\d+ dbname=app user=sluice"/);
      expect(out.code).toBe(0);

      const explicit = await runCli(['connect', 'pg-test', '--port', '5433'], cliCtx());
      expect(explicit.code).toBe(1);
      expect(explicit.stderr).toContain('port 5433 on 127.0.0.1 is already in use; pick another with --port');
    } finally {
      for (const s of blockers) s.close();
    }
  });

  it('a client gets a clear error while the gateway is down, and connects again after it restarts', async () => {
    const own = await startGateway({ env: { [PASSWORD_ENV]: cluster.password }, connections: [{ name: 'pg-test', type: 'postgres', target: target(), allow: { groups: ['eng'] } }] });
    const port = Number(new URL(own.url).port);
    const ownToken = serviceToken(own, 'ci', 'eng');
    const child = spawnCli(['connect', 'pg-test', '--json', '--port', '0'], { configDir, env: { SLUICE_TOKEN: ownToken, SLUICE_GATEWAY: own.url, SLUICE_CA: own.caFile as string } });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    const local = (JSON.parse(line.toString()) as { port: number }).port;
    try {
      expect((await psql(local, ['-tAc', 'select 1']).done).stdout.trim()).toBe('1');
      await own.stop();
      const during = await psql(local, ['-c', 'select 1']).done;
      expect(during.code).not.toBe(0);
      expect(during.stderr).toMatch(/sluice: cannot reach the gateway at https:\/\/127\.0\.0\.1:\d+: connection refused — is sluice-gateway running there\?/);
      expect(stderr).toContain('a client could not be connected: cannot reach the gateway');
      const again = await startGateway({ dir: own.dir, port, env: { [PASSWORD_ENV]: cluster.password }, connections: [{ name: 'pg-test', type: 'postgres', target: target(), allow: { groups: ['eng'] } }] });
      cleanups.push(() => again.stop());
      expect((await psql(local, ['-tAc', 'select 2']).done).stdout.trim()).toBe('2');
    } finally {
      child.kill('SIGINT');
      await once(child, 'exit');
    }
  });

  it('a long-running connect keeps working after the access token expires (silent refresh per client)', async () => {
    const own = await startGateway({ accessTokenTtlSeconds: 3, env: { [PASSWORD_ENV]: cluster.password }, connections: [{ name: 'pg-test', type: 'postgres', target: target(), allow: { groups: ['eng'] } }] });
    cleanups.push(() => own.stop());
    const humanDir = newConfigDir();
    expect((await login(own, humanDir, 'alice')).code).toBe(0);
    const child = spawnCli(['connect', 'pg-test', '--json', '--port', '0'], { configDir: humanDir });
    cleanups.push(() => {
      child.kill('SIGINT');
      return once(child, 'exit');
    });
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    const local = (JSON.parse(line.toString()) as { port: number }).port;
    expect((await psql(local, ['-tAc', 'select 1']).done).stdout.trim()).toBe('1');
    await new Promise((r) => setTimeout(r, 3_500));
    const after = await psql(local, ['-tAc', "select current_setting('application_name')"]).done;
    expect(after.stderr).toBe('');
    expect(after.stdout.trim()).toBe('sluice:alice@example.com:psql');
  });

  it('the held password never reaches the client, the CLI output or the gateway log', async () => {
    const { port, stderr } = await connect('pg-test');
    // Capture every byte the client receives on a raw socket session.
    const c = new pg.Client({ host: '127.0.0.1', port, database: cluster.database, user: 'x' });
    const received: Buffer[] = [];
    await c.connect();
    const stream = (c as unknown as { connection: { stream: NodeJS.EventEmitter } }).connection.stream;
    stream.on('data', (d: Buffer) => received.push(d));
    await c.query("select current_setting('application_name') as app, 1/1 as x");
    await c.query('select * from pg_stat_activity').catch(() => undefined);
    await c.end();
    const all = Buffer.concat(received);
    expect(all.length).toBeGreaterThan(0);
    expect(all.includes(Buffer.from(cluster.password))).toBe(false);
    expect(stderr()).not.toContain(cluster.password);
    expect(gw.output()).not.toContain(cluster.password);
  });
});
