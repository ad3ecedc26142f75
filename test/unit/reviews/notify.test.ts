// The review webhook: one JSON POST per event with a Slack-style `text`, never the statement, and
// a hook that fails or hangs only produces a log line.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Identity } from '../../../gateway/model.js';
import { createWebhookNotifier, webhookPayload } from '../../../gateway/reviews/notify.js';
import { createReviewService, type ReviewEvent } from '../../../gateway/reviews/service.js';

const ALICE: Identity = { subject: 'sub-alice', name: 'alice@example.com', email: 'alice@example.com', groups: ['eng'], kind: 'human' };
const DBA: Identity = { subject: 'token:oncall', name: 'oncall', groups: ['dba'], kind: 'service' };
const SECRET_SQL = "update users set password_hash = 'hunter2' where id = 1";

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function hook(status = 200, hang = false): Promise<{ url: string; bodies: Promise<unknown[]>; want: (n: number) => void }> {
  const got: unknown[] = [];
  let wanted = Infinity;
  let done!: (v: unknown[]) => void;
  const bodies = new Promise<unknown[]>((r) => (done = r));
  const server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      expect(req.headers['content-type']).toBe('application/json');
      got.push(JSON.parse(text));
      if (got.length >= wanted) done(got);
      if (!hang) res.writeHead(status).end('ok');
    });
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T000/B000/secret`, bodies, want: (n) => (wanted = n) };
}

/** A pino logger whose lines land in `lines`. */
function capture(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log: Logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

describe('review webhook', () => {
  it('posts created and decided events with a readable text and no SQL', async () => {
    const h = await hook();
    h.want(2);
    const { log } = capture();
    const svc = createReviewService({ log, onEvent: createWebhookNotifier({ url: h.url, log }) });
    const { id } = svc.forSession({ sessionId: 's_1', identity: ALICE, connection: 'pg-prod' }).request({ action: SECRET_SQL, kind: 'sql', rule: 'writes-need-review', approvers: ['dba'], timeoutMs: 60_000 }, new AbortController().signal);
    await svc.decide(id, DBA, { approve: false, reason: 'not like this' });
    const [created, rejected] = (await h.bodies) as ReturnType<typeof webhookPayload>[];
    expect(created).toMatchObject({ event: 'review.created', review: { id, status: 'pending', requester: 'alice@example.com', approvers: ['dba'], rule: 'writes-need-review', connection: 'pg-prod', session: 's_1' } });
    expect(created?.text).toContain(`held by rule writes-need-review`);
    expect(created?.text).toContain(`sluice reviews approve ${id}`);
    expect(rejected).toMatchObject({ event: 'review.rejected', review: { status: 'rejected', decidedBy: 'oncall', reason: 'not like this' } });
    expect(rejected?.text).toBe(`Review ${id} (alice@example.com on pg-prod) was rejected by oncall: not like this`);
    expect(JSON.stringify([created, rejected])).not.toContain('hunter2');
    svc.close();
  });

  it('a refusing or hanging hook is logged (origin only) and changes nothing', async () => {
    const refusing = await hook(500);
    const hanging = await hook(200, true);
    const { log, lines } = capture();
    const event: ReviewEvent = {
      event: 'expired',
      review: { id: 'R-2345', status: 'expired', session: 's_1', requester: { subject: 's', name: 'bob' }, connection: 'pg', action: SECRET_SQL, kind: 'sql', rule: 'r', approvers: ['dba'], createdAt: new Date(), expiresAt: new Date() },
    };
    createWebhookNotifier({ url: refusing.url, log })(event);
    createWebhookNotifier({ url: hanging.url, log, timeoutMs: 200 })(event);
    createWebhookNotifier({ url: 'http://127.0.0.1:1/nothing-here', log })(event);
    const until = Date.now() + 5_000;
    while (lines.length < 3 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(lines.map((l) => l.msg).sort()).toEqual(['cannot deliver a review event to the webhook', 'cannot deliver a review event to the webhook', 'the review webhook refused an event']);
    expect(JSON.stringify(lines)).not.toContain('secret');
    expect(lines.find((l) => l.status === 500)).toMatchObject({ review: 'R-2345', event: 'expired' });
  });
});
