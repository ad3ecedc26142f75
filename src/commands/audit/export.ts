// `sluice audit export [--session ID | --since 2h] > trail.jsonl`: the trail as JSON Lines with
// hashes, the ledger, the signed checkpoints and a signed end line, for `sluice audit verify`.
import { resolveEndpoint } from '../../api/endpoint.js';
import { credentialSource } from '../../auth/credentials.js';
import { UsageError } from '../../errors.js';
import { say, type Io } from '../../io.js';
import { createAuditClient, parseSince } from '../sessions/client.js';

export interface AuditExportOptions {
  gateway?: string;
  ca?: string;
  session?: string;
  since?: string;
}

export async function runAuditExport(io: Io, opts: AuditExportOptions): Promise<void> {
  if (opts.session && opts.since) throw new UsageError('give either --session or --since, not both');
  const since = opts.since !== undefined ? parseSince(opts.since) : undefined;
  const endpoint = resolveEndpoint(io, opts);
  const token = await credentialSource(io, endpoint).token();
  const body = await createAuditClient(endpoint).exportTrail(token, { ...(opts.session ? { session: opts.session } : {}), ...(since ? { since } : {}) });
  let lines = 0;
  for await (const chunk of body) {
    for (const b of chunk) if (b === 0x0a) lines++;
    if (!io.stdout.write(chunk)) await new Promise((r) => io.stdout.once('drain', r));
  }
  say(io, `exported ${lines} lines from ${endpoint.url}; check them with: sluice audit verify FILE --key gateway.pub`);
}
