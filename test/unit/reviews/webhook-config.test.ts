// `notify: { webhook: URL }` in the gateway's configuration: each review event is POSTed there.
import { mkdtempSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load.js';
import { startGateway, type Gateway } from '../../../gateway/server.js';
import { writeGatewayConfig } from '../../support/binaries.js';

const received: { path: string; body: { event: string; text: string; review: { id: string } } }[] = [];
const hook = createServer((req: IncomingMessage, res) => {
  let text = '';
  req.on('data', (d: Buffer) => (text += d.toString()));
  req.on('end', () => {
    received.push({ path: req.url ?? '', body: JSON.parse(text) as (typeof received)[number]['body'] });
    res.end('ok');
  });
});
let gw: Gateway | undefined;
afterAll(async () => {
  await gw?.close();
  hook.close();
});

describe('notify.webhook', () => {
  it('posts review.created and review.cancelled for a held statement', async () => {
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
    const dir = mkdtempSync(join(tmpdir(), 'sluice-webhook-'));
    gw = await startGateway(loadConfig(writeGatewayConfig(dir, { extra: { notify: { webhook: url } } })), pino({ level: 'silent' }));
    const abort = new AbortController();
    const held = gw.reviews
      .forSession({ sessionId: 's_hook', identity: { subject: 'token:dev', name: 'dev', groups: ['eng'], kind: 'service' }, connection: 'pg-prod' })
      .request({ action: 'delete from orders where id = 1', kind: 'sql', rule: 'writes-need-review', approvers: ['dba'], timeoutMs: 60_000 }, abort.signal);
    const until = async (n: number) => {
      for (let i = 0; i < 100 && received.length < n; i++) await new Promise((r) => setTimeout(r, 50));
    };
    await until(1);
    abort.abort();
    await held.outcome;
    await until(2);
    expect(received.map((r) => [r.path, r.body.event, r.body.review.id])).toEqual([
      ['/hook', 'review.created', held.id],
      ['/hook', 'review.cancelled', held.id],
    ]);
    expect(received[0]?.body.text).toContain(held.id);
    // The statement never leaves the audit boundary through the webhook.
    expect(JSON.stringify(received)).not.toContain('delete from orders');
  });
});
