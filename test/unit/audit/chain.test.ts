// Chaining at ingest (gateway/audit/chain.ts): recorders stage unchained entries, and whoever
// commits them to the store hashes them onto each session's chain — continuing from the store
// when it has not seen the session (a restarted ingest thread, a replay at start), never moving
// its heads for a batch the store refused, and naming the session when the chain cannot go on.
import { describe, expect, it } from 'vitest';
import { entryBody, EventChains, storeLookup, type StagedOp } from '../../../gateway/audit/chain.js';
import { openSqliteStore } from '../../../gateway/store/sqlite.js';
import type { EventRecord, Store } from '../../../gateway/store/types.js';
import { newSession } from '../../support/auditFixtures.js';
import { canonicalJson, eventHash, GENESIS_HASH, type EventKind } from '../../../src/api/auditTrail.js';

const T0 = Date.parse('2026-11-28T10:00:00.000Z');

const session = (id: string) => newSession({ id, startedAt: new Date(T0) });

const entry = (s: string, seq: number, kind = 'query'): StagedOp => ({ op: 'entry', entry: { session: s, seq, kind, at: T0 + seq, data: `{"q":${seq},"text":"select ${seq}"}` } });

async function commit(store: Store, chains: EventChains, ops: StagedOp[]): Promise<void> {
  const c = await chains.chain(ops);
  expect(c.problems).toEqual([]);
  await store.commit(c.ops);
  c.done();
}

/** Recomputes every hash of the session from its stored bodies. */
async function verify(store: Store, id: string): Promise<number> {
  let prev = GENESIS_HASH;
  const events = await store.listEvents(id);
  events.forEach((e, i) => {
    expect(e.seq).toBe(i + 1);
    const body = JSON.parse(e.body) as { session: string; seq: number; kind: EventKind; at: string; data: Record<string, unknown> };
    expect(eventHash(prev, body)).toBe(e.hash);
    prev = e.hash;
  });
  return events.length;
}

/** An event's fields (a chained event builds its body when asked). */
const plain = (e: EventRecord) => ({ session: e.session, seq: e.seq, kind: e.kind, at: e.at, body: e.body, hash: e.hash });

describe('event chains', () => {
  it('builds the canonical body of an entry', () => {
    expect(entryBody({ session: 's_1', seq: 3, kind: 'result', at: T0, data: '{"q":1}' })).toBe(
      '{"at":"2026-11-28T10:00:00.000Z","data":{"q":1},"kind":"result","seq":3,"session":"s_1"}',
    );
  });

  it('builds the same body as canonical JSON of the event, for any time, kind, session and data', () => {
    const texts = ['select 1', 'caf\u00e9 \ud83d\ude00 \u4e2d', 'x'.repeat(30_000), 'a\u0000b\t"'];
    // Times within one second, across seconds, each width of milliseconds, and outside years 0000-9999.
    const times = [T0, T0 + 7, T0 + 42, T0 + 999, T0 + 1000, T0 - 1, 0, -1, Date.UTC(-5, 0, 1), Date.UTC(12000, 0, 1, 0, 0, 0, 5), T0 + 5];
    const kinds = ['query', 'result', 'review.approved', 'k\u00e9"'];
    const sessions = ['s_1', 's_\u00e9', 's_1'];
    let i = 0;
    for (const text of texts)
      for (const at of times)
        for (const kind of kinds)
          for (const session of sessions) {
            const seq = ++i;
            const data = { text, n: i };
            expect(entryBody({ session, seq, kind, at, data: canonicalJson(data) })).toBe(canonicalJson({ session, seq, kind, at: new Date(at).toISOString(), data }));
          }
  });

  it('continues a session from the store when another committer chained its start (a restarted ingest thread)', async () => {
    const store = openSqliteStore(':memory:');
    await commit(store, new EventChains(storeLookup(store)), [{ op: 'session', session: session('s_a') }, entry('s_a', 1, 'session.start'), entry('s_a', 2)]);
    const second = new EventChains(storeLookup(store));
    await commit(store, second, [entry('s_a', 3), entry('s_a', 4), { op: 'close', close: { id: 's_a', startedAt: new Date(T0), events: 4 } }]);
    expect(await verify(store, 's_a')).toBe(4);
    // The seal carries the chain's final hash, and the sealed session is forgotten.
    const last = (await store.listEvents('s_a'))[3]!;
    const snapshot = await store.snapshot({ kind: 'session', id: 's_a' });
    expect(JSON.parse(snapshot.ledger[0]!.body)).toMatchObject({ kind: 'session', session: 's_a', events: 4, final: last.hash });
    expect(second.size).toBe(0);
  });

  it('moves its heads only once the store has accepted the batch', async () => {
    const store = openSqliteStore(':memory:');
    const chains = new EventChains(storeLookup(store));
    await commit(store, chains, [{ op: 'session', session: session('s_b') }, entry('s_b', 1, 'session.start')]);
    const refused = await chains.chain([entry('s_b', 2)]); // the store refuses this one: done() is never called
    const again = await chains.chain([entry('s_b', 2)]);
    expect(again.ops).toEqual(refused.ops);
    await store.commit(again.ops);
    again.done();
    await commit(store, chains, [entry('s_b', 3)]);
    expect(await verify(store, 's_b')).toBe(3);
  });

  it('sets aside only the session whose chain cannot be continued, naming it, and commits the rest', async () => {
    const store = openSqliteStore(':memory:');
    const chains = new EventChains(storeLookup(store));
    // The store has no event 4 of s_gone: that session's entries are set aside, s_ok's go on.
    const c = await chains.chain([{ op: 'session', session: session('s_ok') }, entry('s_gone', 5), entry('s_ok', 1, 'session.start'), entry('s_gone', 6), entry('s_ok', 2)]);
    expect(c.problems).toEqual([{ session: 's_gone', message: 'event 5 of session s_gone does not follow any event the store has: its events are not stored from there on', dropped: 2 }]);
    await store.commit(c.ops);
    c.done();
    expect(await verify(store, 's_ok')).toBe(2);
    // A gap inside one batch, and an entry after the session's seal (a hook called after the end).
    const sync = new EventChains();
    expect(sync.chainSync([entry('s_c', 1), entry('s_c', 3)]).problems[0]?.message).toBe('event 3 of session s_c does not follow event 1: its events are not stored from there on');
    const late = sync.chainSync([entry('s_d', 1), { op: 'close', close: { id: 's_d', startedAt: new Date(T0), events: 1 } }, entry('s_d', 2)]);
    expect(late.ops.map((o) => o.op)).toEqual(['event', 'seal']);
    expect(late.problems[0]?.message).toBe('event 2 of session s_d does not follow the session\u2019s seal: its events are not stored from there on');
    expect(sync.chainSync([{ op: 'close', close: { id: 's_e', startedAt: new Date(T0), events: 2 } }]).problems[0]?.message).toBe('session s_e ends after event 2, but its chain is unknown: its events are not stored from there on');
  });

  it('asks the store when its memory of a session disagrees with the journal, and believes the store', async () => {
    const store = openSqliteStore(':memory:');
    const chains = new EventChains(storeLookup(store));
    await commit(store, chains, [{ op: 'session', session: session('s_x') }, entry('s_x', 1, 'session.start'), entry('s_x', 2), entry('s_x', 3)]);
    // A retry of #3 (say, after an answer lost in transit): the heads say #3, the store has #2 before it.
    const again = await chains.chain([entry('s_x', 3)]);
    expect(again.problems).toEqual([]);
    const [op] = again.ops;
    expect(op?.op === 'event' && plain(op.event)).toEqual(plain((await store.listEvents('s_x'))[2]!));
  });

  it('continues after events a journal of the previous format holds already chained', async () => {
    const store = openSqliteStore(':memory:');
    const body = entryBody({ session: 's_old', seq: 1, kind: 'session.start', at: T0, data: '{}' });
    const hash = eventHash(GENESIS_HASH, JSON.parse(body) as Parameters<typeof eventHash>[1]);
    await commit(store, new EventChains(), [
      { op: 'session', session: session('s_old') },
      { op: 'event', event: { session: 's_old', seq: 1, kind: 'session.start', at: new Date(T0), body, hash } },
      entry('s_old', 2),
    ]);
    expect(await verify(store, 's_old')).toBe(2);
  });
});
