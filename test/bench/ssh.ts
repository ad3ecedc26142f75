// ssh through the gateway against ssh straight to the host (issue 16's targets: at least 0.5× the
// direct scp throughput; per-command latency within direct + 20 ms). A throwaway OpenSSH server,
// the real gateway with an ssh connection, and `sluice connect` as the local end; the real ssh and
// scp clients on both sides. scp uploads BENCH_SSH_MB (default 256) MB of random bytes each way
// of reaching the host; then BENCH_SSH_RUNS (default 100) sequential `ssh … true`, alternating
// blocks of 10 so the machine's drift favours neither side. Medians are printed, nothing asserted.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openTunnel, serviceToken, startGateway, tokenCtx } from '../support/binaries.js';
import { startSshd } from '../support/sshd.js';
import type { Row } from './postgres.js';

const run = promisify(execFile);
const MB = Number(process.env.BENCH_SSH_MB ?? 256);
const RUNS = Number(process.env.BENCH_SSH_RUNS ?? 100);
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
    log(`scp of ${MB} MB, direct and through the tunnel …`);
    const scpDirect = MB / ((await timed(() => scp(direct))) / 1000);
    const scpVia = MB / ((await timed(() => scp(via))) / 1000);
    log(`scp direct ${scpDirect.toFixed(1)} MB/s, through sluice ${scpVia.toFixed(1)} MB/s`);

    const ssh = (t: typeof direct) => run('ssh', ['-p', String(t.port), ...t.opts, at, 'true']);
    await ssh(direct);
    await ssh(via);
    log(`${RUNS} sequential ssh … true each way, alternating blocks of ${BLOCK} …`);
    const d: number[] = [];
    const v: number[] = [];
    for (let done = 0; done < RUNS; done += BLOCK) {
      const n = Math.min(BLOCK, RUNS - done);
      for (let i = 0; i < n; i++) d.push(await timed(() => ssh(direct)));
      for (let i = 0; i < n; i++) v.push(await timed(() => ssh(via)));
    }
    const md = median(d);
    const mv = median(v);
    log(`ssh true: direct median ${md.toFixed(1)} ms, through sluice connect ${mv.toFixed(1)} ms (+${(mv - md).toFixed(1)} ms; target ≤ +20 ms)`);
    return [
      { figure: `scp ${MB} MB upload through sluice connect (target ≥ 0.5×)`, reference: scpDirect, value: scpVia, unit: 'MB/s', ratio: scpVia / scpDirect },
      { figure: `ssh … true through sluice connect (${RUNS} sequential, median)`, reference: md, value: mv, unit: 'ms', ratio: md / mv },
    ];
  } finally {
    await tunnel?.stop();
    await gw.stop();
    await sshd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function writeRandom(file: string, mb: number): Promise<void> {
  const out = createWriteStream(file);
  for (let i = 0; i < mb; i++) if (!out.write(randomBytes(1024 * 1024))) await new Promise<void>((r) => out.once('drain', () => r()));
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
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
