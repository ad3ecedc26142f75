// `sluice-gateway`: run the gateway, or manage its service tokens. Returns the exit code;
// only bin/sluice-gateway.js sets it on the process.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { pino } from 'pino';
import { acceptStore, lastCheckpointFileOf } from './audit/lastCheckpoint.js';
import { loadOrCreateAuditKey } from './audit/keys.js';
import { parseDuration, createServiceToken } from './auth/serviceTokens.js';
import { ConfigError, loadConfig, type GatewayConfig } from './config/load.js';
import { tuneHeapForRelaying } from './heapTuning.js';
import { openLogDestination, tolerateBrokenStdio } from './logDestination.js';
import { openStore } from './store/open.js';
import { DuplicateNameError, type Store } from './store/types.js';

interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

class UsageError extends Error {}

export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  const out = (s: string) => io.stdout.write(s + '\n');
  const err = (s: string) => io.stderr.write(s + '\n');
  let running: Promise<number> | undefined;

  const configOf = (opts: { config?: string }, resolveSecrets = true): GatewayConfig => {
    const file = opts.config ?? io.env.SLUICE_CONFIG;
    if (!file) throw new UsageError('no configuration: pass --config FILE or set SLUICE_CONFIG');
    return loadConfig(file, io.env, { resolveSecrets });
  };

  const program = new Command('sluice-gateway')
    .description('The Sluice gateway: authenticates tunnels, applies policy, records sessions.')
    .option('-c, --config <file>', 'gateway configuration (YAML); default $SLUICE_CONFIG')
    .version(packageVersion(), '--version', 'print the version and exit')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .action((opts: { config?: string }) => {
      running = run(configOf(opts), io);
    });

  const token = program.command('token').description('manage service tokens for automation');
  token
    .command('create')
    .description('create a service token and print it once on stdout')
    .requiredOption('--name <name>', 'a unique name (shown in audit records)')
    .requiredOption('--groups <a,b>', 'comma-separated groups the token belongs to')
    .option('--ttl <duration>', 'lifetime, e.g. 90d, 12h, or never', '90d')
    .option('-c, --config <file>', 'gateway configuration (YAML)')
    .action(async (opts: { name: string; groups: string; ttl: string; config?: string }) => {
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(opts.name)) throw new UsageError(`invalid --name "${opts.name}": letters, digits, . _ - (max 63)`);
      const groups = opts.groups.split(',').map((g) => g.trim()).filter(Boolean);
      if (groups.length === 0) throw new UsageError('--groups needs at least one group');
      let ttlMs: number | null;
      try {
        ttlMs = parseDuration(opts.ttl);
      } catch (e) {
        throw new UsageError(`--ttl: ${(e as Error).message}`);
      }
      await withStore(configOf({ ...program.opts(), ...opts }, false), async (store) => {
        out(await createServiceToken(store, { name: opts.name, groups, ttlMs }));
        err(`created service token "${opts.name}" (groups: ${groups.join(', ')}; ${ttlMs === null ? 'never expires' : `expires ${new Date(Date.now() + ttlMs).toISOString()}`}). It is shown only once.`);
      });
    });
  token
    .command('list')
    .description('list service tokens (never their values)')
    .option('--json', 'print JSON')
    .option('-c, --config <file>', 'gateway configuration (YAML)')
    .action(async (opts: { json?: boolean; config?: string }) => {
      await withStore(configOf({ ...program.opts(), ...opts }, false), async (store) => {
        const rows = (await store.listServiceTokens()).map((t) => ({
          name: t.name,
          groups: t.groups,
          createdAt: t.createdAt.toISOString(),
          expiresAt: t.expiresAt?.toISOString() ?? null,
          revokedAt: t.revokedAt?.toISOString() ?? null,
          state: t.revokedAt ? 'revoked' : t.expiresAt && t.expiresAt.getTime() <= Date.now() ? 'expired' : 'active',
        }));
        if (opts.json) return void out(JSON.stringify(rows));
        if (rows.length === 0) return void err('no service tokens');
        out(['NAME', 'STATE', 'GROUPS', 'EXPIRES'].join('\t'));
        for (const r of rows) out([r.name, r.state, r.groups.join(','), r.expiresAt ?? 'never'].join('\t'));
      });
    });
  token
    .command('revoke <name>')
    .description('revoke a service token: refused at once, its open sessions end within limits.revocationCheckMs')
    .option('-c, --config <file>', 'gateway configuration (YAML)')
    .action(async (name: string, opts: { config?: string }) => {
      await withStore(configOf({ ...program.opts(), ...opts }, false), async (store) => {
        if (!(await store.revokeServiceToken(name))) throw new Error(`no active service token named "${name}"`);
        err(`revoked service token "${name}"`);
      });
    });

  program
    .command('audit')
    .description('the audit trail\u2019s keys and records')
    .command('accept-store')
    .description('accept the audit store as it is: the gateway then starts on it without a record of its last signed checkpoint (an upgrade, or a record lost)')
    .option('-c, --config <file>', 'gateway configuration (YAML)')
    .action(async (opts: { config?: string }) => {
      const config = configOf({ ...program.opts(), ...opts }, false);
      const file = lastCheckpointFileOf(config.audit);
      await acceptStore(file, loadOrCreateAuditKey(config.audit.keyFile, pino({ level: 'silent' })));
      err(`wrote ${file}: the next start accepts the store's history as it is, and records the checkpoints it signs from then on. Verify an export against an earlier one (--anchor) or the witness (--witness).`);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return running ? await running : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof UsageError) {
      err(`sluice-gateway: ${e.message}`);
      return 2;
    }
    if (e instanceof ConfigError) {
      err(`sluice-gateway: invalid configuration:\n${e.problems.map((p) => `  ${p}`).join('\n')}`);
      return 1;
    }
    if (e instanceof DuplicateNameError) {
      err(`sluice-gateway: ${e.message}`);
      return 1;
    }
    err(`sluice-gateway: ${(e as Error).message}`);
    return 1;
  }
}

/** The version in the package.json above this module (gateway/ in the clone, dist/gateway/ built). */
function packageVersion(): string {
  for (let dir = import.meta.dirname; ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
    if (dirname(dir) === dir) return 'unknown';
  }
}

async function withStore(config: GatewayConfig, fn: (store: Store) => Promise<void>): Promise<void> {
  const store = await openStore(config.store, config.audit.durability);
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

async function run(config: GatewayConfig, io: Io): Promise<number> {
  tuneHeapForRelaying();
  const logDestination = openLogDestination(config.logFile);
  const log = pino(
    {
      level: config.logLevel,
      base: undefined,
      // Belt and braces: nothing below should log these, but if it does they are replaced.
      redact: { paths: ['authorization', '*.authorization', 'headers.authorization', 'password', '*.password', 'token', '*.token'], censor: '[redacted]' },
    },
    logDestination.stream,
  );
  tolerateBrokenStdio();
  // A file-size limit (ulimit -f) must make a store write fail with EFBIG, which the audit turns
  // into refused statements and sessions, rather than kill the gateway with SIGXFSZ.
  // (The handler must not write anything: a log line to a file would raise SIGXFSZ again.)
  process.on('SIGXFSZ', () => undefined);
  // Loaded here, not at the top: the token commands need neither the server nor oidc-provider.
  const { startGateway } = await import('./server.js');
  const gateway = await startGateway(config, log);
  const lines = [`sluice-gateway listening on ${gateway.url}`];
  if (gateway.tls) lines.push(`  TLS certificate SHA-256 ${gateway.tls.fingerprint}`, `  clients trust it with: --ca ${gateway.tls.certFile}`);
  if (gateway.directPort !== undefined) lines.push(`  PostgreSQL clients connect to port ${gateway.directPort} (listeners.postgres; \`sluice dsn NAME\`)`);
  if (gateway.devIdp) lines.push(`  embedded dev IdP at ${gateway.devIdp.issuer} (for development only)`);
  lines.push(`  connections: ${config.connections.map((c) => c.name).join(', ') || '(none)'}`);
  io.stderr.write(lines.join('\n') + '\n');

  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down');
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      void gateway.close().then(
        () => {
          log.flush();
          logDestination.abandonIfFailing();
          resolve(0);
        },
        (e: unknown) => {
          io.stderr.write(`sluice-gateway: error while shutting down: ${(e as Error).message}\n`);
          resolve(1);
        },
      );
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
}
