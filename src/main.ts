// `sluice`: assembles the command tree from one definition per command (src/commands/…), and
// turns errors into exit codes here and nowhere else (see docs/cli.md). Command modules import
// nothing heavy at load time: the factory loads conf, undici, the keyring and openid-client on
// first use, so `sluice --help` and fast commands do not pay for them.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { defineAudit } from './commands/audit/index.js';
import { defineAgent } from './commands/agent/index.js';
import { defineConfig } from './commands/config/index.js';
import { defineConnect } from './commands/connect.js';
import { defineConnectionsList } from './commands/connections/list.js';
import { defineDsn } from './commands/dsn.js';
import { defineExec } from './commands/exec.js';
import { defineLogin } from './commands/login.js';
import { defineLogout } from './commands/logout.js';
import { defineReviews } from './commands/reviews/index.js';
import { defineSessions } from './commands/sessions/index.js';
import { defineSsh } from './commands/ssh.js';
import { defineUi, isInteractive } from './commands/ui.js';
import { defineWhoami } from './commands/whoami.js';
import { ExitCode, reportFailure } from './errors.js';
import { createFactory, type Factory } from './factory.js';
import { processIo, say } from './io.js';

/** Every top-level command, in `--help` order. Adding a command is one line here. */
const commands: ((f: Factory) => Command)[] = [
  defineLogin,
  defineLogout,
  defineWhoami,
  defineConnectionsList,
  defineConnect,
  defineDsn,
  defineExec,
  defineAgent,
  defineSsh,
  defineSessions,
  defineReviews,
  defineAudit,
  defineConfig,
  defineUi,
];

export async function main(argv: string[], f: Factory = createFactory(processIo())): Promise<number> {
  const { io } = f;
  const program = new Command('sluice')
    .description('Sluice: one audited path to your databases and hosts.')
    .version(packageVersion(), '-V, --version', 'print the version of sluice')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError('(run with --help for usage)');
  for (const define of commands) program.addCommand(define(f));
  // addCommand() does not pass the parent's settings down the way command() does: without this a
  // subcommand's usage error would call process.exit and write to the real stderr.
  inheritSettings(program);

  try {
    // `sluice` alone opens the picker on a terminal; anywhere else (a pipe, CI) it is a request for help.
    if (argv.length === 0) {
      if (!isInteractive(f)) return program.outputHelp(), ExitCode.ok;
      argv = ['ui'];
    }
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    return reportFailure(err, (line) => say(io, line));
  }
}

function inheritSettings(parent: Command): void {
  for (const sub of parent.commands) {
    sub.copyInheritedSettings(parent);
    inheritSettings(sub);
  }
}

let version: string | undefined;

/** The version in package.json, read once (the compiled main sits one level deeper than the source). */
function packageVersion(): string {
  if (version !== undefined) return version;
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'sluice' && pkg.version) return (version = pkg.version);
    } catch {
      // Not at this level: try the next.
    }
  }
  return (version = 'unknown');
}
