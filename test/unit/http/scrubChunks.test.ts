// The streamed credential scrubber against the whole-body one: any chunking of any body gives
// the same bytes as scrubbing the body at once, including bodies that end in, or are cut inside,
// the beginning of a secret that never completes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { secretValues } from '../../../gateway/httpProxy/credentialEcho.js';
import { chunkScrubber, scrubInPlace } from '../../../gateway/httpProxy/scrub.js';

const secrets = ['Bearer tok-0123456789abcdef', 'tok-0123456789abcdef'].map((s) => Buffer.from(s));

/** The chunks through the filter the proxy core calls inline, joined. */
function streamed(chunks: Buffer[], with_: readonly Buffer[] = secrets): { out: Buffer; hits: number } {
  let hits = 0;
  const filter = chunkScrubber(with_, (n) => (hits += n));
  const parts: Buffer[] = [];
  for (const c of chunks) {
    const o = filter.push(c);
    if (o !== undefined) parts.push(o);
  }
  const rest = filter.end();
  if (rest !== undefined) parts.push(rest);
  return { out: Buffer.concat(parts), hits };
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
  it('gives the whole-body result for any body and any chunking', () => {
    const piece = fc.oneof(
      fc.constantFrom('Bearer tok-0123456789abcdef', 'tok-0123456789abcdef', 'Bearer tok-0123', 'tok-', 'Bea', 'tok-0123456789abcde'),
      fc.string({ maxLength: 12 }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 8 }), (pieces, offsets) => {
        const body = Buffer.from(pieces.join(''));
        const whole = Buffer.from(body);
        const expectedHits = scrubInPlace(whole, secrets);
        const { out, hits } = streamed(cut(body, offsets));
        expect(out.equals(whole)).toBe(true);
        expect(hits).toBe(expectedHits);
      }),
      { numRuns: 500 },
    );
  });

  it('passes on a tail that only begins a secret, byte for byte', () => {
    const { out, hits } = streamed([Buffer.from('plain text ending in Bearer tok-01'), Buffer.from('23 and more')]);
    expect(out.toString()).toBe('plain text ending in Bearer tok-0123 and more');
    expect(hits).toBe(0);
    const end = streamed([Buffer.from('the body ends inside Bearer tok-0123456789abcde')]);
    expect(end.out.toString()).toBe('the body ends inside Bearer tok-0123456789abcde');
  });

  it('hands a chunk without a pending prefix on as the same buffer (no copy)', () => {
    const chunk = Buffer.from('x'.repeat(16384));
    const filter = chunkScrubber(secrets);
    const out = filter.push(chunk);
    expect(out).toBe(chunk);
    expect(filter.end()).toBeUndefined();
  });

  it('overwrites a held header value and its token across every chunk boundary, keeping the length', () => {
    const secret = 'Bearer s3cr3t-token-value';
    const held = secretValues({ Authorization: secret }).map((v) => Buffer.from(v));
    const text = `head ${secret} middle s3cr3t-token-value tail`;
    for (let size = 1; size <= text.length; size++) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < text.length; i += size) chunks.push(Buffer.from(text.slice(i, i + size)));
      const out = streamed(chunks, held).out.toString();
      expect(out).toBe(`head ${'*'.repeat(secret.length)} middle ${'*'.repeat(18)} tail`);
    }
  });
});
