// Reading WebSocket frames to record an exec stream: built with an independent frame builder,
// fed whole, split at every offset and one byte at a time (identical messages), masked client
// frames undone, fragments joined, control frames skipped, and what cannot be read (compression,
// oversized frames) stopping the reading without throwing. The remotecommand channels on top.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SessionAudit } from '../../../gateway/audit/contract.js';
import { ExecRecorder, WatchRecorder } from '../../../gateway/engines/kubernetes/recorder.js';
import { WsFrameReader, type WsMessage } from '../../../gateway/engines/kubernetes/wsFrames.js';

function frame(opcode: number, payload: Buffer, opts: { fin?: boolean; mask?: Buffer; rsv?: number } = {}): Buffer {
  const fin = opts.fin ?? true;
  const head = [(fin ? 0x80 : 0) | (opts.rsv ?? 0) | opcode];
  const maskBit = opts.mask ? 0x80 : 0;
  const len = payload.length;
  const ext: number[] = [];
  if (len < 126) head.push(maskBit | len);
  else if (len < 65536) head.push(maskBit | 126, len >> 8, len & 0xff);
  else {
    head.push(maskBit | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(len));
    ext.push(...b);
  }
  let body = payload;
  if (opts.mask) body = Buffer.from(payload.map((x, i) => x ^ (opts.mask as Buffer)[i % 4]!));
  return Buffer.concat([Buffer.from([...head, ...ext]), opts.mask ?? Buffer.alloc(0), body]);
}

const bin = (channel: number, text: string) => Buffer.concat([Buffer.from([channel]), Buffer.from(text)]);

/** Messages as comparable strings (vitest compares large Buffers element by element, slowly). */
const digest = (ms: WsMessage[]) => ms.map((m) => `${m.binary ? 'b' : 't'}:${createHash('sha256').update(m.payload).digest('hex')}`);

function readAll(chunks: Buffer[]): WsMessage[] {
  const r = new WsFrameReader();
  return chunks.flatMap((c) => r.push(c));
}

describe('WsFrameReader', () => {
  const stream = Buffer.concat([
    frame(2, bin(1, 'hello')),
    frame(9, Buffer.from('ping')),
    frame(2, bin(2, 'part one '), { fin: false, mask: Buffer.from([1, 2, 3, 4]) }),
    frame(0, Buffer.from('part two'), { mask: Buffer.from([9, 8, 7, 6]) }),
    frame(2, Buffer.alloc(300, 0x61)),
    frame(2, Buffer.alloc(70_000, 0x62), { mask: Buffer.from([5, 5, 5, 5]) }),
    frame(8, Buffer.from([3, 232])),
  ]);
  const expected = readAll([stream]);

  it('reads messages whole: unmasked, fragments joined, control frames skipped, every length form', () => {
    expect(expected.map((m) => [m.binary, m.payload.length])).toEqual([[true, 6], [true, 18], [true, 300], [true, 70_000]]);
    expect(expected[0]?.payload.toString('latin1')).toBe('\x01hello');
    expect(expected[1]?.payload.toString('latin1')).toBe('\x02part one part two');
    expect(expected[3]?.payload.every((b) => b === 0x62)).toBe(true);
  });

  it('gives identical messages split at every offset of the first frames and one byte at a time', () => {
    const small = stream.subarray(0, 200);
    const whole = readAll([small]);
    for (let i = 1; i < small.length; i++) expect(readAll([small.subarray(0, i), small.subarray(i)]), `split at ${i}`).toEqual(whole);
    expect(readAll([...small].map((b) => Buffer.from([b])))).toEqual(whole);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 6 }), (cuts) => {
        const points = [0, ...[...new Set(cuts)].sort((a, b) => a - b), stream.length];
        const chunks = points.slice(1).map((p, i) => stream.subarray(points[i], p));
        expect(digest(readAll(chunks))).toEqual(digest(expected));
      }),
      { numRuns: 50 },
    );
  });

  it('stops reading, without throwing, at compression or an oversized frame', () => {
    const r = new WsFrameReader(1024);
    expect(r.push(frame(2, Buffer.from('x'), { rsv: 0x40 }))).toEqual([]);
    expect(r.failed).toMatch(/extension/);
    expect(r.push(frame(2, bin(1, 'later')))).toEqual([]);
    const big = new WsFrameReader(1024);
    expect(big.push(frame(2, Buffer.alloc(2000)).subarray(0, 10))).toEqual([]);
    expect(big.failed).toMatch(/longer than 1024/);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (garbage) => void new WsFrameReader(4096).push(Buffer.from(garbage))));
  });
});

function fakeAudit(): { audit: SessionAudit; events: [string, Record<string, unknown>][] } {
  const events: [string, Record<string, unknown>][] = [];
  const audit = { onEvent: (kind: string, data: Record<string, unknown>) => events.push([kind, data]) } as unknown as SessionAudit;
  return { audit, events };
}

describe('ExecRecorder', () => {
  it('records stdout, stderr, stdin and resizes by channel, and reads the exit code from the status channel', () => {
    const { audit, events } = fakeAudit();
    const rec = new ExecRecorder(audit, { left: 1000, truncated: false }, 7, false);
    const mask = Buffer.from([1, 2, 3, 4]);
    rec.fromClient(frame(2, bin(0, 'echo hi\n'), { mask }));
    rec.fromClient(frame(2, bin(4, '{"Width":120,"Height":40}'), { mask }));
    rec.toClient(frame(2, bin(1, 'hi\n')));
    rec.toClient(frame(2, bin(2, 'oops\n')));
    rec.toClient(frame(2, bin(3, JSON.stringify({ status: 'Failure', reason: 'NonZeroExitCode', message: 'command terminated with non-zero exit code: exit status 3', details: { causes: [{ reason: 'ExitCode', message: '3' }] } }))));
    expect(events.map(([k, d]) => [k, d.data ?? `${String(d.cols)}x${String(d.rows)}`, d.stream])).toEqual([
      ['k8s.input', 'echo hi\n', undefined],
      ['k8s.resize', '120x40', undefined],
      ['k8s.output', 'hi\n', undefined],
      ['k8s.output', 'oops\n', 'stderr'],
    ]);
    expect(events.every(([, d]) => d.action === 7)).toBe(true);
    expect(rec.exit).toBe('3');
  });

  it('keeps terminal bytes up to the cap, then says so once', () => {
    const { audit, events } = fakeAudit();
    const rec = new ExecRecorder(audit, { left: 4, truncated: false }, 1, false);
    rec.toClient(frame(2, bin(1, 'abcdef')));
    rec.toClient(frame(2, bin(1, 'ghi')));
    rec.toClient(frame(2, bin(1, 'jkl')));
    expect(events.map(([k, d]) => [k, d.data])).toEqual([['k8s.output', 'abcd'], ['k8s.truncated', undefined]]);
  });
});

describe('WatchRecorder', () => {
  it('counts events across chunk boundaries and keeps the first five', () => {
    const w = new WatchRecorder();
    const text = Array.from({ length: 8 }, (_, i) => JSON.stringify({ type: 'ADDED', object: { n: i } })).join('\n') + '\n';
    for (let i = 0; i < text.length; i += 7) w.observe(Buffer.from(text.slice(i, i + 7)));
    expect(w.events).toBe(8);
    expect(w.first).toHaveLength(5);
    expect(JSON.parse(w.first[4] as string)).toEqual({ type: 'ADDED', object: { n: 4 } });
  });
});
