// Where the gateway's log lines go (stderr, or `log.file`), made so that a log that can no longer
// be written cannot take the gateway down. The log is a convenience for operators; the audit
// trail is the record, in its own store, and it has its own failure handling (new sessions
// refused, statements not forwarded). A full disk (ENOSPC), a file-size limit (EFBIG under
// `ulimit -f`) or a closed pipe must therefore cost log lines, never sessions: without an
// 'error' listener the destination's write error was an uncaught exception, and its buffer grew
// without bound while the file stayed unwritable.
import { writeSync } from 'node:fs';
import pino, { type DestinationStream } from 'pino';

/** What the destination may hold while the file cannot be written; lines beyond it are dropped. */
const MAX_PENDING_BYTES = 4 * 1024 * 1024;

export interface LogDestination {
  readonly stream: DestinationStream;
  /** Log lines dropped because the destination could not take them (for tests and metrics). */
  readonly dropped: () => number;
  /**
   * Call at shutdown, after the last log line. A destination that is failing is destroyed with
   * what it still holds: otherwise pino's exit hook retries the write on every 'beforeExit',
   * each retry schedules more work, and the process never exits.
   */
  abandonIfFailing(): void;
}

/**
 * Opens the log destination: `file` (appended, created with its directory) or stderr. The first
 * write error of an outage is reported once on stderr (when the log is a file), naming the file and
 * the error code; a later successful write ends the outage, so the next one is reported again.
 */
export function openLogDestination(file: string | undefined): LogDestination {
  const dest = pino.destination({ ...(file !== undefined ? { dest: file, mkdir: true, append: true } : { dest: 2 }), sync: false, maxLength: MAX_PENDING_BYTES });
  let failing = false;
  let dropped = 0;
  dest.on('error', (err: NodeJS.ErrnoException) => {
    if (failing) return;
    failing = true;
    if (file !== undefined) {
      reportOnStderr(`sluice-gateway: cannot write the log file ${file} (${err.code ?? err.message}); log lines are dropped until it can be written again. The audit trail is not affected.\n`);
    }
  });
  dest.on('write', () => {
    failing = false;
  });
  dest.on('drop', () => {
    dropped++;
  });
  return {
    stream: dest,
    dropped: () => dropped,
    abandonIfFailing() {
      if (failing) dest.destroy();
    },
  };
}

/**
 * Keeps a failing stdout or stderr (a full disk behind a redirect, a closed pipe) from raising an
 * uncaught exception: what cannot be printed is lost, and the gateway goes on serving.
 */
export function tolerateBrokenStdio(): void {
  for (const s of [process.stdout, process.stderr]) s.on('error', () => undefined);
}

function reportOnStderr(line: string): void {
  try {
    writeSync(2, line);
  } catch {
    // stderr is unwritable too: nothing is left to tell.
  }
}
