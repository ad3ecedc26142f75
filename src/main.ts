// `sluice`: the command tree. Actions only parse flags and call a command's run function;
// errors become exit codes here and nowhere else (see docs/cli.md).
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { runAuditExport } from './commands/audit/export.js';
import { runAuditKey } from './commands/audit/key.js';
import { runAuditVerify } from './commands/audit/verify.js';
import { runConfigGet, runConfigSet } from './commands/config/set.js';
import { runConnect } from './commands/connect.js';
import { runConnectionsList } from './commands/connections/list.js';
import { defineExec } from './commands/exec.js';
import { runLogin } from './commands/login.js';
import { runLogout } from './commands/logout.js';
import { runReviewsApprove, runReviewsReject } from './commands/reviews/decide.js';
import { runReviewsList } from './commands/reviews/list.js';
import { runReviewsShow } from './commands/reviews/show.js';
import { runSessionsList } from './commands/sessions/list.js';
import { runSessionsReplay } from './commands/sessions/replay.js';
import { runSessionsShow } from './commands/sessions/show.js';
import { runWhoami } from './commands/whoami.js';
import { CliError, ExitCode, exitCodeFor } from './errors.js';
import { systemClock } from './factory.js';
import { processIo, say, type Io } from './io.js';

interface GatewayFlags {
  gateway?: string;
  ca?: string;
}

export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  let exitCode: number = ExitCode.ok;
  const abort = new AbortController();
  // The first Ctrl-C asks the running command to stop cleanly; a second one, a moment later,
  // exits at once. (conf's atomic writer re-raises SIGINT right after the first one: that echo
  // must not count as the person pressing Ctrl-C again.)
  let firstInterrupt = 0;
  const onSigint = () => {
    if (firstInterrupt === 0) firstInterrupt = Date.now();
    else if (Date.now() - firstInterrupt > 500) process.exit(ExitCode.interrupted);
    abort.abort();
  };
  const withInterrupt = async <T>(fn: () => Promise<T>): Promise<T> => {
    process.on('SIGINT', onSigint);
    try {
      return await fn();
    } finally {
      process.off('SIGINT', onSigint);
    }
  };

  const program = new Command('sluice')
    .description('Sluice: one audited path to your databases and hosts.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError('(run with --help for usage)');
  const gatewayFlags = (cmd: Command) =>
    cmd
      .option('--gateway <url>', 'gateway URL (default: $SLUICE_GATEWAY, or `sluice config set gateway`)')
      .option('--ca <file>', "PEM file of the CA that signs the gateway's certificate (default: $SLUICE_CA)");

  gatewayFlags(program.command('login'))
    .description('log in with the device-code flow of the gateway\'s identity provider')
    .option('--no-browser', 'do not try to open a browser')
    .option('--insecure-storage', 'store tokens in a 0600 file even if an OS keyring is available')
    .action(async (o: GatewayFlags & { browser: boolean; insecureStorage?: boolean }) => {
      await withInterrupt(() => runLogin(io, { ...o, insecureStorage: Boolean(o.insecureStorage) }, abort.signal));
    });

  gatewayFlags(program.command('logout'))
    .description('forget the stored tokens for the gateway')
    .action((o: GatewayFlags) => runLogout(io, o));

  gatewayFlags(program.command('whoami'))
    .description('show who the gateway thinks you are')
    .option('--json', 'print JSON')
    .action(async (o: GatewayFlags & { json?: boolean }) => runWhoami(io, { ...o, json: Boolean(o.json) }));

  gatewayFlags(program.command('connections').alias('ls'))
    .description('list the connections you may use')
    .option('--json', 'print JSON')
    .action(async (o: GatewayFlags & { json?: boolean }) => runConnectionsList(io, { ...o, json: Boolean(o.json) }));

  gatewayFlags(program.command('connect'))
    .description('open a localhost port to a connection (or run `-- CMD ARGS…` against it)')
    .argument('<name>', 'connection name (see `sluice connections`)')
    .argument('[command...]', 'after --: a command to run with PGHOST, PGPORT, … set; exits with its code')
    .addOption(new Option('--port <n>', 'local port (default: 5433 for postgres, or the next free one)').argParser(parsePort))
    .option('--bind <address>', 'local address to listen on', '127.0.0.1')
    .option('--json', 'print one JSON line with host and port on stdout')
    .option('--local-password', 'require a one-time password (printed once) from local clients')
    .addOption(new Option('--startup-timeout <seconds>', 'seconds a local client has to send its startup packet (default 10)').argParser(parseSeconds))
    .action(async (name: string, command: string[], o: GatewayFlags & { port?: number; bind: string; json?: boolean; localPassword?: boolean; startupTimeout?: number }) => {
      exitCode = await withInterrupt(() =>
        runConnect(io, name, { ...o, json: Boolean(o.json), localPassword: Boolean(o.localPassword), command }, abort.signal),
      );
    });

  program.addCommand(defineExec({ io, clock: systemClock }).copyInheritedSettings(program));

  const sessions = program.command('sessions').description('recorded sessions: yours, or all of them for audit readers');
  type ListFlags = GatewayFlags & { connection?: string; user?: string; since?: string; limit?: number; json?: boolean };
  const listFlags = (cmd: Command) =>
    gatewayFlags(cmd)
      .option('--connection <name>', 'only sessions on this connection')
      .option('--user <email>', 'only sessions of this user (email or token name)')
      .option('--since <when>', 'only sessions started since, e.g. 2h, 7d or 2026-11-05T09:00:00Z')
      .addOption(new Option('--limit <n>', 'at most this many (newest first)').argParser(parsePositive))
      .option('--json', 'print JSON')
      .action(async (o: ListFlags) => runSessionsList(io, { ...o, json: Boolean(o.json) }));
  listFlags(sessions.command('ls', { isDefault: true }).description('list recorded sessions (the default)'));
  gatewayFlags(sessions.command('show'))
    .description("a session's timeline: who, when, each statement with its verdict and outcome")
    .argument('<id>', 'session id (see `sluice sessions`)')
    .option('--json', 'print JSON (the session and its events with their hashes)')
    .action(async (id: string, o: GatewayFlags & { json?: boolean }) => runSessionsShow(io, id, { ...o, json: Boolean(o.json) }));
  gatewayFlags(sessions.command('replay'))
    .description('play a session back: statements and their results as the audit recorded them')
    .argument('<id>', 'session id')
    .addOption(new Option('--speed <n>', 'playback speed (0: no waiting; idle gaps are capped at 2 s)').argParser(Number).default(1))
    .action(async (id: string, o: GatewayFlags & { speed: number }) => withInterrupt(() => runSessionsReplay(io, id, o, abort.signal)));

  const reviews = program.command('reviews').description('statements held for approval: list them, approve or reject them');
  gatewayFlags(reviews.command('ls', { isDefault: true }))
    .description('pending reviews you may decide or that you requested (the default)')
    .option('--all', 'also those decided, expired or cancelled recently')
    .option('--json', 'print JSON')
    .action(async (o: GatewayFlags & { all?: boolean; json?: boolean }) => runReviewsList(io, { ...o, all: Boolean(o.all), json: Boolean(o.json) }));
  gatewayFlags(reviews.command('show'))
    .description('one review in full: the whole statement, who asked, which rule, what became of it')
    .argument('<id>', 'review id, e.g. R-8F3K')
    .option('--json', 'print JSON')
    .action(async (id: string, o: GatewayFlags & { json?: boolean }) => runReviewsShow(io, id, { ...o, json: Boolean(o.json) }));
  gatewayFlags(reviews.command('approve'))
    .description('let a held statement run unchanged (not your own; you must be in an approver group)')
    .argument('<id>', 'review id, e.g. R-8F3K')
    .option('--reason <text>', 'a note recorded with the approval')
    .option('--json', 'print the decided review as JSON')
    .action(async (id: string, o: GatewayFlags & { reason?: string; json?: boolean }) => runReviewsApprove(io, id, { ...o, json: Boolean(o.json) }));
  gatewayFlags(reviews.command('reject'))
    .description('make a held statement fail; the requester is told your reason')
    .argument('<id>', 'review id, e.g. R-8F3K')
    .requiredOption('--reason <text>', 'why (sent to the requester\'s client and recorded)')
    .option('--json', 'print the decided review as JSON')
    .action(async (id: string, o: GatewayFlags & { reason: string; json?: boolean }) => runReviewsReject(io, id, { ...o, json: Boolean(o.json) }));

  const audit = program.command('audit').description('the tamper-evident audit trail');
  gatewayFlags(audit.command('export'))
    .description('write the trail as JSON Lines (hashes, ledger, signed checkpoints) to stdout')
    .option('--session <id>', 'only this session')
    .option('--since <when>', 'only sessions started since, e.g. 24h or 2026-11-05T09:00:00Z')
    .action(async (o: GatewayFlags & { session?: string; since?: string }) => runAuditExport(io, o));
  audit
    .command('verify')
    .description('check an export offline: chains, seals and signatures (exit 0 only if all verify)')
    .argument('<file>', 'the export (JSON Lines), or - for stdin')
    .requiredOption('--key <file>', "the gateway's public key (PEM), from `sluice audit key`")
    .option('--anchor <export...>', 'earlier exports whose signed ledger head the ledger must still contain')
    .option('--witness <file>', "the gateway's witness file (audit.witness): every checkpoint in it must be in the ledger, and the export not behind it")
    .option('--json', 'print the full result as JSON')
    .action(async (file: string, o: { key: string; json?: boolean; anchor?: string[]; witness?: string }) =>
      runAuditVerify(io, file, { key: o.key, json: Boolean(o.json), anchors: o.anchor ?? [], ...(o.witness !== undefined ? { witness: o.witness } : {}) }),
    );
  gatewayFlags(audit.command('key'))
    .description("print the gateway's public audit key (PEM)")
    .action(async (o: GatewayFlags) => runAuditKey(io, o));

  const config = program.command('config').description('CLI settings');
  config
    .command('set')
    .description('set a setting: gateway URL | ca FILE')
    .argument('<key>')
    .argument('<value>')
    .action((key: string, value: string) => runConfigSet(io, key, value));
  config
    .command('get')
    .description('print a setting')
    .argument('<key>')
    .action((key: string) => runConfigGet(io, key));

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    say(io, `sluice: ${err instanceof CliError ? err.message : (err as Error).message}`);
    return exitCodeFor(err);
  }
}

function parsePositive(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number ≥ 1');
  return n;
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535 (0: any free port)');
  return n;
}

function parseSeconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 3600) throw new InvalidArgumentError('expected a number of seconds, more than 0 and at most 3600');
  return n;
}
