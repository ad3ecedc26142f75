// The one duration syntax of the product, shared by the CLI's flags (`--timeout 30s`,
// `--since 2h`) and the gateway's configuration (review timeouts, token lifetimes): whole numbers
// with a unit, optionally several in a row, largest first by convention: `500ms`, `30s`, `15m`,
// `2h`, `7d`, `2w`, `1h30m`.
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
