// Policy through the real binaries: a gateway configured with a `policy:`, `sluice connect`, and
// psql and the pg driver on the local port and on the direct listener — blocks with the rule's message, masked results and
// COPY, the connection's policy summary in `sluice connections`, and the generated masking key.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { collect, newConfigDir, runCli, serviceToken, spawnCli, startGateway, type GatewayProcess } from '../support/binaries.js';
import { freshDatabase } from '../support/pgEngineHarness.js';
import { ALLOWED, BLOCKED, CORPUS_POLICY, CORPUS_SCHEMA } from '../support/policyCorpus.js';

const cluster = inject('pgCluster');
const PASSWORD_ENV = 'PG_TEST_PASSWORD';

let gw: GatewayProcess;
let db: Awaited<ReturnType<typeof freshDatabase>>;
let corpusDb: Awaited<ReturnType<typeof freshDatabase>>;
let token: string;
let port: number;
let connect: ChildProcess;
let corpusConnect: ChildProcess;
let corpusPort: number;

beforeAll(async () => {
  db = await freshDatabase(cluster, 'policy_connect');
  await db.admin.query(`
    create table customers (id int primary key, name text, email text, card_number text);
    insert into customers values (1, 'Ada', 'ada.lovelace@example.com', '4111111111111111'), (2, 'Grace', 'grace.hopper@example.com', '5555555555554444');
    alter table customers owner to app;
  `);
  corpusDb = await freshDatabase(cluster, 'policy_corpus');
  await corpusDb.admin.query(CORPUS_SCHEMA);
  gw = await startGateway({
    env: { [PASSWORD_ENV]: cluster.password },
    // The same policies are also served to direct clients (docs/direct.md): every test below runs on both paths.
    extra: { listeners: { postgres: '127.0.0.1:0' } },
    connections: [
      {
        name: 'pg-prod',
        type: 'postgres',
        target: { host: cluster.host, port: cluster.port, database: db.target.database, user: cluster.user, password: { env: PASSWORD_ENV }, sslmode: 'disable' },
        allow: { groups: ['eng'] },
        policy: {
          rules: [
            { id: 'no-ddl', block: { statements: ['drop', 'truncate', 'alter'] }, message: 'DDL is not allowed on production' },
            { id: 'pii', mask: { columns: ['customers.email'], with: 'partial' } },
            { id: 'cards', mask: { columns: ['customers.card_number'], with: 'hash' } },
            { id: 'pii-anywhere', mask: { detect: ['credit_card', 'email'], with: 'redact' } },
          ],
        },
      },
      {
        name: 'pg-corpus',
        type: 'postgres',
        target: { host: cluster.host, port: cluster.port, database: corpusDb.target.database, user: cluster.user, password: { env: PASSWORD_ENV }, sslmode: 'disable' },
        allow: { groups: ['eng'] },
        policy: CORPUS_POLICY,
      },
    ],
  });
  token = serviceToken(gw, 'ci', 'eng');
  connect = spawnCli(['connect', 'pg-prod', '--json', '--port', '0'], cliCtx());
  const [line] = (await once(connect.stdout!, 'data')) as [Buffer];
  port = (JSON.parse(line.toString()) as { port: number }).port;
  corpusConnect = spawnCli(['connect', 'pg-corpus', '--json', '--port', '0'], cliCtx());
  const [second] = (await once(corpusConnect.stdout!, 'data')) as [Buffer];
  corpusPort = (JSON.parse(second.toString()) as { port: number }).port;
});

afterAll(async () => {
  for (const c of [connect, corpusConnect]) {
    c?.kill('SIGINT');
    if (c) await once(c, 'exit');
  }
  await gw?.stop();
  await db?.drop();
  await corpusDb?.drop();
});

function cliCtx() {
  return { configDir: newConfigDir(), env: { SLUICE_TOKEN: token, SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string } };
}

/** How a client reaches a connection: through `sluice connect`'s local port, or the gateway's direct listener with `sluice dsn`. */
interface ClientPath {
  readonly name: 'tunnel' | 'direct';
  /** psql's connection arguments. */
  psqlArgs(connection: 'pg-prod' | 'pg-corpus'): Promise<string[]>;
  pgConfig(connection: 'pg-prod' | 'pg-corpus'): Promise<pg.ClientConfig>;
}

const tunnelPath: ClientPath = {
  name: 'tunnel',
  psqlArgs: async (c) => ['-h', '127.0.0.1', '-p', String(c === 'pg-prod' ? port : corpusPort), '-d', c === 'pg-prod' ? db.target.database : corpusDb.target.database, '-U', 'whoever'],
  pgConfig: async (c) => ({ host: '127.0.0.1', port: c === 'pg-prod' ? port : corpusPort, database: c === 'pg-prod' ? db.target.database : corpusDb.target.database, user: 'x' }),
};

async function issued(connection: string): Promise<{ host: string; port: number; user: string; password: string; database: string; dsn: string }> {
  const res = await runCli(['dsn', connection, '--json'], cliCtx());
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as { host: string; port: number; user: string; password: string; database: string; dsn: string };
}

const directPath: ClientPath = {
  name: 'direct',
  psqlArgs: async (c) => [(await issued(c)).dsn],
  async pgConfig(c) {
    const d = await issued(c);
    return { host: d.host, port: d.port, user: d.user, password: d.password, database: d.database, ssl: { ca: readFileSync(gw.caFile as string, 'utf8'), servername: 'localhost' } };
  },
};

async function psqlOn(path: ClientPath, args: string[]) {
  const child = spawn(cluster.psqlPath, ['-X', ...(await path.psqlArgs('pg-prod')), ...args], { env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
  return collect(child);
}

describe('policy through sluice connect', () => {
  it('lists the policy with the connection', async () => {
    const res = await runCli(['connections', '--json'], cliCtx());
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toEqual([
      expect.objectContaining({ name: 'pg-prod', policy: 'blocks: no-ddl; masks: pii (partial), cards (hash), pii-anywhere (redact)' }),
      expect.objectContaining({ name: 'pg-corpus', policy: 'blocks: no-ddl, no-unbounded-writes, no-file-access; masks: pii (partial)' }),
    ]);
    // `with: hash` needs the gateway's key: generated once, private, next to the store.
    expect(statSync(join(gw.dir, 'state', 'masking-key')).mode & 0o777).toBe(0o600);
  });

});

describe.each([tunnelPath, directPath])('policy through $name', (path) => {
  const psql = (args: string[]) => psqlOn(path, args);

  it('psql: a blocked statement fails with the rule, nothing runs, the session goes on', async () => {
    const res = await psql(['-At', '-c', 'DROP TABLE customers', '-c', 'select count(*) from customers']);
    expect(res.stderr).toContain('ERROR:  blocked by rule no-ddl: DDL is not allowed on production');
    expect(res.stdout).toBe('2\n');
    expect((await db.admin.query('select count(*)::int as n from customers')).rows).toEqual([{ n: 2 }]);
  });

  it('psql and the pg driver see masked values; \\copy is masked too', async () => {
    const res = await psql(['-At', '-c', 'select email, card_number from customers order by id']);
    const [ada, grace] = res.stdout.trim().split('\n');
    expect(ada).toMatch(/^\*{20}\.com\|h:[0-9a-f]{16}$/);
    expect(grace).toMatch(/^\*{20}\.com\|h:[0-9a-f]{16}$/);
    const c = new pg.Client(await path.pgConfig('pg-prod'));
    await c.connect();
    try {
      // Computed from a masked column: refused (derived: refuse is the default).
      await expect(c.query('select upper(email) as u from customers where id = $1', [1])).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('sluice:masked-derivation') });
    } finally {
      await c.end();
    }
    const copy = await psql(['-c', '\\copy customers to stdout csv']);
    expect(copy.stdout).not.toContain('@example.com');
    expect(copy.stdout).not.toContain('4111111111111111');
    expect(copy.stdout.split('\n')[0]).toMatch(/^1,Ada,"\*{20}\.com","h:[0-9a-f]{16}"$/);
  });

  it(`the corpus: ${BLOCKED.length} statements blocked and nothing of them run, ${ALLOWED.length} allowed`, async () => {
    const state = async () => (await corpusDb.admin.query("select (select count(*)::int from orders) as o, (select count(*)::int from customers) as c, (select sum(amount)::int from orders) as s, (select count(*)::int from pg_class where relname in ('orders', 'customers')) as t")).rows[0] as unknown;
    const before = await state();
    const c = new pg.Client(await path.pgConfig('pg-corpus'));
    await c.connect();
    try {
      for (const [sql, rule] of BLOCKED) {
        const err = (await c.query(sql).then(() => undefined, (e: unknown) => e)) as { code?: string; message?: string } | undefined;
        expect(err?.code, sql).toBe(rule === 'sluice:unparseable' ? '42601' : '42501');
        expect(err?.message, sql).toContain(rule === 'no-ddl' && !sql.includes('dblink') ? 'DDL is not allowed on production' : rule);
      }
      expect(await state()).toEqual(before);
      for (const sql of ALLOWED) await c.query(sql);
    } finally {
      await c.end();
    }
  });
});
