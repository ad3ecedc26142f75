// `sluice exec` output: each format's exact bytes, the --json summary, and the stdout/stderr split.
import { describe, expect, it } from 'vitest';
import type { ExecEvent } from '../../../src/api/contract.js';
import { csvField, uniqueKeys } from '../../../src/commands/exec/values.js';
import { col, fakeExec, run } from './execFakes.js';

const SELECT_THEN_INSERT: ExecEvent[] = [
  { type: 'session', id: 's_1' },
  { type: 'columns', statement: 0, columns: [col('id', 'int4', 23), col('name')] },
  { type: 'rows', statement: 0, rows: [['1', 'Ada'], ['2', null]] },
  { type: 'complete', statement: 0, command: 'SELECT 2', rows: 2 },
  { type: 'notice', statement: 1, severity: 'NOTICE', message: 'table "x" does not exist, skipping' },
  { type: 'complete', statement: 1, command: 'INSERT 0 3', rows: 3 },
  { type: 'columns', statement: 2, columns: [col('n', 'int4', 23)] },
  { type: 'rows', statement: 2, rows: [['7']] },
  { type: 'complete', statement: 2, command: 'SELECT 1', rows: 1 },
  { type: 'end', status: 'ok', statements: 3, session: 's_1' },
];

describe('sluice exec --format table', () => {
  it('draws each result like psql and prints command tags of statements without rows', async () => {
    const r = await run({ format: 'table' }, { client: fakeExec(SELECT_THEN_INSERT) });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe([' id | name', '----+------', ' 1  | Ada', ' 2  |', '(2 rows)', '', 'INSERT 0 3', ' n', '---', ' 7', '(1 row)', '', ''].join('\n'));
    expect(r.stderr).toBe('NOTICE:  table "x" does not exist, skipping\n');
  });

  it('is the default when stdout is a terminal, and csv is the default when it is not', async () => {
    const tty = await run({}, { client: fakeExec(SELECT_THEN_INSERT), stdoutTTY: true });
    expect(tty.stdout.startsWith(' id | name\n')).toBe(true);
    const piped = await run({}, { client: fakeExec(SELECT_THEN_INSERT) });
    expect(piped.stdout.startsWith('id,name\n')).toBe(true);
  });
});

describe('sluice exec --format csv', () => {
  it('writes RFC 4180 fields, a header per statement and a blank line between results', async () => {
    const r = await run({ format: 'csv' }, { client: fakeExec(SELECT_THEN_INSERT) });
    expect(r.stdout).toBe('id,name\n1,Ada\n2,\n\nn\n7\n');
  });

  it('quotes commas, quotes, CR and LF; NULL is empty and unquoted, the empty string is ""', async () => {
    const events: ExecEvent[] = [
      { type: 'columns', statement: 0, columns: [col('a,b'), col('v')] },
      { type: 'rows', statement: 0, rows: [['1', 'x,y'], ['2', 'say "hi"'], ['3', 'two\nlines'], ['4', 'cr\rhere'], ['5', null], ['6', ''], ['7', ' plain ']] },
      { type: 'complete', statement: 0, command: 'SELECT 7', rows: 7 },
      { type: 'end', status: 'ok', statements: 1 },
    ];
    const r = await run({ format: 'csv' }, { client: fakeExec(events) });
    expect(r.stdout).toBe('"a,b",v\n1,"x,y"\n2,"say ""hi"""\n3,"two\nlines"\n4,"cr\rhere"\n5,\n6,""\n7, plain \n');
    expect(csvField(null)).toBe('');
    expect(csvField('')).toBe('""');
  });
});

describe('sluice exec --format json', () => {
  it('types values by column type, one object per row, then one summary per statement', async () => {
    const cols = [
      col('b', 'bool', 16),
      col('i', 'int4', 23),
      col('s', 'int2', 21),
      col('big', 'int8', 20),
      col('num', 'numeric', 1700),
      col('f', 'float8', 701),
      col('j', 'jsonb', 3802),
      col('t', 'text', 25),
      col('t', 'text', 25),
      col('o', 'oid', 26),
    ];
    const events: ExecEvent[] = [
      { type: 'columns', statement: 0, columns: cols },
      {
        type: 'rows',
        statement: 0,
        rows: [
          ['t', '42', '-3', '9007199254740993', '1.10', '2.5', '{"a": [1, 2]}', 'x', 'y', '1259'],
          ['f', null, null, null, null, 'NaN', 'null', null, '', '0'],
        ],
      },
      { type: 'complete', statement: 0, command: 'SELECT 2', rows: 2 },
      { type: 'complete', statement: 1, command: 'UPDATE 0', rows: 0 },
      { type: 'end', status: 'ok', statements: 2 },
    ];
    const r = await run({ format: 'json' }, { client: fakeExec(events) });
    const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(lines).toEqual([
      { statement: 0, row: { b: true, i: 42, s: -3, big: '9007199254740993', num: '1.10', f: 2.5, j: { a: [1, 2] }, t: 'x', t_2: 'y', o: 1259 } },
      { statement: 0, row: { b: false, i: null, s: null, big: null, num: null, f: 'NaN', j: null, t: null, t_2: '', o: 0 } },
      { statement: 0, command: 'SELECT 2', rows: 2 },
      { statement: 1, command: 'UPDATE 0', rows: 0 },
    ]);
    expect(r.stdout.split('\n')[0]).toBe(
      '{"statement":0,"row":{"b":true,"i":42,"s":-3,"big":"9007199254740993","num":"1.10","f":2.5,"j":{"a":[1,2]},"t":"x","t_2":"y","o":1259}}',
    );
  });

  it('writes where it stopped as an error object', async () => {
    const events: ExecEvent[] = [
      { type: 'complete', statement: 0, command: 'INSERT 0 1', rows: 1 },
      { type: 'error', statement: 1, sqlstate: '42P01', message: 'relation "x" does not exist' },
      { type: 'end', status: 'error', statements: 2 },
    ];
    const r = await run({ format: 'json' }, { client: fakeExec(events) });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('{"statement":0,"command":"INSERT 0 1","rows":1}\n{"statement":1,"error":{"sqlstate":"42P01","message":"relation \\"x\\" does not exist"}}\n');
  });

  it('keeps repeated column names apart with _2, _3 (and skips a suffix already taken)', () => {
    expect(uniqueKeys(['a', 'a', 'a'])).toEqual(['a', 'a_2', 'a_3']);
    expect(uniqueKeys(['a', 'a', 'a_2'])).toEqual(['a', 'a_3', 'a_2']);
    expect(uniqueKeys(['__proto__', 'x'])).toEqual(['__proto__', 'x']);
  });

  it('writes a column named __proto__ as an ordinary key', async () => {
    const events: ExecEvent[] = [
      { type: 'columns', statement: 0, columns: [col('__proto__')] },
      { type: 'rows', statement: 0, rows: [['p']] },
      { type: 'complete', statement: 0, command: 'SELECT 1', rows: 1 },
      { type: 'end', status: 'ok', statements: 1 },
    ];
    const r = await run({ format: 'json' }, { client: fakeExec(events) });
    expect(r.stdout.split('\n')[0]).toBe('{"statement":0,"row":{"__proto__":"p"}}');
  });
});

describe('sluice exec --json', () => {
  it('prints one summary object and no rows', async () => {
    const r = await run({ json: true }, { client: fakeExec(SELECT_THEN_INSERT) });
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(r.stdout)).toEqual({
      status: 'ok',
      session: 's_1',
      statements: [
        { command: 'SELECT 2', rows: 2 },
        { command: 'INSERT 0 3', rows: 3 },
        { command: 'SELECT 1', rows: 1 },
      ],
    });
    expect(r.stderr).toContain('NOTICE:');
  });

  it('carries the error and the review of a failed exec, and still exits with its code', async () => {
    const events: ExecEvent[] = [
      { type: 'session', id: 's_2' },
      { type: 'review', id: 'R-8F3K', status: 'pending', rule: 'payments-review', approvers: ['dba'] },
      { type: 'review', id: 'R-8F3K', status: 'rejected', by: 'alice@example.com', reason: 'not today' },
      { type: 'error', statement: 0, sqlstate: '42501', message: 'review R-8F3K rejected', rule: 'payments-review' },
      { type: 'end', status: 'review_rejected', statements: 1 },
    ];
    const r = await run({ json: true }, { client: fakeExec(events) });
    expect(r.code).toBe(5);
    expect(JSON.parse(r.stdout)).toEqual({
      status: 'review_rejected',
      session: 's_2',
      statements: [],
      error: { statement: 0, sqlstate: '42501', message: 'review R-8F3K rejected', rule: 'payments-review' },
      review: { id: 'R-8F3K', status: 'rejected', by: 'alice@example.com', reason: 'not today' },
    });
  });

  it('refuses --format beside it (exit 2, naming both flags)', async () => {
    const r = await run({ json: true, format: 'csv' }, { client: fakeExec(SELECT_THEN_INSERT) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--json .*--format/);
    expect(r.calls).toHaveLength(0);
  });
});
