// Garbage from a client or a target must close one session with a PgProtocolError and never
// throw anything else (a RangeError or TypeError would be a crash path in the relay). Also checks
// that how bytes are chunked never changes what is framed.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeAuthentication,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeErrorFields,
  decodeParameterStatus,
  decodeReadyForQuery,
} from '../../../gateway/engines/postgres/codec/backend.js';
import { PgProtocolError } from '../../../gateway/engines/postgres/codec/wire.js';
import { createBackendFramer, createFrontendFramer } from '../../../gateway/engines/postgres/codec/framer.js';
import { build } from './builder.js';
import { decodeBind, decodeClose, decodeFirstMessage, decodeFunctionCall, decodeParse, decodeQuery } from '../../../gateway/engines/postgres/codec/frontend.js';
import { INTERCEPT, OBSERVE, PgBackendRelay, type RelayHandler } from '../../../gateway/engines/postgres/codec/backendRelay.js';

/** A relay that observes C and Z and intercepts E (replaced) and D (kept), collecting what it emits. */
function relay(onBody: (type: number, body: Buffer) => void, out: Buffer[] = []): PgBackendRelay {
  const handler: RelayHandler = (t, b, start, end) => {
    onBody(t, b.subarray(start + 5, end));
    return t === 0x45 ? Buffer.from('E\0\0\0\x04') : undefined;
  };
  const r = new PgBackendRelay(handler, (b) => out.push(Buffer.from(b)));
  for (const t of 'CZ') r.actions[t.charCodeAt(0)] = OBSERVE;
  for (const t of 'ED') r.actions[t.charCodeAt(0)] = INTERCEPT;
  return r;
}

const RUNS = 2000;

/** Cuts `bytes` at the given (sorted, deduplicated) offsets. */
function cut(bytes: Uint8Array, offsets: number[]): Buffer[] {
  const points = [...new Set(offsets.map((o) => o % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    if (p > prev) chunks.push(Buffer.from(bytes.subarray(prev, p)));
    prev = p;
  }
  return chunks;
}

function onlyProtocolErrors(run: () => void): void {
  try {
    run();
  } catch (err) {
    if (!(err instanceof PgProtocolError)) throw err;
    expect(err.sqlstate).toMatch(/^(08P01|0A000|54000)$/);
  }
}

const frontendDecoders: Record<string, (b: Buffer) => unknown> = { Q: decodeQuery, P: decodeParse, B: decodeBind, C: decodeClose, F: decodeFunctionCall };
const backendDecoders: Record<string, (b: Buffer) => unknown> = {
  R: decodeAuthentication,
  E: decodeErrorFields,
  N: decodeErrorFields,
  K: decodeBackendKeyData,
  S: decodeParameterStatus,
  Z: decodeReadyForQuery,
  C: decodeCommandComplete,
};

function feedClient(chunks: Buffer[]): void {
  const f = createFrontendFramer();
  for (const chunk of chunks) {
    f.push(chunk);
    while (f.next()) {
      if (f.type === 0) {
        if (decodeFirstMessage(f.body).kind === 'startup') f.expectTyped();
      } else frontendDecoders[String.fromCharCode(f.type)]?.(f.body);
    }
  }
}

function feedServer(chunks: Buffer[]): void {
  const f = createBackendFramer(1 << 20);
  const s = relay((t, body) => void (t === 0x44 || backendDecoders[String.fromCharCode(t)]?.(body)));
  for (const chunk of chunks) {
    f.push(chunk);
    while (f.next()) backendDecoders[String.fromCharCode(f.type)]?.(f.body);
  }
  for (const chunk of chunks) s.push(chunk);
}

/** A typed frame with a correct length and a random body: reaches deep into the decoders. */
const typedFrame = (types: string) =>
  fc.tuple(fc.constantFrom(...types), fc.uint8Array({ maxLength: 64 })).map(([t, body]) => {
    const b = Buffer.alloc(5 + body.length);
    b[0] = t.charCodeAt(0);
    b.writeInt32BE(4 + body.length, 1);
    Buffer.from(body).copy(b, 5);
    return b;
  });

const startupFrame = fc.uint8Array({ maxLength: 40 }).map((tail) => {
  const b = Buffer.alloc(8 + tail.length);
  b.writeInt32BE(8 + tail.length, 0);
  b.writeInt32BE(196608, 4);
  Buffer.from(tail).copy(b, 8);
  return b;
});

const offsets = fc.array(fc.nat(), { maxLength: 8 });

describe('fuzz', () => {
  it('random client bytes raise only PgProtocolError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), offsets, (bytes, cuts) => onlyProtocolErrors(() => feedClient(cut(bytes, cuts)))), {
      numRuns: RUNS,
    });
  });

  it('well-framed client messages with random bodies raise only PgProtocolError', () => {
    const stream = fc.tuple(startupFrame, fc.array(typedFrame('QPBCSDEHXdcfF'), { maxLength: 6 })).map(([s, rest]) => Buffer.concat([s, ...rest]));
    fc.assert(fc.property(stream, offsets, (bytes, cuts) => onlyProtocolErrors(() => feedClient(cut(bytes, cuts)))), { numRuns: RUNS });
  });

  it('random server bytes raise only PgProtocolError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), offsets, (bytes, cuts) => onlyProtocolErrors(() => feedServer(cut(bytes, cuts)))), {
      numRuns: RUNS,
    });
  });

  it('well-framed server messages with random bodies raise only PgProtocolError', () => {
    const stream = fc.array(typedFrame('REKSZCNDT'), { maxLength: 6 }).map((frames) => Buffer.concat(frames));
    fc.assert(fc.property(stream, offsets, (bytes, cuts) => onlyProtocolErrors(() => feedServer(cut(bytes, cuts)))), { numRuns: RUNS });
  });

  it('Bind and Parse with any 16-bit count (read unsigned) decode whole, and any truncation raises only PgProtocolError', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.nat(), (n, cutAt) => {
        const bind = build().cstring('').cstring('').int16(1).int16(0).int16(n);
        for (let k = 0; k < n; k++) bind.int32(k % 3 === 0 ? -1 : 1).raw(k % 3 === 0 ? '' : 'v');
        const body = bind.int16(0).body();
        expect(decodeBind(body).params).toHaveLength(n);
        onlyProtocolErrors(() => decodeBind(body.subarray(0, cutAt % (body.length + 1))));
        const parse = build().cstring('s').cstring('q').int16(n);
        for (let k = 0; k < n; k++) parse.int32(k);
        expect(decodeParse(parse.body()).paramTypes).toHaveLength(n);
      }),
      { numRuns: 40 },
    );
  });

  it('chunking never changes the frames, the observed messages or what the relay emits', () => {
    const stream = fc.array(typedFrame('CDEZT'), { minLength: 1, maxLength: 8 }).map((frames) => Buffer.concat(frames));
    fc.assert(
      fc.property(stream, offsets, (bytes, cuts) => {
        const collect = (chunks: Buffer[]) => {
          const f = createBackendFramer();
          const frames: string[] = [];
          const scanned: string[] = [];
          const out: Buffer[] = [];
          const s = relay((t, body) => void scanned.push(`${t}:${body.toString('hex')}`), out);
          for (const c of chunks) {
            f.push(c);
            while (f.next()) frames.push(f.frame.toString('hex'));
            s.push(c);
          }
          return { frames, scanned, boundary: s.atBoundary, left: f.buffered, emitted: Buffer.concat(out).toString('hex') };
        };
        expect(collect(cut(bytes, cuts))).toEqual(collect([bytes]));
      }),
      { numRuns: RUNS },
    );
  });
});
