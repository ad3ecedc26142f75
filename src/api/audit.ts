// The audit half of the gateway API, for `sluice sessions …` and `sluice audit …`: session
// listings and timelines (validated with the shared contract), the export stream and the public
// key. Refusals become the CLI's typed errors with the gateway's own message.
import type { z } from 'zod';
import { requestJson, sendRequest } from './client.js';
import { paths, sessionDetail, sessionList, type SessionDetail, type SessionList } from './contract.js';
import type { Endpoint } from './endpoint.js';
import { CliError } from '../errors.js';

export interface SessionQuery {
  connection?: string;
  user?: string;
  /** ISO-8601. */
  since?: string;
  limit?: number;
}

export interface AuditClient {
  sessions(token: string, q: SessionQuery): Promise<SessionList>;
  session(token: string, id: string): Promise<SessionDetail>;
  /** The export's JSON Lines, as the gateway streams them. */
  exportTrail(token: string, scope: { session?: string; since?: string }): Promise<AsyncIterable<Uint8Array>>;
  publicKey(): Promise<string>;
}

export function createAuditClient(endpoint: Endpoint): AuditClient {
  const json = <T>(path: string, schema: z.ZodType<T>, token: string) => requestJson(endpoint, path, schema, { token });
  const qs = (params: Record<string, string | number | undefined>) => {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined) u.set(k, String(v));
    const s = u.toString();
    return s ? `?${s}` : '';
  };
  return {
    sessions: (token, q) => json(paths.sessions + qs({ connection: q.connection, user: q.user, since: q.since, limit: q.limit }), sessionList, token),
    session: (token, id) => json(paths.session(id), sessionDetail, token),
    async exportTrail(token, scope) {
      const res = await sendRequest(endpoint, paths.auditExport + qs(scope), { token });
      if (!res.body) throw new CliError('the gateway sent an empty export');
      return res.body as unknown as AsyncIterable<Uint8Array>;
    },
    publicKey: async () => (await sendRequest(endpoint, paths.auditKey)).text(),
  };
}
