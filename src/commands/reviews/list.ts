// `sluice reviews [ls] [--all] [--json]`: statements held for review that you may decide or that
// you asked for; `--all` adds the ones decided, expired or cancelled recently.
import { Command } from 'commander';
import type { ReviewInfo } from '../../api/contract.js';
import type { Factory, GatewayFlags } from '../../factory.js';
import { print, say } from '../../io.js';
import { plainTable } from '../../output/table.js';
import { withGatewayFlags } from '../flags.js';
import { formatTime } from '../sessions/render.js';
import { oneLineSql, statusLine } from './format.js';

export interface ReviewsListOptions extends GatewayFlags {
  all: boolean;
  json: boolean;
}

export function defineReviewsList(f: Factory): Command {
  return withGatewayFlags(new Command('ls'))
    .description('pending reviews you may decide or that you requested (the default)')
    .option('--all', 'also those decided, expired or cancelled recently')
    .option('--json', 'print JSON')
    .action((o: GatewayFlags & { all?: boolean; json?: boolean }) => runReviewsList({ ...o, all: Boolean(o.all), json: Boolean(o.json) }, f));
}

export async function runReviewsList(opts: ReviewsListOptions, f: Factory): Promise<void> {
  const { io } = f;
  const reviews = await (await f.gateway(opts)).reviews.list({ all: opts.all });
  if (opts.json) return print(io, JSON.stringify(reviews));
  if (reviews.length === 0) {
    return say(io, opts.all ? 'no reviews you requested or may decide, pending or recent' : 'no reviews are waiting for you or on you');
  }
  for (const line of reviewsTable(reviews, f.clock.now())) print(io, line);
  const first = reviews.find((r) => r.canDecide);
  if (first) say(io, `read one in full: sluice reviews show ${first.id}; decide: sluice reviews approve ${first.id} | sluice reviews reject ${first.id} --reason TEXT`);
}

/** The table `sluice reviews` prints: columns padded like `sluice connections`. */
export function reviewsTable(reviews: readonly ReviewInfo[], now = Date.now()): string[] {
  return plainTable(
    ['ID', 'STATUS', 'REQUESTED', 'BY', 'CONNECTION', 'RULE', 'YOU', 'STATEMENT'],
    reviews.map((r) => [
      r.id,
      statusLine(r, now),
      formatTime(r.createdAt),
      r.requester.name,
      r.connection,
      r.rule,
      // Whether the caller can act on it, so an approver sees at a glance what waits on them.
      r.canDecide ? 'may decide' : r.status === 'pending' ? 'waiting' : '-',
      oneLineSql(r.sql ?? r.action ?? ''),
    ]),
  );
}
