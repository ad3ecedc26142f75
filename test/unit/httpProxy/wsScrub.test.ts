// The WebSocket scrubber of upgraded streams: frames built by an independent builder, the expected
// wire computed independently (payloads joined, every echo starred, written back), and the stream
// fed whole, split at every offset, one byte at a time and at random cuts: the bytes that come out
// must be exactly the expected wire, whatever the cuts. What it cannot read throws.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WsScanError, WsScrubber, type WsScanMode } from '../../../gateway/httpProxy/wsScrub.js';
import { feedCut, serverFrames } from '../../support/chunkFilter.js';

const TOKEN = 'eyJhbGciOi.S3cr3t-T0ken_value';
const SECRETS = [Buffer.from(`Bearer ${TOKEN}`), Buffer.from(TOKEN)];

function frame(opcode: number, payload: Buffer | string, opts: { fin?: boolean; rsv?: number; mask?: boolean; len64?: bigint } = {}): Buffer {
  const body = Buffer.from(payload);
  const fin = opts.fin ?? true;
  const head = [(fin ? 0x80 : 0) | (opts.rsv ?? 0) | opcode];
  const maskBit = opts.mask ? 0x80 : 0;
  const len = body.length;
  if (opts.len64 !== undefined || len >= 65536) {
    head.push(maskBit | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(opts.len64 ?? BigInt(len));
    head.push(...b);
  } else if (len >= 126) head.push(maskBit | 126, len >> 8, len & 0xff);
  else head.push(maskBit | len);
  return Buffer.concat([Buffer.from(head), opts.mask ? Buffer.from([1, 2, 3, 4]) : Buffer.alloc(0), body]);
}

/** The expected wire, by an independent route: read every frame, star echoes in the joined data text and in each control frame on its own, write back. */
function expected(wire: Buffer, mode: WsScanMode): Buffer {
  const out = Buffer.from(wire);
  const positions: number[] = [];
  let channelPending = false;
  for (const { opcode: op, payloadAt: p, length: len } of serverFrames(out)) {
    if (op === 1 || op === 2) channelPending = mode === 'channel';
    if (op >= 8) starIn(out, Array.from({ length: len }, (_, i) => p + i));
    else for (let i = p; i < p + len; i++) {
      if (channelPending) {
        channelPending = false;
        continue;
      }
      positions.push(i);
    }
  }
  starIn(out, positions);
  return out;
}

function starIn(out: Buffer, positions: number[]): void {
  const text = Buffer.from(positions.map((i) => out[i]!));
  for (const s of SECRETS) for (let i = text.indexOf(s); i >= 0; i = text.indexOf(s, i + s.length)) text.fill(0x2a, i, i + s.length);
  positions.forEach((pos, i) => (out[pos] = text[i]!));
}

function run(wire: Buffer, cuts: number[], mode: WsScanMode): { out: Buffer; hits: number } {
  let hits = 0;
  const out = feedCut(new WsScrubber(SECRETS, mode, (n) => (hits += n)), wire, cuts);
  return { out, hits };
}

const ch = (channel: number, text: string) => Buffer.concat([Buffer.from([channel]), Buffer.from(text)]);

const cases: { name: string; mode: WsScanMode; wire: Buffer; echoes: number }[] = [
  { name: 'an echo in one text frame', mode: 'raw', wire: frame(1, `token: ${TOKEN} end`), echoes: 1 },
  { name: 'an echo split across a fragmented message, a ping between', mode: 'raw', wire: Buffer.concat([frame(1, `a ${TOKEN.slice(0, 9)}`, { fin: false }), frame(9, 'ping'), frame(0, `${TOKEN.slice(9)} b`)]), echoes: 1 },
  { name: 'an echo split across two stdout channel messages', mode: 'channel', wire: Buffer.concat([frame(2, ch(1, '')), frame(2, ch(1, `x${TOKEN.slice(0, 5)}`)), frame(2, ch(1, `${TOKEN.slice(5)}\n`))]), echoes: 1 },
  { name: 'an echo split between stdout and stderr', mode: 'channel', wire: Buffer.concat([frame(2, ch(1, TOKEN.slice(0, 12))), frame(2, ch(2, TOKEN.slice(12)))]), echoes: 1 },
  { name: 'the channel byte itself in a fragmented message', mode: 'channel', wire: Buffer.concat([frame(2, Buffer.alloc(0), { fin: false }), frame(0, ch(1, TOKEN.slice(0, 3)), { fin: false }), frame(0, TOKEN.slice(3))]), echoes: 1 },
  { name: 'the Bearer form and the bare token in 16-bit lengths', mode: 'raw', wire: frame(2, `${'x'.repeat(300)}Bearer ${TOKEN}${'y'.repeat(200)}${TOKEN}`), echoes: 2 },
  { name: 'an echo in a 64-bit length frame', mode: 'channel', wire: frame(2, ch(1, `${'z'.repeat(70_000)}${TOKEN}`)), echoes: 1 },
  { name: 'an echo in a close reason', mode: 'raw', wire: Buffer.concat([frame(1, 'bye'), frame(8, Buffer.concat([Buffer.from([3, 232]), Buffer.from(TOKEN)]))]), echoes: 1 },
  { name: 'a prefix never completed', mode: 'channel', wire: Buffer.concat([frame(2, ch(1, TOKEN.slice(0, 20))), frame(2, ch(1, 'X'))]), echoes: 0 },
  { name: 'an echo that starts like the token twice', mode: 'raw', wire: frame(1, `eyJ${TOKEN}`), echoes: 1 },
];

describe('WsScrubber', () => {
  for (const c of cases) {
    it(`${c.name}: the same bytes whatever the cuts`, () => {
      const want = expected(c.wire, c.mode);
      expect(want.includes(TOKEN)).toBe(false);
      if (c.echoes > 0) expect(want.equals(c.wire)).toBe(false);
      expect(run(c.wire, [], c.mode)).toEqual({ out: want, hits: c.echoes });
      const step = c.wire.length > 2000 ? 997 : 1;
      for (let i = 0; i <= c.wire.length; i += step) expect(run(c.wire, [i], c.mode).out.equals(want), `cut at ${i}`).toBe(true);
      if (c.wire.length < 2000) expect(run(c.wire, Array.from({ length: c.wire.length }, (_, i) => i), c.mode).out.equals(want)).toBe(true);
    });
  }

  it('random frames and cuts: exactly the independently scrubbed wire', () => {
    const piece = fc.oneof(fc.constant(TOKEN), fc.constant(TOKEN.slice(0, 7)), fc.constant(`Bearer ${TOKEN}`), fc.string({ maxLength: 40 }));
    const message = fc.record({ parts: fc.array(fc.array(piece, { maxLength: 4 }), { minLength: 1, maxLength: 3 }), channel: fc.integer({ min: 1, max: 3 }), ping: fc.option(fc.constantFrom('p', TOKEN, `x${TOKEN.slice(0, 4)}`)) });
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 6 }), fc.constantFrom<WsScanMode>('raw', 'channel'), fc.array(fc.nat(), { maxLength: 8 }), (messages, mode, rawCuts) => {
        const frames: Buffer[] = [];
        for (const m of messages) {
          m.parts.forEach((p, i) => {
            const data = Buffer.from(p.join(''));
            const payload = i === 0 && mode === 'channel' ? Buffer.concat([Buffer.from([m.channel]), data]) : data;
            frames.push(frame(i === 0 ? 2 : 0, payload, { fin: i === m.parts.length - 1 }));
            if (m.ping !== null) frames.push(frame(9, m.ping));
          });
        }
        const wire = Buffer.concat(frames);
        const cuts = [...new Set(rawCuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        expect(run(wire, cuts, mode).out.equals(expected(wire, mode))).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('keeps frames flowing chunk for chunk when nothing could begin an echo', () => {
    const s = new WsScrubber(SECRETS, 'channel');
    const a = frame(2, ch(1, 'hello world\n'));
    expect(s.push(a)).toBe(a);
    const b = frame(2, ch(1, 'e'));
    expect(s.push(b)?.length).toBe(b.length - 1); // "e" may begin the token: held
    expect(s.push(frame(2, ch(1, 'x')))?.toString('latin1')).toContain('e');
  });

  const refused: [string, Buffer][] = [
    ['RSV1 (permessage-deflate)', frame(1, 'x', { rsv: 0x40 })],
    ['a masked server frame', frame(1, 'x', { mask: true })],
    ['an unknown opcode', frame(3, 'x')],
    ['an unknown control opcode', frame(0xb, 'x')],
    ['a fragmented control frame', frame(9, 'x', { fin: false })],
    ['an oversized control frame', frame(8, 'x'.repeat(126))],
    ['a continuation outside a message', frame(0, 'x')],
    ['a new message inside a fragmented one', Buffer.concat([frame(1, 'a', { fin: false }), frame(1, 'b')])],
    ['a length past 2^53', frame(2, 'x', { len64: 1n << 60n })],
  ];
  for (const [name, wire] of refused) {
    it(`refuses ${name}`, () => {
      const s = new WsScrubber(SECRETS, 'raw');
      expect(() => {
        for (let i = 0; i < wire.length; i++) s.push(wire.subarray(i, i + 1));
      }).toThrow(WsScanError);
    });
  }

  it('a control frame cut short by the end of the stream is scanned as far as it came', () => {
    const s = new WsScrubber(SECRETS, 'raw');
    const wire = frame(8, Buffer.concat([Buffer.from([3, 232]), Buffer.from(`${TOKEN} and more`)])).subarray(0, 4 + TOKEN.length + 2);
    const out = Buffer.concat([s.push(Buffer.from(wire)) ?? Buffer.alloc(0), s.end() ?? Buffer.alloc(0)]);
    expect(out).toHaveLength(wire.length);
    expect(out.includes(TOKEN)).toBe(false);
  });

  it('refuses to hold an unbounded run of empty frames behind a possible echo', () => {
    const s = new WsScrubber(SECRETS, 'raw');
    s.push(frame(1, TOKEN.slice(0, 10), { fin: false }));
    const empty = frame(9, '');
    expect(() => {
      for (let i = 0; i < 200_000; i++) s.push(empty);
    }).toThrow(WsScanError);
  });
});
