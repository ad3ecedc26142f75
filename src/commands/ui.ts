// `sluice ui` (and `sluice` alone on a terminal): the interactive picker (src/ui/). ink and react
// are imported only here, when the app starts, so every other command starts without them.
import { Command } from 'commander';
import { SilentExit, UsageError } from '../errors.js';
import type { Factory, GatewayFlags } from '../factory.js';
import { withGatewayFlags } from './flags.js';

export function defineUi(f: Factory): Command {
  return withGatewayFlags(new Command('ui'))
    .description('the interactive picker: open connections, watch sessions, decide reviews (needs a terminal)')
    .action((o: GatewayFlags) => runUi(o, f));
}

/** Whether both ends are a terminal, as the picker needs. */
export function isInteractive(f: Factory): boolean {
  return Boolean(f.io.stdin.isTTY) && Boolean(f.io.stdout.isTTY);
}

export async function runUi(opts: GatewayFlags, f: Factory): Promise<void> {
  if (!isInteractive(f)) {
    throw new UsageError('sluice ui needs a terminal (stdin and stdout must be a TTY); in scripts use `sluice connections`, `sluice connect`, `sluice sessions` and `sluice reviews`');
  }
  // The identity is pinned for the app's life: its tunnels keep the user they were opened as.
  const gateway = await f.pinnedGateway(opts);
  const { runApp } = await importWithoutCiEnv(() => import('../ui/run.js'));
  const code = await runApp(f, gateway);
  if (code !== 0) throw new SilentExit(code);
}

// ink reads CI and CONTINUOUS_INTEGRATION once, when it is first imported, and in "CI" draws no
// live frames, only the last one at exit: a blank picker. The picker runs only when both ends are a
// terminal a person is at (agents and CI runners often export CI=1 into their shells), so those
// variables are hidden while ink loads and put back at once.
const CI_VARIABLES = ['CI', 'CONTINUOUS_INTEGRATION'] as const;

export async function importWithoutCiEnv<T>(load: () => Promise<T>): Promise<T> {
  const saved = CI_VARIABLES.map((k) => [k, process.env[k]] as const);
  for (const [k] of saved) delete process.env[k];
  try {
    return await load();
  } finally {
    for (const [k, v] of saved) if (v !== undefined) process.env[k] = v;
  }
}
