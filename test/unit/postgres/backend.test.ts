// Backend messages: decoders against hand-built bodies, encoders byte for byte, and every
// message through the backend framer and the backend relay in every chunking.
import { describe, expect, it } from 'vitest';
import {
  decodeAuthentication,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeErrorFields,
  decodeParameterStatus,
  decodeReadyForQuery,
  encodeAuthenticationOk,
  encodeBackendKeyData,
  encodeErrorResponse,
  encodeNegotiateProtocolVersion,
  encodeNoticeResponse,
  encodeParameterStatus,
  encodeReadyForQuery,
  rowCountFromTag,
} from '../../../gateway/engines/postgres/codec/backend.js';
import { PgProtocolError } from '../../../gateway/engines/postgres/codec/wire.js';
import { createBackendFramer } from '../../../gateway/engines/postgres/codec/framer.js';
import { OBSERVE, PgBackendRelay } from '../../../gateway/engines/postgres/codec/backendRelay.js';
import { build, chunkings } from './builder.js';

describe('Authentication requests', () => {
  it('decodes every supported request', () => {
    expect(decodeAuthentication(build().int32(0).body())).toEqual({ kind: 'ok' });
    expect(decodeAuthentication(build().int32(3).body())).toEqual({ kind: 'cleartext' });
    expect(decodeAuthentication(build().int32(5).raw(Buffer.of(1, 2, 3, 4)).body())).toEqual({ kind: 'md5', salt: Buffer.of(1, 2, 3, 4) });
    expect(decodeAuthentication(build().int32(10).cstring('SCRAM-SHA-256-PLUS').cstring('SCRAM-SHA-256').byte(0).body())).toEqual({
      kind: 'sasl',
      mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
    });
    expect(decodeAuthentication(build().int32(11).raw('r=abc,s=xyz,i=4096').body())).toEqual({
      kind: 'sasl-continue',
      data: Buffer.from('r=abc,s=xyz,i=4096'),
    });
    expect(decodeAuthentication(build().int32(12).raw('v=sig').body())).toEqual({ kind: 'sasl-final', data: Buffer.from('v=sig') });
  });

  it('names unsupported methods and rejects unknown codes and bad layouts', () => {
    expect(decodeAuthentication(build().int32(7).body())).toEqual({ kind: 'unsupported', method: 'GSSAPI' });
    expect(() => decodeAuthentication(build().int32(99).body())).toThrow(PgProtocolError);
    expect(() => decodeAuthentication(build().int32(5).raw(Buffer.of(1, 2)).body())).toThrow(PgProtocolError);
    expect(() => decodeAuthentication(build().int32(0).byte(1).body())).toThrow(PgProtocolError);
    expect(() => decodeAuthentication(build().int32(10).cstring('SCRAM-SHA-256').body())).toThrow(PgProtocolError);
  });
});

describe('result and status messages', () => {
  it('ErrorResponse fields, preferring the non-localized severity', () => {
    const body = build().byte('S').cstring('FEHLER').byte('V').cstring('ERROR').byte('C').cstring('42P01')
      .byte('M').cstring('relation "x" does not exist').byte('P').cstring('15').byte(0).body();
    const e = decodeErrorFields(body);
    expect(e).toMatchObject({ severity: 'ERROR', code: '42P01', message: 'relation "x" does not exist' });
    expect(e.detail).toBeUndefined();
    expect(e.fields.get('P')).toBe('15');
    expect(() => decodeErrorFields(build().byte('S').cstring('ERROR').body())).toThrow(PgProtocolError);
  });

  it('BackendKeyData, ParameterStatus, ReadyForQuery, CommandComplete', () => {
    expect(decodeBackendKeyData(build().int32(77).int32(-1).body())).toEqual({ pid: 77, secret: -1 });
    expect(decodeParameterStatus(build().cstring('server_version').cstring('15.8').body())).toEqual({ name: 'server_version', value: '15.8' });
    expect(decodeReadyForQuery(build().byte('T').body())).toBe('T');
    expect(() => decodeReadyForQuery(build().byte('Q').body())).toThrow(PgProtocolError);
    expect(decodeCommandComplete(build().cstring('INSERT 0 5').body())).toBe('INSERT 0 5');
    // In place, inside a chunk: a tag that runs to the body's end but has no NUL in it is truncated.
    const chunk = Buffer.concat([Buffer.from('xx'), build().cstring('SELECT 1').body(), Buffer.from('yy')]);
    expect(decodeCommandComplete(chunk, 2, 11)).toBe('SELECT 1');
    expect(() => decodeCommandComplete(chunk, 2, 10)).toThrow(expect.objectContaining({ code: 'truncated' }));
    expect(() => decodeCommandComplete(chunk, 2, 12)).toThrow(expect.objectContaining({ code: 'malformed' }));
  });

  it('row counts from command tags', () => {
    expect(rowCountFromTag('SELECT 3')).toBe(3);
    expect(rowCountFromTag('INSERT 0 5')).toBe(5);
    expect(rowCountFromTag('UPDATE 0')).toBe(0);
    expect(rowCountFromTag('COPY 1000000')).toBe(1_000_000);
    expect(rowCountFromTag('CREATE TABLE')).toBeUndefined();
    expect(rowCountFromTag('BEGIN')).toBeUndefined();
    expect(rowCountFromTag('SELECT')).toBeUndefined();
    // The same tag again, and tags alternating: each gets its own count, never the previous one's.
    for (const [tag, n] of [['SELECT 1', 1], ['SELECT 1', 1], ['BEGIN', undefined], ['BEGIN', undefined], ['SELECT 1', 1], ['INSERT 0 7', 7], ['SELECT 1', 1]] as const) {
      expect(rowCountFromTag(tag)).toBe(n);
    }
  });
});

describe('backend encoders', () => {
  it('ErrorResponse with detail and hint', () => {
    const expected = build().byte('S').cstring('FATAL').byte('V').cstring('FATAL').byte('C').cstring('3D000')
      .byte('M').cstring('no').byte('D').cstring('d').byte('H').cstring('h').byte(0).typed('E');
    expect(encodeErrorResponse({ severity: 'FATAL', sqlstate: '3D000', message: 'no', detail: 'd', hint: 'h' })).toEqual(expected);
  });

  it('NoticeResponse without optional fields', () => {
    const expected = build().byte('S').cstring('NOTICE').byte('V').cstring('NOTICE').byte('C').cstring('00000')
      .byte('M').cstring('hi').byte(0).typed('N');
    expect(encodeNoticeResponse({ severity: 'NOTICE', sqlstate: '00000', message: 'hi' })).toEqual(expected);
  });

  it('AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery, NegotiateProtocolVersion', () => {
    expect(encodeAuthenticationOk()).toEqual(build().int32(0).typed('R'));
    expect(encodeParameterStatus('TimeZone', 'UTC')).toEqual(build().cstring('TimeZone').cstring('UTC').typed('S'));
    expect(encodeBackendKeyData(9, -9)).toEqual(build().int32(9).int32(-9).typed('K'));
    expect(encodeReadyForQuery('E')).toEqual(build().byte('E').typed('Z'));
    expect(encodeNegotiateProtocolVersion(0, ['_pq_.x'])).toEqual(build().int32(0).int32(1).cstring('_pq_.x').typed('v'));
  });

  it('round-trips through the decoders', () => {
    const e = encodeErrorResponse({ severity: 'ERROR', sqlstate: '08P01', message: 'bad' });
    expect(decodeErrorFields(e.subarray(5))).toMatchObject({ severity: 'ERROR', code: '08P01', message: 'bad' });
  });
});

describe('backend messages through the framer and the relay in every chunking', () => {
  // Every message the gateway decodes from a target, plus two it only relays (T, D).
  const catalogue: [string, Buffer, ((body: Buffer) => unknown)?, unknown?][] = [
    ['AuthenticationOk', build().int32(0).typed('R'), decodeAuthentication, { kind: 'ok' }],
    ['AuthenticationCleartextPassword', build().int32(3).typed('R'), decodeAuthentication, { kind: 'cleartext' }],
    ['AuthenticationMD5Password', build().int32(5).raw('salt').typed('R'), decodeAuthentication, { kind: 'md5', salt: Buffer.from('salt') }],
    ['AuthenticationSASL', build().int32(10).cstring('SCRAM-SHA-256').byte(0).typed('R'), decodeAuthentication, { kind: 'sasl', mechanisms: ['SCRAM-SHA-256'] }],
    ['AuthenticationSASLContinue', build().int32(11).raw('r=x,s=y,i=1').typed('R'), decodeAuthentication, { kind: 'sasl-continue', data: Buffer.from('r=x,s=y,i=1') }],
    ['AuthenticationSASLFinal', build().int32(12).raw('v=z').typed('R'), decodeAuthentication, { kind: 'sasl-final', data: Buffer.from('v=z') }],
    ['ParameterStatus', build().cstring('a').cstring('b').typed('S'), decodeParameterStatus, { name: 'a', value: 'b' }],
    ['BackendKeyData', build().int32(1).int32(2).typed('K'), decodeBackendKeyData, { pid: 1, secret: 2 }],
    ['RowDescription', build().int16(1).cstring('x').int32(0).int16(0).int32(23).int16(4).int32(-1).int16(0).typed('T')],
    ['DataRow', build().int16(2).int32(1).raw('1').int32(-1).typed('D')],
    ['CommandComplete', build().cstring('SELECT 1').typed('C'), decodeCommandComplete, 'SELECT 1'],
    ['ErrorResponse', build().byte('C').cstring('57014').byte('M').cstring('canceled').byte(0).typed('E'), (b) => decodeErrorFields(b).code, '57014'],
    ['NoticeResponse', build().byte('V').cstring('WARNING').byte(0).typed('N'), (b) => decodeErrorFields(b).severity, 'WARNING'],
    ['EmptyQueryResponse', build().typed('I')],
    ['ReadyForQuery', build().byte('E').typed('Z'), decodeReadyForQuery, 'E'],
  ];
  const neighbour = build().byte('T').typed('Z');

  for (const [name, frame, decode, expected] of catalogue) {
    it(`${name} between neighbours`, () => {
      const stream = Buffer.concat([neighbour, frame, neighbour]);
      for (const { name: how, chunks } of chunkings(stream)) {
        const framer = createBackendFramer();
        const frames: Buffer[] = [];
        const collected: string[] = [];
        const relayed: Buffer[] = [];
        const scanner = new PgBackendRelay(
          (type, buf, start, end) => void collected.push(`${String.fromCharCode(type)}:${buf.toString('hex', start + 5, end)}`),
          (b) => relayed.push(Buffer.from(b)),
        );
        for (const t of 'CEIZ') scanner.actions[t.charCodeAt(0)] = OBSERVE;
        for (const chunk of chunks) {
          framer.push(chunk);
          while (framer.next()) {
            frames.push(Buffer.from(framer.frame));
            if (frames.length === 2 && decode) expect(decode(framer.body), how).toEqual(expected);
          }
          scanner.push(chunk);
        }
        expect(frames, how).toEqual([neighbour, frame, neighbour]);
        expect(Buffer.concat(relayed), how).toEqual(stream);
        expect(scanner.atBoundary, how).toBe(true);
        const scanned = [neighbour, frame, neighbour]
          .filter((f) => 'CEIZ'.includes(String.fromCharCode(f[0]!)))
          .map((f) => `${String.fromCharCode(f[0]!)}:${f.toString('hex', 5)}`);
        expect(collected, how).toEqual(scanned);
      }
    });
  }
});
