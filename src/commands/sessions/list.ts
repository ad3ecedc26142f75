// `sluice sessions [ls]`: recorded sessions, newest first — your own, or everyone's for members of
// the gateway's audit reader groups.
import { Command, Option } from 'commander';
import { parseSince } from '../../duration.js';
import type { Factory, GatewayFlags } from '../../factory.js';
import { print, say } from '../../io.js';
import { printPlainTable } from '../../output/table.js';
import { parsePositive, withGatewayFlags } from '../flags.js';
import { formatDuration, formatTime, who } from './render.js';

export interface SessionsListOptions extends GatewayFlags {
  connection?: string;
  user?: string;
  since?: string;
  limit?: number;
  json: boolean;
}

export function defineSessionsList(f: Factory): Command {
  return withGatewayFlags(new Command('ls'))
    .description('list recorded sessions (the default)')
    .option('--connection <name>', 'only sessions on this connection')
    .option('--user <email>', 'only sessions of this user (email or token name)')
    .option('--since <when>', 'only sessions started since, e.g. 2h, 7d or 2026-11-05T09:00:00Z')
    .addOption(new Option('--limit <n>', 'at most this many (newest first)').argParser(parsePositive))
    .option('--json', 'print JSON')
    .action((o: Omit<SessionsListOptions, 'json'> & { json?: boolean }) => runSessionsList({ ...o, json: Boolean(o.json) }, f));
}

export async function runSessionsList(opts: SessionsListOptions, f: Factory): Promise<void> {
  const { io } = f;
  const since = opts.since !== undefined ? parseSince(opts.since, f.clock.now()) : undefined;
  const gateway = await f.gateway(opts);
  const { sessions } = await gateway.audit.sessions({
    ...(opts.connection ? { connection: opts.connection } : {}),
    ...(opts.user ? { user: opts.user } : {}),
    ...(since ? { since } : {}),
    ...(opts.limit ? { limit: opts.limit } : {}),
  });
  if (opts.json) return print(io, JSON.stringify(sessions));
  if (sessions.length === 0) return say(io, 'no recorded sessions match');
  printPlainTable(
    io.stdout,
    ['ID', 'STARTED', 'USER', 'CONNECTION', 'STATUS', 'QUERIES', 'BLOCKED', 'REVIEWED', 'DURATION'],
    sessions.map((s) => [
      s.id,
      formatTime(s.startedAt),
      who(s),
      s.connection,
      s.status,
      s.status === 'open' ? '-' : String(s.queries),
      // Counted when the session ends; a gateway older than the counts sends none.
      s.status === 'open' || s.blocked === undefined ? '-' : String(s.blocked),
      s.status === 'open' || s.reviewed === undefined ? '-' : String(s.reviewed),
      s.endedAt ? formatDuration(Date.parse(s.endedAt) - Date.parse(s.startedAt)) : 'open',
    ]),
  );
}
