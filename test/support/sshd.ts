// A throwaway OpenSSH server for integration tests: a generated ed25519 host key and user key in
// a temp dir, sshd_config listening on 127.0.0.1 and a random high port, public-key login only for
// the current user (root in the test container: sshd then needs its privilege-separation directory,
// which is created if missing). A missing /usr/sbin/sshd is an error naming the Debian package:
// these tests must never pass by skipping. stop() kills sshd and removes the directory; a watchdog
// does the same if the test process dies first.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureProgram, findFreePort } from './pgCluster.js';

const execFileAsync = promisify(execFile);

export const SSHD_PATH = '/usr/sbin/sshd';

export interface Sshd {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** The login user on the host (the user running the tests). */
  readonly user: string;
  readonly dir: string;
  /** The user's private key file (OpenSSH format) and its text. */
  readonly userKeyFile: string;
  readonly userKey: string;
  /** The host's public key line as `ssh-ed25519 AAAA…` (no comment): what a connection pins. */
  readonly hostKey: string;
  /** Everything sshd logged so far (`-e`: to stderr). */
  output(): string;
  /** Kills sshd and removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

async function keygen(file: string, comment: string): Promise<void> {
  await execFileAsync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
}

/** Starts sshd; resolves once it listens. Retries once if another process took the port. */
export async function startSshd(): Promise<Sshd> {
  ensureProgram(SSHD_PATH, 'openssh-server');
  const dir = await mkdtemp(join(tmpdir(), 'sluice-sshd-'));
  try {
    await keygen(join(dir, 'host_ed25519'), 'sluice-test-host');
    await keygen(join(dir, 'user_ed25519'), 'sluice-test-user');
    await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'user_ed25519.pub')));
    const user = userInfo().username;
    // sshd started by root insists on its privilege-separation directory.
    if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await findFreePort();
      try {
        return await launch(dir, port, user);
      } catch (err) {
        lastError = err;
        if (!/Address already in use/.test(String(err))) break;
      }
    }
    throw lastError;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(dir: string, port: number, user: string): Promise<Sshd> {
  const config = join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_ed25519')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'AllowTcpForwarding yes',
      // What the gateway's X11 bridging is tested against (needs xauth; no X server is involved).
      'X11Forwarding yes',
      'AcceptEnv LANG LC_* TERM',
      'Subsystem sftp internal-sftp',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  const child = spawn(SSHD_PATH, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`sshd did not start within 10 s:\n${out}`)), 10_000);
    const onData = () => {
      if (/Server listening on 127\.0\.0\.1 port/.test(out)) done();
    };
    const onExit = (code: number | null) => fail(new Error(`sshd exited (${code}) before listening:\n${out}`));
    function done() {
      cleanup();
      resolve();
    }
    function fail(err: Error) {
      cleanup();
      child.kill('SIGKILL');
      reject(err);
    }
    function cleanup() {
      clearTimeout(timer);
      child.stderr.off('data', onData);
      child.off('exit', onExit);
    }
    child.stderr.on('data', onData);
    child.once('exit', onExit);
  });
  const watchdog = startWatchdog(child, dir);
  const hostKey = (await readFile(join(dir, 'host_ed25519.pub'), 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
  const userKeyFile = join(dir, 'user_ed25519');
  const userKey = await readFile(userKeyFile, 'utf8');
  let stopped: Promise<void> | undefined;
  return {
    host: '127.0.0.1',
    port,
    user,
    dir,
    userKeyFile,
    userKey,
    hostKey,
    output: () => out,
    stop: () =>
      (stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          await exited;
        }
        watchdog.kill('SIGKILL');
        await rm(dir, { recursive: true, force: true });
      })()),
  };
}

// $1 test process pid, $2 sshd pid, $3 temp dir.
const WATCHDOG_SCRIPT = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill "$2" 2>/dev/null; rm -rf "$3"';

function startWatchdog(sshd: ChildProcess, dir: string): ChildProcess {
  const w = spawn('sh', ['-c', WATCHDOG_SCRIPT, 'watchdog', String(process.pid), String(sshd.pid), dir], { stdio: 'ignore', detached: true });
  w.unref();
  return w;
}
