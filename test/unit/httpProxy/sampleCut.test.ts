// What the record keeps of text cut at a cap: an echo of the held credential straddling the cut
// leaves no beginning of itself behind (the watch recorder's per-event cap, body samples), whatever
// the offset of the cut and however the stream was split into chunks.
import { describe, expect, it } from 'vitest';
import { WatchRecorder } from '../../../gateway/engines/kubernetes/recorder.js';
import { cutScrubbed } from '../../../gateway/httpProxy/sampleCut.js';

const TOKEN = 'eyJhbGciOi.S3cr3t-T0ken_value';
const SECRETS = [`Bearer ${TOKEN}`, TOKEN];

describe('cutScrubbed', () => {
  it('leaves no beginning of an echo at the cut, at every offset', () => {
    const cap = 200;
    for (let k = cap - TOKEN.length - 2; k <= cap + 2; k++) {
      const out = cutScrubbed(`${'x'.repeat(k)}${TOKEN}${'x'.repeat(50)}`, cap, SECRETS);
      expect(out, `token at ${k}`).toMatch(/^[x*]{200}$/);
    }
  });

  it('an earlier cut (the core sample cap) counts as a cut; an uncut text keeps its tail', () => {
    expect(cutScrubbed(`abc ${TOKEN.slice(0, 6)}`, 1000, SECRETS, true)).toBe(`abc ${'*'.repeat(6)}`);
    expect(cutScrubbed(`abc ${TOKEN.slice(0, 6)}`, 1000, SECRETS, false)).toBe(`abc ${TOKEN.slice(0, 6)}`);
    expect(cutScrubbed(`a ${TOKEN} b`, 1000, SECRETS)).toBe(`a ${'*'.repeat(TOKEN.length)} b`);
    expect(cutScrubbed('plain text', 5, [])).toBe('plain');
  });
});

describe('WatchRecorder cut at its per-event cap', () => {
  const CAP = 16 * 1024;
  for (const k of [CAP - 20, CAP - 1, CAP, CAP - TOKEN.length]) {
    it(`an event with the token at ${k} keeps no part of it, however the stream is split`, () => {
      const line = `${'x'.repeat(k)}${TOKEN}${'x'.repeat(300)}\n`;
      const stream = Buffer.from(`{"type":"ADDED"}\n${line}`);
      for (const step of [stream.length, 7, 4096, 16 * 1024 + 3]) {
        const w = new WatchRecorder(SECRETS);
        for (let i = 0; i < stream.length; i += step) w.observe(stream.subarray(i, i + step));
        expect(w.events).toBe(2);
        expect(w.first[1], `step ${step}`).toMatch(/^[x*]+$/);
        expect(w.first[1]!.length).toBe(CAP);
      }
    });
  }
});
