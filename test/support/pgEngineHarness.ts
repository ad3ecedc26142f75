// The PostgreSQL engine without the rest of the gateway: a TCP listener that hands each accepted
// socket to engine.handle() (what the gateway does after the tunnel upgrade), a recording
// PostgresSessionAudit that checks the engine's write-ahead promises, a fake Reviews service the test
// decides for, and helpers for psql and the pg driver. Policy tests use their own database in
// the shared test cluster.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import pg from 'pg';
import pino from 'pino';
import { createBackendFramer } from '../../gateway/engines/postgres/codec/framer.js';
import { encodeStartupMessage } from '../../gateway/engines/postgres/codec/frontend.js';
import { createPostgresEngine } from '../../gateway/engines/postgres/engine.js';
import type { Identity, PostgresConnection, PostgresTarget } from '../../gateway/model.js';
import type { PostgresSessionAudit } from '../../gateway/audit/postgresEvents.js';
import type { ReviewOutcome, ReviewRequest, Reviews } from '../../gateway/reviews/contract.js';
import { compilePolicy, policySchema, type CompiledPolicy, type PolicyInput } from '../../gateway/policy/index.js';
import type { PgClusterDetails } from './pgCluster.js';

export const ALICE: Identity = { subject: 'user:alice', name: 'alice@example.com', groups: ['eng'], kind: 'human' };

type Query = Parameters<PostgresSessionAudit['onQuery']>[0];
type Decision = Parameters<NonNullable<PostgresSessionAudit['onDecision']>>[0];
type Review = Parameters<NonNullable<PostgresSessionAudit['onReview']>>[0];
type Result = Parameters<PostgresSessionAudit['onResult']>[0];
type End = Parameters<PostgresSessionAudit['onSessionEnd']>[0];

/** Every event of one session, in order, with checks of what the engine promises. */
export class RecordingAudit implements PostgresSessionAudit {
  readonly events: { kind: string; data: unknown }[] = [];
  readonly queries: Query[] = [];
  readonly decisions: Decision[] = [];
  readonly reviews: Review[] = [];
  readonly results: Result[] = [];
  readonly columns = new Map<number, string[]>();
  readonly rows = new Map<number, (string | null)[][]>();
  /** Statements staged with deferCommit and not yet flushed. */
  unflushed = 0;
  flushes = 0;
  end: End | undefined;
  readonly ended: Promise<End>;
  private resolveEnd!: (e: End) => void;

  constructor(private readonly maxRows = 100) {
    this.ended = new Promise((r) => (this.resolveEnd = r));
  }
  onAction(): number {
    throw new Error('the postgres engine reports statements with onQuery');
  }
  onOutcome(): void {}
  onEvent(): void {}
  onSessionStart(info: unknown): void {
    this.events.push({ kind: 'start', data: info });
  }
  onQuery(q: Query): number {
    if (q.deferCommit) this.unflushed++;
    this.events.push({ kind: 'query', data: q });
    return this.queries.push(q);
  }
  onDecision(d: Decision): void {
    if (d.deferCommit) this.unflushed++;
    this.events.push({ kind: 'decision', data: d });
    this.decisions.push(d);
  }
  onReview(r: Review): void {
    this.events.push({ kind: 'review', data: r });
    this.reviews.push(r);
  }
  onColumns(queryId: number, columns: readonly { name: string }[]): void {
    this.columns.set(queryId, columns.map((c) => c.name));
  }
  onRow(queryId: number, values: readonly (string | null)[]): boolean {
    const rows = this.rows.get(queryId) ?? [];
    this.rows.set(queryId, rows);
    rows.push([...values]);
    return rows.length < this.maxRows;
  }
  onResult(r: Result): void {
    this.events.push({ kind: 'result', data: r });
    this.results.push(r);
  }
  onSessionEnd(e: End): void {
    this.end = e;
    this.resolveEnd(e);
  }
  flush(): Promise<void> | undefined {
    if (this.unflushed === 0) return undefined;
    // Commits take a turn of the event loop, as the real writer's group commit does.
    return new Promise((r) =>
      setImmediate(() => {
        this.unflushed = 0;
        this.flushes++;
        r();
      }),
    );
  }
  /** The statement record whose text contains `text`, with its decision and result. */
  of(text: string): { id: number; query: Query; decision?: Decision; result?: Result } {
    const id = this.queries.findIndex((q) => q.text.includes(text)) + 1;
    if (id === 0) throw new Error(`no statement containing ${JSON.stringify(text)}`);
    return { id, query: this.queries[id - 1]!, decision: this.decisions.find((d) => d.queryId === id), result: this.results.find((r) => r.queryId === id) };
  }
}

/** A Reviews service the test decides for: `pending` lists requests; `decide(id, outcome)`. */
export class FakeReviews implements Reviews {
  readonly requests: { id: string; req: ReviewRequest; signal: AbortSignal; resolve: (o: ReviewOutcome) => void }[] = [];
  private n = 0;
  request(req: ReviewRequest, signal: AbortSignal): { id: string; outcome: Promise<ReviewOutcome> } {
    const id = `R-${(++this.n).toString().padStart(4, '0')}`;
    const outcome = new Promise<ReviewOutcome>((resolve) => {
      this.requests.push({ id, req, signal, resolve });
      signal.addEventListener('abort', () => resolve({ status: 'cancelled' }), { once: true });
    });
    return { id, outcome };
  }
  decide(id: string, outcome: ReviewOutcome): void {
    const r = this.requests.find((x) => x.id === id);
    if (!r) throw new Error(`no review ${id}`);
    r.resolve(outcome);
  }
}

export function compile(policy: PolicyInput, hashKey = Buffer.from('0123456789abcdef0123456789abcdef')): CompiledPolicy {
  return compilePolicy(policySchema.parse(policy), { hashKey });
}

export interface EngineOptions {
  identity?: Identity;
  policy?: CompiledPolicy;
  reviews?: Reviews;
  maxRows?: number;
}

/** Starts an engine on a local port; `close()` shuts it down and waits for every session. */
export async function startEngine(connection: PostgresConnection, opts: EngineOptions = {}) {
  const engine = createPostgresEngine();
  const logs: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(s) });
  const sessions: RecordingAudit[] = [];
  const shutdown = new AbortController();
  const handled: Promise<void>[] = [];
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    const audit = new RecordingAudit(opts.maxRows);
    sessions.push(audit);
    const ctx = {
      id: `s${sessions.length}`,
      identity: opts.identity ?? ALICE,
      connection,
      audit,
      log,
      connectTimeoutMs: 5000,
      ...(opts.policy ? { policy: opts.policy } : {}),
      ...(opts.reviews ? { reviews: opts.reviews } : {}),
    };
    handled.push(engine.handle(socket, ctx, shutdown.signal));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    sessions,
    logs,
    engine,
    async close() {
      shutdown.abort();
      await Promise.all(handled);
      await new Promise((r) => server.close(r));
    },
  };
}

export type Engine = Awaited<ReturnType<typeof startEngine>>;

export function connectionFor(target: PostgresTarget, name = 'pg-policy'): PostgresConnection {
  return { name, type: 'postgres', target, databases: [], allow: { groups: ['eng'] }, record: 'statements' };
}

/** A fresh database owned by the cluster's app role, with a superuser client on it. */
export async function freshDatabase(cluster: PgClusterDetails, prefix: string): Promise<{ target: PostgresTarget; admin: pg.Client; drop: () => Promise<void> }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const su = cluster.roles.superuser;
  const root = new pg.Client({ host: cluster.host, port: cluster.port, user: su.user, password: su.password, database: 'postgres' });
  await root.connect();
  await root.query(`CREATE DATABASE ${name} OWNER ${cluster.user}`);
  const admin = new pg.Client({ host: cluster.host, port: cluster.port, user: su.user, password: su.password, database: name });
  await admin.connect();
  return {
    target: { host: cluster.host, port: cluster.port, database: name, user: cluster.user, password: cluster.password, sslmode: 'disable' },
    admin,
    async drop() {
      await admin.end();
      await root.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await root.end();
    },
  };
}

export function client(port: number, database: string, extra: Partial<pg.ClientConfig> = {}): pg.Client {
  return new pg.Client({ host: '127.0.0.1', port, user: 'whoever', database, connectionTimeoutMillis: 10_000, ...extra });
}

/** Runs psql (no psqlrc, no password) against the engine; resolves with its output. */
export function psql(psqlPath: string, port: number, database: string, args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const conninfo = `host=127.0.0.1 port=${port} user=whoever dbname=${database} connect_timeout=10`;
  const child = spawn(psqlPath, ['-X', '-w', '-d', conninfo, ...args], { env: { ...process.env, PGPASSWORD: '' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  if (input !== undefined) child.stdin.end(input);
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A server message as a raw client saw it (`type` as its letter). */
export interface RawMessage {
  readonly type: string;
  readonly body: Buffer;
}

/**
 * A client that speaks the wire protocol by hand, for what a driver will not send: pipelines,
 * odd encodings, chosen bytes. Connected and past startup (its first ReadyForQuery) when it
 * resolves.
 */
export interface RawClient {
  send(bytes: Buffer): void;
  /** Resolves with the messages received since the last call, once `readies` more ReadyForQuery have come. */
  until(readies: number): Promise<RawMessage[]>;
  close(): void;
}

export async function rawClient(port: number, database: string, params: [string, string][] = []): Promise<RawClient> {
  const socket = createConnection({ host: '127.0.0.1', port });
  const framer = createBackendFramer();
  let received: RawMessage[] = [];
  let readies = 0;
  let waiting: { count: number; resolve: () => void } | undefined;
  let closed = false;
  // A session the gateway ends (a FATAL, then its FIN) answers no more: stop waiting then.
  socket.on('close', () => {
    closed = true;
    waiting?.resolve();
  });
  socket.on('error', () => undefined);
  socket.on('data', (d: Buffer) => {
    framer.push(d);
    while (framer.next()) {
      received.push({ type: String.fromCharCode(framer.type), body: Buffer.from(framer.body) });
      if (framer.type === 0x5a && ++readies === waiting?.count) waiting.resolve();
    }
  });
  const until = async (more: number): Promise<RawMessage[]> => {
    const count = readies + more;
    if (readies < count && !closed) await new Promise<void>((resolve) => (waiting = { count, resolve }));
    const out = received;
    received = [];
    return out;
  };
  socket.write(encodeStartupMessage([['user', 'x'], ['database', database], ...params]));
  const startup = await until(1);
  // Refused at startup: what the server (or gateway) said is the first thing `until` returns.
  if (closed) received = startup;
  return { send: (bytes) => socket.write(bytes), until, close: () => socket.destroy() };
}
