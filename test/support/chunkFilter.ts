// Feeding a stream filter (a ChunkFilter: the WebSocket and SPDY scanners) the way the relay does,
// cut where a test says, for tests that compare what comes out with an independent expectation.
import type { ChunkFilter } from '../../gateway/httpProxy/types.js';

/**
 * Pushes a copy of `wire` through `filter` cut at each offset in `cuts` (ascending), then ends
 * it; returns everything the filter let out, in order. Each output is copied, as the relay's
 * socket write would keep it, before later pushes may overwrite held bytes in place.
 */
export function feedCut(filter: ChunkFilter, wire: Buffer, cuts: readonly number[]): Buffer {
  const copy = Buffer.from(wire);
  const parts: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts, copy.length]) {
    const o = filter.push(copy.subarray(from, c));
    if (o) parts.push(Buffer.from(o));
    from = c;
  }
  const rest = filter.end();
  if (rest) parts.push(rest);
  return Buffer.concat(parts);
}

/** The unmasked frames of a server's WebSocket wire, each as its opcode and where its payload lies (a test's own reading, apart from the gateway's). */
export function serverFrames(wire: Buffer): { opcode: number; payloadAt: number; length: number }[] {
  const frames: { opcode: number; payloadAt: number; length: number }[] = [];
  let at = 0;
  while (at < wire.length) {
    let length = wire[at + 1]! & 0x7f;
    let payloadAt = at + 2;
    if (length === 126) {
      length = wire.readUInt16BE(payloadAt);
      payloadAt += 2;
    } else if (length === 127) {
      length = Number(wire.readBigUInt64BE(payloadAt));
      payloadAt += 8;
    }
    frames.push({ opcode: wire[at]! & 0x0f, payloadAt, length });
    at = payloadAt + length;
  }
  return frames;
}
