// `sluice connect NAME`: a localhost port that leads, through the gateway, to the connection.
// With `-- CMD ARGS…` it runs CMD against the tunnel and exits with CMD's exit code. For ssh
// connections the port is a plain byte relay to the gateway's ssh server, and the banner is a
// ready-to-use `ssh` command with a known_hosts file holding the gateway's host key; for http ones a
// byte relay whose banner is a `curl` line (and `-- CMD` gets SLUICE_URL).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { Command, Option } from 'commander';
import type { ConnectionInfo, PostgresConnectionInfo } from '../api/contract.js';
import { SilentExit, UsageError } from '../errors.js';
import type { Factory, GatewayFlags } from '../factory.js';
import { print, say, type Io } from '../io.js';
import { isLoopbackHost } from '../net/loopback.js';
import type { LocalListener } from '../tunnel/localListener.js';
import { localHttpUrl } from '../tunnel/localSide.js';
import type { SshTarget } from '../ssh/sshArgs.js';
import { parsePort, parseStartupTimeout, withGatewayFlags } from './flags.js';

export interface ConnectOptions extends GatewayFlags {
  name: string;
  port?: number;
  bind: string;
  json: boolean;
  localPassword: boolean;
  /** Run the command against the gateway's direct PostgreSQL listener instead of a local tunnel. */
  direct: boolean;
  /** Milliseconds a local client has to send its startup packet. */
  startupTimeoutMs?: number;
  /** kubernetes: also write the context into the user's kubeconfig (never otherwise). */
  merge?: boolean;
  command: string[];
}

type ConnectFlags = GatewayFlags & { port?: number; bind: string; json?: boolean; localPassword?: boolean; direct?: boolean; startupTimeout?: number; merge?: boolean };

export function defineConnect(f: Factory): Command {
  return withGatewayFlags(new Command('connect'))
    .description('open a localhost port to a connection (or run `-- CMD ARGS…` against it)')
    .argument('<name>', 'connection name (see `sluice connections`)')
    .argument('[command...]', 'after --: a command to run with PGHOST, PGPORT, … (ssh: SLUICE_PORT, …; http: SLUICE_URL; kubernetes: KUBECONFIG) set; exits with its code')
    .addOption(new Option('--port <n>', 'local port (default: 5433 for postgres, 2222 for ssh, 8081 for http, 8443 for kubernetes, or the next free one)').argParser(parsePort))
    .option('--bind <address>', 'local address to listen on', '127.0.0.1')
    .option('--json', 'print one JSON line with host and port on stdout')
    .option('--local-password', 'require a one-time password (printed once) from local clients')
    .option('--direct', "postgres: run the command against the gateway's own PostgreSQL port with a short-lived password (PGHOST…, DATABASE_URL), renewed while it runs")
    .option('--merge', 'kubernetes: also add the sluice-NAME context to your kubeconfig ($KUBECONFIG or ~/.kube/config)')
    .addOption(
      new Option('--startup-timeout <duration>', 'how long a local client has to send its startup packet, e.g. 10s (a bare number is seconds; default 10s)').argParser(
        parseStartupTimeout,
      ),
    )
    .action(async (name: string, command: string[], o: ConnectFlags) => {
      const { startupTimeout, ...rest } = o;
      const opts: ConnectOptions = {
        ...rest,
        name,
        command,
        json: Boolean(o.json),
        localPassword: Boolean(o.localPassword),
        direct: Boolean(o.direct),
        merge: Boolean(o.merge),
        ...(startupTimeout !== undefined ? { startupTimeoutMs: startupTimeout } : {}),
      };
      const code = await f.interruptible((signal) => runConnect(opts, f, signal));
      if (code !== 0) throw new SilentExit(code);
    });
}

export const DEFAULT_PORTS: Record<ConnectionInfo['type'], number> = { postgres: 5433, ssh: 2222, http: 8081, kubernetes: 8443 };
const LOCAL_USER = 'sluice';

/** Returns the exit code: 0 when the tunnel closed on Ctrl-C, or CMD's own code. */
export async function runConnect(opts: ConnectOptions, f: Factory, signal: AbortSignal): Promise<number> {
  const { io } = f;
  const name = opts.name;
  if (opts.direct) return runDirect(opts, f, signal);
  const gateway = await f.pinnedGateway(opts);
  const as = gateway.identity.label;
  // Asking for the one connection lets the gateway say 403 (not yours) apart from 404 (no such).
  const info = await gateway.connection(name);
  const { listenLocal } = await import('../tunnel/localListener.js');
  if (!isLoopbackHost(opts.bind)) say(io, `warning: listening on ${opts.bind}, not loopback: anyone who can reach this address can use ${name} as you`);
  // An HTTP client has no step in which to present a password, and the relay cannot ask for one.
  if (opts.localPassword && info.type === 'http') throw new UsageError('--local-password is not available for http connections: bind to loopback (the default) instead');
  const localPassword = opts.localPassword ? randomBytes(12).toString('base64url') : undefined;
  if (opts.merge && info.type !== 'kubernetes') throw new UsageError('--merge is for kubernetes connections (it writes a kubeconfig context)');
  // kubectl sends no bearer token to an http:// server, and the local hop is plain HTTP (docs/decisions.md).
  if (opts.localPassword && info.type === 'kubernetes') throw new UsageError('--local-password is not available for kubernetes connections: kubectl sends no credential over the plain-HTTP local hop; keep --bind on loopback');
  // PostgreSQL clients that insist on TLS get it on the local hop, with a certificate kept per user.
  const certs = info.type === 'postgres' ? await import('../tunnel/localCert.js') : undefined;
  const localCert = certs ? await loadCertOrWarn(io, certs.loadLocalCert, dirname((await f.settings()).path)) : undefined;

  const listener = await listenLocal({
    endpoint: gateway.endpoint,
    credentials: gateway.credentials,
    connection: name,
    type: info.type,
    host: opts.bind,
    port: opts.port ?? DEFAULT_PORTS[info.type],
    fallbackToNextFree: opts.port === undefined,
    ...(localPassword ? { localPassword } : {}),
    ...(localCert ? { tls: localCert.context } : {}),
    ...(opts.startupTimeoutMs !== undefined ? { startupTimeoutMs: opts.startupTimeoutMs } : {}),
    onClientError: (message) => say(io, `sluice connect: a client could not be connected: ${message}`),
  });
  try {
    const defaultPort = DEFAULT_PORTS[info.type];
    // With a command, any free port will do: the command is told which one.
    if (opts.port === undefined && opts.command.length === 0 && listener.port !== defaultPort) say(io, `port ${defaultPort} is in use; listening on ${listener.port} instead`);
    const host = opts.bind;
    if (localPassword) say(io, `local password (required from every local client, shown once): ${localPassword}`);
    if (info.type === 'ssh') {
      const { localSshTarget, sshChildEnv } = await import('../ssh/localTarget.js');
      const target = await localSshTarget(f, gateway.url, info, sshHost(host), listener.port);
      if (opts.json) print(io, JSON.stringify({ connection: name, type: info.type, host, port: listener.port, user: info.user, knownHosts: target.knownHosts, hostKeyAlias: target.alias, as }));
      if (opts.command.length > 0) return await runChild(io, opts.command, { ...sshChildEnv(target), ...(localPassword ? { SLUICE_LOCAL_PASSWORD: localPassword } : {}) }, signal);
      say(io, `${name} is ready on ${host}:${listener.port} as ${as} (Ctrl-C to close)`);
      await sayCommands(io, target);
    } else if (info.type === 'kubernetes') {
      const kube = await import('../kube/kubeconfig.js');
      const configDir = dirname((await f.settings()).path);
      const local = await kube.writeKubeconfig(configDir, name, sshHost(host), listener.port, localPassword);
      const merged = opts.merge ? await kube.mergeKubeconfig(kube.userKubeconfig(io.env), name, sshHost(host), listener.port, localPassword) : undefined;
      if (opts.json) print(io, JSON.stringify({ connection: name, type: info.type, host, port: listener.port, server: local.server, kubeconfig: local.kubeconfig, context: local.context, as }));
      if (opts.command.length > 0) return await runChild(io, opts.command, { KUBECONFIG: local.kubeconfig }, signal);
      say(io, `${name} is ready on ${host}:${listener.port} as ${as} (Ctrl-C to close)`);
      say(io, `  export KUBECONFIG=${shellQuote(local.kubeconfig)}`);
      if (merged) say(io, `  context ${merged.context} written to ${merged.kubeconfig}: kubectl --context ${merged.context} get pods`);
      else say(io, '  kubectl get pods');
    } else if (info.type === 'http') {
      const url = localHttpUrl(host, listener.port);
      if (opts.json) print(io, JSON.stringify({ connection: name, type: info.type, host, port: listener.port, url, as }));
      if (opts.command.length > 0) return await runChild(io, opts.command, { SLUICE_URL: url, SLUICE_HOST: listener.host, SLUICE_PORT: String(listener.port) }, signal);
      say(io, `${name} is ready on ${url} as ${as} (Ctrl-C to close); the gateway adds ${info.injectedHeaders.length > 0 ? info.injectedHeaders.join(', ') : 'no headers'}`);
      say(io, `  curl ${url}/`);
    } else {
      const sslrootcert = localCert?.certFile;
      if (opts.json) print(io, JSON.stringify({ connection: name, type: info.type, host, port: listener.port, database: info.database, as, ...(sslrootcert ? { sslrootcert } : {}) }));
      if (opts.command.length > 0) return await runChild(io, opts.command, pgChildEnv(listener, info, localPassword), signal);
      say(io, `${name} is ready on ${host}:${listener.port} as ${as} (Ctrl-C to close)`);
      say(io, `  psql "host=${host} port=${listener.port} dbname=${info.database} user=${LOCAL_USER}"`);
      if (sslrootcert && (certs?.LOCAL_CERT_NAMES as readonly string[] | undefined)?.includes(host)) say(io, `  TLS on this hop too: add "sslmode=verify-full sslrootcert=${sslrootcert}"`);
    }
    await waitWithStatus(io, listener, signal);
    return 0;
  } finally {
    await listener.close();
  }
}

/**
 * The local certificate, or undefined with a warning when the config directory cannot hold one:
 * clients that do not insist on TLS still connect (they are told 'N', as before).
 */
async function loadCertOrWarn<T>(io: Io, load: (dir: string) => Promise<T>, dir: string): Promise<T | undefined> {
  try {
    return await load(dir);
  } catch (err) {
    say(io, `warning: no TLS on the local port (cannot keep a certificate in ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); clients that require TLS will be refused`);
    return undefined;
  }
}

/**
 * `--direct -- CMD`: CMD gets a credential for the gateway's PostgreSQL listener in its
 * environment; the credential is renewed while CMD runs and revoked when it exits.
 */
async function runDirect(opts: ConnectOptions, f: Factory, signal: AbortSignal): Promise<number> {
  const { io } = f;
  if (opts.command.length === 0) throw new UsageError('--direct needs a command after --, e.g. `sluice connect NAME --direct -- psql`; for a connection string use `sluice dsn NAME`');
  const clash = [opts.port !== undefined && '--port', opts.localPassword && '--local-password', opts.json && '--json', opts.startupTimeoutMs !== undefined && '--startup-timeout'].filter(Boolean);
  if (clash.length > 0) throw new UsageError(`--direct opens no local port: ${clash.join(', ')} cannot be used with it`);
  const gateway = await f.pinnedGateway(opts);
  const credential = await gateway.direct.issue(opts.name);
  const [{ directEnv, sslRootCert }, { keepRenewed }] = await Promise.all([import('../direct/conninfo.js'), import('../direct/renew.js')]);
  const stop = new AbortController();
  const renewing = keepRenewed(credential, (id) => gateway.direct.renew(id), f.clock, stop.signal, (m) => say(io, `sluice connect: ${m}`));
  try {
    return await runChild(io, opts.command, directEnv(credential, sslRootCert(gateway.endpoint)), signal);
  } finally {
    stop.abort();
    await renewing;
    // The command is done with it: no one should be able to use it for the rest of its lifetime.
    await gateway.direct.revoke(credential.id).catch((err: unknown) => say(io, `sluice connect: could not revoke the credential: ${(err as Error).message}`));
  }
}

/** For the banner: a path a shell reads back unchanged. */
function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** ssh reads `0.0.0.0`/`::` as "this host", but a client must dial a real address. */
function sshHost(bind: string): string {
  return bind === '0.0.0.0' ? '127.0.0.1' : bind === '::' ? '::1' : bind;
}

async function sayCommands(io: Io, target: SshTarget): Promise<void> {
  const { sshCommandLines } = await import('../ssh/sshArgs.js');
  const lines = sshCommandLines(target);
  say(io, `  ${lines.ssh}`);
  say(io, `  ${lines.scp}`);
  say(io, `  ${lines.sftp}`);
}

function pgChildEnv(l: LocalListener, info: PostgresConnectionInfo, password: string | undefined): Record<string, string> {
  const url = `postgresql://${LOCAL_USER}${password ? `:${password}` : ''}@${l.host}:${l.port}/${encodeURIComponent(info.database)}`;
  return {
    PGHOST: l.host,
    PGPORT: String(l.port),
    PGDATABASE: info.database,
    PGUSER: LOCAL_USER,
    ...(password ? { PGPASSWORD: password } : {}),
    DATABASE_URL: url,
  };
}

export async function runChild(io: Io, argv: string[], extraEnv: Record<string, string>, signal: AbortSignal): Promise<number> {
  const [cmd, ...args] = argv as [string, ...string[]];
  const env = { ...io.env, ...extraEnv };
  return new Promise<number>((resolve, reject) => {
    // The child shares our terminal: Ctrl-C reaches it directly; we just wait for it to exit.
    const child = spawn(cmd, args, { env, stdio: 'inherit' });
    const onAbort = () => child.kill('SIGINT');
    signal.addEventListener('abort', onAbort, { once: true });
    child.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      reject(new UsageError(`cannot run ${cmd}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    });
    child.once('exit', (code, sig) => {
      signal.removeEventListener('abort', onAbort);
      resolve(code ?? (sig ? 128 + signalNumber(sig) : 1));
    });
  });
}

function signalNumber(sig: NodeJS.Signals): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[sig] ?? 1;
}

async function waitWithStatus(io: Io, l: LocalListener, signal: AbortSignal): Promise<void> {
  const tty = Boolean(io.stderr.isTTY);
  const timer = tty
    ? setInterval(() => {
        const s = l.stats;
        io.stderr.write(`\r\x1b[2K  ${s.open} client${s.open === 1 ? '' : 's'} open (${s.total} total) · ↑ ${human(s.bytesUp)} ↓ ${human(s.bytesDown)}`);
      }, 1000)
    : undefined;
  await new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  if (timer) {
    clearInterval(timer);
    io.stderr.write('\r\x1b[2K');
  }
  say(io, 'closing the tunnel');
}

function human(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
