// The streamed credential scrubber against the whole-body one: any chunking of any body gives
// the same bytes as scrubbing the body at once, including bodies that end in, or are cut inside,
// the beginning of a secret that never completes.
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createScrubber, scrubInPlace } from '../../../gateway/httpProxy/scrub.js';

const secrets = ['Bearer tok-0123456789abcdef', 'tok-0123456789abcdef'].map((s) => Buffer.from(s));

async function streamed(chunks: Buffer[]): Promise<{ out: Buffer; hits: number }> {
  let hits = 0;
  const out = await buffer(Readable.from(chunks, { objectMode: false }).pipe(createScrubber(secrets, (n) => (hits += n))));
  return { out, hits };
}

/** Cuts `body` at the given offsets (sorted, deduplicated, inside the body). */
function cut(body: Buffer, offsets: number[]): Buffer[] {
  const at = [...new Set(offsets.map((o) => o % (body.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let from = 0;
  for (const o of at) {
    parts.push(Buffer.from(body.subarray(from, o)));
    from = o;
  }
  parts.push(Buffer.from(body.subarray(from)));
  return parts.filter((p) => p.length > 0);
}

describe('streamed credential scrubbing', () => {
  it('gives the whole-body result for any body and any chunking', async () => {
    const piece = fc.oneof(
      fc.constantFrom('Bearer tok-0123456789abcdef', 'tok-0123456789abcdef', 'Bearer tok-0123', 'tok-', 'Bea', 'tok-0123456789abcde'),
      fc.string({ maxLength: 12 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(piece, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 8 }), async (pieces, offsets) => {
        const body = Buffer.from(pieces.join(''));
        const whole = Buffer.from(body);
        const expectedHits = scrubInPlace(whole, secrets);
        const { out, hits } = await streamed(cut(body, offsets));
        expect(out.equals(whole)).toBe(true);
        expect(hits).toBe(expectedHits);
      }),
      { numRuns: 500 },
    );
  });

  it('passes on a tail that only begins a secret, byte for byte', async () => {
    const { out, hits } = await streamed([Buffer.from('plain text ending in Bearer tok-01'), Buffer.from('23 and more')]);
    expect(out.toString()).toBe('plain text ending in Bearer tok-0123 and more');
    expect(hits).toBe(0);
    const end = await streamed([Buffer.from('the body ends inside Bearer tok-0123456789abcde')]);
    expect(end.out.toString()).toBe('the body ends inside Bearer tok-0123456789abcde');
  });

  it('hands a chunk without a pending prefix on as the same buffer (no copy)', async () => {
    const chunk = Buffer.from('x'.repeat(16384));
    const scrubber = createScrubber(secrets);
    const seen: Buffer[] = [];
    scrubber.on('data', (c: Buffer) => seen.push(c));
    scrubber.end(chunk);
    await new Promise((r) => scrubber.once('end', r));
    expect(seen).toHaveLength(1);
    expect(seen[0]!.buffer).toBe(chunk.buffer);
    expect(seen[0]!.byteOffset).toBe(chunk.byteOffset);
  });
});
