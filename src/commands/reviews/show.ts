// `sluice reviews show ID [--json]`: one review in full — the whole statement an approver is asked
// to let through, who asked, under which rule, and what became of it.
import { Command } from 'commander';
import type { ReviewInfo } from '../../api/contract.js';
import type { Factory, GatewayFlags } from '../../factory.js';
import { print } from '../../io.js';
import { withGatewayFlags } from '../flags.js';
import { formatTime } from '../sessions/render.js';
import { statusLine } from './format.js';

export function defineReviewsShow(f: Factory): Command {
  return withGatewayFlags(new Command('show'))
    .description('one review in full: the whole statement, who asked, which rule, what became of it')
    .argument('<id>', 'review id, e.g. R-8F3K')
    .option('--json', 'print JSON')
    .action((id: string, o: GatewayFlags & { json?: boolean }) => runReviewsShow({ ...o, id, json: Boolean(o.json) }, f));
}

export async function runReviewsShow(opts: GatewayFlags & { id: string; json: boolean }, f: Factory): Promise<void> {
  const review = await (await f.gateway(opts)).reviews.get(opts.id);
  if (opts.json) return print(f.io, JSON.stringify(review));
  f.io.stdout.write(describeReview(review, f.clock.now()));
}

/** The human text of `reviews show` (also printed by approve/reject on stderr). */
export function describeReview(r: ReviewInfo, now = Date.now()): string {
  const who = r.requester.email && r.requester.email !== r.requester.name ? `${r.requester.name} <${r.requester.email}>` : r.requester.name;
  const lines = [
    `review ${r.id} · ${statusLine(r, now)}`,
    `  requested  ${formatTime(r.createdAt)} by ${who}`,
    `  where      connection ${r.connection}, session ${r.session}`,
    `  rule       ${r.rule}${r.reason ? ` (${r.reason})` : ''}`,
    `  approvers  members of ${r.approvers.join(', ')}${r.canDecide ? ' (you may decide)' : ''}`,
  ];
  if (r.status === 'pending') lines.push(`  expires    ${formatTime(r.expiresAt)}`);
  if (r.endedAt) lines.push(`  ended      ${formatTime(r.endedAt)}`);
  if (r.decisionReason) lines.push(`  reason     ${r.decisionReason}`);
  // A statement is labelled as one; another kind of action (an ssh command line, …) by its kind.
  const text = r.sql ?? r.action ?? '';
  lines.push(r.sql !== undefined || r.kind === undefined ? '  statement' : `  ${r.kind}`, ...text.split('\n').map((l) => `    ${l}`));
  if (r.parameters !== undefined) lines.push(...describeParameters(r.parameters, r.parametersOmitted));
  return lines.join('\n') + '\n';
}

/**
 * The Bind's values, one per line as `$n = "…"`: JSON-quoted, so a value's quotes, newlines and
 * control characters are shown, not interpreted by the terminal.
 */
function describeParameters(params: NonNullable<ReviewInfo['parameters']>, omitted: number | undefined): string[] {
  const lines = ['  parameters (the approval runs exactly these values)'];
  params.forEach((p, i) => {
    const shown = p.value === null ? 'NULL' : p.binary ? p.value : JSON.stringify(p.value);
    const note = p.truncated ? ` … (cut; ${p.bytes} bytes in all)` : '';
    lines.push(`    $${i + 1} = ${shown}${p.binary ? ' (binary)' : ''}${note}`);
  });
  if (omitted !== undefined) lines.push(`    … and ${omitted} more parameters, not shown`);
  return lines;
}
