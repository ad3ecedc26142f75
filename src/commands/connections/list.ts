// `sluice connections` (alias `sluice ls`): the connections the gateway lets you use.
import { createGatewayClient } from '../../api/client.js';
import { resolveEndpoint } from '../../api/endpoint.js';
import { credentialSource } from '../../auth/credentials.js';
import { print, say, type Io } from '../../io.js';

export async function runConnectionsList(io: Io, opts: { gateway?: string; ca?: string; json: boolean }): Promise<void> {
  const endpoint = resolveEndpoint(io, opts);
  const token = await credentialSource(io, endpoint).token();
  const { connections } = await createGatewayClient(endpoint).connections(token);
  if (opts.json) return print(io, JSON.stringify(connections));
  if (connections.length === 0) return say(io, 'no connections are available to you on this gateway');
  const rows = [['NAME', 'TYPE', 'DATABASE', 'DESCRIPTION'], ...connections.map((c) => [c.name, c.type, c.database, c.description ?? ''])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) print(io, r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}
