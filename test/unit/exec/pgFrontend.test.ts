// The exec frontend codec against messages written out field by field (builder.ts), fed whole,
// glued together and split at every offset.
import { describe, expect, it } from 'vitest';
import { BackendDecoder, encodeCopyFail, encodeExecStartup, encodeQuery, type BackendMessage } from '../../../gateway/exec/pgFrontend.js';
import { PgProtocolError } from '../../../gateway/engines/postgres/codec/wire.js';
import { build } from '../postgres/builder.js';

function decodeAll(chunks: readonly Buffer[]): BackendMessage[] {
  const d = new BackendDecoder();
  const out: BackendMessage[] = [];
  for (const c of chunks) {
    d.push(c);
    for (let m = d.next(); m !== undefined; m = d.next()) out.push(m);
  }
  return out;
}

const rowDescription = build()
  .int16(2)
  .cstring('id').int32(16384).int16(1).int32(23).int16(4).int32(-1).int16(0)
  .cstring('email').int32(16384).int16(2).int32(25).int16(-1).int32(-1).int16(0)
  .typed('T');
const dataRow = build().int16(2).int32(1).raw('7').int32(-1).typed('D');
const session = Buffer.concat([
  build().int32(0).typed('R'),
  build().cstring('server_version').cstring('16.2').typed('S'),
  build().int32(4242).int32(-17).typed('K'),
  build().byte('I').typed('Z'),
  rowDescription,
  dataRow,
  build().int16(1).int32(3).raw('é!').typed('D'),
  build().cstring('SELECT 2').typed('C'),
  build().byte('S').cstring('NOTICE').byte('V').cstring('NOTICE').byte('C').cstring('00000').byte('M').cstring('hello').byte(0).typed('N'),
  build().byte('S').cstring('ERROR').byte('C').cstring('42P01').byte('M').cstring('relation "nope" does not exist').byte(0).typed('E'),
  build().byte(0).int16(1).int16(0).typed('H'),
  build().raw('a\tb\n').typed('d'),
  build().typed('c'),
  build().byte(0).int16(1).int16(0).typed('G'),
  build().typed('I'),
  build().byte('T').typed('Z'),
]);

const expected: BackendMessage[] = [
  { type: 'authOk' },
  { type: 'parameter', name: 'server_version', value: '16.2' },
  { type: 'key', pid: 4242, secret: -17 },
  { type: 'ready', status: 'I' },
  { type: 'rowDescription', columns: [{ name: 'id', typeOid: 23 }, { name: 'email', typeOid: 25 }] },
  { type: 'dataRow', values: ['7', null], bytes: 11 },
  { type: 'dataRow', values: ['é!'], bytes: 9 },
  { type: 'commandComplete', tag: 'SELECT 2' },
];

describe('exec frontend encoders', () => {
  it('writes the startup with the exec user, database and application', () => {
    const want = build().int32(196608).cstring('user').cstring('sluice').cstring('database').cstring('shop').cstring('application_name').cstring('sluice exec').cstring('client_encoding').cstring('UTF8').byte(0).untyped();
    expect(encodeExecStartup('shop')).toEqual(want);
  });

  it('writes Query and CopyFail', () => {
    expect(encodeQuery('select 1')).toEqual(build().cstring('select 1').typed('Q'));
    expect(encodeCopyFail('no input')).toEqual(build().cstring('no input').typed('f'));
  });

  it('refuses a NUL inside a statement', () => {
    expect(() => encodeQuery('select 1\0')).toThrow(TypeError);
  });
});

describe('BackendDecoder', () => {
  it('decodes a whole session', () => {
    const all = decodeAll([session]);
    expect(all.slice(0, expected.length)).toEqual(expected);
    const rest = all.slice(expected.length);
    expect(rest.map((m) => m.type)).toEqual(['notice', 'error', 'copyOut', 'copyData', 'copyDone', 'copyIn', 'emptyQuery', 'ready']);
    const notice = rest[0] as Extract<BackendMessage, { type: 'notice' }>;
    expect(notice.fields.message).toBe('hello');
    const error = rest[1] as Extract<BackendMessage, { type: 'error' }>;
    expect([error.fields.code, error.fields.message]).toEqual(['42P01', 'relation "nope" does not exist']);
    expect((rest[3] as Extract<BackendMessage, { type: 'copyData' }>).data.toString()).toBe('a\tb\n');
  });

  it('gives the same messages however the bytes are split', () => {
    const whole = JSON.stringify(decodeAll([session]));
    for (let at = 1; at < session.length; at++) {
      expect(JSON.stringify(decodeAll([session.subarray(0, at), session.subarray(at)]))).toBe(whole);
    }
    expect(JSON.stringify(decodeAll([...session].map((b) => Buffer.of(b))))).toBe(whole);
  });

  it('fails on a message exec does not speak, and on a password request', () => {
    expect(() => decodeAll([build().cstring('chan').typed('A')])).toThrow(PgProtocolError);
    expect(() => decodeAll([build().int32(3).typed('R')])).toThrow(/cleartext/);
  });

  it('fails on malformed rows instead of reading past them', () => {
    expect(() => decodeAll([build().int16(1).int32(10).raw('abc').typed('D')])).toThrow(PgProtocolError);
    expect(() => decodeAll([build().int16(1).int32(-5).typed('D')])).toThrow(PgProtocolError);
    expect(() => decodeAll([build().int16(-1).typed('T')])).toThrow(PgProtocolError);
  });
});
