// Frontend messages: encoders checked byte for byte against hand-built messages, decoders
// against hand-built bodies, and every decoded message also fed through the framer in every
// chunking, glued between neighbours.
import { describe, expect, it } from 'vitest';
import { createFrontendFramer } from '../../../gateway/engines/postgres/codec/framer.js';
import {
  decodeBind,
  decodeClose,
  decodeFirstMessage,
  decodeFunctionCall,
  decodeParse,
  decodeQuery,
  decodeQueryText,
  encodeCancelRequest,
  encodePasswordMessage,
  encodeSASLInitialResponse,
  encodeSASLResponse,
  encodeSSLRequest,
  encodeStartupMessage,
  encodeTerminate,
} from '../../../gateway/engines/postgres/codec/frontend.js';
import { PgProtocolError } from '../../../gateway/engines/postgres/codec/wire.js';
import { build, chunkings } from './builder.js';

describe('frontend encoders', () => {
  it('StartupMessage: length, protocol 3.0, parameter pairs, terminator', () => {
    const expected = build().int32(196608).cstring('user').cstring('app').cstring('database').cstring('db').byte(0).untyped();
    expect(encodeStartupMessage([['user', 'app'], ['database', 'db']])).toEqual(expected);
  });

  it('PasswordMessage', () => {
    expect(encodePasswordMessage('md5abc')).toEqual(build().cstring('md5abc').typed('p'));
  });

  it('SASLInitialResponse carries the mechanism and a length-prefixed response', () => {
    const data = 'n,,n=,r=abc';
    expect(encodeSASLInitialResponse('SCRAM-SHA-256', data)).toEqual(
      build().cstring('SCRAM-SHA-256').int32(data.length).raw(data).typed('p'),
    );
  });

  it('SASLResponse is the raw data', () => {
    expect(encodeSASLResponse('c=biws,r=x,p=y')).toEqual(build().raw('c=biws,r=x,p=y').typed('p'));
  });

  it('CancelRequest, Terminate, SSLRequest', () => {
    expect(encodeCancelRequest(1234, -5)).toEqual(build().int32(80877102).int32(1234).int32(-5).untyped());
    expect(encodeTerminate()).toEqual(Buffer.from([0x58, 0, 0, 0, 4]));
    expect(encodeSSLRequest()).toEqual(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
  });

  it('refuses a NUL inside a string field rather than truncating it', () => {
    expect(() => encodePasswordMessage('a\0b')).toThrow(TypeError);
  });
});

describe('first messages', () => {
  it('decodes StartupMessage parameters in order', () => {
    const body = build().int32(196608).cstring('user').cstring('alice').cstring('database').cstring('shop').byte(0).body();
    const m = decodeFirstMessage(body);
    expect(m).toEqual({ kind: 'startup', major: 3, minor: 0, params: new Map([['user', 'alice'], ['database', 'shop']]) });
  });

  it('accepts newer 3.x minors for the caller to negotiate down', () => {
    const m = decodeFirstMessage(build().int32(196610).cstring('user').cstring('a').byte(0).body());
    expect(m).toMatchObject({ kind: 'startup', major: 3, minor: 2 });
  });

  it('decodes SSLRequest, GSSENCRequest and CancelRequest', () => {
    expect(decodeFirstMessage(build().int32(80877103).body())).toEqual({ kind: 'ssl' });
    expect(decodeFirstMessage(build().int32(80877104).body())).toEqual({ kind: 'gssenc' });
    expect(decodeFirstMessage(build().int32(80877102).int32(42).int32(-7).body())).toEqual({ kind: 'cancel', pid: 42, secret: -7 });
  });

  it('rejects protocol 2 with 0A000 and a missing terminator with 08P01', () => {
    const v2 = () => decodeFirstMessage(build().int32(131072).body());
    expect(v2).toThrow(PgProtocolError);
    expect(catchError(v2)).toMatchObject({ code: 'unsupported', sqlstate: '0A000' });
    const noTerminator = () => decodeFirstMessage(build().int32(196608).cstring('user').cstring('a').body());
    expect(catchError(noTerminator)).toMatchObject({ code: 'truncated', sqlstate: '08P01' });
    const trailing = () => decodeFirstMessage(build().int32(80877103).byte(1).body());
    expect(catchError(trailing)).toMatchObject({ code: 'malformed' });
  });
});

describe('Query, Parse, Bind, Close', () => {
  it('Query', () => {
    expect(decodeQuery(build().cstring('select 1; select 2').body())).toEqual({ sql: 'select 1; select 2' });
    expect(catchError(() => decodeQuery(build().raw('select').body()))).toMatchObject({ code: 'truncated' });
  });

  it('Query read in place: only the body between start and end counts', () => {
    // The relay reads the Query inside the chunk it arrived in, neighbours on both sides.
    const chunk = Buffer.concat([build().cstring('before').body(), build().cstring('select 1').body(), build().cstring('after').body()]);
    expect(decodeQueryText(chunk, 7, 16)).toBe('select 1');
    // A NUL beyond the body's end does not terminate it; bytes after the NUL inside it are refused.
    expect(catchError(() => decodeQueryText(chunk, 7, 15))).toMatchObject({ code: 'truncated' });
    expect(catchError(() => decodeQueryText(chunk, 7, 17))).toMatchObject({ code: 'malformed', message: 'Query has 1 bytes after its last field' });
    expect(catchError(() => decodeQueryText(chunk, 7, 7))).toMatchObject({ code: 'truncated' });
  });

  it('Parse with parameter type OIDs (unsigned)', () => {
    const body = build().cstring('s1').cstring('select $1, $2').int16(2).int32(23).int32(-1).body();
    expect(decodeParse(body)).toEqual({ statement: 's1', sql: 'select $1, $2', paramTypes: [23, 0xffffffff] });
    // 0xffff is 65,535 types, not -1: the body then ends inside the types.
    expect(catchError(() => decodeParse(build().cstring('').cstring('x').int16(0xffff).body()))).toMatchObject({ code: 'truncated' });
  });

  it('Parse and Bind counts are unsigned: 32,768–65,535 parameters, as PostgreSQL reads them', () => {
    for (const n of [32_768, 40_000, 65_535]) {
      const parse = build().cstring('').cstring('insert …').int16(n);
      for (let k = 0; k < n; k++) parse.int32(23);
      expect(decodeParse(parse.body()).paramTypes).toHaveLength(n);
      // n format codes (one per parameter), n values, n result formats.
      const bind = build().cstring('').cstring('').int16(n);
      for (let k = 0; k < n; k++) bind.int16(k % 2);
      bind.int16(n);
      for (let k = 0; k < n; k++) bind.int32(1).raw(String(k % 10));
      bind.int16(n);
      for (let k = 0; k < n; k++) bind.int16(0);
      const m = decodeBind(bind.body());
      expect(m.params).toHaveLength(n);
      // Even positions text, odd ones binary: each value read with its own format code.
      const last = n - 1;
      expect(m.params[last]).toEqual(last % 2 === 0 ? String(last % 10) : Buffer.from(String(last % 10)));
      expect(m.params[last - 1]).toEqual((last - 1) % 2 === 0 ? String((last - 1) % 10) : Buffer.from(String((last - 1) % 10)));
      expect(m.resultFormats).toHaveLength(n);
    }
  });

  it('FunctionCall argument counts are unsigned too', () => {
    const call = build().int32(764).int16(0).int16(40_000);
    for (let k = 0; k < 40_000; k++) call.int32(-1);
    expect(decodeFunctionCall(call.int16(0).body()).args).toHaveLength(40_000);
  });

  it('Bind with text, NULL and binary values', () => {
    const body = build()
      .cstring('p')
      .cstring('s1')
      .int16(3)
      .int16(0)
      .int16(0)
      .int16(1)
      .int16(3)
      .int32(4) // 'é' is two bytes in UTF-8
      .raw('héy')
      .int32(-1)
      .int32(2)
      .raw(Buffer.of(0xde, 0xad))
      .int16(1)
      .int16(1)
      .body();
    const m = decodeBind(body);
    expect(m.portal).toBe('p');
    expect(m.statement).toBe('s1');
    expect(m.params).toEqual(['héy', null, Buffer.of(0xde, 0xad)]);
    expect(m.resultFormats).toEqual([1]);
  });

  it('Bind: one format code applies to all parameters, none means text', () => {
    const one = build().cstring('').cstring('').int16(1).int16(1).int16(2).int32(1).raw('a').int32(1).raw('b').int16(0).body();
    expect(decodeBind(one).params).toEqual([Buffer.from('a'), Buffer.from('b')]);
    const none = build().cstring('').cstring('').int16(0).int16(1).int32(1).raw('a').int16(0).body();
    expect(decodeBind(none).params).toEqual(['a']);
  });

  it('Bind: rejects format/parameter mismatches, bad codes and lengths', () => {
    const mismatch = build().cstring('').cstring('').int16(2).int16(0).int16(0).int16(1).int32(-1).int16(0).body();
    expect(catchError(() => decodeBind(mismatch))).toMatchObject({ code: 'malformed' });
    const badCode = build().cstring('').cstring('').int16(1).int16(7).int16(0).int16(0).body();
    expect(catchError(() => decodeBind(badCode))).toMatchObject({ code: 'malformed' });
    const badLen = build().cstring('').cstring('').int16(0).int16(1).int32(-2).int16(0).body();
    expect(catchError(() => decodeBind(badLen))).toMatchObject({ code: 'malformed' });
    const short = build().cstring('').cstring('').int16(0).int16(1).int32(10).raw('abc').body();
    expect(catchError(() => decodeBind(short))).toMatchObject({ code: 'truncated' });
  });

  it('FunctionCall with its arguments', () => {
    const body = build().int32(764).int16(1).int16(1).int16(2).int32(4).int32(7).int32(-1).int16(0).body();
    expect(decodeFunctionCall(body)).toEqual({ functionOid: 764, args: [build().int32(7).body(), null] });
    const badResult = build().int32(1).int16(0).int16(0).int16(2).body();
    expect(catchError(() => decodeFunctionCall(badResult))).toMatchObject({ code: 'malformed' });
  });

  it('Close', () => {
    expect(decodeClose(build().byte('S').cstring('s1').body())).toEqual({ kind: 'statement', name: 's1' });
    expect(decodeClose(build().byte('P').cstring('').body())).toEqual({ kind: 'portal', name: '' });
    expect(catchError(() => decodeClose(build().byte('X').cstring('').body()))).toMatchObject({ code: 'malformed' });
  });
});

describe('frontend messages through the framer in every chunking', () => {
  const startup = build().int32(196608).cstring('user').cstring('u').byte(0).untyped();
  const typed: [string, Buffer, (body: Buffer) => unknown, unknown][] = [
    ['Query', build().cstring('select 1').typed('Q'), decodeQuery, { sql: 'select 1' }],
    ['Parse', build().cstring('').cstring('select $1').int16(1).int32(25).typed('P'), decodeParse, {
      statement: '',
      sql: 'select $1',
      paramTypes: [25],
    }],
    ['Bind', build().cstring('').cstring('').int16(0).int16(1).int32(2).raw('42').int16(0).typed('B'), (b) => decodeBind(b).params, ['42']],
    ['Close', build().byte('S').cstring('x').typed('C'), decodeClose, { kind: 'statement', name: 'x' }],
  ];
  const neighbour = build().typed('S'); // Sync: an empty body, the shortest frame there is

  for (const [name, frame, decode, expected] of typed) {
    it(`${name} between neighbours`, () => {
      const stream = Buffer.concat([startup, neighbour, frame, neighbour]);
      for (const { name: how, chunks } of chunkings(stream)) {
        const framer = createFrontendFramer();
        const seen: Buffer[] = [];
        for (const chunk of chunks) {
          framer.push(chunk);
          while (framer.next()) {
            if (seen.length === 0) {
              expect(decodeFirstMessage(framer.body), how).toMatchObject({ kind: 'startup' });
              framer.expectTyped();
            }
            seen.push(Buffer.from(framer.frame));
            if (seen.length === 3) expect(decode(framer.body), how).toEqual(expected);
          }
        }
        expect(seen, how).toEqual([startup, neighbour, frame, neighbour]);
        expect(framer.buffered, how).toBe(0);
      }
    });
  }

  it('CancelRequest and GSSENCRequest as first messages', () => {
    const cancel = build().int32(80877102).int32(3).int32(4).untyped();
    const gss = build().int32(80877104).untyped();
    for (const { name: how, chunks } of chunkings(Buffer.concat([gss, cancel]))) {
      const framer = createFrontendFramer();
      const seen: unknown[] = [];
      for (const chunk of chunks) {
        framer.push(chunk);
        while (framer.next()) seen.push(decodeFirstMessage(framer.body));
      }
      expect(seen, how).toEqual([{ kind: 'gssenc' }, { kind: 'cancel', pid: 3, secret: 4 }]);
    }
  });

  it('SSLRequest then StartupMessage then typed frames', () => {
    const stream = Buffer.concat([build().int32(80877103).untyped(), startup, neighbour]);
    for (const { name: how, chunks } of chunkings(stream)) {
      const framer = createFrontendFramer();
      const kinds: string[] = [];
      for (const chunk of chunks) {
        framer.push(chunk);
        while (framer.next()) {
          if (framer.type === 0) {
            const m = decodeFirstMessage(framer.body);
            kinds.push(m.kind);
            if (m.kind === 'startup') framer.expectTyped();
          } else kinds.push(String.fromCharCode(framer.type));
        }
      }
      expect(kinds, how).toEqual(['ssl', 'startup', 'S']);
    }
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}
