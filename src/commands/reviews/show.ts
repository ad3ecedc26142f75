// `sluice reviews show ID [--json]`: one review in full — the whole statement an approver is asked
// to let through, who asked, under which rule, and what became of it.
import type { ReviewInfo } from '../../api/contract.js';
import { resolveEndpoint } from '../../api/endpoint.js';
import { credentialSource } from '../../auth/credentials.js';
import { print, type Io } from '../../io.js';
import { formatTime } from '../sessions/render.js';
import { createReviewsClient, statusLine } from './client.js';

export async function runReviewsShow(io: Io, id: string, opts: { gateway?: string; ca?: string; json: boolean }): Promise<void> {
  const endpoint = resolveEndpoint(io, opts);
  const token = await credentialSource(io, endpoint).token();
  const review = await createReviewsClient(endpoint).get(token, id);
  if (opts.json) return print(io, JSON.stringify(review));
  io.stdout.write(describeReview(review));
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
  lines.push('  statement', ...r.sql.split('\n').map((l) => `    ${l}`));
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
