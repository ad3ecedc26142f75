// Keeps the credentials the gateway injects from coming back to the client: an upstream that
// echoes request headers (debug endpoints, error pages) would otherwise hand the held token to
// the very client it is kept from. Each occurrence in a streamed body is overwritten with "*" of
// the same length (so Content-Length stays true), across chunk boundaries.
import type { ChunkFilter } from './types.js';

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

/**
 * How many of `buf`'s last bytes are the beginning of a secret that the next chunk may complete
 * (0: none). Only those are held back, so a body that never ends in such a prefix streams
 * chunk for chunk, without a copy.
 */
function pendingPrefix(buf: Buffer, secrets: readonly Buffer[], keep: number): number {
  // The earliest start wins: it holds back the most, covering every later one.
  for (let at = Math.max(0, buf.length - keep); at < buf.length; at++) {
    const n = buf.length - at;
    for (const s of secrets) {
      if (n < s.length && s[0] === buf[at] && buf.compare(s, 0, n, at) === 0) return n;
    }
  }
  return 0;
}

/**
 * A length-keeping filter over a body's chunks that overwrites the secrets, called inline by the
 * proxy core (no stream per response). A secret split across chunks is caught by holding back a
 * chunk's tail while it is a prefix of some secret (at most the longest secret's length − 1
 * bytes) and scanning it again joined to the next chunk.
 */
export function chunkScrubber(secrets: readonly Buffer[], onHit?: (count: number) => void): ChunkFilter {
  const keep = Math.max(0, ...secrets.map((s) => s.length - 1));
  let carry: Buffer | undefined;
  return {
    push(chunk) {
      const buf = carry !== undefined ? Buffer.concat([carry, chunk]) : chunk;
      const hits = scrubInPlace(buf, secrets);
      if (hits > 0) onHit?.(hits);
      const held = pendingPrefix(buf, secrets, keep);
      const cut = buf.length - held;
      carry = held > 0 ? buf.subarray(cut) : undefined;
      return cut > 0 ? (held > 0 ? buf.subarray(0, cut) : buf) : undefined;
    },
    end() {
      const rest = carry;
      carry = undefined;
      return rest;
    },
  };
}

/** The secrets as text, for headers and samples. */
export function scrubText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s !== '') out = out.split(s).join('*'.repeat(s.length));
  return out;
}
