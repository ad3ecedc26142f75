// The backend relay in every chunking: passed messages leave as they came (a chunk in which nothing
// changes is emitted as the same Buffer), observed ones are reported whole, intercepted ones are
// held until complete and then kept, replaced or dropped — synchronously or after an awaited
// verdict — and injected bytes land only on message boundaries.
import { describe, expect, it } from 'vitest';
import { INTERCEPT, OBSERVE, PgBackendRelay, type RelayVerdict } from '../../../gateway/engines/postgres/codec/backendRelay.js';
import { build, chunkings } from './builder.js';

const T = build().int16(1).cstring('email').int32(16384).int16(3).int32(25).int16(-1).int32(-1).int16(0).typed('T');
const D1 = build().int16(1).int32(15).raw('ann@example.com').typed('D');
const D2 = build().int16(1).int32(-1).typed('D');
const C = build().cstring('SELECT 2').typed('C');
const Z = build().byte('I').typed('Z');
const E = build().byte('C').cstring('42601').byte('M').cstring('syntax error at or near "marker"').byte(0).typed('E');
const STREAM = Buffer.concat([T, D1, D2, C, E, Z]);
const MASKED = build().int16(1).int32(10).raw('[redacted]').typed('D');

function run(chunks: Buffer[], setup: (r: PgBackendRelay, seen: string[]) => void, verdict: (type: number, frame: Buffer) => RelayVerdict | Promise<RelayVerdict>) {
  const out: Buffer[] = [];
  const seen: string[] = [];
  const relay = new PgBackendRelay((type, buf, start, end) => {
    const frame = Buffer.from(buf.subarray(start, end));
    seen.push(`${String.fromCharCode(type)}:${frame.length}`);
    return verdict(type, frame);
  }, (b) => out.push(Buffer.from(b)));
  setup(relay, seen);
  return { relay, out, seen, push: () => chunks.forEach((c) => relay.push(c)) };
}

describe('PgBackendRelay', () => {
  it('passes a stream through unchanged, emitting an untouched chunk as the same Buffer', () => {
    const emitted: Buffer[] = [];
    const relay = new PgBackendRelay(() => undefined, (b) => emitted.push(b));
    relay.actions['C'.charCodeAt(0)] = OBSERVE;
    relay.actions['Z'.charCodeAt(0)] = OBSERVE;
    relay.push(STREAM);
    expect(emitted).toHaveLength(1);
    expect(emitted[0]).toBe(STREAM);
    expect(relay.rowBytes).toBe(D1.length + D2.length);
  });

  it('puts bytes injected by a handler during a scan after the message being read, in every chunking', () => {
    const NOTICE = build().byte('S').cstring('NOTICE').byte(0).typed('N');
    for (const { name, chunks } of chunkings(STREAM)) {
      const out: Buffer[] = [];
      const relay: PgBackendRelay = new PgBackendRelay((type) => {
        // A handler that has the gateway say something while the relay is inside a chunk.
        if (type === 0x43) relay.inject(NOTICE);
        return undefined;
      }, (b) => out.push(Buffer.from(b)));
      relay.actions['C'.charCodeAt(0)] = OBSERVE;
      for (const c of chunks) relay.push(c);
      expect(Buffer.concat(out), name).toEqual(Buffer.concat([T, D1, D2, C, NOTICE, E, Z]));
    }
  });

  it('observes, replaces and drops in every chunking', () => {
    for (const { name, chunks } of chunkings(STREAM)) {
      const r = run(chunks, (relay) => {
        relay.actions['T'.charCodeAt(0)] = OBSERVE;
        relay.actions['Z'.charCodeAt(0)] = OBSERVE;
        relay.actions['D'.charCodeAt(0)] = INTERCEPT;
        relay.actions['E'.charCodeAt(0)] = INTERCEPT;
      }, (type, frame) => (type === 0x44 ? (frame.equals(D1) ? MASKED : undefined) : type === 0x45 ? null : undefined));
      r.push();
      expect(Buffer.concat(r.out), name).toEqual(Buffer.concat([T, MASKED, D2, C, Z]));
      expect(r.seen, name).toEqual([`T:${T.length}`, `D:${D1.length}`, `D:${D2.length}`, `E:${E.length}`, `Z:${Z.length}`]);
      expect(r.relay.atBoundary, name).toBe(true);
    }
  });

  it('sends replacements that lie back to back in memory as one view, and joins the others', () => {
    const rows = Buffer.concat([D1, D1, D1, C]);
    // Replacements cut one after another from one slab, the second with a gap after it.
    const slab = Buffer.alloc(3 * MASKED.length + 1);
    const cut = [slab.subarray(0, MASKED.length), slab.subarray(MASKED.length, 2 * MASKED.length), slab.subarray(2 * MASKED.length + 1)];
    cut.forEach((b) => MASKED.copy(b));
    for (const { name, chunks } of chunkings(rows)) {
      const emitted: Buffer[] = [];
      let k = 0;
      const relay = new PgBackendRelay((type) => (type === 0x44 ? cut[k++ % 3] : undefined), (b) => emitted.push(Buffer.from(b)));
      relay.actions['D'.charCodeAt(0)] = INTERCEPT;
      k = 0;
      chunks.forEach((c) => relay.push(c));
      expect(Buffer.concat(emitted), name).toEqual(Buffer.concat([MASKED, MASKED, MASKED, C]));
    }
    const emitted: Buffer[] = [];
    let k = 0;
    const relay = new PgBackendRelay(() => cut[k++], (b) => emitted.push(b));
    relay.actions['D'.charCodeAt(0)] = INTERCEPT;
    relay.push(Buffer.concat([D1, D1]));
    expect(emitted).toHaveLength(1);
    expect(emitted[0]?.buffer).toBe(slab.buffer);
    expect(emitted[0]?.byteOffset).toBe(0);
    expect(emitted[0]?.length).toBe(2 * MASKED.length);
  });

  it('waits for an asynchronous verdict, keeping later messages in order', async () => {
    for (const { name, chunks } of chunkings(STREAM)) {
      let release!: (v: RelayVerdict) => void;
      let resumed = 0;
      const out: Buffer[] = [];
      const relay = new PgBackendRelay(
        (type) => (type === 0x54 ? new Promise<RelayVerdict>((r) => (release = r)) : undefined),
        (b) => out.push(Buffer.from(b)),
        () => resumed++,
      );
      relay.actions['T'.charCodeAt(0)] = INTERCEPT;
      for (const c of chunks) relay.push(c);
      expect(relay.paused, name).toBe(true);
      expect(Buffer.concat(out).length, name).toBe(0);
      release(null);
      await Promise.resolve();
      expect(relay.paused, name).toBe(false);
      expect(resumed, name).toBe(1);
      expect(Buffer.concat(out), name).toEqual(Buffer.concat([D1, D2, C, E, Z]));
    }
  });

  it('injects only at message boundaries', () => {
    for (const { name, chunks } of chunkings(STREAM)) {
      const out: Buffer[] = [];
      const relay = new PgBackendRelay(() => undefined, (b) => out.push(Buffer.from(b)));
      const notice = build().byte(0).typed('N');
      chunks.forEach((c, i) => {
        relay.push(c);
        if (i === 0) relay.inject(notice);
      });
      const all = Buffer.concat(out);
      const at = all.indexOf(notice);
      expect([0, T.length, T.length + D1.length, T.length + D1.length + D2.length, T.length + D1.length + D2.length + C.length, STREAM.length - Z.length, STREAM.length], name).toContain(at);
      expect(Buffer.concat([all.subarray(0, at), all.subarray(at + notice.length)]), name).toEqual(STREAM);
    }
  });
});
