// The session's read of the target's user-defined operators, aggregates, types and casts: only
// when a rule on functions applies, once, refused (not judged blind) when the read fails, and
// read again after the session defined such an object.
import { describe, expect, it } from 'vitest';
import { SessionUserObjects, type UserObjectsSource } from '../../../gateway/engines/postgres/sessionUserObjects.js';
import { analyzeSql, NO_USER_OBJECTS, type StatementAnalysis, type UserObjects } from '../../../gateway/policy/index.js';
import { policyFromYaml } from '../policy/fixtures.js';

const FUNCTION_RULE = policyFromYaml('rules: [{ id: f, block: { functions: [pg_read_file] }, except: { groups: [dba] } }]');
const NO_FUNCTION_RULE = policyFromYaml('rules: [{ id: d, block: { statements: [drop] } }]');

function source(results: (UserObjects | Error)[]): UserObjectsSource & { calls: number } {
  const s = {
    calls: 0,
    userObjects(): Promise<UserObjects> {
      const r = results[s.calls++] ?? NO_USER_OBJECTS;
      return r instanceof Error ? Promise.reject(r) : Promise.resolve(r);
    },
  };
  return s;
}

const statement = (sql: string): StatementAnalysis => {
  const a = analyzeSql(sql);
  if (!a.ok) throw new Error(a.error);
  return a.statements[0] as StatementAnalysis;
};

describe('SessionUserObjects', () => {
  it('reads nothing when no rule on functions applies to the caller', () => {
    const src = source([]);
    expect(new SessionUserObjects(NO_FUNCTION_RULE, ['eng'], src).current()).toBeUndefined();
    expect(new SessionUserObjects(FUNCTION_RULE, ['dba'], src).current()).toBeUndefined();
    expect(src.calls).toBe(0);
  });

  it('reads once, then answers from memory', async () => {
    const src = source([NO_USER_OBJECTS]);
    const s = new SessionUserObjects(FUNCTION_RULE, ['eng'], src);
    const first = s.current();
    expect(first).toBeInstanceOf(Promise);
    expect(s.current()).toBe(first); // one read in flight, not two
    await first;
    expect(s.current()).toBe(NO_USER_OBJECTS);
    expect(s.current()).toBe(NO_USER_OBJECTS);
    expect(src.calls).toBe(1);
  });

  it('refuses the statement when the read fails, and tries again for the next', async () => {
    const src = source([new Error('connection refused'), NO_USER_OBJECTS]);
    const s = new SessionUserObjects(FUNCTION_RULE, ['eng'], src);
    await s.current();
    expect(s.current()).toEqual({ refused: expect.stringContaining('connection refused') as string });
    await s.current();
    expect(s.current()).toBe(NO_USER_OBJECTS);
  });

  it('refuses without a catalog connection', () => {
    expect(new SessionUserObjects(FUNCTION_RULE, ['eng'], undefined).current()).toMatchObject({ refused: expect.stringContaining('no catalog connection') as string });
  });

  it('reads again after the session defined an operator, aggregate, type or cast', async () => {
    const src = source([NO_USER_OBJECTS, NO_USER_OBJECTS]);
    const s = new SessionUserObjects(FUNCTION_RULE, ['eng'], src);
    await s.current();
    s.completed(statement('SELECT 1'));
    s.completed(statement('CREATE TABLE t (a int)'));
    expect(s.current()).toBe(NO_USER_OBJECTS);
    s.completed(statement('CREATE OPERATOR === (FUNCTION = textcat, LEFTARG = text, RIGHTARG = text)'));
    expect(s.current()).toBeInstanceOf(Promise);
    expect(src.calls).toBe(2);
  });
});
