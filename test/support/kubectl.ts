// Running the real kubectl in tests: the binary checked first (a missing or too old kubectl fails
// naming the package, never skips), and each run given its own HOME so that its discovery cache
// and config never touch the machine's ~/.kube.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureProgram } from './pgCluster.js';

const execFileAsync = promisify(execFile);
export const KUBECTL = '/usr/bin/kubectl';

/** Fails unless /usr/bin/kubectl is at least 1.30 (exec over WebSocket by default). */
export async function ensureKubectl(): Promise<string> {
  const hint = 'kubectl (>= 1.30, from pkgs.k8s.io; Debian\'s kubernetes-client 1.20 is too old)';
  ensureProgram(KUBECTL, hint);
  const { stdout } = await execFileAsync(KUBECTL, ['version', '--client']);
  const m = /Client Version: v1\.(\d+)/.exec(stdout);
  if (!m || Number(m[1]) < 30) throw new Error(`${KUBECTL} is ${stdout.split('\n')[0]}: install ${hint}`);
  return KUBECTL;
}

/** A HOME of its own for kubectl runs (discovery cache under it). */
export function kubectlHome(): string {
  return mkdtempSync(join(tmpdir(), 'sluice-kubectl-home-'));
}

/** A kubeconfig straight to a server with a token (the direct baseline, no gateway). */
export function directKubeconfig(dir: string, server: string, caFile: string, token: string): string {
  const file = join(dir, 'direct.kubeconfig');
  writeFileSync(
    file,
    `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: { server: "${server}", certificate-authority: "${caFile}" }\nusers:\n- name: u\n  user: { token: "${token}" }\ncontexts:\n- name: x\n  context: { cluster: c, user: u, namespace: default }\ncurrent-context: x\n`,
    { mode: 0o600 },
  );
  return file;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs kubectl with KUBECONFIG and HOME set; never throws on a non-zero exit. */
export async function kubectl(args: string[], env: { KUBECONFIG: string; HOME: string }, input?: string): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile(KUBECTL, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

export interface PortForward {
  /** The local port kubectl listens on. */
  readonly port: number;
  /** Everything the process printed so far. */
  output(): string;
  /** Signals the process group (kubectl, and `sluice connect` around it) and waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Starts a long-running `kubectl port-forward` (or a command that runs one) in a process group of
 * its own, and resolves once it prints `Forwarding from 127.0.0.1:PORT`.
 */
export async function startPortForward(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<PortForward> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = /Forwarding from 127\.0\.0\.1:(\d+) ->/.exec(output);
      if (m) resolve(Number(m[1]));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${command} ${args.join(' ')} exited (${code}) before forwarding:\n${output}`)));
  });
  return {
    port,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGINT');
      await exited;
    },
  };
}
