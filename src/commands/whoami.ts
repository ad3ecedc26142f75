// `sluice whoami`: who the gateway thinks you are, as it verified your token.
import { Command } from 'commander';
import type { Factory, GatewayFlags } from '../factory.js';
import { print } from '../io.js';
import { withGatewayFlags } from './flags.js';

export function defineWhoami(f: Factory): Command {
  return withGatewayFlags(new Command('whoami'))
    .description('show who the gateway thinks you are')
    .option('--json', 'print JSON')
    .action((o: GatewayFlags & { json?: boolean }) => runWhoami({ ...o, json: Boolean(o.json) }, f));
}

export async function runWhoami(opts: GatewayFlags & { json: boolean }, f: Factory): Promise<void> {
  const { io } = f;
  const gateway = await f.gateway(opts);
  const who = await gateway.me();
  if (opts.json) return print(io, JSON.stringify({ gateway: gateway.url, ...who }));
  print(io, `${who.name} (${who.kind === 'service' ? 'service token' : 'user'}) at ${gateway.url}`);
  if (who.email && who.email !== who.name) print(io, `  email:   ${who.email}`);
  print(io, `  subject: ${who.subject}`);
  print(io, `  groups:  ${who.groups.join(', ') || '(none)'}`);
  if (who.expiresAt) print(io, `  token expires ${who.expiresAt}`);
}
