// The Reviews and Sessions views driven by keys: the list newest first, the whole statement with
// its parameters, the approve/reject reason prompts, the announcement of a new review whatever the
// view; recorded sessions, their filter, timeline and replay.
import { afterEach, describe, expect, it } from 'vitest';
import type { ReviewInfo, SessionEvent } from '../../../src/api/contract.js';
import { alice, detail, pgProd, review, session } from '../cli/fakes.js';
import { KEY, startApp } from './support.js';

let app: Awaited<ReturnType<typeof startApp>> | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

const older = review({ id: 'R-OLD1', createdAt: '2026-11-05T11:50:00Z', sql: 'update orders set status = $1 where id = $2', parameters: [{ value: 'paid', bytes: 4 }, { value: null, bytes: 0 }] });
const newer = review({ id: 'R-NEW2', createdAt: '2026-11-05T11:58:00Z' });

function reviewsGateway(list: () => ReviewInfo[], decisions: string[]) {
  return {
    me: async () => alice,
    connections: async () => ({ connections: [pgProd] }),
    reviews: {
      list: async () => list(),
      approve: async (id: string, reason?: string) => (decisions.push(`approve ${id} ${reason ?? '-'}`), review({ id, status: 'approved' })),
      reject: async (id: string, reason: string) => (decisions.push(`reject ${id} ${reason}`), review({ id, status: 'rejected' })),
    },
  };
}

describe('Reviews view', () => {
  it('lists pending reviews newest first; Enter shows the statement with its parameters', async () => {
    app = await startApp(reviewsGateway(() => [older, newer], []));
    await app.type('r');
    let frame = await app.waitFor('R-OLD1');
    expect(frame).toContain('Reviews (2)');
    expect(frame.indexOf('R-NEW2')).toBeLessThan(frame.indexOf('R-OLD1'));
    await app.type(KEY.down, KEY.enter);
    frame = await app.waitFor('parameters:');
    expect(frame).toContain('review R-OLD1 · pg-prod · rule deletes-need-review');
    expect(frame).toContain('update orders set status = $1 where id = $2');
    expect(frame).toContain('$1 = "paid"');
    expect(frame).toContain('$2 = NULL');
    await app.type(KEY.esc);
    await app.waitFor('STATEMENT');
  });

  it('a statement longer than the pane scrolls with ↑↓ under its header', async () => {
    const long = review({ id: 'R-LONG', sql: Array.from({ length: 40 }, (_, i) => `-- line ${i + 1}`).join('\n') });
    app = await startApp(reviewsGateway(() => [long], []));
    await app.type('r');
    await app.waitFor('R-LONG');
    await app.type(KEY.enter);
    let frame = await app.waitFor('-- line 1\n');
    expect(frame).not.toContain('-- line 40');
    for (let i = 0; i < 30; i++) await app.type(KEY.down);
    frame = await app.waitFor('-- line 40');
    expect(frame).toContain('review R-LONG · pg-prod');
    expect(frame).not.toContain('-- line 1\n');
  });

  it('a approves with an optional reason; r rejects and insists on a reason', async () => {
    const decisions: string[] = [];
    let pending = [newer, older];
    app = await startApp(reviewsGateway(() => pending, decisions));
    await app.type('r');
    await app.waitFor('R-NEW2');
    await app.type('a');
    expect(app.frame()).toContain('approve R-NEW2: reason (optional): ▏');
    await app.type('l', 'g', 't', 'm', KEY.enter);
    await app.waitFor("approved R-NEW2: bob's statement on pg-prod runs now");
    expect(decisions).toEqual(['approve R-NEW2 lgtm']);
    pending = [older];

    await app.type('r');
    expect(app.frame()).toContain('reject R-OLD1: reason (required): ▏');
    await app.type(KEY.enter);
    await app.waitFor('a reason is required to reject');
    expect(app.frame()).toContain('reject R-OLD1: reason (required)');
    await app.type('n', 'o', KEY.enter);
    await app.waitFor("rejected R-OLD1: bob's statement on pg-prod will not run");
    expect(decisions).toEqual(['approve R-NEW2 lgtm', 'reject R-OLD1 no']);
  });

  it('Esc cancels a prompt without deciding; an empty list says nothing waits', async () => {
    const decisions: string[] = [];
    let pending = [newer];
    app = await startApp(reviewsGateway(() => pending, decisions));
    await app.type('r');
    await app.waitFor('R-NEW2');
    await app.type('a', 'x', KEY.esc);
    expect(app.frame()).not.toContain('reason (optional)');
    expect(decisions).toEqual([]);
    pending = [];
    await app.clock.advance(2000);
    await app.waitFor('no reviews are waiting for you');
  });

  it('a review that arrives while another view is shown is announced in the status bar', async () => {
    let pending = [older];
    app = await startApp(reviewsGateway(() => pending, []));
    await app.waitFor('pg-prod');
    expect(app.frame()).not.toContain('new review');
    pending = [older, newer];
    await app.clock.advance(2000);
    await app.waitFor('★ new review R-NEW2 from bob on pg-prod (r: Reviews)');
    await app.type('r');
    await app.waitFor('R-NEW2');
    expect(app.frame()).not.toContain('★ new review');
  });
});

const ev = (seq: number, kind: string, at: string, data: Record<string, unknown>): SessionEvent => ({ seq, kind, at, data, hash: 'h' });
const events = [
  ev(1, 'query', '2026-11-05T11:00:01Z', { q: 1, text: 'select email from customers' }),
  ev(2, 'decision', '2026-11-05T11:00:01Z', { q: 1, verdict: 'allow' }),
  ev(3, 'result', '2026-11-05T11:00:02Z', { q: 1, status: 'ok', commands: ['SELECT 1'], rows: 1, columns: [{ name: 'email', type: 25 }], sample: [['***']], masked: ['email'] }),
];

describe('Sessions view', () => {
  it('lists sessions, filters by connection or user, shows a timeline and replays it', async () => {
    app = await startApp({
      me: async () => alice,
      connections: async () => ({ connections: [pgProd] }),
      reviews: { list: async () => [] },
      audit: {
        sessions: async () => ({ sessions: [session(), session({ id: 'S-2', connection: 'pg-staging', user: 'bob', email: 'bob@example.com' })] }),
        session: async () => ({ ...detail(), events }),
      },
    });
    await app.type('s');
    let frame = await app.waitFor('S-2');
    expect(frame).toMatch(/› S-1 +11-05 11:00:00 +alice@example.com +pg-prod +ok +3/);
    await app.type('/', 'b', 'o', 'b');
    frame = await app.waitFor('/ bob▏');
    expect(frame).not.toContain('S-1 ');
    await app.type(KEY.esc);
    await app.waitFor('S-1');
    await app.type(KEY.enter);
    frame = await app.waitFor('timeline of S-1');
    expect(frame).toContain('#1  select email from customers');
    expect(frame).toContain('masked: email');
    await app.type('r');
    for (let i = 0; i < 5; i++) await app.clock.advance(2000);
    frame = await app.waitFor('replay of S-1 (done)');
    expect(frame).toContain('app=> select email from customers');
    expect(frame).toContain('(masked: email)');
    await app.type(KEY.esc);
    await app.waitFor('STARTED');
  });

  it('says so when there are no sessions yet', async () => {
    app = await startApp({ me: async () => alice, connections: async () => ({ connections: [] }), reviews: { list: async () => [] }, audit: { sessions: async () => ({ sessions: [] }) } });
    await app.type('\t');
    await app.waitFor('no recorded sessions yet');
  });
});
