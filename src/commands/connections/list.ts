// `sluice connections` (alias `sluice ls`): the connections the gateway lets you use.
import { Command } from 'commander';
import type { Factory, GatewayFlags } from '../../factory.js';
import { print, say } from '../../io.js';
import { printPlainTable } from '../../output/table.js';
import { withGatewayFlags } from '../flags.js';

export function defineConnectionsList(f: Factory): Command {
  return withGatewayFlags(new Command('connections').alias('ls'))
    .description('list the connections you may use')
    .option('--json', 'print JSON')
    .action((o: GatewayFlags & { json?: boolean }) => runConnectionsList({ ...o, json: Boolean(o.json) }, f));
}

export async function runConnectionsList(opts: GatewayFlags & { json: boolean }, f: Factory): Promise<void> {
  const { io } = f;
  const { connections } = await (await f.gateway(opts)).connections();
  if (opts.json) return print(io, JSON.stringify(connections));
  if (connections.length === 0) return say(io, 'no connections are available to you on this gateway');
  printPlainTable(io.stdout, ['NAME', 'TYPE', 'DATABASE', 'DESCRIPTION'], connections.map((c) => [c.name, c.type, c.type === 'postgres' ? c.database : c.type === 'http' ? c.url : c.type === 'ssh' ? `(user ${c.user})` : '', c.description ?? '']));
}
