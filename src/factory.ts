// The dependencies a command runs with, built once per invocation (gh's "factory"). Commands take
// everything from here instead of touching `process`, the settings file or the network directly,
// so unit tests run them with buffers, a fixed clock and a fake gateway client.
import type { Io } from './io.js';

/** Where the gateway is and how to reach it: flags every networked command accepts. */
export interface GatewayFlags {
  gateway?: string;
  ca?: string;
}

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface Factory {
  readonly io: Io;
  readonly clock: Clock;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const t = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(t);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};
