// The adversarial arena: a real `sluice-gateway` configured as docs/policy.md recommends, a real
// `sluice connect` tunnel, and a fresh database whose target role is a superuser, so the gateway is
// the only barrier between an attacker and the data. Corpus tests (test/integration/adversarial-*)
// send their attacks through the tunnel with psql or a raw wire client and then check the effect
// on the target itself with `admin` (a direct superuser connection that bypasses the gateway),
// and what reached the client bytes and the audit store.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { PolicyInput } from '../../gateway/policy/index.js';
import { openTunnel, serviceToken, startGateway, tokenCtx, type GatewayProcess, type Tunnel } from './binaries.js';
import type { PgClusterDetails } from './pgCluster.js';
import { freshDatabase, psql as runPsql, rawClient, type RawClient } from './pgEngineHarness.js';

/** The policy docs/policy.md recommends for a production database, as the attacker found it. */
export const RECOMMENDED_POLICY: PolicyInput = {
  rules: [
    { id: 'no-ddl', block: { statements: ['drop', 'truncate', 'alter'] }, message: 'DDL is not allowed on production' },
    { id: 'no-unbounded-writes', block: { unboundedWrites: true } },
    {
      id: 'no-file-access',
      block: {
        functions: ['pg_read_file', 'pg_read_binary_file', 'pg_ls_dir', 'pg_stat_file', 'lo_*', 'dblink*', 'pg_file_write'],
        copyProgram: true,
        copyFile: true,
      },
    },
    { id: 'payments-review', review: { statements: ['insert', 'update', 'delete', 'merge'], tables: ['payments'], match: 'all', approvers: ['dba'], timeout: '2s' } },
    { id: 'pii', mask: { columns: ['customers.email'], with: 'partial' } },
    { id: 'cards', mask: { columns: ['customers.card_number'], with: 'redact' } },
  ],
};

/** Clear values of the masked columns: none of them may reach a client or the audit store. */
export const SECRET_EMAILS = ['ada.lovelace@example.com', 'grace.hopper@example.com', 'edsger@example.org'] as const;
export const SECRET_CARDS = ['4111111111111111', '5555555555554444', '378282246310005'] as const;

/** The arena's tables; owned by the target role. */
export const ARENA_SCHEMA = `
  create table customers (id int primary key, name text not null, email text, card_number text);
  insert into customers values
    (1, 'Ada', '${SECRET_EMAILS[0]}', '${SECRET_CARDS[0]}'),
    (2, 'Grace', '${SECRET_EMAILS[1]}', '${SECRET_CARDS[1]}'),
    (3, 'Edsger', '${SECRET_EMAILS[2]}', '${SECRET_CARDS[2]}');
  create table orders (id int primary key, customer_id int references customers(id), amount numeric);
  insert into orders select g, 1 + g % 3, g * 10 from generate_series(1, 9) g;
  create table payments (id int primary key, amount numeric not null, note text);
  insert into payments values (1, 100, 'first'), (2, 200, 'second');
`;

export interface Arena {
  readonly gw: GatewayProcess;
  readonly tunnel: Tunnel;
  /** The local port of `sluice connect`. */
  readonly port: number;
  readonly database: string;
  /** A direct superuser connection to the arena database, bypassing the gateway. */
  readonly admin: pg.Client;
  /** psql through the tunnel: each statement as its own `-c` (one Query message each); `input` is its stdin (COPY … FROM STDIN). */
  psql(statements: string | readonly string[], extra?: readonly string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** A raw wire client through the tunnel (startup done): send any bytes, in one write. */
  raw(params?: [string, string][]): Promise<RawClient>;
  /** A pg driver client through the tunnel, connected. */
  client(): Promise<pg.Client>;
  /**
   * Whether `text` occurs in any file of the gateway's state directory (store, WAL, journal). A
   * marker made only of hex digits (a card's first six digits) counts only where it stands alone:
   * the store is full of hex digests and millisecond times, in which any six digits turn up by chance.
   */
  auditContains(text: string): boolean;
  stop(): Promise<void>;
}

export interface ArenaOptions {
  readonly prefix: string;
  readonly policy?: PolicyInput;
  /** Run after ARENA_SCHEMA, as the superuser. */
  readonly schema?: string;
  /** Groups of the service token the attacker holds (default eng). */
  readonly groups?: string;
  /** Extra keys for the connection (e.g. `masking: { derived: redact }`). */
  readonly connection?: Record<string, unknown>;
  /** Extra top-level keys of the gateway's configuration (e.g. `limits: { … }`). */
  readonly gateway?: Record<string, unknown>;
}

const PASSWORD_ENV = 'ARENA_PG_PASSWORD';

/** Starts the gateway, the tunnel and the database; call `stop()` in afterAll. */
export async function startArena(cluster: PgClusterDetails, opts: ArenaOptions): Promise<Arena> {
  const db = await freshDatabase(cluster, opts.prefix);
  const su = cluster.roles.superuser;
  let gw: GatewayProcess | undefined;
  try {
    await db.admin.query(ARENA_SCHEMA + (opts.schema ?? ''));
    gw = await startGateway({
      env: { [PASSWORD_ENV]: su.password },
      connections: [
        {
          name: 'pg-prod',
          type: 'postgres',
          target: { host: cluster.host, port: cluster.port, database: db.target.database, user: su.user, password: { env: PASSWORD_ENV }, sslmode: 'disable' },
          allow: { groups: ['eng'] },
          policy: opts.policy ?? RECOMMENDED_POLICY,
          ...opts.connection,
        },
      ],
      ...(opts.gateway ? { extra: opts.gateway } : {}),
    });
    const token = serviceToken(gw, 'attacker', opts.groups ?? 'eng');
    const tunnel = await openTunnel('pg-prod', tokenCtx(gw, token));
    const gateway = gw;
    const database = db.target.database;
    const stateDir = join(gw.dir, 'state');
    return {
      gw,
      tunnel,
      port: tunnel.port,
      database,
      admin: db.admin,
      psql: (statements, extra = [], input) => runPsql(cluster.psqlPath, tunnel.port, database, ['-At', ...extra, ...(typeof statements === 'string' ? [statements] : statements).flatMap((s) => ['-c', s])], input),
      raw: (params = []) => rawClient(tunnel.port, database, params),
      async client() {
        const c = new pg.Client({ host: '127.0.0.1', port: tunnel.port, user: 'whoever', database, connectionTimeoutMillis: 10_000 });
        await c.connect();
        return c;
      },
      auditContains: (text) => filesUnder(stateDir).some((f) => storeHolds(readFileSync(f), text)),
      async stop() {
        await tunnel.stop();
        await gateway.stop();
        await db.drop();
      },
    };
  } catch (err) {
    await gw?.stop();
    await db.drop();
    throw err;
  }
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

function storeHolds(bytes: Buffer, text: string): boolean {
  if (!/^[0-9a-f]+$/i.test(text)) return bytes.includes(text);
  return new RegExp(`(?<![0-9a-z])${text}(?![0-9a-z])`, 'i').test(bytes.toString('latin1'));
}
