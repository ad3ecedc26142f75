// The PostgreSQL engine end to end: a throwaway SCRAM cluster as the target, a plain TCP listener
// handing each accepted socket to engine.handle() (what the gateway does after the tunnel
// upgrade), and real clients — psql and the pg driver — on the other side.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile, chown } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import pg from 'pg';
import pino from 'pino';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeErrorFields } from '../../gateway/engines/postgres/codec/backend.js';
import { createBackendFramer } from '../../gateway/engines/postgres/codec/framer.js';
import { encodeCancelRequest, encodeStartupMessage } from '../../gateway/engines/postgres/codec/frontend.js';
import { createPostgresEngine } from '../../gateway/engines/postgres/engine.js';
import type { Identity, PostgresConnection, PostgresTarget } from '../../gateway/model.js';
import { AuditUnavailableError } from '../../gateway/audit/contract.js';
import type { PostgresSessionAudit } from '../../gateway/audit/postgresEvents.js';
import { ensureProgram, findFreePort, startPgCluster, type PgCluster } from '../support/pgCluster.js';

const PSQL = ensureProgram('/usr/lib/postgresql/15/bin/psql', 'postgresql-client');
const ALICE: Identity = { subject: 'user:alice', name: 'alice@example.com', groups: ['dba'], kind: 'human' };

type Start = Parameters<PostgresSessionAudit['onSessionStart']>[0];
type Query = Parameters<PostgresSessionAudit['onQuery']>[0];
type Result = Parameters<PostgresSessionAudit['onResult']>[0];
type End = Parameters<PostgresSessionAudit['onSessionEnd']>[0];

/** An in-memory PostgresSessionAudit that also checks the engine's promises to it. */
class RecordingAudit implements PostgresSessionAudit {
  start: Start | undefined;
  readonly queries: Query[] = [];
  readonly results: Result[] = [];
  end: End | undefined;
  readonly ended: Promise<End>;
  private resolveEnd!: (e: End) => void;

  constructor() {
    this.ended = new Promise((r) => (this.resolveEnd = r));
  }
  onAction(): number {
    throw new Error('the postgres engine reports statements with onQuery');
  }
  onOutcome(): void {}
  onEvent(): void {}
  onDecision(): void {}
  onReview(): void {}
  onSessionStart(info: Start): void {
    expect(this.start).toBeUndefined();
    this.start = info;
  }
  onQuery(q: Query): number {
    if (q.text.includes('/* audit store down */')) throw new AuditUnavailableError();
    return this.queries.push(q);
  }
  onResult(r: Result): void {
    this.results.push(r);
  }
  /** While set, statements wait for it before they are forwarded (an audit store taking its time). */
  gate: Promise<void> | undefined;
  flush(): Promise<void> | undefined {
    return this.gate;
  }
  onSessionEnd(e: End): void {
    expect(this.end, 'onSessionEnd is called once').toBeUndefined();
    expect(this.start, 'onSessionEnd only after onSessionStart').toBeDefined();
    this.end = e;
    this.resolveEnd(e);
  }
  /** The result of the first statement whose text contains `text`. */
  resultOf(text: string): Result | undefined {
    const id = this.queries.findIndex((q) => q.text.includes(text)) + 1;
    return this.results.find((r) => r.queryId === id);
  }
}

/** Wraps a socket so the test sees every byte written to the client (and the engine a plain Duplex). */
function recorded(socket: Socket, sink: Buffer[]): Duplex {
  const d = new Duplex({
    read: () => void socket.resume(),
    write: (chunk: Buffer, _enc, cb) => void (sink.push(Buffer.from(chunk)), socket.write(chunk, cb)),
    final: (cb) => void socket.end(cb),
    destroy: (err, cb) => void (socket.destroy(), cb(err)),
  });
  socket.on('data', (c) => d.push(c) || socket.pause());
  socket.on('end', () => d.push(null));
  socket.on('close', () => d.destroy());
  socket.on('error', () => undefined);
  return d;
}

async function startGateway(
  connection: PostgresConnection,
  opts: { record?: boolean; identity?: Identity; connectTimeoutMs?: number } = {},
) {
  const engine = createPostgresEngine();
  const logs: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(s) });
  const sessions: RecordingAudit[] = [];
  const sent: Buffer[] = [];
  const shutdown = new AbortController();
  const handled: Promise<void>[] = [];
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    const audit = new RecordingAudit();
    sessions.push(audit);
    const client = opts.record ? recorded(socket, sent) : socket;
    const ctx = { id: `s${sessions.length}`, identity: opts.identity ?? ALICE, connection, audit, log, connectTimeoutMs: opts.connectTimeoutMs ?? 5000 };
    handled.push(engine.handle(client, ctx, shutdown.signal));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const close = async () => {
    shutdown.abort();
    await Promise.all(handled);
    await new Promise((r) => server.close(r));
  };
  // `sent` holds every byte the engine wrote to clients (only with `record`).
  return { port: (server.address() as AddressInfo).port, sessions, logs, sent, engine, shutdown, close };
}

function connectionFor(name: string, target: PostgresTarget): PostgresConnection {
  return { name, type: 'postgres', target, databases: ['postgres'], allow: { groups: ['dba'] }, record: 'statements' };
}

function psql(port: number, args: string[], db = 'app'): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> & {
  child: ReturnType<typeof spawn>;
} {
  const conninfo = `host=127.0.0.1 port=${port} user=whoever dbname=${db} sslmode=prefer connect_timeout=10`;
  const child = spawn(PSQL, ['-X', '-w', '-At', '-v', 'ON_ERROR_STOP=1', '-d', conninfo, ...args], { env: { ...process.env, PGPASSWORD: '' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string; pid: number }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr, pid: child.pid! })),
  );
  return Object.assign(done, { child });
}

function client(port: number, database = 'app'): pg.Client {
  return new pg.Client({ host: '127.0.0.1', port, user: 'whoever', database, connectionTimeoutMillis: 10_000 });
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let cluster: PgCluster;
let target: PostgresTarget;
let gw: Awaited<ReturnType<typeof startGateway>>;
let admin: pg.Client;
let dir: string;

beforeAll(async () => {
  cluster = await startPgCluster();
  target = { host: cluster.host, port: cluster.port, database: 'app', user: cluster.user, password: cluster.password, sslmode: 'disable' };
  gw = await startGateway(connectionFor('pg-test', target));
  admin = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.roles.superuser.user, password: cluster.roles.superuser.password, database: 'app' });
  await admin.connect();
  dir = await mkdtemp(join(tmpdir(), 'sluice-pg-engine-'));
});

afterAll(async () => {
  await gw?.close();
  await admin?.end();
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('postgres engine with psql', () => {
  it('runs simple queries as the gateway user and audits them', async () => {
    const before = gw.sessions.length;
    const r = await psql(gw.port, ['-c', 'select 1+1', '-c', 'select application_name, current_user from pg_stat_activity where pid = pg_backend_pid()']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('2\nsluice:alice@example.com:psql|app\n');
    const s = gw.sessions[before]!;
    const end = await s.ended;
    expect(s.start).toEqual({ target: 'app', clientUser: 'whoever', clientApplication: 'psql' });
    expect(s.queries.map((q) => [q.text, q.protocol])).toEqual([
      ['select 1+1', 'simple'],
      ['select application_name, current_user from pg_stat_activity where pid = pg_backend_pid()', 'simple'],
    ]);
    expect(s.results[0]).toMatchObject({ queryId: 1, status: 'ok', commands: ['SELECT 1'], rows: 1 });
    expect(end).toMatchObject({ status: 'ok' });
    expect(end.bytesFromClient).toBeGreaterThan(50);
    expect(end.bytesToClient).toBeGreaterThan(100);
  });

  it('copies in and out with \\copy', async () => {
    await admin.query('create table copy_rows (id int primary key, name text)');
    await admin.query('alter table copy_rows owner to app');
    const rows = Array.from({ length: 5000 }, (_, i) => `${i},"name ${i}, with comma"`).join('\n') + '\n';
    await writeFile(join(dir, 'in.csv'), rows);
    const before = gw.sessions.length;
    const load = await psql(gw.port, ['-c', `\\copy copy_rows from '${join(dir, 'in.csv')}' csv`]);
    expect(load.stderr).toBe('');
    expect(load.stdout).toBe('COPY 5000\n');
    const dump = await psql(gw.port, ['-c', `\\copy (select * from copy_rows order by id) to '${join(dir, 'out.csv')}' csv`]);
    expect(dump.stderr).toBe('');
    expect(await readFile(join(dir, 'out.csv'), 'utf8')).toBe(rows);
    const [copyIn, copyOut] = [gw.sessions[before]!, gw.sessions[before + 1]!];
    await Promise.all([copyIn.ended, copyOut.ended]);
    expect(copyIn.results[0]).toMatchObject({ status: 'ok', commands: ['COPY 5000'], rows: 5000 });
    expect(copyOut.results[0]).toMatchObject({ status: 'ok', commands: ['COPY 5000'], rows: 5000 });
  });

  it('records fast-path function calls (\\lo_import)', async () => {
    await writeFile(join(dir, 'blob.bin'), Buffer.alloc(100_000, 7));
    const before = gw.sessions.length;
    const r = await psql(gw.port, ['-c', `\\lo_import '${join(dir, 'blob.bin')}'`]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^lo_import [0-9]+\n$/);
    const s = gw.sessions[before]!;
    await s.ended;
    const calls = s.queries.filter((q) => q.text.startsWith('/* FunctionCall'));
    expect(calls.length).toBeGreaterThan(1);
    expect(s.results.every((x) => x.status === 'ok')).toBe(true);
  });

  it("cancels a running query with psql's cancel (57014)", async () => {
    const before = gw.sessions.length;
    const run = psql(gw.port, ['-c', 'select pg_sleep(30)']);
    await waitFor('the query to start', () => gw.sessions[before]?.queries.length === 1);
    await new Promise((r) => setTimeout(r, 100));
    run.child.kill('SIGINT');
    const r = await run;
    expect(r.stderr).toContain('canceling statement due to user request');
    const s = gw.sessions[before]!;
    await s.ended;
    expect(s.results[0]).toMatchObject({ status: 'error', sqlstate: '57014' });
    // The cancel arrived on a connection of its own, which is not an audited session.
    expect(gw.sessions[before + 1]?.start).toBeUndefined();
  });

  it('streams a large result (~100 MB) through unchanged', async () => {
    const before = gw.sessions.length;
    const sql = "select repeat('x', 1000) from generate_series(1, 100000)";
    const count = (port: number) =>
      new Promise<{ bytes: number; ms: number }>((resolve, reject) => {
        const started = performance.now();
        const child = spawn(PSQL, ['-X', '-w', '-At', '-d', `host=127.0.0.1 port=${port} user=${cluster.user} dbname=app`, '-c', sql], {
          env: { ...process.env, PGPASSWORD: cluster.password },
        });
        let bytes = 0;
        child.stdout.on('data', (d: Buffer) => (bytes += d.length));
        child.on('error', reject);
        child.on('close', (code) => (code === 0 ? resolve({ bytes, ms: performance.now() - started }) : reject(new Error(`psql exited ${code}`))));
      });
    const direct = await count(cluster.port);
    const via = await count(gw.port);
    expect(via.bytes).toBe(100_000 * 1001);
    const s = gw.sessions[before]!;
    const end = await s.ended;
    expect(s.results[0]).toMatchObject({ status: 'ok', rows: 100_000 });
    expect(end.bytesToClient).toBeGreaterThan(100_000_000);
    console.log(`100 MB result: direct ${direct.ms.toFixed(0)} ms, through the engine ${via.ms.toFixed(0)} ms`);
  });
});

describe('postgres engine with the pg driver', () => {
  it('keeps a session usable across transactions and errors', async () => {
    const c = client(gw.port);
    await c.connect();
    const s = gw.sessions.at(-1)!;
    await c.query('begin');
    await c.query('create temp table t (v int)');
    await c.query('insert into t values (1), (2)');
    await expect(c.query('select 1/0')).rejects.toMatchObject({ code: '22012' });
    await expect(c.query('select 1')).rejects.toMatchObject({ code: '25P02' });
    await c.query('rollback');
    expect((await c.query('select 40 + 2 as v')).rows).toEqual([{ v: 42 }]);
    await c.end();
    await s.ended;
    expect(s.resultOf('insert into t')).toMatchObject({ status: 'ok', commands: ['INSERT 0 2'], rows: 2 });
    expect(s.resultOf('select 1/0')).toMatchObject({ status: 'error', sqlstate: '22012', message: 'division by zero' });
    expect(s.resultOf('rollback')).toMatchObject({ status: 'ok', commands: ['ROLLBACK'] });
  });

  it('relays the extended protocol and records parameters with their statement', async () => {
    const c = client(gw.port);
    await c.connect();
    const s = gw.sessions.at(-1)!;
    const r = await c.query('select $1::int + $2::int as sum, $3::text is null as n, length($4::bytea) as len', [2, 3, null, Buffer.from([1, 2, 3])]);
    expect(r.rows).toEqual([{ sum: 5, n: true, len: 3 }]);
    for (const v of ['a', 'b']) {
      expect((await c.query({ name: 'named', text: 'select $1::text as v', values: [v] })).rows).toEqual([{ v }]);
    }
    await c.end();
    await s.ended;
    expect(s.queries).toEqual([
      { text: 'select $1::int + $2::int as sum, $3::text is null as n, length($4::bytea) as len', params: ['2', '3', null, '\\x010203'], protocol: 'extended', deferCommit: true },
      { text: 'select $1::text as v', params: ['a'], protocol: 'extended', deferCommit: true },
      { text: 'select $1::text as v', params: ['b'], protocol: 'extended', deferCommit: true },
    ]);
    expect(s.results.map((x) => x.commands)).toEqual([['SELECT 1'], ['SELECT 1'], ['SELECT 1']]);
  });

  it("hands the client the target's pid with a secret of the gateway's own; cancels only with that secret", async () => {
    const c = client(gw.port);
    await c.connect();
    const s = gw.sessions.at(-1)!;
    const real = (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number;
    const key = c as unknown as { processID: number; secretKey: number };
    // pg_backend_pid() agrees with BackendKeyData; the secret is the gateway's (the registry
    // holds it, and a cancel with any other is dropped).
    expect(key.processID).toBe(real);
    const sendCancel = (pid: number, secret: number) =>
      new Promise<void>((resolve) => {
        createConnection({ host: '127.0.0.1', port: gw.port }, function (this: Socket) {
          this.end(encodeCancelRequest(pid, secret));
        }).on('close', () => resolve());
      });
    const sleeping = c.query('select pg_sleep(30)');
    await waitFor('the sleep to start', () => s.queries.length === 2);
    await sendCancel(key.processID, key.secretKey ^ 1); // wrong secret: dropped
    await sendCancel(real + 1, key.secretKey); // another pid: unknown to the gateway
    await new Promise((r) => setTimeout(r, 200));
    expect(s.results).toHaveLength(1);
    await sendCancel(key.processID, key.secretKey);
    await expect(sleeping).rejects.toMatchObject({ code: '57014' });
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    await c.end();
  });

  it('serves 50 concurrent clients', async () => {
    const before = gw.sessions.length;
    await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const c = client(gw.port);
        await c.connect();
        for (let k = 0; k < 5; k++) expect((await c.query('select $1::int * 2 as v', [i * 10 + k])).rows).toEqual([{ v: (i * 10 + k) * 2 }]);
        await c.end();
      }),
    );
    const mine = gw.sessions.slice(before);
    expect(mine).toHaveLength(50);
    const ends = await Promise.all(mine.map((s) => s.ended));
    expect(ends.every((e) => e.status === 'ok')).toBe(true);
    expect(mine.every((s) => s.results.length === 5 && s.results.every((r) => r.status === 'ok'))).toBe(true);
    await waitFor('cancel keys to be released', () => gw.engine.cancelKeys.size === 0);
  });

  it('stops reading the target while a client is not reading (backpressure)', async () => {
    const socket = createConnection({ host: '127.0.0.1', port: gw.port });
    const framer = createBackendFramer();
    let received = 0;
    let resolveReady!: () => void;
    const ready = new Promise<void>((r) => (resolveReady = r));
    socket.on('data', (d: Buffer) => {
      received += d.length;
      framer.push(d);
      while (framer.next()) if (framer.type === 0x5a) resolveReady();
    });
    socket.write(encodeStartupMessage([['user', 'x'], ['database', 'app']]));
    await ready;
    socket.pause();
    const baseline = process.memoryUsage().arrayBuffers;
    const query = Buffer.from("Q\0\0\0\0select repeat('x', 1000) from generate_series(1, 300000)\0");
    query.writeInt32BE(query.length - 1, 1);
    socket.write(query);
    await new Promise((r) => setTimeout(r, 1500));
    // ~300 MB are waiting at the target; only socket buffers' worth may be held in the gateway.
    expect(process.memoryUsage().arrayBuffers - baseline).toBeLessThan(64 * 1024 * 1024);
    const done = new Promise<void>((r) => socket.on('data', () => received >= 300_000_000 && r()));
    socket.resume();
    await done;
    socket.destroy();
  });

  it('stops reading a client that keeps sending while its statements wait for the audit', async () => {
    const socket = createConnection({ host: '127.0.0.1', port: gw.port });
    const framer = createBackendFramer();
    let readies = 0;
    let commands = 0;
    let resolveReady!: () => void;
    let ready = new Promise<void>((r) => (resolveReady = r));
    socket.on('data', (d: Buffer) => {
      framer.push(d);
      while (framer.next()) {
        if (framer.type === 0x43) commands++;
        if (framer.type === 0x5a && ++readies % 512 === 1) resolveReady();
      }
    });
    const before = gw.sessions.length;
    socket.write(encodeStartupMessage([['user', 'x'], ['database', 'app']]));
    await ready;
    let open!: () => void;
    gw.sessions[before]!.gate = new Promise<void>((r) => (open = r));
    // 32 MiB of statements at once, more than the socket buffers of both ends hold: the gateway
    // reads on while the first ones wait for the audit only up to a limit (1 MiB), then pauses.
    const query = Buffer.from(`Q\0\0\0\0select 1 /* ${'x'.repeat(64 * 1024)} */\0`);
    query.writeInt32BE(query.length - 1, 1);
    ready = new Promise<void>((r) => (resolveReady = r));
    for (let i = 0; i < 512; i++) socket.write(query);
    await new Promise((r) => setTimeout(r, 500));
    expect(commands).toBe(0);
    expect(socket.writableLength, 'the client could hand everything over: the gateway did not stop reading').toBeGreaterThan(0);
    open();
    await ready;
    expect(commands).toBe(512);
    expect(gw.sessions[before]!.queries).toHaveLength(512);
    socket.destroy();
  });

  it('passes a 50 MB value split over many chunks', async () => {
    const c = client(gw.port);
    await c.connect();
    const r = await c.query("select repeat('y', 50 * 1024 * 1024) as v, 'after' as w");
    expect(r.rows[0].v.length).toBe(50 * 1024 * 1024);
    expect(r.rows[0].w).toBe('after');
    await c.end();
  });
});

/** Opens `conn` through a fresh gateway and returns the pg error (or undefined on success). */
async function tryConnect(conn: PostgresConnection, database = 'app'): Promise<{ code?: string; message: string } | undefined> {
  const g = await startGateway(conn);
  const c = client(g.port, database);
  try {
    await c.connect();
    await c.query('select 1');
    await c.end();
    return undefined;
  } catch (err) {
    return err as { code?: string; message: string };
  } finally {
    await g.close();
  }
}

describe('refusals and failures', () => {
  it('refuses a database the connection does not serve (3D000) without reaching the target; the refusal is recorded', async () => {
    const before = gw.sessions.length;
    const c = client(gw.port, 'template1');
    await expect(c.connect()).rejects.toMatchObject({ code: '3D000', message: 'connection "pg-test" does not serve database "template1"; it serves: app, postgres' });
    await waitFor('the refused session to close', () => gw.engine.cancelKeys.size === 0);
    expect(gw.sessions[before]!.start).toMatchObject({ target: 'template1' });
    expect(await gw.sessions[before]!.ended).toMatchObject({ status: 'error', code: '3D000' });
    // `databases` lists the others it may open.
    const other = client(gw.port, 'postgres');
    await other.connect();
    expect((await other.query('select current_database() as db')).rows).toEqual([{ db: 'postgres' }]);
    await other.end();
  });

  it('reports an unreachable target as 08006 naming the connection', async () => {
    const port = await findFreePort();
    const err = await tryConnect(connectionFor('pg-down', { ...target, port }));
    expect(err).toMatchObject({ code: '08006', message: 'cannot reach the target of connection pg-down: connection refused' });
  });

  it("reports a rejected credential as 28P01 and logs in with MD5 and cleartext roles", async () => {
    const err = await tryConnect(connectionFor('pg-wrong', { ...target, password: 'not-the-password' }));
    expect(err).toMatchObject({ code: '28P01', message: "the gateway's credential for pg-wrong was rejected" });
    const { md5, cleartext } = cluster.roles;
    expect(await tryConnect(connectionFor('pg-md5', { ...target, user: md5.user, password: md5.password }))).toBeUndefined();
    expect(await tryConnect(connectionFor('pg-clear', { ...target, user: cleartext.user, password: cleartext.password }))).toBeUndefined();
  });

  it('never sends a password to the client, the log or the audit', async () => {
    const wrong = `wrong-${Math.random().toString(36).slice(2)}`;
    const { md5, cleartext } = cluster.roles;
    const targets = [target, { ...target, user: md5.user, password: md5.password }, { ...target, user: cleartext.user, password: cleartext.password }, { ...target, password: wrong }];
    for (const t of targets) {
      const g = await startGateway(connectionFor('pg-secret', t), { record: true });
      const c = client(g.port);
      await c.connect().then(() => c.query('select 1').then(() => c.end()), () => undefined);
      await g.close();
      const everything = Buffer.concat([...g.sent, Buffer.from(g.logs.join('')), Buffer.from(JSON.stringify(g.sessions))]);
      expect(g.sent.length).toBeGreaterThan(0);
      for (const secret of [t.password, cluster.password, md5.password, cleartext.password]) expect(everything.includes(secret)).toBe(false);
    }
  });

  it('answers malformed bytes with 08P01, closes that session and keeps serving', async () => {
    const exchange = async (first: Buffer, then?: Buffer) => {
      const socket = createConnection({ host: '127.0.0.1', port: gw.port });
      const framer = createBackendFramer();
      const types: string[] = [];
      let error: string | undefined;
      socket.on('data', (d: Buffer) => {
        framer.push(d);
        while (framer.next()) {
          types.push(String.fromCharCode(framer.type));
          if (framer.type === 0x45) error = decodeErrorFields(framer.body).code;
          if (framer.type === 0x5a && then) socket.write(then);
        }
      });
      socket.write(first);
      await new Promise((r) => socket.on('close', r));
      return { types, error };
    };
    const before = gw.sessions.length;
    expect(await exchange(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))).toEqual({ types: ['E'], error: '08P01' });
    expect(gw.sessions[before]!.start).toBeUndefined();
    const startup = encodeStartupMessage([['user', 'x'], ['database', 'app']]);
    const bad = await exchange(startup, Buffer.from([0x51, 0, 0, 0, 3]));
    expect(bad.types.at(-1)).toBe('E');
    expect(bad.error).toBe('08P01');
    expect(await gw.sessions[before + 1]!.ended).toMatchObject({ status: 'error', code: '08P01' });
    const huge = await exchange(startup, Buffer.from([0x50, 0x7f, 0xff, 0xff, 0xff]));
    expect(huge.error).toBe('08P01');
    expect(gw.logs.join('')).toContain('protocol violation');
    expect((await psql(gw.port, ['-c', 'select 7'])).stdout).toBe('7\n');
  });

  it('fails closed when the audit cannot record a statement (58030, not executed)', async () => {
    await admin.query('create table audit_down (v int)');
    await admin.query('alter table audit_down owner to app');
    const c = client(gw.port);
    c.on('error', () => undefined);
    await c.connect();
    const s = gw.sessions.at(-1)!;
    await expect(c.query('insert into audit_down values (1) /* audit store down */')).rejects.toMatchObject({ code: '58030' });
    expect(await s.ended).toMatchObject({ status: 'error', code: '58030' });
    expect((await admin.query('select count(*)::int as n from audit_down')).rows).toEqual([{ n: 0 }]);
  });

  it('drops a client that never completes its startup packet', async () => {
    const g = await startGateway(connectionFor('pg-test', target), { connectTimeoutMs: 200 });
    const socket = createConnection({ host: '127.0.0.1', port: g.port });
    socket.write(Buffer.from([0, 0, 0]));
    await new Promise((r) => socket.on('close', r));
    await g.close();
    expect(g.sessions[0]!.start).toBeUndefined();
  });

  it('ends the session when the target terminates the backend, relaying its FATAL', async () => {
    const c = client(gw.port);
    await c.connect();
    const s = gw.sessions.at(-1)!;
    const pid = (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number;
    const failed = new Promise<Error>((r) => c.on('error', r));
    await admin.query('select pg_terminate_backend($1)', [pid]);
    expect(await failed).toMatchObject({ code: '57P01' });
    expect(await s.ended).toMatchObject({ status: 'error', code: '57P01' });
  });

  it('tells the client 08006 when the target connection drops mid-session', async () => {
    const links: Socket[] = [];
    const proxy = createServer((a) => {
      const b = createConnection({ host: cluster.host, port: cluster.port });
      links.push(a, b);
      a.pipe(b).pipe(a);
      a.on('error', () => b.destroy());
      b.on('error', () => a.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const g = await startGateway(connectionFor('pg-proxy', { ...target, port: (proxy.address() as AddressInfo).port }));
    const c = client(g.port);
    await c.connect();
    const failed = new Promise<Error>((r) => c.on('error', r));
    links.forEach((l) => l.destroy());
    expect(await failed).toMatchObject({ code: '08006', message: 'the target of connection pg-proxy closed the connection' });
    expect(await g.sessions[0]!.ended).toMatchObject({ status: 'error', code: '08006' });
    await g.close();
    await new Promise((r) => proxy.close(r));
  });

  it('closes sessions on gateway shutdown (57P01) and resolves handle()', async () => {
    const g = await startGateway(connectionFor('pg-test', target));
    const idle = client(g.port);
    const busy = client(g.port);
    await Promise.all([idle.connect(), busy.connect()]);
    const idleError = new Promise<Error>((r) => idle.on('error', r));
    busy.on('error', () => undefined);
    const sleeping = busy.query('select pg_sleep(30)').catch((err: unknown) => err);
    await waitFor('the sleep to start', () => g.sessions[1]?.queries.length === 1);
    const started = Date.now();
    await g.close(); // aborts the shutdown signal and waits for every handle() to resolve
    expect(Date.now() - started, 'a busy target must not hold up the shutdown').toBeLessThan(3000);
    expect(await idleError).toMatchObject({ code: '57P01' });
    expect(await sleeping).toMatchObject({ code: '57P01' });
    for (const s of g.sessions) expect(s.end).toMatchObject({ status: 'error', code: '57P01' });
  });

  it('terminates the upstream session when the client vanishes', async () => {
    const bob: Identity = { ...ALICE, subject: 'user:bob', name: 'bob@example.com' };
    const g = await startGateway(connectionFor('pg-test', target), { identity: bob });
    const c = client(g.port);
    c.on('error', () => undefined);
    await c.connect();
    await c.query('select 1');
    const backends = async () => (await admin.query("select count(*)::int as n from pg_stat_activity where application_name = 'sluice:bob@example.com'")).rows[0].n as number;
    expect(await backends()).toBe(1);
    (c as unknown as { connection: { stream: Socket } }).connection.stream.destroy();
    expect(await g.sessions[0]!.ended).toMatchObject({ status: 'ok' });
    await waitFor('the upstream backend to exit', async () => (await backends()) === 0);
    await g.close();
  });
});

describe('TLS to the target', () => {
  let cert: string;

  beforeAll(async () => {
    const names = [{ type: 2 as const, value: 'localhost' }, { type: 7 as const, ip: '127.0.0.1' }];
    const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      extensions: [{ name: 'basicConstraints', cA: true }, { name: 'subjectAltName', altNames: names }],
    });
    cert = pems.cert;
    const owner = await stat(cluster.dataDir);
    for (const [file, pem] of [['server.crt', pems.cert], ['server.key', pems.private]] as const) {
      await writeFile(join(cluster.dataDir, file), pem, { mode: 0o600 });
      await chown(join(cluster.dataDir, file), owner.uid, owner.gid);
    }
    await admin.query('alter system set ssl = on');
    await admin.query('select pg_reload_conf()');
  });

  const sslInUse = async (t: PostgresTarget) => {
    const g = await startGateway(connectionFor('pg-tls', t));
    const c = client(g.port);
    try {
      await c.connect();
      return (await c.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()')).rows[0].ssl as boolean;
    } finally {
      await c.end().catch(() => undefined);
      await g.close();
    }
  };

  it('sslmode require encrypts without verifying', async () => {
    await waitFor('the server to take its certificate', () => sslInUse({ ...target, sslmode: 'require' }).then((v) => v, () => false));
  });

  it('sslmode verify-full checks the CA and the host name', async () => {
    expect(await sslInUse({ ...target, sslmode: 'verify-full', ca: cert })).toBe(true);
    expect(await sslInUse({ ...target, host: 'localhost', sslmode: 'verify-full', ca: cert })).toBe(true);
    const other = await generate([{ name: 'commonName', value: 'someone-else' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' });
    const err = await tryConnect(connectionFor('pg-tls', { ...target, sslmode: 'verify-full', ca: other.cert }));
    expect(err?.code).toBe('08006');
    expect(err?.message).toMatch(/^cannot reach the target of connection pg-tls: its TLS certificate was not accepted/);
  });
});
