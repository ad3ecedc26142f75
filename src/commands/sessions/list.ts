// `sluice sessions [ls]`: recorded sessions, newest first — your own, or everyone's for members of
// the gateway's audit reader groups.
import { resolveEndpoint } from '../../api/endpoint.js';
import { credentialSource } from '../../auth/credentials.js';
import { print, say, type Io } from '../../io.js';
import { createAuditClient, parseSince } from './client.js';
import { formatDuration, formatTime, who } from './render.js';

export interface SessionsListOptions {
  gateway?: string;
  ca?: string;
  connection?: string;
  user?: string;
  since?: string;
  limit?: number;
  json: boolean;
}

export async function runSessionsList(io: Io, opts: SessionsListOptions): Promise<void> {
  const since = opts.since !== undefined ? parseSince(opts.since) : undefined;
  const endpoint = resolveEndpoint(io, opts);
  const token = await credentialSource(io, endpoint).token();
  const { sessions } = await createAuditClient(endpoint).sessions(token, {
    ...(opts.connection ? { connection: opts.connection } : {}),
    ...(opts.user ? { user: opts.user } : {}),
    ...(since ? { since } : {}),
    ...(opts.limit ? { limit: opts.limit } : {}),
  });
  if (opts.json) return print(io, JSON.stringify(sessions));
  if (sessions.length === 0) return say(io, 'no recorded sessions match');
  const rows = [
    ['ID', 'STARTED', 'USER', 'CONNECTION', 'STATUS', 'QUERIES', 'BLOCKED', 'REVIEWED', 'DURATION'],
    ...sessions.map((s) => [
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
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) print(io, r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}
