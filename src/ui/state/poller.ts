// Polls one gateway call with backoff: every `intervalMs` while it succeeds; after a failure the
// wait doubles (4 s, 8 s, 16 s, …) up to `maxMs`, and the status says when the next try is, so the
// status bar can show "gateway unreachable — retrying in 8 s". Waits go through the factory's
// clock, so tests drive it with a fake one. `refresh()` polls at once (after a decision, on a view
// switch) instead of waiting out the interval.
import type { Clock } from '../../factory.js';
import { messageOf, Store } from './store.js';

export interface PollStatus {
  /** The last failure's message while failing; undefined after a success. */
  error?: string;
  /** How long until the next attempt after a failure. */
  retryInMs?: number;
  /** Consecutive failures. */
  failures: number;
  running: boolean;
}

export const POLL_INTERVAL_MS = 2_000;
export const POLL_MAX_MS = 30_000;

export class Poller extends Store<PollStatus> {
  #stop: AbortController | undefined;
  #wake: AbortController | undefined;
  #loop: Promise<void> | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly task: () => Promise<void>,
    private readonly intervalMs = POLL_INTERVAL_MS,
    private readonly maxMs = POLL_MAX_MS,
  ) {
    super({ failures: 0, running: false });
  }

  /** The wait after `failures` consecutive failures (0: the normal interval). */
  delayAfter(failures: number): number {
    return failures === 0 ? this.intervalMs : Math.min(this.intervalMs * 2 ** failures, this.maxMs);
  }

  start(): void {
    if (this.#stop) return;
    const stop = (this.#stop = new AbortController());
    this.update({ running: true });
    this.#loop = this.#run(stop.signal);
  }

  /** Stops polling; resolves once the current attempt (if any) has finished. */
  async stop(): Promise<void> {
    const stop = this.#stop;
    if (!stop) return;
    this.#stop = undefined;
    stop.abort();
    this.#wake?.abort();
    await this.#loop;
    this.update({ running: false });
  }

  /** Poll now rather than at the end of the current wait. */
  refresh(): void {
    this.#wake?.abort();
  }

  async #run(signal: AbortSignal): Promise<void> {
    let failures = this.getSnapshot().failures;
    while (!signal.aborted) {
      try {
        await this.task();
        failures = 0;
        this.update({ failures, error: undefined, retryInMs: undefined });
      } catch (err) {
        failures++;
        this.update({ failures, error: messageOf(err), retryInMs: this.delayAfter(failures) });
      }
      if (signal.aborted) return;
      const wake = (this.#wake = new AbortController());
      const both = AbortSignal.any([signal, wake.signal]);
      await this.clock.sleep(this.delayAfter(failures), both).catch(() => undefined);
    }
  }
}
