// What `sluice exec` shows on stderr while its input waits for a review: a spinner on a terminal,
// and in logs (CI) one line when the wait starts and one every 30 s, so a job's log shows it is
// alive without filling up. Time comes from the injected clock, so tests need not wait.
import yoctoSpinner from 'yocto-spinner';
import type { Clock } from '../../factory.js';
import { say, type Io } from '../../io.js';

export const PLAIN_INTERVAL_MS = 30_000;

export interface PendingReview {
  id: string;
  rule?: string;
  approvers?: string[];
}

export interface ReviewProgress {
  stop(): void;
}

export function waitingLine(r: PendingReview): string {
  const detail = [r.rule ? `rule ${r.rule}` : '', r.approvers?.length ? `approvers ${r.approvers.join(', ')}` : ''].filter(Boolean).join(', ');
  return `waiting for review ${r.id}${detail ? ` (${detail})` : ''}; Ctrl-C gives up and cancels it`;
}

export function startReviewProgress(io: Io, clock: Clock, review: PendingReview): ReviewProgress {
  const text = waitingLine(review);
  if (io.stderr.isTTY) {
    const spinner = yoctoSpinner({ stream: io.stderr as NodeJS.WriteStream, text, handleSignals: false }).start();
    return { stop: () => void spinner.stop() };
  }
  say(io, `sluice: ${text}`);
  const stopped = new AbortController();
  const started = clock.now();
  void (async () => {
    for (;;) {
      try {
        await clock.sleep(PLAIN_INTERVAL_MS, stopped.signal);
      } catch {
        return;
      }
      if (stopped.signal.aborted) return;
      say(io, `sluice: still waiting for review ${review.id} (${elapsed(clock.now() - started)})`);
    }
  })();
  return { stop: () => stopped.abort() };
}

/** `45s`, `2m 30s`, `1h 5m`. */
export function elapsed(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}
