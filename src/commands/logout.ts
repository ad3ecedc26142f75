// `sluice logout`: forgets the stored tokens for the gateway.
import { Command } from 'commander';
import type { Factory, GatewayFlags } from '../factory.js';
import { say } from '../io.js';
import { withGatewayFlags } from './flags.js';

export function defineLogout(f: Factory): Command {
  return withGatewayFlags(new Command('logout'))
    .description('forget the stored tokens for the gateway')
    .action((o: GatewayFlags) => runLogout(o, f));
}

export async function runLogout(opts: GatewayFlags, f: Factory): Promise<void> {
  const endpoint = await f.endpoint(opts);
  const removed = (await f.tokenStore()).remove(endpoint.url);
  say(f.io, removed ? `Logged out of ${endpoint.url}` : `Not logged in to ${endpoint.url}; nothing to do`);
}
