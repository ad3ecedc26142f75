// The one writer between every session's audit and the store: a FIFO of staged ops made durable
// in order, many at a time (group commit). With a journal (the gateway's setting, journal.ts)
// "durable" means appended to the journal — a microsecond or two — and the ops reach the store
// in large batches shortly after (ingest), because a store transaction per statement cost more
// than the whole tunnel; without one (unit tests, the store benchmark) ops are committed to the
// store directly. The writer is also the gateway's view of the audit's health: the first failed
// append or ingest marks it unavailable (new statements and sessions are refused), the ops are
// kept, and a retry every second — a heartbeat when nothing is queued — notices when writes work
// again.
import type { Logger } from 'pino';
import { AuditUnavailableError } from './contract.js';
import type { Store } from '../store/types.js';
import { EventChains, storeLookup, type ChainProblem, type StagedOp } from './chain.js';
import { commitStaged, inlineIngester, type Ingester } from './ingest.js';
import type { AuditJournal } from './journal.js';

export interface AuditWriterOptions {
  store: Store;
  log: Logger;
  /** This gateway process; its heartbeat row doubles as the probe of a failed store. */
  instance: string;
  /** Where ops become durable before they are ingested into the store. */
  journal?: AuditJournal;
  /** Who moves journaled ops into the store (default: in-line, on this thread). */
  ingester?: Ingester;
  /** Journaled ops wait at most this long for their ingest (default 100 ms)... */
  ingestMs?: number;
  /**
   * ...or until this many are waiting (default 640: about 320 statements). The ingest's cost per
   * event rises with the batch beyond that — 15–35% more at 1000 statements than at 320, as
   * everything a batch parses stays alive until its commit (docs/performance.md, session 6) —
   * while smaller batches down to ~160 statements cost no more per event. An ingest running
   * meanwhile lets the next batch grow, so a store that falls behind still gets larger batches.
   */
  ingestOps?: number;
  retryMs?: number;
  now?: () => Date;
}

/** How long commitSoon() lets events wait for a statement to share an append with. */
const LAZY_MS = 2;

interface Waiter {
  upto: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Calls a waiter's callback. An engine's callback (afterCommit) runs inside the writer's own
 * bookkeeping: what it throws must not leave the other waiters unanswered, so it is thrown again
 * on its own, as an exception in a promise's callback would have been.
 */
function answer<A extends unknown[]>(f: (...args: A) => void, ...args: A): void {
  try {
    f(...args);
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

export class AuditWriter {
  private queue: StagedOp[] = [];
  /** Ops ever staged / ever made durable; durable ops are always a prefix of staged ones. */
  private staged = 0;
  private committed = 0;
  private waiters: Waiter[] = [];
  private scheduled = false;
  private inflight: Promise<void> | undefined;
  private failure: Error | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly store: Store;
  private readonly journal: AuditJournal | undefined;
  private readonly log: Logger;
  private readonly retryMs: number;
  private readonly ingestMs: number;
  private readonly ingestOps: number;
  private readonly now: () => Date;
  private readonly ingester: Ingester;
  /** Without a journal, events are chained here, just before their commit (chain.ts). */
  private readonly chains: EventChains;
  /** Journaled ops not yet handed to an ingest, in order (kept only when the ingester needs them in memory), and their count. */
  private toIngest: StagedOp[] = [];
  private toIngestCount = 0;
  /** An ingest that has not succeeded yet (its journal file is kept until it does). */
  private ingesting: { path: string; bytes: number; ops: StagedOp[]; release: (emptied?: boolean) => void; upTo: number; attempts: number } | undefined;
  /** Every op up to this count of durable ops is in the store. */
  private ingestedUpTo = 0;
  private ingestTimer: NodeJS.Timeout | undefined;
  /** An ingest is set for the next turn (enough ops are waiting): later commits need not set another. */
  private ingestDue = false;
  private ingestRun: Promise<void> | undefined;
  private lazyTimer: NodeJS.Timeout | undefined;
  /** performance.now() when the lazy timer was set, and at the last durable commit (commitSoon). */
  private lazyArmedAt = 0;
  private lastCommitAt = 0;
  /** Recorders started and not yet ended (commitsAtOnce). */
  private openSessions = 0;
  /** Durable commits so far and ops they carried (the group-commit ratio); store ingests. */
  readonly stats = { commits: 0, ops: 0, ingests: 0 };

  constructor(private readonly opts: AuditWriterOptions) {
    this.store = opts.store;
    this.journal = opts.journal;
    this.ingester = opts.ingester ?? inlineIngester(opts.store, opts.now);
    this.chains = new EventChains(storeLookup(opts.store));
    this.log = opts.log;
    this.retryMs = opts.retryMs ?? 1_000;
    this.ingestMs = opts.ingestMs ?? 100;
    this.ingestOps = opts.ingestOps ?? 640;
    this.now = opts.now ?? (() => new Date());
  }

  /** False from a failed write until writes succeed again. */
  get healthy(): boolean {
    return this.failure === undefined;
  }

  /** Whether commitNow() can make ops durable synchronously (so onQuery can be write-ahead by itself). */
  get canCommitNow(): boolean {
    return this.journal !== undefined || this.store.commitSync !== undefined;
  }

  /**
   * Whether the engine's `flush()` should append what is staged right away rather than in a group
   * commit at the end of the event loop's turn: when the append needs no fsync and no other
   * session is open to share it. With one session the append (a microsecond or two) costs less
   * than the turn a deferred commit waits for, and a statement's decision rides in the same write;
   * with several, the statements that arrive in one turn share one `pwrite`: appending each in
   * its read callback made ~0.5 more write calls per transaction at pgbench -S c8 and no less CPU
   * (docs/decisions.md).
   */
  get commitsAtOnce(): boolean {
    return this.journal?.appendsSync === true && this.failure === undefined && this.inflight === undefined && !this.closed && this.openSessions <= 1;
  }

  /** A recorder's session started (counts the sessions that could share an append). */
  sessionStarted(): void {
    this.openSessions++;
  }

  sessionEnded(): void {
    this.openSessions = Math.max(0, this.openSessions - 1);
  }

  /** Queues ops; returns a ticket for whenCommitted(). Never throws, never writes. */
  stage(...ops: StagedOp[]): number {
    for (const op of ops) this.queue.push(op);
    this.staged += ops.length;
    return this.staged;
  }

  /** stage() of one op, without the array of a rest parameter (a statement's event, its result's). */
  stageOne(op: StagedOp): number {
    this.queue.push(op);
    return ++this.staged;
  }

  /**
   * Makes everything staged durable, synchronously. Throws AuditUnavailableError if writes are
   * failing or this one fails; the ops stay queued for the retry.
   */
  commitNow(): void {
    if (!this.canCommitNow) throw new Error('this store cannot commit synchronously');
    if (this.closed) throw new AuditUnavailableError('the gateway is shutting down');
    if (this.failure) throw new AuditUnavailableError(undefined, { cause: this.failure });
    if (this.inflight || this.queue.length === 0) {
      // An async commit holds earlier ops; committing later ones first would break the order.
      if (this.inflight) throw new Error('commitNow while an asynchronous commit is in flight');
      return;
    }
    const ops = this.queue;
    try {
      if (this.journal) this.journal.appendSync(ops);
      else {
        const chained = this.chains.chainSync(ops, this.now);
        this.store.commitSync!(chained.ops);
        chained.done();
        this.logProblems(chained.problems);
      }
    } catch (err) {
      this.fail(err);
      throw new AuditUnavailableError(undefined, { cause: err });
    }
    this.queue = [];
    this.done(ops);
  }

  /** Ops made durable so far (a ticket up to this is committed). */
  get committedOps(): number {
    return this.committed;
  }

  /** Resolves once every op up to `ticket` is durable; undefined if that is already so. */
  whenCommitted(ticket: number): Promise<void> | undefined {
    if (ticket <= this.committed) return undefined;
    if (this.failure) return Promise.reject(new AuditUnavailableError(undefined, { cause: this.failure }));
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ upto: ticket, resolve, reject }));
    this.schedule();
    return p;
  }

  /**
   * whenCommitted() without a promise (SessionAudit.afterFlush): false if every op up to `ticket`
   * is durable already, else true, and `onDone` or `onFail` is called once, never before this
   * returns. `onDone` runs within the append that made the ops durable: at pgbench -S c8 nearly
   * every statement waits for an append of its own, and a promise, its two resolving functions
   * and the microtask that ran its reaction were a visible part of recording it.
   */
  afterCommit(ticket: number, onDone: () => void, onFail: (err: Error) => void): boolean {
    if (ticket <= this.committed) return false;
    if (this.failure) {
      const err = new AuditUnavailableError(undefined, { cause: this.failure });
      queueMicrotask(() => onFail(err));
      return true;
    }
    this.waiters.push({ upto: ticket, resolve: onDone, reject: onFail });
    this.schedule();
    return true;
  }

  /** Makes what is staged durable on the next turn of the event loop (together with whatever else arrives). */
  schedule(): void {
    if (this.scheduled || this.failure || this.closed) return;
    this.scheduled = true;
    setImmediate(this.onTurnEnd);
  }

  private readonly onTurnEnd = (): void => {
    this.scheduled = false;
    this.commitTurn();
  };

  /**
   * The group commit of one turn. A journal that appends synchronously is written right here: the
   * asynchronous commit() costs two async functions and their promises on every append, and at
   * pgbench -S c8 nearly every statement has an append of its own.
   */
  private commitTurn(): void {
    if (this.journal?.appendsSync !== true || this.inflight !== undefined) return void this.commit();
    if (this.queue.length === 0 || this.failure || this.closed) return;
    const ops = this.queue;
    this.queue = [];
    try {
      this.journal.appendSync(ops);
    } catch (err) {
      this.queue = ops.concat(this.queue);
      return this.fail(err);
    }
    this.done(ops);
  }

  /**
   * Makes what is staged durable within `LAZY_MS` — or sooner, with the next statement's
   * write-ahead commit. For events nothing waits on (results): one append then carries them
   * together with the next statement instead of costing an append each. A commit since the timer
   * was set took everything staged before it, so the timer then waits until `LAZY_MS` after that
   * commit rather than appending at once: under steady traffic results ride along with
   * statements and the timer costs no append of its own.
   */
  commitSoon(): void {
    if (this.scheduled || this.lazyTimer !== undefined || this.failure || this.closed) return;
    this.lazyArmedAt = performance.now();
    this.lazyTimer = setTimeout(this.onLazy, LAZY_MS);
  }

  private readonly onLazy = (): void => {
    this.lazyTimer = undefined;
    const wait = this.lastCommitAt + LAZY_MS - performance.now();
    if (this.lastCommitAt > this.lazyArmedAt && wait >= 1 && this.queue.length > 0) {
      // Everything older than the last commit is durable; what came after it has until then.
      this.lazyArmedAt = this.lastCommitAt;
      this.lazyTimer = setTimeout(this.onLazy, wait);
      return;
    }
    this.commitTurn();
  };

  /** Everything staged so far is durable and in the store when this resolves (or writes are failing). For readers, checkpoints and shutdown. */
  async flush(): Promise<void> {
    // Recorders build result events on the next tick (sessionAudit.ts): let them stage first.
    await new Promise<void>((resolve) => process.nextTick(resolve));
    await this.commit();
    if (!this.journal) return;
    const target = this.committed;
    while (!this.failure && !this.closed && this.ingestedUpTo < target) await this.ingest();
  }

  /** Makes everything staged durable; resolves when done (or when writes have failed). */
  private async commit(): Promise<void> {
    while (this.inflight) await this.inflight;
    if (this.queue.length === 0 || this.failure || this.closed) return;
    const ops = this.queue;
    this.queue = [];
    this.inflight = (async () => {
      try {
        await this.write(ops);
        this.done(ops);
      } catch (err) {
        this.queue = ops.concat(this.queue);
        this.fail(err);
      }
    })();
    try {
      await this.inflight;
    } finally {
      this.inflight = undefined;
    }
    if (this.queue.length > 0) this.schedule();
  }

  /** The durable step: a journal append (synchronous unless it must fsync), or a store commit. */
  private async write(ops: StagedOp[]): Promise<void> {
    const j = this.journal;
    if (j) return j.appendsSync ? j.appendSync(ops) : j.append(ops);
    this.logProblems(await commitStaged(this.store, this.chains, ops, false, this.now));
  }

  /** Records this process's heartbeat; a failure marks the store unavailable like a failed commit. */
  async heartbeat(): Promise<void> {
    if (this.failure) return; // the retry loop probes instead
    try {
      await this.store.heartbeat(this.opts.instance, this.now());
    } catch (err) {
      this.fail(err);
    }
  }

  /** Stops retrying and ingesting; the caller flushes first if it wants everything written. */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.ingestTimer);
    clearTimeout(this.lazyTimer);
    for (const w of this.waiters.splice(0)) answer(w.reject, new AuditUnavailableError('the gateway is shutting down'));
  }

  private done(ops: StagedOp[]): void {
    if (this.lazyTimer !== undefined) this.lastCommitAt = performance.now();
    this.committed += ops.length;
    this.stats.commits++;
    this.stats.ops += ops.length;
    if (this.journal) {
      if (!this.ingester.readsJournal) for (const o of ops) this.toIngest.push(o);
      this.toIngestCount += ops.length;
      this.scheduleIngest();
    }
    if (this.waiters.length === 0) return;
    // The list is settled before anyone is answered: a callback may stage and wait again.
    // (Tickets are not in order: a session's ticket is its own last staged op.)
    const all = this.waiters;
    let ready = all;
    let k = 0;
    while (k < all.length && all[k]!.upto <= this.committed) k++;
    if (k === all.length) this.waiters = [];
    else {
      ready = [];
      const still: Waiter[] = [];
      for (const w of all) (w.upto <= this.committed ? ready : still).push(w);
      this.waiters = still;
    }
    for (const w of ready) answer(w.resolve);
  }

  private scheduleIngest(): void {
    if (this.failure || this.closed) return;
    if (this.toIngestCount >= this.ingestOps) {
      if (this.ingestDue) return;
      this.ingestDue = true;
      clearTimeout(this.ingestTimer);
      this.ingestTimer = undefined;
      setImmediate(() => {
        this.ingestDue = false;
        void this.ingest();
      });
    } else if (this.ingestTimer === undefined) {
      this.ingestTimer = setTimeout(() => {
        this.ingestTimer = undefined;
        void this.ingest();
      }, this.ingestMs);
    }
  }

  /** Moves journaled ops into the store (see ingestAll); a failure marks the audit unavailable. */
  private async ingest(): Promise<void> {
    try {
      await this.ingestAll();
    } catch (err) {
      this.fail(err);
    }
  }

  /**
   * Moves journaled ops into the store, in order, in one transaction per journal file; throws if
   * the store refuses them. Ops journaled while it runs wait for the next timer (or the next call),
   * so that batches stay large under load.
   */
  private ingestAll(): Promise<void> {
    if (this.ingestRun) return this.ingestRun;
    const run = (async () => {
      // Not before the first await: with a synchronous store the whole loop could run before
      // ingestRun is even assigned.
      await undefined;
      try {
        for (let round = 0; round < 2 && (this.ingesting !== undefined || this.toIngestCount > 0); round++) {
          // Round 2 only finishes what a failed ingest left plus what was already waiting then.
          if (this.ingesting === undefined) {
            // An append in flight goes to the file about to be rotated out: its ops must be among those taken.
            while (this.inflight) await this.inflight;
            this.ingesting = { ...this.journal!.rotate(), ops: this.toIngest, upTo: this.committed, attempts: 0 };
            this.toIngest = [];
            this.toIngestCount = 0;
          }
          const { release, upTo } = this.ingesting;
          // A retry may follow a commit that succeeded without its answer arriving (a worker that
          // died, a lost COMMIT reply): it skips what is already stored instead of failing on it forever.
          const replay = this.ingesting.attempts++ > 0;
          const { emptied, problems } = await this.ingester.ingest(this.ingesting, { replay });
          this.logProblems(problems);
          this.ingesting = undefined;
          this.ingestedUpTo = upTo;
          this.stats.ingests++;
          try {
            release(emptied);
          } catch (err) {
            // The ops are in the store; a journal file that cannot be emptied is replayed (idempotently) at the next start.
            this.log.warn({ err }, 'cannot empty an ingested audit journal file');
          }
        }
      } finally {
        this.ingestRun = undefined;
        if (this.toIngestCount > 0) this.scheduleIngest();
      }
    })();
    this.ingestRun = run;
    return run;
  }

  /** Sessions whose events could not be chained (chain.ts): the trail misses them, loudly. */
  private logProblems(problems: readonly ChainProblem[]): void {
    for (const p of problems) this.log.error({ session: p.session, dropped: p.dropped }, 'audit events not stored: %s', p.message);
  }

  private fail(err: unknown): void {
    const first = this.failure === undefined;
    this.failure = err instanceof Error ? err : new Error(String(err));
    for (const w of this.waiters.splice(0)) answer(w.reject, new AuditUnavailableError(undefined, { cause: this.failure }));
    if (first) {
      this.log.error({ err: this.failure, queued: this.queue.length, notIngested: this.toIngestCount + (this.ingesting ? 1 : 0) }, 'the audit store cannot be written: statements and new sessions are refused until it can');
      this.retryLater();
    }
  }

  private retryLater(): void {
    if (this.closed) return;
    this.retryTimer = setTimeout(() => void this.retry(), this.retryMs);
    this.retryTimer.unref();
  }

  private async retry(): Promise<void> {
    if (this.closed) return;
    // A copy: sessions keep staging (results, ends) while an asynchronous write is awaited.
    const ops = this.queue.slice();
    const ingestWaiting = this.journal !== undefined && (this.ingesting !== undefined || this.toIngestCount > 0);
    try {
      if (ops.length > 0) {
        // As `inflight`, so that an ingest running meanwhile does not rotate the file under it.
        while (this.inflight) await this.inflight;
        const write = this.write(ops);
        this.inflight = write;
        try {
          await write;
        } finally {
          this.inflight = undefined;
        }
        this.queue = this.queue.slice(ops.length);
        this.done(ops);
      }
      if (this.journal) await this.ingestAll();
      if (ops.length === 0 && !ingestWaiting) await this.store.heartbeat(this.opts.instance, this.now());
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      return this.retryLater();
    }
    this.failure = undefined;
    this.log.info({ written: ops.length }, 'the audit store accepts writes again');
    if (this.queue.length > 0) this.schedule();
  }
}
