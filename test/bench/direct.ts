// Direct mode against direct PostgreSQL and `ssh -L`, in the same run on the same server
// (BENCH_ONLY=direct): pgbench -S at 1 and 8 clients, with Sluice recording every statement and
// no policy (issue 18's target: ≥ 1.2× ssh -L), the gateway's CPU per transaction, and connection
// setup (connect + select 1 + close, 200 times; target: ≤ direct + 5 ms). Beside them, direct
// mode's floor (bareRelay.ts `direct`: one Node process terminating the client's TLS and relaying
// plain TCP, nothing else): floor ÷ ssh -L says whether the target is reachable by a Node gateway
// at all, direct mode ÷ floor what the engine and the audit cost on top. Prints; asserts nothing.
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { newConfigDir, runCli, serviceToken, startGateway } from '../support/binaries.js';
import { PG_BIN_DIR, startPgCluster } from '../support/pgCluster.js';
import { blocks, cpuMicros, median, pairRow, type Row } from './postgres.js';
import { startSshForward, type SshForward } from './sshForward.js';
import { startBareDirectRelay } from './bareRelay.js';

const run = promisify(execFile);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);

/** One way to reach the database: a libpq string for pgbench and the same for the pg driver. */
interface Path {
  readonly name: string;
  readonly conninfo: string;
  readonly client: pg.ClientConfig;
}

export async function benchDirect(log: (s: string) => void): Promise<Row[]> {
  const cluster = await startPgCluster();
  const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: 'BENCH_PG_PASSWORD' }, sslmode: 'disable' };
  const gw = await startGateway({
    env: { BENCH_PG_PASSWORD: cluster.password },
    // Recording every statement (the default), no policy.
    connections: [{ name: 'bench', type: 'postgres', target, allow: { groups: ['bench'] } }],
    extra: { log: { level: 'warn' }, listeners: { postgres: '127.0.0.1:0' }, credentials: { ttl: '1h' } },
  });
  let ssh: SshForward | undefined;
  let floorRelay: Awaited<ReturnType<typeof startBareDirectRelay>> | undefined;
  try {
    const token = serviceToken(gw, 'bench', 'bench');
    const issued = await runCli(['dsn', 'bench', '--json'], { configDir: newConfigDir(), env: { SLUICE_TOKEN: token, SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string } });
    if (issued.code !== 0) throw new Error(`sluice dsn failed: ${issued.stderr}`);
    const c = JSON.parse(issued.stdout) as { host: string; port: number; user: string; password: string; database: string; dsn: string };
    ssh = await startSshForward(cluster.port);
    const plain = (port: number): Path => ({
      name: String(port),
      conninfo: `host=127.0.0.1 port=${port} user=${cluster.user} password=${cluster.password} dbname=${cluster.database}`,
      client: { host: '127.0.0.1', port, user: cluster.user, password: cluster.password, database: cluster.database },
    });
    const direct = { ...plain(cluster.port), name: 'direct' };
    const sshL = { ...plain(ssh.port), name: 'ssh -L' };
    floorRelay = await startBareDirectRelay(cluster.port);
    const floorPath = plain(floorRelay.port);
    const floor: Path = { ...floorPath, name: 'floor', conninfo: `${floorPath.conninfo} sslmode=require` };
    const sluice: Path = {
      name: 'sluice direct',
      conninfo: c.dsn,
      client: { host: c.host, port: c.port, user: c.user, password: c.password, database: c.database, ssl: { ca: readFileSync(gw.caFile as string, 'utf8'), servername: 'localhost' } },
    };

    log('pgbench -i -s 10 …');
    await run(join(PG_BIN_DIR, 'pgbench'), ['-i', '-q', '-s', '10', direct.conninfo]);
    const rows: Row[] = [];
    const paths = [direct, sluice, sshL, floor];
    // Whose CPU a block is charged to: the gateway for direct mode, the relay for the floor, ssh
    // and sshd for ssh -L (sshd's per-connection processes live only while pgbench's connections do).
    const relayPids = (p: Path): number[] => (p === sluice ? [gw.child.pid!] : p === floor ? [floorRelay!.pid] : p === sshL ? ssh!.pids() : []);
    const cpuOf = (pids: number[]): number => pids.reduce((sum, pid) => sum + cpuAlive(pid), 0);
    for (const clients of [1, 8]) {
      log(`pgbench -S -c ${clients}: direct, sluice direct mode, ssh -L, bare TLS relay (floor) …`);
      // Unmeasured: a cold path (8 ssh channels, 8 TLS handshakes) may complete nothing in a short warm-up.
      for (const p of paths) await pgbench(p, clients, WARMUP, true);
      const rounds = await blocks(async (p: Path) => {
        const before = cpuOf(relayPids(p));
        // ssh -L's per-connection sshd processes start with pgbench's connections and end with them: read while they run.
        let sampled = 0;
        const sampler = p === sshL ? setInterval(() => (sampled = Math.max(sampled, cpuOf(relayPids(p)))), 200) : undefined;
        const r = await pgbench(p, clients, SECONDS).finally(() => clearInterval(sampler));
        const spent = Math.max(sampled, cpuOf(relayPids(p))) - before;
        return { ...r, relayCpu: relayPids(p).length === 0 ? 0 : spent / r.transactions };
      }, paths);
      for (const [i, r] of rounds.entries()) log(`  round ${i + 1}: ${r.map((b, j) => `${paths[j]!.name} ${b.tps.toFixed(0)} tps${relayPids(paths[j]!).length === 0 ? '' : ` (${b.relayCpu.toFixed(0)} µs/tx)`}`).join('; ')}`);
      const tps = rounds.map((r) => r.map((x) => x.tps));
      const pick = (i: number, j: number) => tps.map((r): [number, number] => [r[i]!, r[j]!]);
      rows.push(pairRow(`pgbench -S c${clients} TPS, sluice direct mode`, pick(0, 1), 'tps', false));
      rows.push(pairRow('  ssh -L', pick(0, 2), 'tps', false));
      const vsSsh = pairRow('', pick(2, 1), 'tps', false);
      rows.push({ figure: '  sluice direct ÷ ssh -L (target ≥ 1.2×)', value: vsSsh.value, unit: 'tps', ratio: vsSsh.ratio! });
      rows.push({ figure: '  gateway CPU per transaction (direct mode)', value: median(rounds.map((r) => r[1]!.relayCpu)), unit: 'µs' });
      const floorVsSsh = pairRow('', pick(2, 3), 'tps', false);
      rows.push({ figure: '  floor (bare Node TLS relay) ÷ ssh -L', value: floorVsSsh.value, unit: 'tps', ratio: floorVsSsh.ratio! });
      const vsFloor = pairRow('', pick(3, 1), 'tps', false);
      rows.push({ figure: '  sluice direct ÷ floor', value: vsFloor.value, unit: 'tps', ratio: vsFloor.ratio! });
      rows.push({ figure: '  floor relay CPU per transaction', value: median(rounds.map((r) => r[3]!.relayCpu)), unit: 'µs' });
      rows.push({ figure: '  ssh + sshd CPU per transaction (sampled: a lower bound)', value: median(rounds.map((r) => r[2]!.relayCpu)), unit: 'µs' });
    }

    log('200 × (connect, select 1, close): direct, sluice direct mode …');
    const setup = await blocks((p: Path) => connectLoop(p, 200), [direct, sluice]);
    rows.push(pairRow('connect + select 1 + close, direct mode', setup.map((r): [number, number] => [r[0]!, r[1]!]), 'ms', true));
    rows.push({ figure: '  setup overhead, direct mode (target ≤ 5 ms)', value: median(setup.map((r) => r[1]! - r[0]!)), unit: 'ms' });
    return rows;
  } catch (err) {
    log(`the benchmark failed; the gateway's log ends with:\n${gw.output().slice(-6000)}`);
    throw err;
  } finally {
    await ssh?.stop();
    await floorRelay?.stop();
    await gw.stop();
    rmSync(gw.dir, { recursive: true, force: true });
    await cluster.stop();
  }
}

/** CPU µs of a process, 0 once it is gone (an sshd child between samples). */
function cpuAlive(pid: number): number {
  try {
    return cpuMicros(pid);
  } catch {
    return 0;
  }
}

async function pgbench(p: Path, clients: number, seconds: number, warmUp = false): Promise<{ tps: number; transactions: number }> {
  const { stdout } = await run(join(PG_BIN_DIR, 'pgbench'), ['-S', '-n', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds), p.conninfo]);
  const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1]);
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1]);
  if (!warmUp && (!Number.isFinite(tps) || !(transactions > 0))) throw new Error(`cannot read pgbench output (${p.name}):\n${stdout}`);
  return { tps, transactions };
}

/** Mean milliseconds of one connect + `select 1` + close, over `n` sequential connections. */
async function connectLoop(p: Path, n: number): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const client = new pg.Client(p.client);
    await client.connect();
    await client.query('select 1');
    await client.end();
  }
  return Number(process.hrtime.bigint() - started) / 1e6 / n;
}
