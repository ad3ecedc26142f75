// `npm run profile`: where the tunnel's CPU goes. Starts a throwaway PostgreSQL, the gateway and
// `sluice connect` as real binaries (with `node --cpu-prof` unless PROFILE_CPU=0; NODE_OPTIONS
// refuses that flag), runs pgbench -S through the tunnel, and prints CPU per transaction of each
// process (user and system, from /proc) and the functions with the most self time per
// transaction, per thread (the audit ingest thread has its own profile). Settings:
// PROFILE_CLIENTS (8), PROFILE_SECONDS (10), PROFILE_RECORD (statements | sessions),
// PROFILE_TOP (25), PROFILE_DIR (kept profiles; default a temporary directory), PROFILE_CPU=0 (no
// --cpu-prof), PROFILE_NODE_FLAGS (more node flags, e.g. --perf-basic-prof for `perf record`),
// PROFILE_POLICY=1 (the tunnel bench's policy: block rules and a mask on one column),
// PROFILE_MODE=direct (pgbench through the gateway's own PostgreSQL listener, `sluice dsn`, TLS,
// instead of `sluice connect`), PROFILE_STRACE=1 (`strace -c -f` attached to the gateway for the
// measured window: system calls per transaction), PROFILE_PERF=1 (`perf record -g` attached the
// same way, the gateway run with --perf-basic-prof: its CPU per transaction by category; best with
// PROFILE_CPU=0, since --cpu-prof's sampling thread is counted too), PROFILE_BARE=1 (then the same
// pgbench run and tracers through the bare relay pair, the tunnel's floor: its server's CPU), PROFILE_SELECT=1 (instead of pgbench, the tunnel bench's 1M-row
// SELECT, figures per 1000 rows).
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI_BIN, GATEWAY_BIN, newConfigDir, writeGatewayConfig } from '../support/binaries.js';
import { PG_BIN_DIR, startPgCluster } from '../support/pgCluster.js';
import { startBareRelayPair } from './bareRelay.js';
import { startPerf, startStrace, type Tracer } from './processTrace.js';
import { POLICY } from './tunnel.js';

const run = promisify(execFile);
const clients = Number(process.env.PROFILE_CLIENTS ?? 8);
const seconds = Number(process.env.PROFILE_SECONDS ?? 10);
const record = process.env.PROFILE_RECORD ?? 'statements';
const top = Number(process.env.PROFILE_TOP ?? 25);
const cpu = process.env.PROFILE_CPU !== '0';
const direct = process.env.PROFILE_MODE === 'direct';
const straced = process.env.PROFILE_STRACE === '1';
const perfed = process.env.PROFILE_PERF === '1';
const bareToo = process.env.PROFILE_BARE === '1';
const select = process.env.PROFILE_SELECT === '1';
// Kept after the run (to open in DevTools); without --cpu-prof there is nothing to keep, so no directory.
const out = process.env.PROFILE_DIR ?? (cpu ? mkdtempSync(join(tmpdir(), 'sluice-profile-')) : '');

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/** User and system CPU of a process so far, in microseconds (clock ticks of 10 ms). */
function cpuOf(pid: number): { user: number; system: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { user: Number(fields[11]) * 10_000, system: Number(fields[12]) * 10_000 };
}

/** Read and write system calls of a process so far (/proc/PID/io: socket writes and journal pwrites alike). */
function syscallsOf(pid: number): { reads: number; writes: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return { reads: Number(/syscr: (\d+)/.exec(io)?.[1]), writes: Number(/syscw: (\d+)/.exec(io)?.[1]) };
}

/** The same per thread (`tid name` → CPU): the main thread has the process's id; Node names them all "node". */
function threadsOf(pid: number): Map<string, { user: number; system: number }> {
  const out = new Map<string, { user: number; system: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    const name = `${tid} ${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}`;
    const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
    const t = out.get(name) ?? { user: 0, system: 0 };
    t.user += Number(fields[11]) * 10_000;
    t.system += Number(fields[12]) * 10_000;
    out.set(name, t);
  }
  return out;
}

/** The tunnel bench's table for the 1M-row SELECT (its policy masks `email`). */
const SELECT_TABLE = "create table bench_customers as select g as id, 'customer ' || g as name, 'user' || g || '@example.com' as email from generate_series(1, 1000000) g";

/** Waits for `re` in the stream; leaves the stream open and drained (a closed stderr would fail the child's next log line). */
function waitFor(child: ChildProcess, re: RegExp, stream: NodeJS.ReadableStream): Promise<RegExpExecArray> {
  let text = '';
  return new Promise((resolve, reject) => {
    let found = false;
    stream.on('data', (chunk: Buffer) => {
      if (found) return;
      text += String(chunk);
      const m = re.exec(text);
      if (m) {
        found = true;
        resolve(m);
      }
    });
    stream.on('end', () => reject(new Error(`process ${child.pid} ended before printing ${re}:\n${text}`)));
  });
}

function report(dir: string, transactions: number): void {
  for (const file of readdirSync(dir).sort()) {
    const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const self = new Map<string, number>();
    let busy = 0;
    p.samples.forEach((id, i) => {
      const f = byId.get(id)!.callFrame;
      if (f.functionName === '(idle)') return;
      const us = p.timeDeltas[i] ?? 0;
      busy += us;
      const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
      self.set(key, (self.get(key) ?? 0) + us);
    });
    console.log(`\n${file}: busy ${(busy / transactions).toFixed(1)} µs per transaction`);
    for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${(us / transactions).toFixed(1).padStart(8)} µs ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${key}`);
    }
  }
}

/** PROFILE_BARE=1: the same pgbench run, with the same tracers, through the bare relay pair. */
async function profileBare(targetPort: number, env: NodeJS.ProcessEnv, dir: string): Promise<void> {
  // The relays inherit this process's environment: --perf-basic-prof names their JavaScript frames.
  if (perfed) process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --perf-basic-prof`.trim();
  const bare = await startBareRelayPair(targetPort);
  const tracers: Tracer[] = [];
  try {
    const pid = bare.pids[0]!;
    if (straced) tracers.push(await startStrace(pid, join(dir, 'strace-bare.txt')));
    if (perfed) tracers.push(await startPerf(pid, join(dir, 'perf-bare.data')));
    const before = cpuOf(pid);
    const { stdout } = await run(join(PG_BIN_DIR, 'pgbench'), ['-S', '-n', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds), `port=${bare.port}`], { env });
    const transactions = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1]);
    const after = cpuOf(pid);
    const u = (after.user - before.user) / transactions;
    const s = (after.system - before.system) / transactions;
    console.log(`\npgbench -S -c ${clients} through the bare relay pair: ${/tps = ([\d.]+)/.exec(stdout)?.[1]} tps, ${transactions} transactions`);
    console.log(`bare server     CPU per transaction: user ${u.toFixed(1)} µs, system ${s.toFixed(1)} µs`);
    for (const t of tracers) await t.stop(transactions, u + s);
  } finally {
    for (const t of tracers) if (t.child.exitCode === null) t.child.kill('SIGKILL');
    await bare.stop();
  }
}

async function main(): Promise<void> {
  const cluster = await startPgCluster();
  const procs: ChildProcess[] = [];
  const tracers: Tracer[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'sluice-profile-gw-'));
  try {
    const env = { ...process.env, PGSSLMODE: 'disable', PGPASSWORD: cluster.password, PGHOST: '127.0.0.1', PGUSER: cluster.user, PGDATABASE: cluster.database };
    await run(join(PG_BIN_DIR, 'pgbench'), ['-i', '-q', '-s', '10', '-p', String(cluster.port)], { env });
    if (select) await run(join(PG_BIN_DIR, 'psql'), ['-X', '-p', String(cluster.port), '-c', SELECT_TABLE], { env });
    const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: 'PROFILE_PG_PASSWORD' }, sslmode: 'disable' };
    const config = writeGatewayConfig(dir, { connections: [{ name: 'bench', type: 'postgres', target, allow: { groups: ['bench'] }, record, ...(process.env.PROFILE_POLICY === '1' ? { policy: POLICY } : {}) }], extra: { log: { level: 'warn' }, ...(direct ? { listeners: { postgres: '127.0.0.1:0' }, credentials: { ttl: '1h' } } : {}) } });
    // PROFILE_NODE_FLAGS: more flags for both processes, e.g. --perf-basic-prof for `perf record`.
    const extraFlags = (process.env.PROFILE_NODE_FLAGS ?? '').split(' ').filter(Boolean);
    const flags = (name: string) => [...extraFlags, ...(cpu ? ['--cpu-prof', `--cpu-prof-dir=${join(out, name)}`] : [])];
    // PROFILE_PERF needs the JavaScript frames named in perf's samples.
    const gwFlags = [...flags('gateway'), ...(perfed ? ['--perf-basic-prof'] : [])];
    const gw = spawn(process.execPath, [...gwFlags, GATEWAY_BIN, '--config', config], { env: { ...process.env, PROFILE_PG_PASSWORD: cluster.password }, stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(gw);
    const gwPid = gw.pid!;
    const started = await waitFor(gw, /listening on (\S+)[\s\S]*--ca (\S+)/, gw.stderr!);
    const token = execFileSync(process.execPath, [GATEWAY_BIN, 'token', 'create', '--config', config, '--name', 'profile', '--groups', 'bench'], { encoding: 'utf8' }).trim();
    const cliEnv = { ...process.env, SLUICE_CONFIG_DIR: newConfigDir(), SLUICE_TOKEN: token, SLUICE_GATEWAY: started[1], SLUICE_CA: started[2] };
    let conninfo: string;
    let cli: ChildProcess;
    if (direct) {
      // The direct listener: pgbench speaks TLS to the gateway itself; no CLI in the path.
      const issued = JSON.parse(execFileSync(process.execPath, [CLI_BIN, 'dsn', 'bench', '--json'], { env: cliEnv, encoding: 'utf8' })) as { dsn: string };
      conninfo = issued.dsn;
      // A stand-in so that the CPU table keeps its shape: it does no work during the run.
      cli = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
    } else {
      cli = spawn(process.execPath, [...flags('cli'), CLI_BIN, 'connect', 'bench', '--json', '--port', '0'], { env: cliEnv, stdio: ['ignore', 'pipe', 'ignore'] });
      const [line] = (await once(cli.stdout!, 'data')) as [Buffer];
      conninfo = `port=${(JSON.parse(line.toString()) as { port: number }).port}`;
    }
    procs.push(cli);
    // Attached for the measured window only (start-up is not counted), by process id.
    if (straced) tracers.push(await startStrace(gwPid, join(dir, 'strace.txt')));
    if (perfed) tracers.push(await startPerf(gwPid, join(dir, 'perf.data')));
    const before = [cpuOf(gwPid), cpuOf(cli.pid!)];
    const ioBefore = syscallsOf(gwPid);
    const threadsBefore = threadsOf(gwPid);
    let transactions: number;
    if (select) {
      const started = process.hrtime.bigint();
      const { stdout } = await run(join(PG_BIN_DIR, 'psql'), ['-X', '-At', '-c', 'select * from bench_customers', conninfo], { env, maxBuffer: 1 << 30 });
      const rows = stdout.split('\n').length - 1;
      transactions = rows / 1000;
      console.log(`1M-row SELECT ${direct ? 'through the direct listener' : 'through the tunnel'}, record: ${record}: ${((rows * 1e9) / Number(process.hrtime.bigint() - started)).toFixed(0)} rows/s; figures below are per 1000 rows`);
    } else {
      const { stdout } = await run(join(PG_BIN_DIR, 'pgbench'), ['-S', '-n', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds), conninfo], { env });
      transactions = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1]);
      console.log(`pgbench -S -c ${clients} ${direct ? 'through the direct listener' : 'through the tunnel'}, record: ${record}: ${/tps = ([\d.]+)/.exec(stdout)?.[1]} tps, ${transactions} transactions`);
    }
    const after = [cpuOf(gwPid), cpuOf(cli.pid!)];
    const ioAfter = syscallsOf(gwPid);
    const threadsAfter = threadsOf(gwPid);
    (direct ? ['gateway'] : ['gateway', 'sluice connect']).forEach((name, i) => {
      const u = (after[i]!.user - before[i]!.user) / transactions;
      const s = (after[i]!.system - before[i]!.system) / transactions;
      console.log(`${name.padEnd(15)} CPU per transaction: user ${u.toFixed(1)} µs, system ${s.toFixed(1)} µs`);
    });
    console.log(`gateway read / write system calls per transaction: ${((ioAfter.reads - ioBefore.reads) / transactions).toFixed(2)} / ${((ioAfter.writes - ioBefore.writes) / transactions).toFixed(2)}`);
    for (const [name, t] of threadsAfter) {
      const b = threadsBefore.get(name) ?? { user: 0, system: 0 };
      const u = (t.user - b.user) / transactions;
      const s = (t.system - b.system) / transactions;
      if (u + s >= 0.5) console.log(`  gateway thread ${name.padEnd(16)} user ${u.toFixed(1)} µs, system ${s.toFixed(1)} µs`);
    }
    // The profiles are written when the processes exit. Listening first: the CLI may be gone while the tracers finish.
    const exited = Promise.all([once(cli, 'exit'), once(gw, 'exit')]);
    cli.kill('SIGINT');
    const gwCpu = (after[0]!.user + after[0]!.system - before[0]!.user - before[0]!.system) / transactions;
    for (const t of tracers) await t.stop(transactions, gwCpu);
    process.kill(gwPid, 'SIGTERM');
    await exited;
    if (bareToo && !direct && !select) await profileBare(cluster.port, env, dir);
    if (cpu) {
      report(join(out, 'gateway'), transactions);
      if (!direct) report(join(out, 'cli'), transactions);
      console.log(`\nprofiles in ${out} (open them in Chrome DevTools)`);
    }
  } finally {
    for (const p of [...tracers.map((t) => t.child), ...procs]) if (p.exitCode === null) p.kill('SIGKILL');
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
