// `sluice reviews [ls] [--all] [--json]`: statements held for review that you may decide or that
// you asked for; `--all` adds the ones decided, expired or cancelled recently.
import type { ReviewInfo } from '../../api/contract.js';
import { resolveEndpoint } from '../../api/endpoint.js';
import { credentialSource } from '../../auth/credentials.js';
import { print, say, type Io } from '../../io.js';
import { formatTime } from '../sessions/render.js';
import { createReviewsClient, oneLineSql, statusLine } from './client.js';

export interface ReviewsListOptions {
  gateway?: string;
  ca?: string;
  all: boolean;
  json: boolean;
}

export async function runReviewsList(io: Io, opts: ReviewsListOptions): Promise<void> {
  const endpoint = resolveEndpoint(io, opts);
  const token = await credentialSource(io, endpoint).token();
  const reviews = await createReviewsClient(endpoint).list(token, { all: opts.all });
  if (opts.json) return print(io, JSON.stringify(reviews));
  if (reviews.length === 0) {
    return say(io, opts.all ? 'no reviews you requested or may decide, pending or recent' : 'no reviews are waiting for you or on you');
  }
  for (const line of reviewsTable(reviews)) print(io, line);
  const first = reviews.find((r) => r.canDecide);
  if (first) say(io, `read one in full: sluice reviews show ${first.id}; decide: sluice reviews approve ${first.id} | sluice reviews reject ${first.id} --reason TEXT`);
}

/** The table `sluice reviews` prints: columns padded like `sluice connections`. */
export function reviewsTable(reviews: readonly ReviewInfo[], now = Date.now()): string[] {
  const rows = [
    ['ID', 'STATUS', 'REQUESTED', 'BY', 'CONNECTION', 'RULE', 'YOU', 'STATEMENT'],
    ...reviews.map((r) => [
      r.id,
      statusLine(r, now),
      formatTime(r.createdAt),
      r.requester.name,
      r.connection,
      r.rule,
      // Whether the caller can act on it, so an approver sees at a glance what waits on them.
      r.canDecide ? 'may decide' : r.status === 'pending' ? 'waiting' : '-',
      oneLineSql(r.sql),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}
