// ssh through the gateway against ssh straight to the host (issue 16's targets: at least 0.5× the
// direct scp throughput; per-command latency within direct + 20 ms). A throwaway OpenSSH server,
// the real gateway with an ssh connection, and `sluice connect` as the local end; the real ssh and
// scp clients on both sides. scp uploads BENCH_SSH_MB (default 256) MB of random bytes,
// BENCH_SSH_SCP_PAIRS (default 3) times each way, alternating (direct, tunnel, …), and prints the
// median of the paired ratios and the CPU the gateway and `sluice connect` spent per MB (/proc).
// Then BENCH_SSH_RUNS (default 100) sequential `ssh … true`, in alternating blocks of 10, against
// two direct logins: OpenSSH's default key exchange (a post-quantum hybrid here) and curve25519,
// the one the gateway's ssh library negotiates on both its legs, so that one pair is like for like.
// Medians are printed, nothing asserted.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openTunnel, serviceToken, startGateway, tokenCtx } from '../support/binaries.js';
import { startSshd } from '../support/sshd.js';
import type { Row } from './postgres.js';

const run = promisify(execFile);
const MB = Number(process.env.BENCH_SSH_MB ?? 256);
const RUNS = Number(process.env.BENCH_SSH_RUNS ?? 100);
const SCP_PAIRS = Number(process.env.BENCH_SSH_SCP_PAIRS ?? 3);
const BLOCK = 10;

export async function benchSsh(log: (s: string) => void): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-sshcli-'));
  const sshd = await startSshd();
  const gw = await startGateway({
    connections: [
      { name: 'bench', type: 'ssh', target: { host: sshd.host, port: sshd.port, user: sshd.user, privateKey: { file: sshd.userKeyFile }, hostKey: sshd.hostKey }, allow: { groups: ['bench'] } },
    ],
    extra: { log: { level: 'warn' } },
  });
  let tunnel: Awaited<ReturnType<typeof openTunnel>> | undefined;
  try {
    tunnel = await openTunnel('bench', tokenCtx(gw, serviceToken(gw, 'bench', 'bench')));
    const info = tunnel.info as unknown as { user: string; knownHosts: string; hostKeyAlias: string };
    const directKnownHosts = join(dir, 'known_hosts');
    writeFileSync(directKnownHosts, `direct ${sshd.hostKey}\n`);
    const common = ['-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'GlobalKnownHostsFile=/dev/null'];
    const direct = { port: sshd.port, opts: [...common, '-i', sshd.userKeyFile, '-o', `UserKnownHostsFile=${directKnownHosts}`, '-o', 'HostKeyAlias=direct'] };
    const via = { port: tunnel.port, opts: [...common, '-o', `UserKnownHostsFile=${info.knownHosts}`, '-o', `HostKeyAlias=${info.hostKeyAlias}`] };
    const at = `${sshd.user}@127.0.0.1`;

    const file = join(dir, 'payload.bin');
    await writeRandom(file, MB);
    const scp = (t: typeof direct) => run('scp', ['-q', '-P', String(t.port), ...t.opts, file, `${at}:${join(dir, 'copy.bin')}`]);
    await scp(direct); // warm-up: page cache, sshd's first fork
    await scp(via);
    log(`scp of ${MB} MB, ${SCP_PAIRS} pairs alternating direct and through the tunnel (load average ${load()}) …`);
    const gwPid = gw.child.pid as number;
    const cliPid = tunnel.child.pid as number;
    const scpRatios: number[] = [];
    const scpDirect: number[] = [];
    const scpVia: number[] = [];
    const gwPerMb: number[] = [];
    const cliPerMb: number[] = [];
    for (let i = 0; i < SCP_PAIRS; i++) {
      const d = MB / ((await timed(() => scp(direct))) / 1000);
      const before = { gw: cpuMs(gwPid), cli: cpuMs(cliPid) };
      const v = MB / ((await timed(() => scp(via))) / 1000);
      gwPerMb.push((cpuMs(gwPid) - before.gw) / MB);
      cliPerMb.push((cpuMs(cliPid) - before.cli) / MB);
      scpDirect.push(d);
      scpVia.push(v);
      scpRatios.push(v / d);
      log(`  direct ${d.toFixed(1)} MB/s, through sluice ${v.toFixed(1)} MB/s (${(v / d).toFixed(2)}×); CPU per MB: gateway ${gwPerMb.at(-1)?.toFixed(2)} ms, sluice connect ${cliPerMb.at(-1)?.toFixed(2)} ms; load average ${load()}`);
    }
    log(`scp median: direct ${median(scpDirect).toFixed(1)} MB/s, through sluice ${median(scpVia).toFixed(1)} MB/s, paired ratio ${median(scpRatios).toFixed(2)}× (target ≥ 0.5×)`);

    const ssh = (t: typeof direct, extra: string[] = []) => run('ssh', ['-p', String(t.port), ...t.opts, ...extra, at, 'true']);
    const curve25519 = ['-o', 'KexAlgorithms=curve25519-sha256'];
    await ssh(direct);
    await ssh(via);
    log(`${RUNS} sequential ssh … true each way, alternating blocks of ${BLOCK} (load average ${load()}) …`);
    const d: number[] = [];
    const dc: number[] = [];
    const v: number[] = [];
    for (let done = 0; done < RUNS; done += BLOCK) {
      const n = Math.min(BLOCK, RUNS - done);
      for (let i = 0; i < n; i++) d.push(await timed(() => ssh(direct)));
      for (let i = 0; i < n; i++) dc.push(await timed(() => ssh(direct, curve25519)));
      for (let i = 0; i < n; i++) v.push(await timed(() => ssh(via)));
    }
    const md = median(d);
    const mdc = median(dc);
    const mv = median(v);
    log(`ssh true: through sluice connect ${mv.toFixed(1)} ms; direct ${md.toFixed(1)} ms with OpenSSH's default key exchange (${signed(mv - md)} ms), ${mdc.toFixed(1)} ms with curve25519 as the gateway uses (${signed(mv - mdc)} ms; target ≤ +20 ms); load average ${load()}`);
    return [
      { figure: `scp ${MB} MB upload through sluice connect (median of ${SCP_PAIRS} paired ratios; target ≥ 0.5×)`, reference: median(scpDirect), value: median(scpVia), unit: 'MB/s', ratio: median(scpRatios) },
      { figure: 'gateway CPU per MB of scp (median)', value: median(gwPerMb), unit: 'ms' },
      { figure: 'sluice connect CPU per MB of scp (median)', value: median(cliPerMb), unit: 'ms' },
      { figure: `ssh … true through sluice connect vs direct, OpenSSH's default kex (${RUNS} sequential, median)`, reference: md, value: mv, unit: 'ms', ratio: md / mv },
      { figure: `ssh … true through sluice connect vs direct, curve25519 kex like the gateway (${RUNS} sequential, median)`, reference: mdc, value: mv, unit: 'ms', ratio: mdc / mv },
    ];
  } finally {
    await tunnel?.stop();
    await gw.stop();
    await sshd.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(gw.dir, { recursive: true, force: true });
  }
}

async function writeRandom(file: string, mb: number): Promise<void> {
  const out = createWriteStream(file);
  for (let i = 0; i < mb; i++) if (!out.write(randomBytes(1024 * 1024))) await new Promise<void>((r) => out.once('drain', () => r()));
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

/** User and system CPU time of a process so far, in ms (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function signed(x: number): string {
  return `${x < 0 ? '−' : '+'}${Math.abs(x).toFixed(1)}`;
}

function load(): string {
  return loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
