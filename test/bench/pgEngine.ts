// `node dist/test/bench/pgEngine.js`: the postgres engine's own CPU per pgbench -S transaction,
// in one process and without sockets — the client flow, the server flow and the backend relay,
// driven with the bytes of pgbench's Query and of the target's T/D/C/Z answer (each a fresh
// buffer, as a socket read gives), the application_name check included. The audit is a stand-in
// that records nothing and commits at once through a resolved promise, so the figure is the
// engine's alone (recording's cost is the audit bench's). On a loaded machine the end-to-end
// benches cannot see a change of a microsecond; CPU time of a fixed amount of work in one process
// can. PG_ENGINE_DIST=<a dist directory> runs another build's engine (an old one, side by side);
// PG_ENGINE_TX (transactions per round, 200 000), PG_ENGINE_ROUNDS (5).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { PostgresSessionAudit } from '../../gateway/audit/postgresEvents.js';
import type { PgSessionContext } from '../../gateway/engines/postgres/context.js';

const dist = process.env.PG_ENGINE_DIST ?? join(fileURLToPath(import.meta.url), '../../..');
const perRound = Number(process.env.PG_ENGINE_TX ?? 200_000);
const rounds = Number(process.env.PG_ENGINE_ROUNDS ?? 5);

type Modules = {
  ClientFlow: typeof import('../../gateway/engines/postgres/clientFlow.js').ClientFlow;
  ServerFlow: typeof import('../../gateway/engines/postgres/serverFlow.js').ServerFlow;
  QueryTracker: typeof import('../../gateway/engines/postgres/queryTracker.js').QueryTracker;
  Refusals: typeof import('../../gateway/engines/postgres/refusals.js').Refusals;
  createFrontendFramer: typeof import('../../gateway/engines/postgres/codec/framer.js').createFrontendFramer;
};

async function load(): Promise<Modules> {
  const at = (p: string) => import(join(dist, 'gateway/engines/postgres', p));
  const [cf, sf, qt, rf, fr] = await Promise.all([at('clientFlow.js'), at('serverFlow.js'), at('queryTracker.js'), at('refusals.js'), at('codec/framer.js')]);
  return { ClientFlow: cf.ClientFlow, ServerFlow: sf.ServerFlow, QueryTracker: qt.QueryTracker, Refusals: rf.Refusals, createFrontendFramer: fr.createFrontendFramer };
}

function typed(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cstr = (s: string) => Buffer.from(`${s}\0`);
const i16 = (v: number) => Buffer.from([(v >> 8) & 0xff, v & 0xff]);
const i32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
};

/** pgbench -S: its Query, and the target's whole answer as one read. */
const QUERY = typed('Q', cstr('SELECT abalance FROM pgbench_accounts WHERE aid = 712345;'));
const ANSWER = Buffer.concat([
  typed('T', i16(1), cstr('abalance'), i32(16_400), i16(2), i32(23), i16(4), i32(-1), i16(0)),
  typed('D', i16(1), i32(1), Buffer.from('0')),
  typed('C', cstr('SELECT 1')),
  typed('Z', Buffer.from('I')),
]);

async function main(): Promise<void> {
  const m = await load();
  let nextId = 0;
  const done = Promise.resolve();
  const audit: PostgresSessionAudit = {
    onSessionStart: () => undefined,
    onSessionEnd: () => undefined,
    onQuery: () => ++nextId,
    onResult: () => undefined,
    onColumns: () => undefined,
    onRow: () => true,
    flush: () => done,
  } as unknown as PostgresSessionAudit;
  const ctx = { audit, identity: { name: 'bench@example.com', subject: 'bench' }, connection: { name: 'bench' }, log: pino({ level: 'silent' }) } as unknown as PgSessionContext;
  const tracker = new m.QueryTracker(audit, undefined, true);
  const refusals = new m.Refusals();
  let toClient = 0;
  let toTarget = 0;
  let answered: (() => void) | undefined;
  const server = new m.ServerFlow({ ctx, tracker, refusals, emit: (b) => void (toClient += b.length), onResume: () => undefined });
  const framer = m.createFrontendFramer();
  framer.expectTyped();
  const client = new m.ClientFlow({
    ctx,
    framer,
    tracker,
    refusals,
    server,
    write: (b) => {
      toTarget += b.length;
      answered?.();
    },
    pause: () => undefined,
    resume: () => undefined,
    terminated: () => undefined,
    fail: (err) => {
      throw err;
    },
  });
  const transaction = async () => {
    const sent = new Promise<void>((resolve) => (answered = resolve));
    framer.push(Buffer.from(QUERY));
    client.pump();
    await sent;
    server.relay.push(Buffer.from(ANSWER));
  };
  for (let i = 0; i < 20_000; i++) await transaction(); // warm-up: optimised code before measuring
  const figures: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const before = process.cpuUsage();
    for (let i = 0; i < perRound; i++) await transaction();
    const used = process.cpuUsage(before);
    figures.push(((used.user + used.system) * 1000) / perRound);
  }
  if (toTarget !== QUERY.length * (20_000 + rounds * perRound) || toClient !== ANSWER.length * (20_000 + rounds * perRound)) throw new Error('the engine did not relay every byte');
  const sorted = [...figures].sort((a, b) => a - b);
  console.log(`postgres engine, pgbench -S transaction, ${dist}: ns CPU per transaction, rounds ${figures.map((f) => f.toFixed(0)).join(' ')}; median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)}`);
}

await main();
