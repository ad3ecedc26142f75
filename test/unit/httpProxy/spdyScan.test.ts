// The scanner of SPDY/3.1 tunnelled in WebSocket (kubectl port-forward): SPDY frames and header
// blocks built by an independent builder (Node's streaming zlib with the SPDY/3 dictionary, one
// context for all blocks), cut into WebSocket messages anywhere, the expected wire computed
// independently (each stream's data joined, every echo starred, written back) and the stream fed
// whole, split at every offset, one byte at a time and at random cuts. What it cannot read, or a
// header block that echoes the token, throws; garbage throws only the scan errors.
import { constants, createDeflate, deflateSync, type Deflate } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { adler32, HeaderBlockInflater, parseHeaderBlock, SPDY3_DICTIONARY, SpdyScanError } from '../../../gateway/httpProxy/spdy/headerBlock.js';
import { SpdyScan } from '../../../gateway/httpProxy/spdy/scan.js';
import { WsScanError, WsScrubber } from '../../../gateway/httpProxy/wsScrub.js';
import { feedCut, serverFrames } from '../../support/chunkFilter.js';

const TOKEN = 'eyJhbGciOi.S3cr3t-T0ken_value';
const SECRETS = [Buffer.from(`Bearer ${TOKEN}`), Buffer.from(TOKEN)];

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

function dataFrame(stream: number, text: string | Buffer, fin = false): Buffer {
  const body = Buffer.from(text);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(stream, 0);
  head.writeUInt32BE(body.length, 4);
  head[4] = fin ? 1 : 0;
  return Buffer.concat([head, body]);
}

function controlFrame(type: number, body: Buffer, opts: { version?: number; flags?: number } = {}): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16BE(0x8000 | (opts.version ?? 3), 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt32BE(body.length, 4);
  head[4] = opts.flags ?? 0;
  return Buffer.concat([head, body]);
}

function nameValues(pairs: [string, string][]): Buffer {
  return Buffer.concat([u32(pairs.length), ...pairs.flatMap(([n, v]) => [u32(n.length), Buffer.from(n), u32(v.length), Buffer.from(v)])]);
}

/** A sender's header compressor: one zlib context for every block, sync-flushed at each block's end. */
function compressor(level = constants.Z_DEFAULT_COMPRESSION): (pairs: [string, string][] | Buffer) => Promise<Buffer> {
  const z: Deflate = createDeflate({ dictionary: SPDY3_DICTIONARY, level });
  return (pairs) =>
    new Promise((resolve) => {
      const out: Buffer[] = [];
      const onData = (d: Buffer) => out.push(d);
      z.on('data', onData);
      z.write(Buffer.isBuffer(pairs) ? pairs : nameValues(pairs));
      z.flush(constants.Z_SYNC_FLUSH, () => {
        z.off('data', onData);
        resolve(Buffer.concat(out));
      });
    });
}

const synReply = (stream: number, block: Buffer, flags = 0) => controlFrame(2, Buffer.concat([u32(stream), block]), { flags });

/** Server WebSocket frames (binary, unmasked) carrying `spdy` cut at `cuts`. */
function tunnel(spdy: Buffer, cuts: number[] = []): Buffer {
  const frames: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts.filter((x) => x > 0 && x < spdy.length), spdy.length]) {
    const p = spdy.subarray(from, c);
    const len = p.length;
    const head = len < 126 ? Buffer.from([0x82, len]) : len < 65536 ? Buffer.from([0x82, 126, len >> 8, len & 0xff]) : Buffer.concat([Buffer.from([0x82, 127]), Buffer.from(BigInt(len).toString(16).padStart(16, '0'), 'hex')]);
    frames.push(head, p);
    from = c;
  }
  return Buffer.concat(frames);
}

/** The expected wire, independently: map each SPDY data byte to its wire offset, star echoes per stream, write back. */
function expected(wire: Buffer): Buffer {
  const out = Buffer.from(wire);
  const spdyAt: number[] = [];
  for (const f of serverFrames(out)) for (let i = f.payloadAt; i < f.payloadAt + f.length; i++) spdyAt.push(i);
  const byte = (i: number) => out[spdyAt[i]!]!;
  const streams = new Map<number, number[]>();
  let i = 0;
  while (i + 8 <= spdyAt.length) {
    const h = Buffer.from(Array.from({ length: 8 }, (_, k) => byte(i + k)));
    const len = h.readUIntBE(5, 3);
    if ((h[0]! & 0x80) === 0) {
      const id = h.readUInt32BE(0);
      const list = streams.get(id) ?? [];
      for (let k = 0; k < len; k++) list.push(spdyAt[i + 8 + k]!);
      streams.set(id, list);
    }
    i += 8 + len;
  }
  for (const positions of streams.values()) {
    const text = Buffer.from(positions.map((pos) => out[pos]!));
    for (const s of SECRETS) for (let k = text.indexOf(s); k >= 0; k = text.indexOf(s, k + s.length)) text.fill(0x2a, k, k + s.length);
    positions.forEach((pos, k) => (out[pos] = text[k]!));
  }
  return out;
}

function run(wire: Buffer, cuts: number[]): { out: Buffer; hits: number } {
  let hits = 0;
  const onHit = (n: number) => (hits += n);
  const out = feedCut(new WsScrubber(SECRETS, 'spdy', onHit, new SpdyScan(SECRETS, onHit)), wire, cuts);
  return { out, hits };
}

function feedAll(wire: Buffer, step = 1): void {
  const s = new WsScrubber(SECRETS, 'spdy', undefined, new SpdyScan(SECRETS));
  for (let i = 0; i < wire.length; i += step) s.push(Buffer.from(wire.subarray(i, i + step)));
}

describe('SPDY/3 header blocks', () => {
  it('the dictionary is SPDY/3\'s: 1423 bytes, id 0xe3c6a7c2 (kubectl checks it end to end)', () => {
    expect(SPDY3_DICTIONARY).toHaveLength(1423);
    expect(adler32(SPDY3_DICTIONARY)).toBe(0xe3c6a7c2);
  });

  it('inflates every block of one context, back-references into earlier blocks and the dictionary included', async () => {
    const compress = compressor();
    const pairs: [string, string][] = [['streamtype', 'data'], ['port', '8080'], ['requestid', '0'], ['content-type', 'text/plain']];
    const blocks = [await compress(pairs), await compress(pairs), await compress([['status', '200 OK']])];
    // The second block is mostly references into the first: it is far smaller.
    expect(blocks[1]!.length).toBeLessThan(blocks[0]!.length / 2);
    const inflater = new HeaderBlockInflater();
    expect(parseHeaderBlock(inflater.inflate(blocks[0]!))).toEqual(pairs);
    expect(parseHeaderBlock(inflater.inflate(blocks[1]!))).toEqual(pairs);
    expect(parseHeaderBlock(inflater.inflate(blocks[2]!))).toEqual([['status', '200 OK']]);
  });

  it('refuses a block not ended by a sync flush, another dictionary, and malformed name/value bytes', async () => {
    expect(() => new HeaderBlockInflater().inflate(deflateSync(nameValues([['a', 'b']]), { dictionary: SPDY3_DICTIONARY }))).toThrow(SpdyScanError);
    expect(() => new HeaderBlockInflater().inflate(deflateSync(nameValues([['a', 'b']]), { dictionary: Buffer.from('another dictionary') }))).toThrow(/dictionary/);
    const block = await compressor()([['a', 'b']]);
    expect(() => new HeaderBlockInflater().inflate(block.subarray(0, block.length - 5))).toThrow(SpdyScanError);
    for (const raw of [Buffer.alloc(2), Buffer.concat([u32(1), u32(5), Buffer.from('ab')]), Buffer.concat([nameValues([['a', 'b']]), Buffer.from('x')]), u32(1000)]) expect(() => parseHeaderBlock(raw)).toThrow(SpdyScanError);
  });
});

describe('SpdyScan in a WebSocket tunnel', () => {
  const cases: { name: string; spdy: () => Promise<Buffer>; echoes: number }[] = [
    { name: 'an echo in one data frame', spdy: async () => dataFrame(1, `token: ${TOKEN}\n`), echoes: 1 },
    {
      name: 'an echo split across two data frames of one stream, another stream and a SYN_REPLY between',
      spdy: async () => {
        const compress = compressor();
        return Buffer.concat([synReply(1, await compress([])), dataFrame(1, `a ${TOKEN.slice(0, 9)}`), dataFrame(3, 'other stream'), synReply(3, await compress([['x', 'y']])), dataFrame(1, `${TOKEN.slice(9)} b`)]);
      },
      echoes: 1,
    },
    { name: 'echoes in two streams, the Bearer form in one', spdy: async () => Buffer.concat([dataFrame(1, `Bearer ${TOKEN}`), dataFrame(3, `x${TOKEN}`, true)]), echoes: 2 },
    { name: 'halves on two streams are not one echo', spdy: async () => Buffer.concat([dataFrame(1, TOKEN.slice(0, 12)), dataFrame(3, TOKEN.slice(12))]), echoes: 0 },
    { name: 'a prefix that its stream\'s FIN releases', spdy: async () => Buffer.concat([dataFrame(5, TOKEN.slice(0, 20), true), dataFrame(7, 'next')]), echoes: 0 },
    { name: 'an echo in a 64-bit WebSocket length', spdy: async () => dataFrame(1, `${'z'.repeat(70_000)}${TOKEN}`), echoes: 1 },
  ];
  for (const c of cases) {
    it(`${c.name}: the same bytes whatever the cuts`, async () => {
      const spdy = await c.spdy();
      for (const msgCuts of [[], [3], [9, 10, 11], Array.from({ length: 20 }, (_, i) => i * 7 + 1)]) {
        const wire = tunnel(spdy, msgCuts);
        const want = expected(wire);
        expect(want.includes(TOKEN)).toBe(false);
        expect(run(wire, [])).toEqual({ out: want, hits: c.echoes });
        const step = wire.length > 2000 ? 997 : 1;
        for (let i = 0; i <= wire.length; i += step) expect(run(wire, [i]).out.equals(want), `cut at ${i}`).toBe(true);
        if (wire.length < 2000) expect(run(wire, Array.from({ length: wire.length }, (_, i) => i)).out.equals(want)).toBe(true);
      }
    });
  }

  it('random streams, frames, message cuts and TCP cuts: exactly the independently scrubbed wire', () => {
    const piece = fc.oneof(fc.constant(TOKEN), fc.constant(TOKEN.slice(0, 7)), fc.constant(TOKEN.slice(7)), fc.constant(`Bearer ${TOKEN}`), fc.string({ maxLength: 30 }));
    const frame = fc.record({ stream: fc.constantFrom(1, 3, 5), text: fc.array(piece, { maxLength: 3 }), fin: fc.boolean() });
    fc.assert(
      fc.property(fc.array(frame, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 6 }), (frames, msgCuts, rawCuts) => {
        // FIN only on a stream's last frame: data after a stream's end is refused (tested below).
        const last = new Map(frames.map((f, i) => [f.stream, i]));
        const spdy = Buffer.concat(frames.map((f, i) => dataFrame(f.stream, f.text.join(''), f.fin && last.get(f.stream) === i)));
        const wire = tunnel(spdy, [...new Set(msgCuts.map((c) => c % (spdy.length + 1)))].sort((a, b) => a - b));
        const cuts = [...new Set(rawCuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        expect(run(wire, cuts).out.equals(expected(wire))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('a stream holding a possible echo holds the wire behind it until its FIN decides', () => {
    const s = new WsScrubber(SECRETS, 'spdy', undefined, new SpdyScan(SECRETS));
    const held = tunnel(dataFrame(1, `x${TOKEN.slice(0, 5)}`));
    expect(s.push(Buffer.from(held))?.length).toBe(held.length - 5);
    expect(s.push(tunnel(dataFrame(3, 'other')))).toBeUndefined();
    const fin = tunnel(dataFrame(1, '', true));
    expect(s.push(Buffer.from(fin))?.length).toBe(5 + tunnel(dataFrame(3, 'other')).length + fin.length);
  });

  const refused: [string, () => Promise<Buffer>][] = [
    ['a SPDY/2 control frame', async () => controlFrame(2, u32(1), { version: 2 })],
    ['an unknown control frame type', async () => controlFrame(10, Buffer.alloc(8))],
    ['a PING of the wrong length', async () => controlFrame(6, Buffer.alloc(5))],
    ['a SETTINGS frame no entry count gives', async () => controlFrame(4, Buffer.alloc(7))],
    ['an oversized control frame', async () => controlFrame(8, Buffer.alloc(70_000))],
    ['a data frame on stream 0', async () => dataFrame(0, 'x')],
    ['data on a stream after its FIN', async () => Buffer.concat([dataFrame(1, TOKEN.slice(0, 9), true), dataFrame(1, TOKEN.slice(9))])],
    ['data on an early stream after many ended', async () => Buffer.concat([...Array.from({ length: 50 }, (_, i) => dataFrame(2 * i + 1, 'x', true)), dataFrame(7, 'late')])],
    ['data on a stream after its RST_STREAM', async () => Buffer.concat([dataFrame(1, TOKEN.slice(0, 9)), controlFrame(3, Buffer.concat([u32(1), u32(5)])), dataFrame(1, TOKEN.slice(9))])],
    ['a header block echoing the token', async () => synReply(1, await compressor()([['x-echo', `Bearer ${TOKEN}`]]))],
    ['a header block storing the token uncompressed', async () => synReply(1, await compressor(0)([['x-echo', TOKEN]]))],
    ['a header block that is not a name/value block', async () => synReply(1, await compressor()(Buffer.concat([nameValues([['a', 'b']]), Buffer.from('junk')])))],
  ];
  for (const [name, build] of refused) {
    it(`ends the tunnel on ${name}`, async () => {
      const wire = tunnel(await build());
      expect(() => feedAll(wire)).toThrow(SpdyScanError);
      expect(() => feedAll(wire, wire.length)).toThrow(SpdyScanError);
    });
  }

  it('keeps serving streams that end out of order', () => {
    const ids = [3, 1, 7, 5, 9];
    const spdy = Buffer.concat([...ids.map((id) => dataFrame(id, 'a')), ...ids.map((id) => dataFrame(id, 'b', true)), dataFrame(11, 'c', true)]);
    expect(() => feedAll(tunnel(spdy))).not.toThrow();
  });

  it('refuses a text message in the tunnel', () => {
    const text = Buffer.concat([Buffer.from([0x81, 3]), Buffer.from('abc')]);
    expect(() => feedAll(text)).toThrow(WsScanError);
  });

  it('drops, at the end, a control frame cut short instead of releasing it unread', async () => {
    const s = new WsScrubber(SECRETS, 'spdy', undefined, new SpdyScan(SECRETS));
    const frame = synReply(1, await compressor(0)([['x', TOKEN]]));
    // Only the WebSocket frame's head goes out; the SPDY frame waits to be read whole, and never is.
    expect(s.push(tunnel(frame.subarray(0, frame.length - 4)))).toHaveLength(2);
    expect(s.end()).toBeUndefined();
  });

  it('garbage in the tunnel raises only the scan errors', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 5 }), (messages) => {
        const s = new WsScrubber(SECRETS, 'spdy', undefined, new SpdyScan(SECRETS));
        try {
          for (const m of messages) s.push(tunnel(Buffer.from(m)));
          s.end();
        } catch (err) {
          expect(err instanceof SpdyScanError || err instanceof WsScanError, String(err)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });
});
