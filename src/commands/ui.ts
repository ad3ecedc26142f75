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
  const { runApp } = await import('../ui/run.js');
  const code = await runApp(f, gateway);
  if (code !== 0) throw new SilentExit(code);
}
