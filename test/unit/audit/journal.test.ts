// The write-ahead journal between the session recorders and the store: statements are durable once
// appended, reach the store in batches, and a process that dies in between loses nothing — the next
// start replays the journal (idempotently). Plus its refusals: a torn tail is tolerated, a corrupt
// line is named, and two processes never share one journal.
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { EventChains, storeLookup, type StagedOp } from '../../../gateway/audit/chain.js';
import { commitStaged } from '../../../gateway/audit/ingest.js';
import { AuditJournal, JournalError, readJournal } from '../../../gateway/audit/journal.js';
import { AuditWriter } from '../../../gateway/audit/writer.js';
import type { Identity } from '../../../gateway/model.js';
import { createSessionAudit } from '../../../gateway/sessionAudit.js';
import { openSqliteStore } from '../../../gateway/store/sqlite.js';
import type { AuditOp, Store } from '../../../gateway/store/types.js';

const log = pino({ level: 'silent' });
const ALICE: Identity = { subject: 'user:alice', name: 'alice@example.com', email: 'alice@example.com', groups: ['eng'], kind: 'human' };

const replayInto = (store: Store) => async (ops: StagedOp[]) => {
  expect(await commitStaged(store, new EventChains(storeLookup(store)), ops, true)).toEqual([]);
};

/** One session with `n` statements recorded through a writer over `journal`; the ingest is far away unless asked for. */
function record(store: Store, journal: AuditJournal, id: string, n: number, ingestMs = 60_000) {
  const writer = new AuditWriter({ store, journal, log, instance: 'g_j', ingestMs });
  const a = createSessionAudit({ writer, limits: { maxRows: 10, maxBytes: 1000 }, instance: 'g_j', log }, { id, connection: 'pg', protocol: 'postgres', identity: ALICE, origin: 'connect', clientAddress: '127.0.0.1' });
  a.onSessionStart({ target: 'app', clientUser: 'x' });
  for (let i = 0; i < n; i++) {
    const q = a.onQuery({ text: `select ${i}`, protocol: 'simple' });
    a.onResult({ queryId: q, status: 'ok', commands: ['SELECT 1'], rows: 1, durationMs: 0.1 });
  }
  return { writer, audit: a };
}

describe('audit journal', () => {
  it('makes statements durable at once, and a crash before the ingest loses none of them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-journal-'));
    const store = openSqliteStore(join(dir, 'store.db'));
    const journal = await AuditJournal.open({ dir, durability: 'process' }, replayInto(store));
    const { writer } = record(store, journal, 's_crash', 3);
    // The query events are durable (the recorder committed them before returning) but not stored yet.
    expect(await store.listEvents('s_crash')).toEqual([]);
    expect(journal.backlogBytes).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 20)); // results are committed within 2 ms (commitSoon)
    writer.close();
    // "Crash": this process's journal is never closed; a new one in the same process takes over
    // after the lock holder is gone (here: the lock file is removed by hand).
    const lock = join(dir, 'audit-journal.lock');
    writeFileSync(lock, '999999999');
    const kinds = readJournal(dir).map((o) => (o.op === 'entry' ? o.entry.kind : o.op));
    expect(kinds).toEqual(['session', 'session.start', 'query', 'result', 'query', 'result', 'query', 'result']);
    const again = await AuditJournal.open({ dir, durability: 'process' }, replayInto(store));
    expect((await store.listEvents('s_crash')).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(readJournal(dir)).toEqual([]); // replayed, then emptied
    again.close();
  });

  it('replays idempotently: ops already in the store are skipped, a seal is not applied twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-journal-'));
    const store = openSqliteStore(join(dir, 'store.db'));
    const journal = await AuditJournal.open({ dir, durability: 'fsync' }, replayInto(store));
    const { writer, audit } = record(store, journal, 's_twice', 2);
    audit.onSessionEnd({ status: 'ok', bytesFromClient: 1, bytesToClient: 2 });
    await writer.flush();
    expect((await store.getSession('s_twice'))?.ledgerSeq).toBe(1);
    // Everything is stored, yet the same ops are handed to a replay (a crash between the ingest and emptying the file).
    const ops = (await store.listEvents('s_twice')).map((event): AuditOp => ({ op: 'event', event }));
    await store.commit(ops, { replay: true });
    const sealed = await store.getSession('s_twice');
    await store.commit([{ op: 'seal', seal: { id: 's_twice', startedAt: sealed!.startedAt, events: 6, final: 'f'.repeat(64) }, build: () => { throw new Error('must not build a second seal'); } }], { replay: true });
    expect((await store.listEvents('s_twice')).length).toBe(6);
    expect((await store.ledgerHead()).seq).toBe(1);
    writer.close();
    journal.close();
  });

  it('appends a lone session\'s statement and decision in one write in flush(), and lets statements of several open sessions share one append', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-journal-'));
    const store = openSqliteStore(join(dir, 'store.db'));
    const journal = await AuditJournal.open({ dir, durability: 'process' }, replayInto(store));
    const writer = new AuditWriter({ store, journal, log, instance: 'g_j', ingestMs: 60_000 });
    const open = (id: string) => {
      const a = createSessionAudit({ writer, limits: { maxRows: 10, maxBytes: 1000 }, instance: 'g_j', log }, { id, connection: 'pg', protocol: 'postgres', identity: ALICE, origin: 'connect', clientAddress: '127.0.0.1' });
      a.onSessionStart({ target: 'app', clientUser: 'x' });
      return a;
    };
    const one = open('s_one');
    await writer.flush();
    let before = journal.backlogBytes;
    let commits = writer.stats.commits;
    one.onQuery({ text: 'select 1', protocol: 'simple', deferCommit: true });
    one.onDecision({ queryId: 1, verdict: 'allow', rule: 'default', deferCommit: true });
    expect(journal.backlogBytes).toBe(before); // staged: the engine flushes before forwarding
    expect(one.flush!()).toBeUndefined(); // durable when flush() returns: nothing for the engine to wait for
    expect(journal.backlogBytes).toBeGreaterThan(before);
    expect(writer.stats.commits - commits).toBe(1); // the statement and its decision in one append
    before = journal.backlogBytes;
    one.onQuery({ text: 'select 2', protocol: 'simple' });
    expect(journal.backlogBytes).toBeGreaterThan(before); // not deferred: durable before onQuery returned
    const two = open('s_two');
    commits = writer.stats.commits;
    before = journal.backlogBytes;
    one.onQuery({ text: 'select 3', protocol: 'simple', deferCommit: true });
    two.onQuery({ text: 'select 4', protocol: 'simple', deferCommit: true });
    const flushes = [one.flush!(), two.flush!()];
    expect(flushes.every((p) => p instanceof Promise)).toBe(true);
    expect(journal.backlogBytes).toBe(before);
    await Promise.all(flushes);
    expect(journal.backlogBytes).toBeGreaterThan(before);
    expect(writer.stats.commits - commits).toBe(1); // both statements (and the second session's start) in one append
    two.onSessionEnd({ status: 'ok', bytesFromClient: 0, bytesToClient: 0 });
    await writer.flush();
    before = journal.backlogBytes;
    one.onQuery({ text: 'select 5', protocol: 'simple', deferCommit: true });
    expect(one.flush!()).toBeUndefined(); // alone again: at once
    expect(journal.backlogBytes).toBeGreaterThan(before);
    writer.close();
    journal.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ingests in batches after ingestMs, emptying the journal file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-journal-'));
    const store = openSqliteStore(join(dir, 'store.db'));
    const journal = await AuditJournal.open({ dir, durability: 'process' }, replayInto(store));
    const { writer } = record(store, journal, 's_batch', 50, 10);
    await expect.poll(async () => (await store.listEvents('s_batch')).length, { timeout: 2000 }).toBe(101);
    // The statements are recorded in one synchronous loop, so no timer fires in between: one ingest
    // takes them all, and at most one more takes the last result (built on the next tick).
    expect(writer.stats.ingests).toBeLessThanOrEqual(2);
    await expect.poll(() => journal.backlogBytes).toBe(0);
    expect(statSync(join(dir, 'audit-journal-a.jsonl')).size + statSync(join(dir, 'audit-journal-b.jsonl')).size).toBe(0);
    writer.close();
    journal.close();
  });

  it('ingests before ingestMs once ingestOps ops wait (640 by default), so batches stay small under load', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-journal-'));
    const store = openSqliteStore(join(dir, 'store.db'));
    const journal = await AuditJournal.open({ dir, durability: 'process' }, replayInto(store));
    // ingestMs is a minute: whatever reaches the store within the poll's two seconds came by the op count.
    const small = new AuditWriter({ store, journal, log, instance: 'g_j', ingestMs: 60_000, ingestOps: 10 });
    const a = createSessionAudit({ writer: small, limits: { maxRows: 10, maxBytes: 1000 }, instance: 'g_j', log }, { id: 's_ops', connection: 'pg', protocol: 'postgres', identity: ALICE, origin: 'connect', clientAddress: '127.0.0.1' });
    a.onSessionStart({ target: 'app', clientUser: 'x' });
    for (let turn = 0; turn < 6; turn++) {
      for (let i = 0; i < 3; i++) a.onResult({ queryId: a.onQuery({ text: `select ${turn}${i}`, protocol: 'simple' }), status: 'ok', rows: 1, durationMs: 0.1 });
      await new Promise((r) => setTimeout(r, 5));
    }
    // 37 events; fewer than ingestOps may still wait for the timer.
    await expect.poll(async () => (await store.listEvents('s_ops')).length, { timeout: 2000 }).toBeGreaterThan(37 - 10);
    expect(small.stats.ingests).toBeGreaterThanOrEqual(3); // several small batches, not one
    small.close();
    journal.close();

    const dir2 = mkdtempSync(join(tmpdir(), 'sluice-journal-'));
    const store2 = openSqliteStore(join(dir2, 'store.db'));
    const journal2 = await AuditJournal.open({ dir: dir2, durability: 'process' }, replayInto(store2));
    const { writer } = record(store2, journal2, 's_default', 400);
    // 801 events in one synchronous loop: past the default, so the ingest comes at once, not after a minute.
    await expect.poll(async () => (await store2.listEvents('s_default')).length, { timeout: 2000 }).toBeGreaterThanOrEqual(640);
    writer.close();
    journal2.close();
  });

  it('afterFlush: calls back once the statements are in the journal, never before it returns; a failed append calls onFail; a throwing callback leaves the others answered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-journal-'));
    const store = openSqliteStore(join(dir, 'store.db'));
    const journal = await AuditJournal.open({ dir, durability: 'process' }, replayInto(store));
    const writer = new AuditWriter({ store, journal, log, instance: 'g_j', ingestMs: 60_000, retryMs: 60_000 });
    const open = (id: string) => {
      const a = createSessionAudit({ writer, limits: { maxRows: 10, maxBytes: 1000 }, instance: 'g_j', log }, { id, connection: 'pg', protocol: 'postgres', identity: ALICE, origin: 'connect', clientAddress: '127.0.0.1' });
      a.onSessionStart({ target: 'app', clientUser: 'x' });
      return a;
    };
    const one = open('s_after_one');
    const two = open('s_after_two');
    await writer.flush();
    const journalText = () => readFileSync(join(dir, 'audit-journal-a.jsonl'), 'utf8') + readFileSync(join(dir, 'audit-journal-b.jsonl'), 'utf8');
    // What each callback saw in the journal when it ran: the statement must be there already.
    const seen: string[] = [];
    const failures: Error[] = [];
    one.onQuery({ text: 'select 11', protocol: 'simple', deferCommit: true });
    two.onQuery({ text: 'select 12', protocol: 'simple', deferCommit: true });
    const done = new Promise<void>((resolve) => {
      const waits = [
        one.afterFlush!(() => {
          seen.push(journalText());
          throw new Error('an engine bug in a callback');
        }, (err) => failures.push(err)),
        two.afterFlush!(() => {
          seen.push(journalText());
          resolve();
        }, (err) => failures.push(err)),
      ];
      expect(waits).toEqual([true, true]);
    });
    expect(seen).toEqual([]); // not called back within afterFlush
    expect(journalText()).not.toContain('select 11');
    // The first callback's exception is thrown again on its own (as from a promise's callback).
    const thrown = new Promise<unknown>((resolve) => process.once('uncaughtException', resolve));
    const listeners = process.listeners('uncaughtException');
    await done;
    expect((await thrown) as Error).toMatchObject({ message: 'an engine bug in a callback' });
    expect(process.listeners('uncaughtException')).toHaveLength(listeners.length - 1);
    expect(seen).toHaveLength(2);
    for (const text of seen) {
      expect(text).toContain('select 11');
      expect(text).toContain('select 12');
    }
    expect(failures).toEqual([]);
    expect(one.afterFlush!(() => failures.push(new Error('called')), (err) => failures.push(err))).toBe(false); // nothing pending
    // The journal can no longer be written: the wait ends in onFail with AuditUnavailableError, and nothing was appended.
    const append = vi.spyOn(journal, 'appendSync').mockImplementation(() => {
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    });
    one.onQuery({ text: 'select 13', protocol: 'simple', deferCommit: true });
    const failed = await new Promise<Error>((resolve, reject) => {
      if (!one.afterFlush!(() => reject(new Error('called back as durable')), resolve)) reject(new Error('nothing to wait for'));
    });
    expect(failed.name).toBe('AuditUnavailableError');
    expect(journalText()).not.toContain('select 13');
    append.mockRestore();
    writer.close();
    journal.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ignores a torn last line, names a corrupt one, and refuses a journal another live process holds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-journal-'));
    const store = openSqliteStore(join(dir, 'store.db'));
    const journal = await AuditJournal.open({ dir, durability: 'process' }, replayInto(store));
    await expect(AuditJournal.open({ dir, durability: 'process' }, replayInto(store))).rejects.toThrow(
      /audit-journal\.lock: the audit journal in this directory is in use by process \d+; each gateway needs its own state directory/,
    );
    const { writer } = record(store, journal, 's_torn', 1);
    await new Promise((r) => setTimeout(r, 20)); // the result, committed within 2 ms
    writer.close();
    const file = join(dir, 'audit-journal-a.jsonl');
    const whole = readFileSync(file, 'utf8');
    appendFileSync(file, '{"n":99,"op":"event","sess'); // a crash in the middle of an append
    journal.close();
    expect(readJournal(dir)).toHaveLength(whole.trim().split('\n').length);

    writeFileSync(file, `${whole}not json\n`);
    expect(() => readJournal(dir)).toThrow(JournalError);
    expect(() => readJournal(dir)).toThrow(`${file}: line 5 is not JSON`);
    // A start with a corrupt journal fails and leaves the journal as it is, for the operator.
    await expect(AuditJournal.open({ dir, durability: 'process' }, replayInto(store))).rejects.toThrow(/line 5 is not JSON/);
    expect(readFileSync(file, 'utf8')).toContain('not json');
  });

  it('takes over a lock left with its own pid by an earlier process (a container restarted after a crash)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-journal-'));
    const store = openSqliteStore(join(dir, 'store.db'));
    writeFileSync(join(dir, 'audit-journal.lock'), String(process.pid));
    const journal = await AuditJournal.open({ dir, durability: 'process' }, replayInto(store));
    journal.close();
  });

  it('retries an ingest whose commit went through but whose answer was lost, without failing forever on what is stored', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-journal-'));
    const inner = openSqliteStore(join(dir, 'store.db'));
    let lostAnswers = 1;
    const replays: boolean[] = [];
    const store: Store = {
      ...inner,
      commitSync: (ops, opts) => {
        replays.push(opts?.replay === true);
        inner.commitSync!(ops, opts);
        if (lostAnswers-- > 0) throw new Error('connection lost after COMMIT');
      },
    };
    const journal = await AuditJournal.open({ dir, durability: 'process' }, replayInto(inner));
    const writer = new AuditWriter({ store, journal, log, instance: 'g_j', ingestMs: 5, retryMs: 300 });
    const a = createSessionAudit({ writer, limits: { maxRows: 10, maxBytes: 1000 }, instance: 'g_j', log }, { id: 's_lost', connection: 'pg', protocol: 'postgres', identity: ALICE, origin: 'connect', clientAddress: '127.0.0.1' });
    a.onSessionStart({ target: 'app', clientUser: 'x' });
    a.onQuery({ text: 'select 1', protocol: 'simple' });
    await expect.poll(() => writer.healthy, { timeout: 2000, interval: 5 }).toBe(false);
    await expect.poll(() => writer.healthy, { timeout: 2000 }).toBe(true);
    expect(replays.slice(0, 2)).toEqual([false, true]);
    expect((await inner.listEvents('s_lost')).map((e) => e.kind)).toEqual(['session.start', 'query']);
    writer.close();
    journal.close();
  });

  it('appends results within 2 ms, and rides them along with a statement appended meanwhile instead of appending again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-journal-'));
    const store = openSqliteStore(join(dir, 'store.db'));
    const journal = await AuditJournal.open({ dir, durability: 'process' }, replayInto(store));
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance'] });
    try {
      const writer = new AuditWriter({ store, journal, log, instance: 'g_j', ingestMs: 60_000 });
      let seq = 0;
      const entry = (kind: string): StagedOp => ({ op: 'entry', entry: { session: 's_lazy', seq: ++seq, kind, at: 0, data: '{}' } });
      const durable = () => readJournal(dir).map((o) => (o.op === 'entry' ? o.entry.seq : 0));

      // Alone, a result is appended when its 2 ms are up, not before.
      writer.stage(entry('result'));
      writer.commitSoon();
      vi.advanceTimersByTime(1);
      expect(durable()).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(durable()).toEqual([1]);
      expect(writer.stats.commits).toBe(1);

      // A statement appended 1 ms after a result takes it along; the result after that statement
      // is appended 2 ms after the statement's append — one append for it, none for the first.
      writer.stage(entry('result'));
      writer.commitSoon();
      vi.advanceTimersByTime(1);
      writer.stage(entry('query'));
      writer.commitNow();
      expect(durable()).toEqual([1, 2, 3]);
      writer.stage(entry('result'));
      writer.commitSoon();
      vi.advanceTimersByTime(1);
      expect(durable()).toEqual([1, 2, 3]);
      expect(writer.stats.commits).toBe(2);
      vi.advanceTimersByTime(1);
      expect(durable()).toEqual([1, 2, 3, 4]);
      expect(writer.stats.commits).toBe(3);

      // The re-armed timer with nothing left to append appends nothing.
      vi.advanceTimersByTime(10);
      expect(writer.stats.commits).toBe(3);
      writer.close();
    } finally {
      vi.useRealTimers();
      journal.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
