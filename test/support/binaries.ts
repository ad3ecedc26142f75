// Runs the real `sluice-gateway` and `sluice` binaries (bin/*.js over dist/) as child processes,
// each test with its own config directory, so integration tests exercise exactly what users run.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { approveDeviceOverHttp } from './deviceApproval.js';
import { watchOver } from './watchdog.js';

/** The repository root, whether this file runs from test/support or compiled in dist/test/support. */
export const ROOT = ((dir: string): string => {
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})(import.meta.dirname);
export const GATEWAY_BIN = join(ROOT, 'bin/sluice-gateway.js');
export const CLI_BIN = join(ROOT, 'bin/sluice.js');

export interface DevUserSpec {
  name: string;
  email: string;
  groups: string[];
}

export const USERS: DevUserSpec[] = [
  { name: 'alice', email: 'alice@example.com', groups: ['eng', 'dba'] },
  { name: 'bob', email: 'bob@example.com', groups: ['sales'] },
];

export interface GatewayProcess {
  url: string;
  caFile: string | undefined;
  configFile: string;
  dir: string;
  child: ChildProcess;
  /** Everything the gateway wrote to stderr so far (its startup lines and pino log). */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface GatewayOptions {
  users?: DevUserSpec[];
  accessTokenTtlSeconds?: number;
  tls?: false | { selfSigned: true };
  connections?: unknown[];
  /** Extra config keys merged at the top level. */
  extra?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Reuse this directory (and so its store, certificate and IdP keys). */
  dir?: string;
  port?: number;
}

export function writeGatewayConfig(dir: string, opts: GatewayOptions): string {
  const config = {
    listen: `127.0.0.1:${opts.port ?? 0}`,
    tls: opts.tls ?? { selfSigned: true },
    identity: { dev: { users: opts.users ?? USERS, ...(opts.accessTokenTtlSeconds ? { accessTokenTtlSeconds: opts.accessTokenTtlSeconds } : {}) } },
    store: { sqlite: 'state/sluice.db' },
    connections: opts.connections ?? [],
    log: { level: 'info' },
    ...opts.extra,
  };
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

export async function startGateway(opts: GatewayOptions = {}): Promise<GatewayProcess> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'sluice-gw-'));
  const configFile = writeGatewayConfig(dir, opts);
  const child = spawn(process.execPath, [GATEWAY_BIN, '--config', configFile], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const watchdog = watchOver(child.pid as number);
  child.once('exit', () => watchdog.stop());
  let out = '';
  // Decoded by a stream decoder: a character split between two reads stays whole (see collect).
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start within 20 s:\n${out}`)), 20_000);
    const check = () => {
      const m = /sluice-gateway listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stderr.off('data', check);
        resolveUrl(m[1] as string);
      }
    };
    child.stderr.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before listening:\n${out}`));
    });
  });
  const caMatch = /--ca (\S+)/.exec(out);
  return {
    url,
    caFile: caMatch?.[1],
    configFile,
    dir,
    child,
    output: () => out,
    stop: (signal = 'SIGTERM') =>
      new Promise((res) => {
        // A child already killed by a signal has a signalCode and no exitCode, and emits no second exit.
        if (child.exitCode !== null || child.signalCode !== null) return res(child.exitCode);
        child.once('exit', (code) => res(code));
        child.kill(signal);
      }),
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliEnv {
  /** The per-test CLI config dir (SLUICE_CONFIG_DIR). */
  configDir: string;
  env?: NodeJS.ProcessEnv;
}

export function cliEnv(ctx: CliEnv): NodeJS.ProcessEnv {
  // No DISPLAY: the CLI must never try to open a browser in tests.
  const { DISPLAY: _d, WAYLAND_DISPLAY: _w, SLUICE_TOKEN: _t, SLUICE_GATEWAY: _g, SLUICE_CA: _c, ...rest } = process.env;
  return { ...rest, SLUICE_CONFIG_DIR: ctx.configDir, ...ctx.env };
}

/** Runs `sluice ARGS` to completion. */
export function runCli(args: string[], ctx: CliEnv, input?: string): Promise<CliResult> {
  const child = spawnCli(args, ctx);
  if (input !== undefined) child.stdin?.end(input);
  return collect(child);
}

export function spawnCli(args: string[], ctx: CliEnv): ChildProcess {
  return spawn(process.execPath, [CLI_BIN, ...args], { env: cliEnv(ctx), stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * A child's output as text. The pipes are decoded as streams, never chunk by chunk: a read can end
 * inside a multi-byte character (an audit export's samples of binary bodies are full of them), and
 * decoding each chunk alone turns the two halves into U+FFFD — which changed the exported trail
 * and failed its verification whenever load moved a read boundary there.
 */
export function collect(child: Pick<ChildProcess, 'stdout' | 'stderr' | 'once'>): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((res) => child.once('close', (code) => res({ code, stdout, stderr })));
}

/** Resolves with the first match of `re` in the child's stderr (or rejects after `ms`). */
export function waitForStderr(child: ChildProcess, re: RegExp, ms = 20_000): Promise<RegExpExecArray> {
  let seen = '';
  return new Promise((res, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in:\n${seen}`)), ms);
    const onData = (d: Buffer) => {
      seen += d.toString();
      const m = re.exec(seen);
      if (m) {
        clearTimeout(timer);
        child.stderr?.off('data', onData);
        res(m);
      }
    };
    child.stderr?.on('data', onData);
  });
}

/** A service token made by `sluice-gateway token create` against the gateway's own config. */
export function serviceToken(gw: GatewayProcess, name: string, groups: string, env: NodeJS.ProcessEnv = {}): string {
  return execFileSync(process.execPath, [GATEWAY_BIN, 'token', 'create', '--config', gw.configFile, '--name', name, '--groups', groups], { encoding: 'utf8', env: { ...process.env, ...env } }).trim();
}

/** The CLI environment of a service token on `gw`, with a fresh config directory. */
export function tokenCtx(gw: GatewayProcess, token: string): CliEnv & { env: Record<string, string> } {
  return { configDir: newConfigDir(), env: { SLUICE_TOKEN: token, SLUICE_GATEWAY: gw.url, ...(gw.caFile ? { SLUICE_CA: gw.caFile } : {}) } };
}

export interface TunnelInfo {
  connection: string;
  type: string;
  host: string;
  port: number;
  database: string;
}

export interface Tunnel {
  info: TunnelInfo;
  port: number;
  child: ChildProcess;
  /** What `sluice connect` wrote to stderr so far. */
  stderr(): string;
  /** Ctrl-C, then waits for it to exit. */
  stop(): Promise<void>;
}

/** Starts `sluice connect NAME --json --port 0 [...extra]` and resolves once it prints its ready line. */
export async function openTunnel(name: string, ctx: CliEnv, extra: string[] = []): Promise<Tunnel> {
  const child = spawnCli(['connect', name, '--json', '--port', '0', ...extra], ctx);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const [line] = (await Promise.race([
    once(child.stdout!, 'data'),
    once(child, 'exit').then(() => {
      throw new Error(`sluice connect ${name} exited early: ${stderr}`);
    }),
  ])) as [Buffer];
  const info = JSON.parse(line.toString()) as TunnelInfo;
  return {
    info,
    port: info.port,
    child,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGINT');
      await once(child, 'exit');
    },
  };
}

/** `sluice audit export` and `sluice audit key` as `ctx`, then `sluice audit verify` of the two (files in `dir`). */
export async function exportAndVerify(ctx: CliEnv, dir: string, args: string[] = []): Promise<{ trail: string; verify: CliResult }> {
  const exp = await runCli(['audit', 'export', ...args], ctx);
  if (exp.code !== 0) throw new Error(`sluice audit export failed: ${exp.stderr}`);
  const key = await runCli(['audit', 'key'], ctx);
  const base = join(dir, `trail-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(`${base}.jsonl`, exp.stdout);
  writeFileSync(`${base}.pub`, key.stdout);
  const verify = await runCli(['audit', 'verify', `${base}.jsonl`, '--key', `${base}.pub`], { configDir: newConfigDir() });
  return { trail: exp.stdout, verify };
}

export function newConfigDir(): string {
  return mkdtempSync(join(tmpdir(), 'sluice-cli-'));
}

/** Runs `sluice login` and approves it over HTTP as `user`, as a person would; returns the result. */
export async function login(gateway: GatewayProcess, configDir: string, user: string, extra: string[] = []): Promise<CliResult> {
  const child = spawnCli(['login', '--gateway', gateway.url, ...(gateway.caFile ? ['--ca', gateway.caFile] : []), '--no-browser', ...extra], { configDir });
  const done = collect(child);
  const [, uri] = await waitForStderr(child, /or open (\S+)/);
  await approveDeviceOverHttp(uri as string, user, gateway.caFile ? { ca: readFileSync(gateway.caFile) } : {});
  return done;
}
