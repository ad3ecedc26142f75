// `sluice sessions show ID`: a session's timeline — who, when, each statement with its verdict,
// outcome, rows, duration and masked columns.
import { Command } from 'commander';
import type { Factory, GatewayFlags } from '../../factory.js';
import { print } from '../../io.js';
import { withGatewayFlags } from '../flags.js';
import { timeline } from './render.js';

export function defineSessionsShow(f: Factory): Command {
  return withGatewayFlags(new Command('show'))
    .description("a session's timeline: who, when, each statement with its verdict and outcome")
    .argument('<id>', 'session id (see `sluice sessions`)')
    .option('--json', 'print JSON (the session and its events with their hashes)')
    .action((id: string, o: GatewayFlags & { json?: boolean }) => runSessionsShow({ ...o, id, json: Boolean(o.json) }, f));
}

export async function runSessionsShow(opts: GatewayFlags & { id: string; json: boolean }, f: Factory): Promise<void> {
  const detail = await (await f.gateway(opts)).audit.session(opts.id);
  if (opts.json) return print(f.io, JSON.stringify(detail));
  f.io.stdout.write(timeline(detail));
}
