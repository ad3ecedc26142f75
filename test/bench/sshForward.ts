// `ssh -L` to the same PostgreSQL, the reference the tunnel is measured against (issue 3: "at least
// as fast as ssh -L — the tool people use instead"). A throwaway sshd on a loopback port with its
// own host key, one client key, and a local forward; all in a temporary directory.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ensureProgram, findFreePort } from '../support/pgCluster.js';

export interface SshForward {
  port: number;
  /** The ssh client and every sshd process now running (the listener's per-connection children included), for their CPU. */
  pids(): number[];
  stop(): Promise<void>;
}

/** `root` and its descendants, from /proc (sshd forks a process per connection, and it a privilege-separated child). */
function processTree(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      parentOf.set(Number(entry), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, ppid] of parentOf) if (ppid === tree[i]) tree.push(pid);
  return tree;
}

export async function startSshForward(targetPort: number): Promise<SshForward> {
  const sshd = ensureProgram('/usr/sbin/sshd', 'openssh-server');
  const ssh = ensureProgram('/usr/bin/ssh', 'openssh-client');
  const keygen = ensureProgram('/usr/bin/ssh-keygen', 'openssh-client');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-ssh-'));
  execFileSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host')]);
  execFileSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client')]);
  execFileSync('cp', [join(dir, 'client.pub'), join(dir, 'authorized_keys')]);
  // sshd's privilege separation directory (absent on a machine where sshd never ran).
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const sshdPort = await findFreePort();
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${sshdPort}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      'AllowTcpForwarding yes',
      '',
    ].join('\n'),
  );
  const server = spawn(sshd, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let serverOut = '';
  server.stderr!.on('data', (d: Buffer) => (serverOut += d.toString()));
  const localPort = await findFreePort();
  let client: ChildProcess | undefined;
  const stop = async () => {
    for (const p of [client, server]) {
      if (p && p.exitCode === null) {
        p.kill('SIGTERM');
        await new Promise((r) => p.once('exit', r));
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(sshdPort, () => serverOut);
    client = spawn(
      ssh,
      ['-N', '-T', '-i', join(dir, 'client'), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ExitOnForwardFailure=yes', '-p', String(sshdPort), '-L', `127.0.0.1:${localPort}:127.0.0.1:${targetPort}`, `${userInfo().username}@127.0.0.1`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let clientOut = '';
    client.stderr!.on('data', (d: Buffer) => (clientOut += d.toString()));
    await waitForPort(localPort, () => `${clientOut}\n${serverOut}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port: localPort, pids: () => [client!.pid!, ...processTree(server.pid!)], stop };
}

async function waitForPort(port: number, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after 10 s:\n${output()}`);
}
