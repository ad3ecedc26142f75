// The process-level pieces the factory hands out: the real clock and Ctrl-C handling. A module of
// their own, without the factory's lazy imports, so the exec fast path (src/commands/exec/fast.ts),
// bundled as one file, takes these and nothing else.
import { ExitCode } from './errors.js';
import type { Clock } from './factory.js';

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

export async function withSigint<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  // conf's atomic writer re-raises SIGINT right after the first one: that echo must not count as
  // the person pressing Ctrl-C again, hence the half second.
  let firstInterrupt = 0;
  const onSigint = () => {
    if (firstInterrupt === 0) firstInterrupt = Date.now();
    else if (Date.now() - firstInterrupt > 500) process.exit(ExitCode.interrupted);
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    return await fn(abort.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
