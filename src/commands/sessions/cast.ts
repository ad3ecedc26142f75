// asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): a header line, then one JSON
// array per event, `[seconds, code, data]`, in time order. What `sessions export --cast` writes,
// so `asciinema play s.cast` shows the session as it was.
import type { TerminalTimeline } from './terminal.js';

export interface CastHeader {
  /** Unix seconds the session started. */
  timestamp: number;
  title?: string;
}

/** Yields the file line by line (each ends with a newline), so a long session never sits whole in a string. */
export function* asciicastLines(timeline: TerminalTimeline, header: CastHeader): Generator<string> {
  const head: Record<string, unknown> = { version: 2, width: timeline.width, height: timeline.height, timestamp: Math.floor(header.timestamp) };
  if (header.title !== undefined) head.title = header.title;
  yield JSON.stringify(head) + '\n';
  let last = 0;
  for (const f of timeline.frames) {
    // Microseconds, as asciinema writes them; never going back in time.
    last = Math.max(last, Math.round(f.time * 1e6) / 1e6);
    yield JSON.stringify([last, f.type, f.data]) + '\n';
  }
}
