// `node dist/test/bench/policyStatement.js`: the gateway's CPU per policy-gated pgbench -S
// statement, in process, on the modules a pgbench statement goes through in a session with the
// tunnel bench's policy (block rules and a mask on one column): the reading guard, the policy
// gate (shape cache, evaluate, exfiltration guard, lineage) and the result masker's plan for the
// RowDescription, against a real PostgreSQL catalog. Everything else a transaction costs (sockets,
// audit) is left out, so the figure is the policy's own. `POLICY_BENCH_OLD=/path/to/dist` runs an
// older build's modules too, alternately in the same rounds, and prints both (e.g. main's dist).
// POLICY_BENCH_CALLS (200 000) per round, POLICY_BENCH_ROUNDS (5); the median round is printed.
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { PG_BIN_DIR, startPgCluster } from '../support/pgCluster.js';
import { POLICY } from './tunnel.js';

const run = promisify(execFile);
const calls = Number(process.env.POLICY_BENCH_CALLS ?? 200_000);
const rounds = Number(process.env.POLICY_BENCH_ROUNDS ?? 5);
const IDENTITY = { subject: 'svc:bench', name: 'bench', groups: ['bench'], kind: 'service' as const };
/** Distinct texts (as pgbench -S sends them), so that nothing is answered for an exact text. */
const TEXTS = Array.from({ length: 100_000 }, (_, i) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${((i * 7919) % 1_000_000) + 1};`);

/* eslint-disable @typescript-eslint/no-explicit-any -- the modules of another build are loaded by path */
interface Session {
  statement(text: string): unknown;
  close(): void;
}

/** One session of the build under `root` (a dist directory): what clientFlow and serverFlow call for one Query. */
async function session(root: string, target: Record<string, unknown>, rowDescription: Buffer): Promise<Session> {
  const load = (p: string) => import(pathToFileURL(join(root, p)).href) as Promise<any>;
  const [{ PolicyGate }, { ReadingGuard }, { ResultMasking }, { TargetCatalog }, { compilePolicy, policySchema }] = await Promise.all([
    load('gateway/engines/postgres/policyGate.js'),
    load('gateway/engines/postgres/readingGuard.js'),
    load('gateway/engines/postgres/resultMasking.js'),
    load('gateway/engines/postgres/catalog.js'),
    load('gateway/policy/schema.js'),
  ]);
  const policy = compilePolicy(policySchema.parse(POLICY), { hashKey: Buffer.alloc(32, 7) });
  const catalog = new TargetCatalog({ connectionName: 'bench', target, database: target.database, timeoutMs: 10_000, log: pino({ level: 'silent' }), identityName: IDENTITY.name });
  const gate = new PolicyGate(IDENTITY, policy, catalog, catalog);
  const reading = new ReadingGuard(catalog, () => 0);
  const masking = new ResultMasking(gate.mask, catalog);
  const once = (text: string): unknown => {
    const r = reading.beforeText(0);
    if (r !== undefined) return r;
    const def = gate.judge(text, false);
    if (def === 'wait' || def instanceof Promise) return def;
    gate.queryStarted();
    reading.query(def);
    const plan = masking.forRowDescription(rowDescription, 0, rowDescription.length, def.lineage?.[0]);
    if (plan instanceof Promise) return plan;
    gate.completed(def.analysis.ok ? def.analysis.statements[0] : undefined, def.text);
    gate.ready('I', true);
    return def.decision.verdict === 'allow' ? undefined : def.decision;
  };
  // The first statements wait for the catalog (relations, the reading guard's shadows): settle them.
  for (let i = 0; i < 10; i++) {
    const r = once(TEXTS[0]!);
    if (r instanceof Promise) await r;
    else if (r !== undefined) throw new Error(`the bench statement was not allowed: ${JSON.stringify(r)}`);
  }
  return { statement: once, close: () => catalog.close() };
}

/** A RowDescription of one int4 column `abalance` of the table with `oid` (attribute 3). */
function rowDescriptionOf(oid: number): Buffer {
  const name = Buffer.from('abalance\0');
  const body = Buffer.alloc(2 + name.length + 18);
  body.writeInt16BE(1, 0);
  name.copy(body, 2);
  let o = 2 + name.length;
  o = body.writeInt32BE(oid, o);
  o = body.writeInt16BE(3, o);
  o = body.writeInt32BE(23, o);
  o = body.writeInt16BE(4, o);
  o = body.writeInt32BE(-1, o);
  body.writeInt16BE(0, o);
  const head = Buffer.alloc(5);
  head.write('T', 0, 'latin1');
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

/** CPU µs per call of `f` over `calls` calls. */
function cpuPerCall(f: (i: number) => unknown): number {
  const before = process.cpuUsage();
  for (let i = 0; i < calls; i++) f(i);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / calls;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function main(): Promise<void> {
  const cluster = await startPgCluster();
  try {
    const env = { ...process.env, PGPASSWORD: cluster.password, PGHOST: '127.0.0.1', PGUSER: cluster.user, PGDATABASE: cluster.database, PGPORT: String(cluster.port) };
    await run(join(PG_BIN_DIR, 'pgbench'), ['-i', '-q', '-s', '1'], { env });
    const { stdout } = await run(join(PG_BIN_DIR, 'psql'), ['-X', '-At', '-c', "select 'pgbench_accounts'::regclass::oid"], { env });
    const rowDescription = rowDescriptionOf(Number(stdout.trim()));
    const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: cluster.password, sslmode: 'disable' };
    const builds: [string, string][] = [['this build', resolve(fileURLToPath(new URL('../..', import.meta.url)))]];
    if (process.env.POLICY_BENCH_OLD) builds.unshift(['old build', resolve(process.env.POLICY_BENCH_OLD)]);
    const sessions = await Promise.all(builds.map(([, root]) => session(root, target, rowDescription)));
    const figures: number[][] = builds.map(() => []);
    let sink = 0;
    const empty: number[] = [];
    for (let r = 0; r < rounds; r++) {
      empty.push(cpuPerCall((i) => (sink += TEXTS[i % TEXTS.length]!.length)));
      // Alternate which build runs first, so neither always meets a warmer or busier machine.
      const order = r % 2 === 0 ? sessions.map((_, i) => i) : sessions.map((_, i) => sessions.length - 1 - i);
      for (const b of order) figures[b]!.push(cpuPerCall((i) => sessions[b]!.statement(TEXTS[i % TEXTS.length]!)));
    }
    const base = median(empty);
    console.log(`CPU per pgbench -S statement through the policy path (median of ${rounds} rounds of ${calls} calls, an empty loop's ${base.toFixed(3)} µs subtracted; load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')}):`);
    builds.forEach(([name, root], b) => console.log(`  ${name} (${root}): ${(median(figures[b]!) - base).toFixed(2)} µs  rounds ${figures[b]!.map((x) => (x - base).toFixed(2)).join(' ')}`));
    if (sink === 0) console.log('');
    for (const s of sessions) s.close();
  } finally {
    await cluster.stop();
  }
}

await main();
