// The verifier's line reader: a line split across many reads is joined once and read whole; a line
// longer than any the gateway writes is skipped to its newline, named, and the lines after it are
// still read.
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifyStream } from '../../../src/commands/audit/verify.js';

const key = generateKeyPairSync('ed25519').publicKey;
async function* reads(parts: (string | Buffer)[]) {
  for (const p of parts) yield typeof p === 'string' ? Buffer.from(p) : p;
}

describe('verifyStream', () => {
  it('names a line longer than the cap by its number, skips it unread, and reads the lines after it', async () => {
    const long = 'x'.repeat(300);
    const v = await verifyStream('-', reads(['{"a":1}\n', long.slice(0, 100), long.slice(100), '\n', 'not json\n']), key, [], 64);
    expect(v.problems.map((p) => [p.line, p.message])).toEqual(
      expect.arrayContaining([
        [2, 'the line is longer than 64 bytes, more than any line the gateway writes: it was altered'],
        [3, 'not a JSON object (the line was damaged or cut)'],
      ]),
    );
  });

  it('joins a line given one byte per read, a character split between reads included', async () => {
    const text = '{"type":"header","x":"\u00e9\ufffd"}\n';
    const v = await verifyStream('-', reads([...Buffer.from(text)].map((b) => Buffer.from([b]))), key, []);
    expect(v.problems[0]?.message).toMatch(/^malformed header line/);
    expect(v.problems.some((p) => /UTF-8|longer/.test(p.message))).toBe(false);
  });

  it('a last line without a newline, longer than the cap, is named too', async () => {
    const v = await verifyStream('-', reads(['{"a":1}\n', 'y'.repeat(100)]), key, [], 64);
    expect(v.problems).toContainEqual(expect.objectContaining({ line: 2, message: expect.stringContaining('longer than 64 bytes') }));
  });
});
