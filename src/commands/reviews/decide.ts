// `sluice reviews approve ID [--reason TEXT]` and `sluice reviews reject ID --reason TEXT`: decide
// a held statement. The gateway refuses your own requests and reviews outside your approver groups
// (exit 4), unknown ids (exit 1) and reviews already decided, expired or cancelled (exit 1).
import { resolveEndpoint } from '../../api/endpoint.js';
import { credentialSource } from '../../auth/credentials.js';
import { UsageError } from '../../errors.js';
import { print, say, type Io } from '../../io.js';
import { createReviewsClient } from './client.js';

export interface DecideOptions {
  gateway?: string;
  ca?: string;
  reason?: string;
  json: boolean;
}

/** Approves review `id`; the held statement runs unchanged. */
export async function runReviewsApprove(io: Io, id: string, opts: DecideOptions): Promise<void> {
  const reason = opts.reason?.trim();
  const endpoint = resolveEndpoint(io, opts);
  const token = await credentialSource(io, endpoint).token();
  const r = await createReviewsClient(endpoint).approve(token, id, reason || undefined);
  if (opts.json) print(io, JSON.stringify(r));
  say(io, `approved ${r.id}: ${r.requester.name}'s statement on ${r.connection} runs now`);
}

/** Rejects review `id`; the client gets an error (42501 on PostgreSQL) carrying `reason`. */
export async function runReviewsReject(io: Io, id: string, opts: DecideOptions): Promise<void> {
  const reason = opts.reason?.trim();
  // Checked before any network call: the reason is what the requester is told.
  if (!reason) throw new UsageError('reject needs --reason TEXT: the requester is told why');
  const endpoint = resolveEndpoint(io, opts);
  const token = await credentialSource(io, endpoint).token();
  const r = await createReviewsClient(endpoint).reject(token, id, reason);
  if (opts.json) print(io, JSON.stringify(r));
  say(io, `rejected ${r.id}: ${r.requester.name}'s statement on ${r.connection} fails with your reason`);
}
