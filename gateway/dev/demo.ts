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

  console.error(`
Sluice demo is running.
  gateway   ${gateway.url}  (certificate SHA-256 ${gateway.tls?.fingerprint ?? 'n/a'})
  dev IdP   ${gateway.devIdp?.issuer} — users: alice (eng, dba), bob (eng), carol (sales)
  database  demo-pg → embedded PGlite with tables customers and orders
  config    ${relative(process.cwd(), configFile)}

In another terminal:
  npx sluice login --gateway ${gateway.url} --ca ${ca}
      open the URL it prints, confirm the code, and sign in as "alice"
  npx sluice connections
  npx sluice connect demo-pg
  psql "host=127.0.0.1 port=5433 dbname=${db.database} user=sluice"      (any PostgreSQL client works)
  npx sluice connect demo-pg -- psql -c "select name, email, card_number from customers limit 3"
      emails and card numbers arrive masked; "drop table orders" is refused (rule no-ddl);
      log in as bob and "update orders set status = 'paid' where id = 1" waits for alice:
  npx sluice reviews            (as alice)    npx sluice reviews approve R-XXXX
  npx sluice sessions           npx sluice sessions replay ID      npx sluice audit export > trail.jsonl

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
