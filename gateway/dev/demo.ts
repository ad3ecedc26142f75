// `npm run demo`: a working Sluice on embedded defaults and nothing but Node.js — the gateway
// with its dev IdP, a self-signed certificate, the SQLite store, and a seeded demo database
// (PGlite) registered as connection `demo-pg`. Prints the next steps for a newcomer.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load.js';
import { startGateway } from '../server.js';
import { startDemoDatabase } from './demoDb.js';

const dir = resolve(process.env.SLUICE_DEMO_DIR ?? '.sluice-demo');
const listen = process.env.SLUICE_DEMO_LISTEN ?? '127.0.0.1:8443';
/** The direct PostgreSQL listener (`sluice dsn`); port 0 takes any free one (`sluice dsn` prints the real one). */
const pgListen = process.env.SLUICE_DEMO_PG_LISTEN ?? '127.0.0.1:6432';

async function demo(): Promise<void> {
  mkdirSync(dir, { recursive: true });
  console.error(`starting the demo database and gateway in ${relative(process.cwd(), dir) || dir} …`);
  const db = await startDemoDatabase({ dataDir: join(dir, 'demo-db') });
  const configFile = join(dir, 'gateway.yaml');
  writeFileSync(
    configFile,
    '# Written by `npm run demo`; edit freely, it is rewritten on the next demo start.\n' +
      stringify({
        listen,
        tls: { selfSigned: true },
        listeners: { postgres: pgListen },
        identity: {
          dev: {
            users: [
              { name: 'alice', email: 'alice@example.com', groups: ['eng', 'dba'] },
              { name: 'bob', email: 'bob@example.com', groups: ['eng'] },
              { name: 'carol', email: 'carol@example.com', groups: ['sales'] },
            ],
          },
        },
        store: { sqlite: 'state/sluice.db' },
        // alice (dba) reads everyone's sessions and exports the trail, as the printed steps show.
        audit: { readers: ['dba'] },
        connections: [
          {
            name: 'demo-pg',
            type: 'postgres',
            description: 'Demo orders database (embedded PGlite)',
            target: { host: db.host, port: db.port, database: db.database, user: db.user, password: { env: 'DEMO_PG_PASSWORD' }, sslmode: 'disable' },
            allow: { groups: ['eng'] },
            policy: {
              rules: [
                { id: 'no-ddl', block: { statements: ['drop', 'truncate', 'alter'] }, message: 'DDL is not allowed on the demo database' },
                { id: 'no-unbounded-writes', block: { unboundedWrites: true } },
                { id: 'writes-need-review', review: { statements: ['insert', 'update', 'delete'], approvers: ['dba'], timeout: '10m' }, except: { groups: ['dba'] } },
                { id: 'pii', mask: { columns: ['customers.email', 'customers.card_number'], with: 'partial' } },
              ],
            },
          },
        ],
        log: { level: 'warn' },
      }),
  );
  const config = loadConfig(configFile, { ...process.env, DEMO_PG_PASSWORD: db.password });
  const log = pino({ level: config.logLevel, base: undefined }, pino.destination(2));
  const gateway = await startGateway(config, log);
  const ca = relative(process.cwd(), gateway.tls?.certFile ?? '') || gateway.tls?.certFile;

  // Every command below is run as printed by test/integration/demo.test.ts (R-XXXX and ID are
  // the only placeholders); keep each on its own line, comments after `#`.
  const login = `npx sluice login --gateway ${gateway.url} --ca ${ca}`;
  const bobDir = join(dir, 'cli-bob');
  console.error(`
Sluice demo is running.
  gateway   ${gateway.url}  (certificate SHA-256 ${gateway.tls?.fingerprint ?? 'n/a'})
  dev IdP   ${gateway.devIdp?.issuer} — users: alice (eng, dba), bob (eng), carol (sales)
  database  demo-pg → embedded PGlite with tables customers and orders
  audit     readers: group dba (alice)
  config    ${relative(process.cwd(), configFile)}

In another terminal, as alice (dba: her writes run at once, she approves others'):
  ${login}    # open the URL it prints, sign in as "alice"
  npx sluice connections
  npx sluice connect demo-pg -- psql -c "select name, email, card_number from customers limit 3"    # emails and cards arrive masked
  npx sluice connect demo-pg -- psql -c "drop table orders"    # refused by rule no-ddl
  npx sluice connect demo-pg    # a tunnel for any PostgreSQL client, until Ctrl-C; then, elsewhere:
  psql "host=127.0.0.1 port=5433 dbname=${db.database} user=sluice"
  psql "$(npx sluice dsn demo-pg)" -c "select count(*) from orders"    # direct mode: no tunnel, a 15-minute password for the gateway's own PostgreSQL port

Two users at once: each terminal keeps its login in its own config directory
(SLUICE_CONFIG_DIR), so logging in as bob does not replace alice's login. In a second terminal:
  export SLUICE_CONFIG_DIR=${bobDir}
  ${login}    # sign in as "bob"
  npx sluice connect demo-pg -- psql -c "update orders set status = 'paid' where id = 1"    # held for review: note its id R-XXXX

Back in alice's terminal, approve it (bob's update then runs):
  npx sluice reviews
  npx sluice reviews approve R-XXXX

The audit trail (alice may read it all: she is in dba, the audit readers):
  npx sluice sessions
  npx sluice sessions replay ID    # an ID from the list
  npx sluice audit key > audit-key.pem
  npx sluice audit export > trail.jsonl
  npx sluice audit verify trail.jsonl --key audit-key.pem

Ctrl-C stops the demo.`);

  const stop = () => {
    void gateway
      .close()
      .then(() => db.close())
      .finally(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

demo().catch((err: unknown) => {
  console.error(`demo failed: ${(err as Error).message}`);
  process.exit(1);
});
