// `sluice`: the command tree. Actions only parse flags and call a command's run function;
// errors become exit codes here and nowhere else (see docs/cli.md).
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { runConfigGet, runConfigSet } from './commands/config/set.js';
import { runConnect } from './commands/connect.js';
import { runConnectionsList } from './commands/connections/list.js';
import { runLogin } from './commands/login.js';
import { runLogout } from './commands/logout.js';
import { runWhoami } from './commands/whoami.js';
import { CliError, ExitCode, exitCodeFor } from './errors.js';
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
    .action(async (name: string, command: string[], o: GatewayFlags & { port?: number; bind: string; json?: boolean; localPassword?: boolean }) => {
      exitCode = await withInterrupt(() =>
        runConnect(io, name, { ...o, json: Boolean(o.json), localPassword: Boolean(o.localPassword), command }, abort.signal),
      );
    });

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

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535 (0: any free port)');
  return n;
}
