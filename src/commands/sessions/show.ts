// `sluice sessions show ID`: a session's timeline — who, when, each statement with its verdict,
// outcome, rows, duration and masked columns.
import { resolveEndpoint } from '../../api/endpoint.js';
import { credentialSource } from '../../auth/credentials.js';
import { print, type Io } from '../../io.js';
import { createAuditClient } from './client.js';
import { timeline } from './render.js';

export async function runSessionsShow(io: Io, id: string, opts: { gateway?: string; ca?: string; json: boolean }): Promise<void> {
  const endpoint = resolveEndpoint(io, opts);
  const token = await credentialSource(io, endpoint).token();
  const detail = await createAuditClient(endpoint).session(token, id);
  if (opts.json) return print(io, JSON.stringify(detail));
  io.stdout.write(timeline(detail));
}
