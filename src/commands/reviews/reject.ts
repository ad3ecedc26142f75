// `sluice reviews reject ID --reason TEXT`: make a held statement fail; the requester's client gets
// an error (42501 on PostgreSQL) carrying the reason. Refusals as for approve.
import { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { Factory, GatewayFlags } from '../../factory.js';
import { print, say } from '../../io.js';
import { withGatewayFlags } from '../flags.js';
import type { DecideOptions } from './approve.js';

export function defineReviewsReject(f: Factory): Command {
  return withGatewayFlags(new Command('reject'))
    .description('make a held statement fail; the requester is told your reason')
    .argument('<id>', 'review id, e.g. R-8F3K')
    .requiredOption('--reason <text>', "why (sent to the requester's client and recorded)")
    .option('--json', 'print the decided review as JSON')
    .action((id: string, o: GatewayFlags & { reason: string; json?: boolean }) => runReviewsReject({ ...o, id, json: Boolean(o.json) }, f));
}

/** Rejects review `id`; the client gets an error (42501 on PostgreSQL) carrying `reason`. */
export async function runReviewsReject(opts: DecideOptions, f: Factory): Promise<void> {
  const reason = opts.reason?.trim();
  // Checked before any network call: the reason is what the requester is told.
  if (!reason) throw new UsageError('reject needs --reason TEXT: the requester is told why');
  const r = await (await f.gateway(opts)).reviews.reject(opts.id, reason);
  if (opts.json) print(f.io, JSON.stringify(r));
  say(f.io, `rejected ${r.id}: ${r.requester.name}'s statement on ${r.connection} fails with your reason`);
}
