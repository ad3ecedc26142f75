// Moving journaled audit ops into the store (see writer.ts). In the gateway this runs in a worker
// thread that reads the journal file itself: the store's transaction work (~2–5 µs per event for
// SQLite) then happens beside the event loop that relays traffic instead of on it, and no op is
// copied between threads. Without a worker (unit tests, tools) the ops are committed in-line.
import { Worker } from 'node:worker_threads';
import type { Store } from '../store/types.js';
import type { StoreSettings } from '../store/open.js';
import { EventChains, storeLookup, type ChainProblem, type StagedOp } from './chain.js';

/** A journal file handed over by rotate(), with the ops it holds (in memory too, for in-line ingest). */
export interface IngestBatch {
  readonly path: string;
  readonly bytes: number;
  readonly ops: readonly StagedOp[];
}

export interface IngestResult {
  emptied: boolean;
  problems: ChainProblem[];
}

export interface Ingester {
  /** Whether ingest() reads the journal file itself (then the writer need not keep the ops). */
  readonly readsJournal: boolean;
  /**
   * Commits the batch to the store in one transaction; rejects with the store's error. Resolves
   * `emptied: true` when it also emptied the journal file (truncating a file with fresh dirty
   * pages takes hundreds of microseconds: better not on the event loop), and with the sessions
   * whose events could not be chained (chain.ts), for the writer to log.
   */
  ingest(batch: IngestBatch, opts: { replay: boolean }): Promise<IngestResult>;
  close(): Promise<void>;
}

export function inlineIngester(store: Store, now?: () => Date): Ingester {
  const chains = new EventChains(storeLookup(store));
  return {
    readsJournal: false,
    async ingest(batch, { replay }) {
      return { emptied: false, problems: await commitStaged(store, chains, batch.ops, replay, now) };
    },
    async close() {},
  };
}

/** Chains staged ops (chain.ts) and commits them to the store in one transaction; returns the sessions set aside. */
export async function commitStaged(store: Store, chains: EventChains, staged: readonly StagedOp[], replay: boolean, now?: () => Date): Promise<ChainProblem[]> {
  const { ops, done, problems } = await chains.chain(staged, now);
  if (store.commitSync) store.commitSync(ops, { replay });
  else await store.commit(ops, { replay });
  done();
  return problems;
}

export interface WorkerRequest {
  id: number;
  path: string;
  bytes: number;
  replay: boolean;
}
export type WorkerReply = { id: number; ok: true; ops: number; emptied: boolean; problems: ChainProblem[] } | { id: number; ok: false; message: string; code?: string };

export interface IngestWorkerData {
  store: StoreSettings;
  durability: 'process' | 'fsync';
}

/** The ingest in a worker thread with its own store connection; restarted if it dies. */
export function workerIngester(data: IngestWorkerData): Ingester {
  let worker: Worker | undefined;
  let next = 0;
  const pending = new Map<number, { resolve: (r: IngestResult) => void; reject: (err: Error) => void }>();
  const start = (): Worker => {
    const w = new Worker(new URL('./ingestWorker.js', import.meta.url), { workerData: data });
    w.on('message', (r: WorkerReply) => {
      const p = pending.get(r.id);
      pending.delete(r.id);
      if (r.ok) p?.resolve({ emptied: r.emptied, problems: r.problems });
      else p?.reject(Object.assign(new Error(r.message), r.code !== undefined ? { code: r.code } : {}));
    });
    const lost = (why: Error) => {
      if (worker === w) worker = undefined;
      for (const p of pending.values()) p.reject(why);
      pending.clear();
    };
    w.on('error', lost);
    w.on('exit', (code) => lost(new Error(`the audit ingest thread stopped (exit code ${code})`)));
    return w;
  };
  return {
    readsJournal: true,
    ingest(batch, { replay }) {
      worker ??= start();
      const id = ++next;
      const w = worker;
      return new Promise<IngestResult>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        w.postMessage({ id, path: batch.path, bytes: batch.bytes, replay } satisfies WorkerRequest);
      });
    },
    async close() {
      const w = worker;
      worker = undefined;
      await w?.terminate();
    },
  };
}
