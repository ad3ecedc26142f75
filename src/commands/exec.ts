// `sluice exec NAME`: runs SQL through the gateway with no PostgreSQL client installed, for CI jobs
// and agents. Results stream to stdout as table, CSV or NDJSON (or only a `--json` summary at the
// end); everything for people (notices, review progress, errors) goes to stderr; the exit code says
// how it ended (docs/cli.md). The gateway applies the same policy, masking, reviews and audit as a
// tunnel session. This file only defines the command; exec/run.ts does the work.
import { Command } from 'commander';
import type { Duplex } from 'node:stream';
import type { ExecClient } from '../api/exec.js';
import { DURATION_EXAMPLES } from '../duration.js';
import { SilentExit, UsageError } from '../errors.js';
import type { Factory, GatewayFlags } from '../factory.js';
import { runExec, type ExecOptions } from './exec/run.js';
import { withGatewayFlags } from './flags.js';

export { REVIEW_SILENCE_MS, runExec, TIMEOUT_GRACE_MS, type ExecDeps, type ExecIo, type ExecOptions } from './exec/run.js';

/** `exec NAME -- COMMAND…`: asks the gateway what NAME is, then runs COMMAND over ssh through a tunnel. */
async function execOnHost(f: Factory, name: string, command: string[], o: Omit<ExecOptions, 'name' | 'json'> & GatewayFlags & { json?: boolean }): Promise<void> {
  const sqlOnly = [o.input !== undefined && '-i', o.file !== undefined && '-f', o.format !== undefined && '--format', o.json && '--json', !o.wait && '--no-wait', o.review !== undefined && '--review'].filter(Boolean);
  if (sqlOnly.length > 0) throw new UsageError(`${sqlOnly.join(', ')} ${sqlOnly.length === 1 ? 'is' : 'are'} for SQL connections; with a command after -- leave ${sqlOnly.length === 1 ? 'it' : 'them'} out`);
  const gateway = await f.gateway(o);
  const info = await gateway.connection(name);
  if (info.type !== 'ssh') throw new UsageError(`${name} is a ${info.type} connection: give SQL with -i, -f or stdin instead of a command after --`);
  const [{ runSshExec }, { dialTunnel }] = await Promise.all([import('./exec/ssh.js'), import('../tunnel/dial.js')]);
  const dial = async (n: string): Promise<Duplex> => (await dialTunnel(gateway.endpoint, n, await gateway.credentials.token(), 'exec')).socket;
  const code = await f.interruptible((signal) => runSshExec({ name, command, ...(o.timeout !== undefined ? { timeout: o.timeout } : {}) }, info, { io: f.io, clock: f.clock, dial, signal }));
  if (code !== 0) throw new SilentExit(code);
}

/** The `exec` command with its flags; the action only gathers them and calls runExec. */
export function defineExec(f: Factory): Command {
  const cmd = new Command('exec')
    .description('run SQL (ssh connections: `-- COMMAND`) through the gateway: results on stdout, exit code says how it ended')
    .argument('<name>', 'connection name (see `sluice connections`)')
    .argument('[command...]', 'ssh connections: after --, the command to run on the host')
    .option('-i, --input <sql>', 'the SQL to run (one or more statements)')
    .option('-f, --file <path>', 'read the SQL from a file (- for stdin); without -i/-f, piped stdin is read')
    .option('--format <format>', 'table | csv | json (NDJSON); default table on a terminal, csv otherwise')
    .option('--json', 'print only one summary object at the end (status, session, statements, error, review)')
    .option('--no-wait', 'when a review is needed, print its id and exit 75 instead of waiting')
    .option('--review <id>', 'run the input an approved review holds (exactly the same input)')
    .option('--timeout <duration>', `cancel the running statement on the target after this long (${DURATION_EXAMPLES})`);
  return withGatewayFlags(cmd).action(async (name: string, command: string[], o: Omit<ExecOptions, 'name' | 'json'> & GatewayFlags & { json?: boolean }) => {
    // A command after `--` means an ssh connection; SQL (-i, -f, stdin) keeps its one round trip.
    if (command.length > 0) return execOnHost(f, name, command, o);
    // Resolved at the first request, so that mistakes in the command line are reported first.
    const exec: ExecClient = {
      exec: async (n, request, signal) => {
        const endpoint = await f.endpoint(o);
        const [{ createExecClient }, credentials] = await Promise.all([import('../api/exec.js'), f.credentials(endpoint)]);
        return createExecClient(endpoint, credentials).exec(n, request, signal);
      },
    };
    // The first Ctrl-C cancels cleanly (the gateway cancels the statement or review when the
    // request goes away); a second one a moment later ends the process at once.
    await f.interruptible((signal) =>
      runExec(
        {
          name,
          ...(o.input !== undefined ? { input: o.input } : {}),
          ...(o.file !== undefined ? { file: o.file } : {}),
          ...(o.format !== undefined ? { format: o.format } : {}),
          json: Boolean(o.json),
          wait: o.wait,
          ...(o.review !== undefined ? { review: o.review } : {}),
          ...(o.timeout !== undefined ? { timeout: o.timeout } : {}),
        },
        { io: f.io, clock: f.clock, exec, signal },
      ),
    );
  });
}
