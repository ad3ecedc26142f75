// The one duration syntax of the product, shared by the CLI's flags (`--timeout 30s`,
// `--since 2h`) and the gateway's configuration (review timeouts, token lifetimes): whole numbers
// with a unit, optionally several in a row, largest first by convention: `500ms`, `30s`, `15m`,
// `2h`, `7d`, `2w`, `1h30m`.
import { UsageError } from './errors.js';

const UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Milliseconds in `text`, or undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*((?:\d+\s*(?:ms|s|m|h|d|w)\s*)+)$/.exec(text);
  if (m === null) return undefined;
  let total = 0;
  for (const part of (m[1] as string).matchAll(/(\d+)\s*(ms|s|m|h|d|w)/g)) total += Number(part[1]) * (UNITS_MS[part[2] as string] as number);
  return total;
}

/** The examples every error about a duration shows. */
export const DURATION_EXAMPLES = 'e.g. 500ms, 30s, 15m, 2h, 7d or 1h30m';

/**
 * `--since`: a duration back from now (`90s`, `15m`, `2h`, `7d`, `1h30m`) or an ISO-8601 time;
 * returns ISO. `flag` names the flag in the error.
 */
export function parseSince(text: string, now = Date.now(), flag = '--since'): string {
  const ms = parseDuration(text);
  if (ms !== undefined) return new Date(now - ms).toISOString();
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new UsageError(`invalid ${flag} "${text}": expected a duration such as 2h or 7d, or a time such as 2026-11-05T09:00:00Z`);
  return new Date(t).toISOString();
}
