// Tells people a review waits on them, or what became of it, by POSTing a JSON event to a webhook.
// The payload's `text` is what a Slack (or Mattermost, Teams workflow) incoming webhook shows; the
// rest is for machines. The statement itself is never sent: webhooks usually lead outside the
// organisation's audit boundary, and the approver reads the SQL with `sluice reviews show ID`.
import type { Logger } from 'pino';
import type { ReviewEvent } from './service.js';

export interface WebhookOptions {
  readonly url: string;
  readonly log: Logger;
  /** Give up on one delivery after this long (default 5 s); a slow hook must not pile up requests. */
  readonly timeoutMs?: number;
  readonly fetch?: typeof globalThis.fetch;
}

/** The JSON body posted for each review event. */
export interface WebhookPayload {
  /** One human sentence (Slack's incoming-webhook field). */
  readonly text: string;
  readonly event: `review.${ReviewEvent['event']}`;
  readonly review: {
    readonly id: string;
    readonly status: string;
    readonly connection: string;
    readonly session: string;
    readonly rule: string;
    readonly requester: string;
    readonly approvers: readonly string[];
    readonly createdAt: string;
    readonly expiresAt: string;
    readonly decidedBy?: string;
    readonly reason?: string;
  };
}

/** The payload for one event (exported for tests and for other transports). */
export function webhookPayload(e: ReviewEvent): WebhookPayload {
  const r = e.review;
  const who = r.requester.name;
  // What was held, in the words its people use: a SQL statement, or a command line (ssh exec).
  const what = r.kind === 'sql' ? 'statement' : 'command';
  const text = {
    created: `Review ${r.id}: a ${what} from ${who} on ${r.connection} is held by rule ${r.rule} until ${r.expiresAt.toISOString()}. A member of ${r.approvers.join(', ')} reads it with \`sluice reviews show ${r.id}\` and runs \`sluice reviews approve ${r.id}\` or \`sluice reviews reject ${r.id} --reason …\`.`,
    approved: `Review ${r.id} (${who} on ${r.connection}) was approved by ${r.decidedBy?.name ?? 'someone'}${r.decisionReason ? `: ${r.decisionReason}` : ''}.`,
    rejected: `Review ${r.id} (${who} on ${r.connection}) was rejected by ${r.decidedBy?.name ?? 'someone'}: ${r.decisionReason ?? ''}`,
    expired: `Review ${r.id} (${who} on ${r.connection}) expired without a decision; the ${what} failed.`,
    cancelled: `Review ${r.id} (${who} on ${r.connection}) was cancelled: the client went away.`,
  }[e.event];
  return {
    text,
    event: `review.${e.event}`,
    review: {
      id: r.id,
      status: r.status,
      connection: r.connection,
      session: r.session,
      rule: r.rule,
      requester: who,
      approvers: [...r.approvers],
      createdAt: r.createdAt.toISOString(),
      expiresAt: r.expiresAt.toISOString(),
      ...(r.decidedBy ? { decidedBy: r.decidedBy.name } : {}),
      ...(r.decisionReason ? { reason: r.decisionReason } : {}),
    },
  };
}

/**
 * A ReviewService `onEvent` listener that posts each event to `url`. Deliveries run in the
 * background and are never retried; a failure is logged and does not affect the review.
 */
export function createWebhookNotifier(opts: WebhookOptions): (e: ReviewEvent) => void {
  const post = opts.fetch ?? fetch;
  const timeoutMs = opts.timeoutMs ?? 5_000;
  // The URL often carries a secret path (Slack's does): log only its origin.
  const where = new URL(opts.url).origin;
  return (e) => {
    const body = JSON.stringify(webhookPayload(e));
    void post(opts.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(timeoutMs) }).then(
      async (res) => {
        await res.body?.cancel();
        if (!res.ok) opts.log.warn({ review: e.review.id, event: e.event, status: res.status, webhook: where }, 'the review webhook refused an event');
      },
      (err: unknown) => opts.log.warn({ review: e.review.id, event: e.event, webhook: where, err: (err as Error).message }, 'cannot deliver a review event to the webhook'),
    );
  };
}
