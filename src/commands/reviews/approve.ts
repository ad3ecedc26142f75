// `sluice reviews approve ID [--reason TEXT]`: let a held statement run unchanged. The gateway
// refuses your own requests and reviews outside your approver groups (exit 4), unknown ids
// (exit 1) and reviews already decided, expired or cancelled (exit 1).
import { Command } from 'commander';
import type { Factory, GatewayFlags } from '../../factory.js';
import { print, say } from '../../io.js';
import { withGatewayFlags } from '../flags.js';

export interface DecideOptions extends GatewayFlags {
  id: string;
  reason?: string;
  json: boolean;
}

export function defineReviewsApprove(f: Factory): Command {
  return withGatewayFlags(new Command('approve'))
    .description('let a held statement run unchanged (not your own; you must be in an approver group)')
    .argument('<id>', 'review id, e.g. R-8F3K')
    .option('--reason <text>', 'a note recorded with the approval')
    .option('--json', 'print the decided review as JSON')
    .action((id: string, o: GatewayFlags & { reason?: string; json?: boolean }) => runReviewsApprove({ ...o, id, json: Boolean(o.json) }, f));
}

/** Approves review `id`; the held statement runs unchanged. */
export async function runReviewsApprove(opts: DecideOptions, f: Factory): Promise<void> {
  const reason = opts.reason?.trim();
  const r = await (await f.gateway(opts)).reviews.approve(opts.id, reason || undefined);
  if (opts.json) print(f.io, JSON.stringify(r));
  say(f.io, `approved ${r.id}: ${r.requester.name}'s statement on ${r.connection} runs now`);
}
