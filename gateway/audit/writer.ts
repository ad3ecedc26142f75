// The one writer between every session's audit and the store: a FIFO of staged ops committed in
// order, many at a time (group commit: with `durability: fsync` concurrent sessions share one
// fsync). It is also the gateway's view of the store's health: the first failed write marks it
// unavailable (new statements and sessions are refused), the staged ops are kept, and a retry
// every second — a heartbeat when nothing is queued — notices when the store is back.
import type { Logger } from 'pino';
import { AuditUnavailableError } from '../engines/types.js';
import type { AuditOp, Store } from '../store/types.js';

export interface AuditWriterOptions {
  store: Store;
  log: Logger;
  /** This gateway process; its heartbeat row doubles as the probe of a failed store. */
  instance: string;
  retryMs?: number;
  now?: () => Date;
}

interface Waiter {
  upto: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class AuditWriter {
  private queue: AuditOp[] = [];
  /** Ops ever staged / ever committed; committed ops are always a prefix of staged ones. */
  private staged = 0;
  private committed = 0;
  private waiters: Waiter[] = [];
  private scheduled = false;
  private inflight: Promise<void> | undefined;
  private failure: Error | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly retryMs: number;
  private readonly now: () => Date;
  /** Commits so far and ops they carried: the group-commit ratio, for logs and benchmarks. */
  readonly stats = { commits: 0, ops: 0 };

  constructor(private readonly opts: AuditWriterOptions) {
    this.store = opts.store;
    this.log = opts.log;
    this.retryMs = opts.retryMs ?? 1_000;
    this.now = opts.now ?? (() => new Date());
  }

  /** False from a failed write until the store accepts writes again. */
  get healthy(): boolean {
    return this.failure === undefined;
  }

  /** Whether this store can commit synchronously (so onQuery can be write-ahead by itself). */
  get canCommitNow(): boolean {
    return this.store.commitSync !== undefined;
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Queues ops; returns a ticket for whenCommitted(). Never throws, never writes. */
  stage(...ops: AuditOp[]): number {
    for (const op of ops) this.queue.push(op);
    this.staged += ops.length;
    return this.staged;
  }

  /**
   * Commits everything staged, synchronously (SQLite). Throws AuditUnavailableError if the store
   * is failing or the write fails; the ops stay queued for the retry.
   */
  commitNow(): void {
    const commitSync = this.store.commitSync;
    if (!commitSync) throw new Error('this store cannot commit synchronously');
    if (this.failure) throw new AuditUnavailableError(undefined, { cause: this.failure });
    if (this.inflight || this.queue.length === 0) {
      // An async commit holds earlier ops; committing later ones first would break the order.
      if (this.inflight) throw new Error('commitNow while an asynchronous commit is in flight');
      return;
    }
    const ops = this.queue;
    try {
      commitSync(ops);
    } catch (err) {
      this.fail(err);
      throw new AuditUnavailableError(undefined, { cause: err });
    }
    this.queue = [];
    this.done(ops.length);
  }

  /** Resolves once every op up to `ticket` is committed; undefined if that is already so. */
  whenCommitted(ticket: number): Promise<void> | undefined {
    if (ticket <= this.committed) return undefined;
    if (this.failure) return Promise.reject(new AuditUnavailableError(undefined, { cause: this.failure }));
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ upto: ticket, resolve, reject }));
    this.schedule();
    return p;
  }

  /** Commits what is staged on the next turn of the event loop (together with whatever else arrives). */
  schedule(): void {
    if (this.scheduled || this.failure || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  /** Commits everything staged so far; resolves when done (or when the store has failed). */
  async flush(): Promise<void> {
    while (this.inflight) await this.inflight;
    if (this.queue.length === 0 || this.failure) return;
    const ops = this.queue;
    this.queue = [];
    this.inflight = (async () => {
      try {
        if (this.store.commitSync) this.store.commitSync(ops);
        else await this.store.commit(ops);
        this.done(ops.length);
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

  /** Records this process's heartbeat; a failure marks the store unavailable like a failed commit. */
  async heartbeat(): Promise<void> {
    if (this.failure) return; // the retry loop probes instead
    try {
      await this.store.heartbeat(this.opts.instance, this.now());
    } catch (err) {
      this.fail(err);
    }
  }

  /** Stops retrying; the caller flushes first if it wants the queue written. */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    for (const w of this.waiters.splice(0)) w.reject(new AuditUnavailableError('the gateway is shutting down'));
  }

  private done(n: number): void {
    this.committed += n;
    this.stats.commits++;
    this.stats.ops += n;
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.upto <= this.committed) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  private fail(err: unknown): void {
    const first = this.failure === undefined;
    this.failure = err instanceof Error ? err : new Error(String(err));
    for (const w of this.waiters.splice(0)) w.reject(new AuditUnavailableError(undefined, { cause: this.failure }));
    if (first) {
      this.log.error({ err: this.failure, queued: this.queue.length }, 'the audit store cannot be written: statements and new sessions are refused until it can');
      this.retryLater();
    }
  }

  private retryLater(): void {
    if (this.closed) return;
    this.retryTimer = setTimeout(() => void this.retry(), this.retryMs);
    this.retryTimer.unref();
  }

  private async retry(): Promise<void> {
    // A copy: sessions keep staging (results, ends) while an asynchronous commit is awaited.
    const ops = this.queue.slice();
    try {
      if (ops.length > 0) {
        if (this.store.commitSync) this.store.commitSync(ops);
        else await this.store.commit(ops);
        this.queue = this.queue.slice(ops.length);
        this.done(ops.length);
      } else {
        await this.store.heartbeat(this.opts.instance, this.now());
      }
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      return this.retryLater();
    }
    this.failure = undefined;
    this.log.info({ written: ops.length }, 'the audit store accepts writes again');
    if (this.queue.length > 0) this.schedule();
  }
}
