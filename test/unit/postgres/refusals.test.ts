// Refusal markers: what the gateway sends the target instead of a refused message, and how the
// target's error naming a marker is replaced — and only that error.
import { describe, expect, it } from 'vitest';
import { decodeErrorFields } from '../../../gateway/engines/postgres/codec/backend.js';
import { decodeBind, decodeParse, decodeQuery } from '../../../gateway/engines/postgres/codec/frontend.js';
import { Refusals } from '../../../gateway/engines/postgres/refusals.js';
import { build } from './builder.js';

const targetError = (code: string, message: string) => build().byte('S').cstring('ERROR').byte('C').cstring(code).byte('M').cstring(message).byte(0).typed('E');

describe('Refusals', () => {
  it('sends a Query, Parse or Bind the target cannot run, and replaces the error that names it', () => {
    const r = new Refusals();
    const q = r.query({ sqlstate: '42501', message: 'blocked by rule no-ddl: DDL is not allowed' }, 0);
    const marker = decodeQuery(q.subarray(5)).sql;
    expect(marker).toMatch(/^sluice_refused_[0-9a-f]{12}_1$/);
    const p = decodeParse(r.parse('s1', { sqlstate: '42501', message: 'second' }, 0).subarray(5));
    expect(p.statement).toBe('s1');
    const b = decodeBind(r.bind({ sqlstate: '57014', message: 'third', hint: 'ask again' }, 1).subarray(5));
    expect(b.params).toEqual([]);
    // What PostgreSQL answers to each.
    const first = targetError('42601', `syntax error at or near "${marker}"`);
    const third = targetError('26000', `prepared statement "${b.statement}" does not exist`);
    expect(decodeErrorFields(r.replacement(third, 0, third.length)!.subarray(5))).toMatchObject({ code: '57014', message: 'third', hint: 'ask again' });
    expect(decodeErrorFields(r.replacement(first, 0, first.length)!.subarray(5))).toMatchObject({ code: '42501', message: 'blocked by rule no-ddl: DDL is not allowed' });
    // Each marker is answered once; other errors are left alone.
    expect(r.replacement(first, 0, first.length)).toBeUndefined();
    const real = targetError('22012', 'division by zero');
    expect(r.replacement(real, 0, real.length)).toBeUndefined();
    expect(r.size).toBe(1);
    // A marker the target skipped (an earlier error in its cycle) is forgotten with its cycle.
    r.expire(1);
    expect(r.size).toBe(0);
  });

  it('uses a different marker in every session, so client text cannot name another session’s', () => {
    const a = decodeQuery(new Refusals().query({ sqlstate: '42501', message: 'x' }, 0).subarray(5)).sql;
    const b = decodeQuery(new Refusals().query({ sqlstate: '42501', message: 'x' }, 0).subarray(5)).sql;
    expect(a).not.toBe(b);
  });
});
