// Keeps the credentials the gateway injects from coming back to the client: an upstream that
// echoes request headers (debug endpoints, error pages) would otherwise hand the held token to
// the very client it is kept from. Each occurrence in a streamed body is overwritten with "*" of
// the same length (so Content-Length stays true), across chunk boundaries.
import { Transform } from 'node:stream';

const STAR = 0x2a;

/** Overwrites every occurrence of any secret in `buf` in place; returns how many. */
export function scrubInPlace(buf: Buffer, secrets: readonly Buffer[]): number {
  let hits = 0;
  for (const s of secrets) {
    if (s.length === 0) continue;
    for (let at = buf.indexOf(s); at >= 0; at = buf.indexOf(s, at + s.length)) {
      buf.fill(STAR, at, at + s.length);
      hits++;
    }
  }
  return hits;
}

/** A length-keeping stream filter that overwrites the secrets (held back: the longest secret's length − 1 bytes). */
export function createScrubber(secrets: readonly Buffer[], onHit?: (count: number) => void): Transform {
  const keep = Math.max(0, ...secrets.map((s) => s.length)) - 1;
  let carry: Buffer = Buffer.alloc(0);
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const buf = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      const hits = scrubInPlace(buf, secrets);
      if (hits > 0) onHit?.(hits);
      const cut = Math.max(0, buf.length - keep);
      carry = buf.subarray(cut);
      done(null, cut > 0 ? buf.subarray(0, cut) : undefined);
    },
    flush(done) {
      done(null, carry.length > 0 ? carry : undefined);
    },
  });
}

/** The secrets as text, for headers and samples. */
export function scrubText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s !== '') out = out.split(s).join('*'.repeat(s.length));
  return out;
}
