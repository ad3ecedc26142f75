// Framing rules a gateway adds to a driver's parser: zero copy for whole frames, length caps
// enforced from the header alone (before any body is buffered), refusal of types a client may
// not send, and the backend relay's boundary tracking without buffering.
import { describe, expect, it } from 'vitest';
import { PgProtocolError } from '../../../gateway/engines/postgres/codec/wire.js';
import {
  DEFAULT_CLIENT_LIMITS,
  CLIENT_SMALL_MAX_LENGTH,
  STARTUP_MAX_LENGTH,
  createBackendFramer,
  createFrontendFramer,
} from '../../../gateway/engines/postgres/codec/framer.js';
import { OBSERVE, PgBackendRelay, type RelayHandler } from '../../../gateway/engines/postgres/codec/backendRelay.js';

/** A relay that observes `types` and drops its output (what the old scanner did). */
function observer(types: string, onBody: (type: number, body: Buffer) => void, maxLength?: number, collectCap?: number): PgBackendRelay {
  const handler: RelayHandler = (t, b, start, end) => void onBody(t, b.subarray(start + 5, end));
  const r = new PgBackendRelay(handler, () => undefined, undefined, maxLength, collectCap);
  for (const t of types) r.actions[t.charCodeAt(0)] = OBSERVE;
  return r;
}
import { build } from './builder.js';

function header(type: string, len: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = type.charCodeAt(0);
  b.writeInt32BE(len, 1);
  return b;
}

function typedFramer() {
  const f = createFrontendFramer();
  f.expectTyped();
  return f;
}

function errorOf(fn: () => unknown): PgProtocolError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PgProtocolError) return err;
    throw err;
  }
  throw new Error('expected a PgProtocolError');
}

describe('PgFramer', () => {
  it('hands out frames lying whole in a chunk as offsets into that chunk', () => {
    const chunk = Buffer.concat([build().cstring('select 1').typed('Q'), build().typed('S')]);
    const f = typedFramer();
    f.push(chunk);
    expect(f.next()).toBe(true);
    expect(f.buffer).toBe(chunk);
    expect([f.type, f.start, f.end, f.bodyStart]).toEqual([0x51, 0, 14, 5]);
    expect(f.next()).toBe(true);
    expect(f.buffer).toBe(chunk);
    expect([f.type, f.start, f.end]).toEqual([0x53, 14, 19]);
    expect(f.next()).toBe(false);
    expect(f.buffered).toBe(0);
  });

  it('assembles a frame split across chunks only when its last byte arrives', () => {
    const frame = build().cstring('select 42').typed('Q');
    const f = typedFramer();
    f.push(frame.subarray(0, 3));
    expect(f.next()).toBe(false);
    f.push(frame.subarray(3, 9));
    expect(f.next()).toBe(false);
    expect(f.buffered).toBe(9);
    f.push(frame.subarray(9));
    expect(f.next()).toBe(true);
    expect(f.frame).toEqual(frame);
  });

  it('takes every frame in order from chunks pushed while no frame was taken, however they split', () => {
    const frames = Array.from({ length: 40 }, (_, i) => build().cstring(`select ${i} /* ${'x'.repeat(i * 7)} */`).typed('Q'));
    const all = Buffer.concat(frames);
    for (const size of [1, 3, 17, 64, 1000, all.length]) {
      const f = typedFramer();
      // A frame taken, then the rest pushed without a next() between: frames pile up in the stash.
      f.push(all.subarray(0, frames[0]!.length + 2));
      expect(f.next()).toBe(true);
      for (let at = frames[0]!.length + 2; at < all.length; at += size) f.push(all.subarray(at, Math.min(at + size, all.length)));
      const got = [Buffer.from(f.frame)];
      while (f.next()) got.push(Buffer.from(f.frame));
      expect(got, `chunks of ${size} bytes`).toEqual(frames);
      expect(f.buffered).toBe(0);
    }
  });

  it('rejects a declared length above the cap from the header alone', () => {
    const f = typedFramer();
    f.push(header('Q', DEFAULT_CLIENT_LIMITS.messageBytes + 1));
    // Over a configured cap: program_limit_exceeded, naming the setting.
    expect(errorOf(() => f.next())).toMatchObject({ code: 'bad-length', sqlstate: '54000', message: expect.stringContaining('(limits.messageBytes)') });

    const small = typedFramer();
    small.push(header('S', CLIENT_SMALL_MAX_LENGTH + 1));
    expect(errorOf(() => small.next()).code).toBe('bad-length');

    // The same check when the header itself arrives split.
    const split = typedFramer();
    const h = header('d', 0x7fffffff);
    split.push(h.subarray(0, 2));
    expect(split.next()).toBe(false);
    split.push(h.subarray(2));
    expect(errorOf(() => split.next()).code).toBe('bad-length');
  });

  it('applies the configured caps: messageBytes to Query/Parse/CopyData/CopyFail, bindBytes to Bind/FunctionCall', () => {
    const limits = { messageBytes: 2048, bindBytes: 8192 };
    const framer = () => {
      const f = createFrontendFramer(limits);
      f.expectTyped();
      return f;
    };
    for (const t of ['Q', 'P', 'd', 'f']) {
      const at = framer();
      at.push(header(t, 2048));
      expect(at.next()).toBe(false); // at the cap: waits for the body
      const over = framer();
      over.push(header(t, 2049));
      expect(errorOf(() => over.next())).toMatchObject({ sqlstate: '54000', message: expect.stringContaining('cap of 2048 bytes (limits.messageBytes)') });
    }
    for (const t of ['B', 'F']) {
      const at = framer();
      at.push(header(t, 8192));
      expect(at.next()).toBe(false);
      const over = framer();
      over.push(header(t, 8193));
      expect(errorOf(() => over.next())).toMatchObject({ sqlstate: '54000', message: expect.stringContaining('(limits.bindBytes)') });
    }
    // A length no PostgreSQL message can have (above 1 GiB) is a protocol violation, whatever the cap.
    const absurd = framer();
    absurd.push(header('Q', 0x7fffffff));
    expect(errorOf(() => absurd.next()).sqlstate).toBe('08P01');
    // CopyDone carries no body: the small cap, a protocol violation past it.
    const done = framer();
    done.push(header('c', CLIENT_SMALL_MAX_LENGTH + 1));
    expect(errorOf(() => done.next()).sqlstate).toBe('08P01');
  });

  it('rejects lengths below 4 (or 8 for a startup packet) and negative ones', () => {
    for (const len of [3, 0, -1, -0x80000000]) {
      const f = typedFramer();
      f.push(header('Q', len));
      expect(errorOf(() => f.next()).code).toBe('bad-length');
    }
    const startup = createFrontendFramer();
    startup.push(build().untyped()); // length 4: no room for a request code
    expect(errorOf(() => startup.next()).code).toBe('bad-length');
    const huge = createFrontendFramer();
    huge.push(Buffer.from([0, 0, 0x27, 0x11])); // 10001
    expect(errorOf(() => huge.next()).message).toContain(`cap of ${STARTUP_MAX_LENGTH}`);
  });

  it('refuses message types a client may not send after startup', () => {
    for (const type of ['p', 'Z', '\0', 'y']) {
      const f = typedFramer();
      f.push(header(type, 4));
      expect(errorOf(() => f.next()).code).toBe('malformed');
    }
  });

  it('accepts any server type up to its cap', () => {
    const f = createBackendFramer(100);
    f.push(Buffer.concat([build().typed('y'), header('D', 101)]));
    expect(f.next()).toBe(true);
    expect(String.fromCharCode(f.type)).toBe('y');
    expect(errorOf(() => f.next()).code).toBe('bad-length');
  });

  it('takeRest returns the bytes not yet framed, across chunks', () => {
    const frame = build().cstring('a').typed('S');
    const f = createBackendFramer();
    f.push(Buffer.concat([frame, frame.subarray(0, 4)]));
    expect(f.next()).toBe(true);
    expect(f.next()).toBe(false);
    f.push(frame.subarray(4, 6));
    expect(f.takeRest()).toEqual(frame.subarray(0, 6));
    expect(f.buffered).toBe(0);
  });
});

describe('PgBackendRelay boundaries', () => {
  it('skips bodies without collecting them and tracks boundaries', () => {
    const seen: string[] = [];
    const s = observer('C', (_t, body) => seen.push(body.toString('utf8', 0, body.length - 1)));
    const row = build().int16(1).int32(1000).raw(Buffer.alloc(1000, 0x61)).typed('D');
    s.push(row.subarray(0, 3));
    expect(s.atBoundary).toBe(false);
    s.push(row.subarray(3, 500));
    expect(s.atBoundary).toBe(false);
    s.push(Buffer.concat([row.subarray(500), build().cstring('SELECT 1').typed('C')]));
    expect(s.atBoundary).toBe(true);
    expect(seen).toEqual(['SELECT 1']);
  });

  it('does not assemble an observed message above the collect cap: it is reported with an empty body', () => {
    const seen: number[] = [];
    const s = observer('E', (_t, body) => seen.push(body.length), 1 << 30, 8);
    const e = build().raw(Buffer.alloc(20, 0x41)).typed('E');
    s.push(e.subarray(0, 10));
    s.push(e.subarray(10));
    // Whole in one chunk it costs nothing to look at, so it is reported whole.
    s.push(e);
    expect(seen).toEqual([0, 20]);
    expect(s.atBoundary).toBe(true);
  });

  it('rejects a declared length outside 4..cap', () => {
    const s = observer('', () => undefined, 1000);
    expect(errorOf(() => s.push(header('D', 1001))).code).toBe('bad-length');
    const t = observer('', () => undefined);
    expect(errorOf(() => t.push(header('D', 2))).code).toBe('bad-length');
  });
});
