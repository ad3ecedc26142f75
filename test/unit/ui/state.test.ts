// The picker's state modules without React: filters, reviews (newest first, announcements,
// decisions), the tunnels manager over a fake listener, and the sessions timeline and replay.
import { describe, expect, it } from 'vitest';
import type { SessionEvent } from '../../../src/api/contract.js';
import type { ListenOptions, LocalListener, TunnelStats } from '../../../src/tunnel/localListener.js';
import { ConnectionsStore } from '../../../src/ui/state/connections.js';
import { expiryText } from '../../../src/ui/state/identity.js';
import { decidable, ReviewsStore } from '../../../src/ui/state/reviews.js';
import { SessionsStore } from '../../../src/ui/state/sessions.js';
import { TunnelsManager } from '../../../src/ui/state/tunnels.js';
import { alice, detail, NOW, pgProd, review, session } from '../cli/fakes.js';
import { FakeClock, settle } from './support.js';

const staging = { ...pgProd, name: 'pg-staging', description: 'staging copy', policy: 'masks: email' };

describe('ConnectionsStore', () => {
  it('filters by name, type and description, every word', async () => {
    const s = new ConnectionsStore({ connections: async () => ({ connections: [pgProd, staging] }) });
    expect(s.getSnapshot().all).toBeUndefined();
    await s.load();
    s.setFilter('STAG');
    expect(s.getSnapshot().visible.map((c) => c.name)).toEqual(['pg-staging']);
    s.setFilter('postgres production');
    expect(s.getSnapshot().visible.map((c) => c.name)).toEqual(['pg-prod']);
    s.setFilter('nothing');
    expect(s.getSnapshot().visible).toEqual([]);
  });
});

describe('ReviewsStore', () => {
  it('keeps pending reviews the caller may decide, newest first', () => {
    const list = decidable([
      review({ id: 'R-OLD', createdAt: '2026-11-05T11:00:00Z' }),
      review({ id: 'R-NEW', createdAt: '2026-11-05T11:59:00Z' }),
      review({ id: 'R-MINE', canDecide: false }),
      review({ id: 'R-DONE', status: 'approved' }),
    ]);
    expect(list.map((r) => r.id)).toEqual(['R-NEW', 'R-OLD']);
  });

  it('announces a review that arrives after the first poll, not those already waiting', async () => {
    let reviews = [review({ id: 'R-1' })];
    const s = new ReviewsStore({ list: async () => reviews } as never);
    await s.load();
    expect(s.getSnapshot().announcement).toBeUndefined();
    reviews = [...reviews, review({ id: 'R-2', createdAt: '2026-11-05T11:58:00Z' })];
    await s.load();
    expect(s.getSnapshot().announcement?.id).toBe('R-2');
    s.dismissAnnouncement();
    expect(s.getSnapshot().announcement).toBeUndefined();
  });

  it('approves with an optional reason, insists on one to reject, and reports refusals', async () => {
    const calls: string[] = [];
    const s = new ReviewsStore({
      list: async () => [review()],
      approve: async (id: string, reason?: string) => (calls.push(`approve ${id} ${reason}`), review({ status: 'approved' })),
      reject: async () => Promise.reject(new Error('you cannot decide your own review')),
    } as never);
    await s.load();
    expect(await s.approve('R-8F3K', '  ')).toBe(true);
    expect(calls).toEqual(['approve R-8F3K undefined']);
    expect(s.getSnapshot().notice).toEqual({ text: "approved R-8F3K: bob's statement on pg-prod runs now", error: false });
    expect(s.getSnapshot().pending).toEqual([]);
    expect(await s.reject('R-8F3K', '')).toBe(false);
    expect(s.getSnapshot().notice).toEqual({ text: 'a reason is required to reject', error: true });
    expect(await s.reject('R-8F3K', 'no')).toBe(false);
    expect(s.getSnapshot().notice).toEqual({ text: 'R-8F3K: you cannot decide your own review', error: true });
  });
});

function fakeListener(port: number, opened: ListenOptions[]) {
  const stats: TunnelStats = { open: 0, total: 0, bytesUp: 0, bytesDown: 0, sessionIds: [] };
  let closed = false;
  const listen = async (o: ListenOptions): Promise<LocalListener> => {
    opened.push(o);
    return { host: o.host, port, stats, close: async () => void (closed = true) };
  };
  return { listen, stats, closed: () => closed };
}

describe('TunnelsManager', () => {
  it('opens a tunnel once, reports its command and stats, and closes it', async () => {
    const opened: ListenOptions[] = [];
    const l = fakeListener(5434, opened);
    const m = new TunnelsManager({ endpoint: {} as never, credentials: {} as never }, l.listen);
    await m.open(pgProd);
    await m.open(pgProd);
    expect(opened).toHaveLength(1);
    expect(opened[0]).toMatchObject({ connection: 'pg-prod', host: '127.0.0.1', port: 5433, fallbackToNextFree: true });
    expect(m.get('pg-prod')).toMatchObject({ state: 'open', port: 5434, command: 'psql "host=127.0.0.1 port=5434 dbname=app user=sluice"', open: 0 });
    Object.assign(l.stats, { open: 1, total: 1, bytesUp: 100, bytesDown: 2048, sessionIds: ['S-9'] });
    m.refreshStats();
    expect(m.get('pg-prod')).toMatchObject({ open: 1, total: 1, bytesUp: 100, bytesDown: 2048, sessionIds: ['S-9'] });
    await m.close('pg-prod');
    expect(l.closed()).toBe(true);
    expect(m.getSnapshot().tunnels).toEqual([]);
  });

  it('a tunnel that cannot open says why; closeAll closes every open one', async () => {
    const opened: ListenOptions[] = [];
    const ok = fakeListener(5433, opened);
    const m = new TunnelsManager({ endpoint: {} as never, credentials: {} as never }, (o) =>
      o.connection === 'pg-staging' ? Promise.reject(new Error('ports 5433-5452 on 127.0.0.1 are all in use; pass --port')) : ok.listen(o),
    );
    await m.open(pgProd);
    await m.open(staging);
    expect(m.get('pg-staging')).toMatchObject({ state: 'failed', error: 'ports 5433-5452 on 127.0.0.1 are all in use; pass --port' });
    await m.closeAll();
    expect(ok.closed()).toBe(true);
    expect(m.getSnapshot().tunnels).toEqual([]);
  });
});

const ev = (seq: number, kind: string, at: string, data: Record<string, unknown>): SessionEvent => ({ seq, kind, at, data, hash: 'h' });

describe('SessionsStore', () => {
  it('filters by connection or user, loads a timeline and replays it on the clock', async () => {
    const clock = new FakeClock();
    const events = [
      ev(1, 'query', '2026-11-05T11:00:01Z', { q: 1, text: 'select 1' }),
      ev(2, 'result', '2026-11-05T11:00:02Z', { q: 1, status: 'ok', commands: ['SELECT 1'], rows: 1, columns: [{ name: 'x', type: 23 }], sample: [['1']] }),
    ];
    const s = new SessionsStore(
      {
        audit: {
          sessions: async () => ({ sessions: [session(), session({ id: 'S-2', connection: 'pg-staging', user: 'bob', email: 'bob@example.com' })] }),
          session: async () => ({ ...detail(), events }),
        } as never,
      },
      clock,
    );
    await s.load();
    s.setFilter('bob');
    expect(s.getSnapshot().visible.map((x) => x.id)).toEqual(['S-2']);
    s.setFilter('pg-prod');
    expect(s.getSnapshot().visible.map((x) => x.id)).toEqual(['S-1']);
    await s.show('S-1');
    expect(s.getSnapshot().open?.detail?.events).toHaveLength(2);
    const done = s.replay();
    await settle();
    expect(s.getSnapshot().open).toMatchObject({ replaying: true });
    expect(s.getSnapshot().open?.replay?.join('\n')).not.toContain('select 1');
    await clock.advance(2000);
    await clock.advance(2000);
    await clock.advance(2000);
    await done;
    const text = s.getSnapshot().open?.replay?.join('\n') ?? '';
    expect(text).toContain('app=> select 1');
    expect(text).toContain('(1 row)');
    expect(s.getSnapshot().open?.replaying).toBe(false);
  });

  it('a timeline that cannot be loaded shows the error', async () => {
    const s = new SessionsStore({ audit: { session: async () => Promise.reject(new Error('no session S-404')) } as never }, new FakeClock());
    await s.show('S-404');
    expect(s.getSnapshot().open).toMatchObject({ id: 'S-404', error: 'no session S-404' });
  });
});

describe('expiryText', () => {
  it('says how long the token has, or that it expired', () => {
    expect(expiryText({ ...alice, expiresAt: new Date(NOW + 42 * 60_000).toISOString() }, NOW)).toBe('expires in 42m 0s');
    expect(expiryText({ ...alice, expiresAt: new Date(NOW - 3 * 60_000).toISOString() }, NOW)).toBe('token expired 3m 0s ago');
    expect(expiryText(alice, NOW)).toBeUndefined();
  });
});

describe('UiModel', () => {
  it('polls only the shown view (and reviews and identity always); close() stops everything and closes tunnels', async () => {
    const { UiModel } = await import('../../../src/ui/state/model.js');
    const calls: string[] = [];
    const clock = new FakeClock();
    const gw = {
      url: 'https://gw',
      endpoint: {},
      credentials: {},
      me: async () => (calls.push('me'), alice),
      connections: async () => (calls.push('connections'), { connections: [pgProd] }),
      reviews: { list: async () => (calls.push('reviews'), []) },
      audit: { sessions: async () => (calls.push('sessions'), { sessions: [] }) },
    };
    const opened: ListenOptions[] = [];
    const l = fakeListener(5433, opened);
    const m = new UiModel({ gateway: gw as never, clock, listen: l.listen });
    m.start();
    await settle();
    expect(calls.sort()).toEqual(['connections', 'me', 'reviews']);
    calls.length = 0;
    m.setView('sessions');
    await settle();
    await clock.advance(2000);
    expect(calls).toContain('sessions');
    expect(calls).toContain('reviews');
    expect(calls).not.toContain('connections');
    await m.tunnels.open(pgProd);
    await m.close();
    expect(l.closed()).toBe(true);
    expect(m.closed).toBe(true);
    calls.length = 0;
    await clock.advance(60_000);
    expect(calls).toEqual([]);
  });
});
