// Text a client chose that the gateway keeps in its audit trail and logs: the tunnel's
// `sluice-origin` header, and the user and application names of a PostgreSQL startup packet.
// The trail is read by people (`sluice sessions`, terminals, web views) and by tools, so a value
// may not carry terminal escapes, line breaks that forge a second log line, bidirectional
// overrides that make text read differently from what it is, or megabytes.

/** PostgreSQL keeps at most NAMEDATALEN - 1 bytes of a user or application name. */
export const NAME_MAX_CHARS = 63;

// C0 and C1 controls, DEL, the Unicode line and paragraph separators, bidirectional embeddings,
// overrides and isolates, the BOM and zero-width characters, and U+FFFD (what invalid UTF-8 was
// decoded to, so the trail shows that the bytes were not text).
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufffd]/gu;

/**
 * `value` made safe to record: every unsafe character escaped as `\u{…}` (so nothing is lost
 * silently and nothing can pass for something else), then cut to `maxChars` code points with a
 * trailing `…` when it was longer.
 */
export function clientText(value: string, maxChars: number): string {
  const escaped = value.replace(UNSAFE, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
  const points = Array.from(escaped);
  return points.length <= maxChars ? escaped : `${points.slice(0, maxChars - 1).join('')}…`;
}

/**
 * The tunnel's `sluice-origin` header (the CLI sends `connect` or `exec`): a short lower-case
 * word, or undefined for anything else, which the gateway refuses rather than records.
 */
export function tunnelOrigin(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return 'connect';
  if (typeof header !== 'string') return undefined;
  return /^[a-z][a-z0-9-]{0,31}$/.test(header) ? header : undefined;
}

/**
 * The tunnel's `sluice-local-password` header: the SHA-256 of the client's one-time local
 * password, undefined when absent, or null when malformed (refused: a check the client asked for
 * must not be dropped because its digest could not be read).
 */
export function parseLocalPasswordDigest(header: string | string[] | undefined): Buffer | undefined | null {
  if (header === undefined) return undefined;
  if (typeof header !== 'string') return null;
  const m = /^sha256:([0-9a-f]{64})$/.exec(header);
  return m ? Buffer.from(m[1] as string, 'hex') : null;
}
