// The CLI checks exec events by hand (src/api/execEvents.ts) instead of with the contract's zod
// schema: these tests hold the two to exactly the same answers, on every event shape and on each
// of them with every field removed, retyped or joined by one it does not know.
import { describe, expect, it } from 'vitest';
import { execEvent } from '../../../src/api/contract.js';
import { checkExecEvent } from '../../../src/api/execEvents.js';

const VALID: Record<string, unknown>[] = [
  { type: 'session', id: 's_1' },
  { type: 'review', id: 'R-1', status: 'pending', rule: 'r', approvers: ['a', 'b'], expiresAt: '2026-01-01T00:00:00Z', by: 'x', reason: 'y' },
  { type: 'review', id: 'R-1', status: 'approved' },
  { type: 'waiting', review: 'R-1' },
  { type: 'columns', statement: 0, columns: [{ name: 'a', typeOid: 23, type: 'int4' }] },
  { type: 'columns', statement: 2, columns: [] },
  { type: 'rows', statement: 0, rows: [['1', null], []] },
  { type: 'notice', statement: 1, severity: 'NOTICE', message: 'm', sqlstate: '00000' },
  { type: 'notice', severity: 'WARNING', message: 'm' },
  { type: 'complete', statement: 0, command: 'SELECT 1', rows: 1 },
  { type: 'complete', statement: 0, command: 'CREATE TABLE', rows: null },
  { type: 'error', statement: 0, sqlstate: '42P01', message: 'no such table', rule: 'deny-drop' },
  { type: 'error', message: 'the session ended' },
  { type: 'end', status: 'ok', statements: 1, session: 's_1' },
  { type: 'end', status: 'review_pending', statements: 0 },
];

/** Values of every JSON kind, plus integers zod's `.int()` refuses and the edges it accepts. */
const ODD: unknown[] = [null, true, 0, -1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, '', 'x', 'ok', 'pending', [], ['x'], [null], [[]], [['x', 1]], {}, { name: 'a', typeOid: 1, type: 't' }, [{ name: 'a', typeOid: 1.5, type: 't' }], [{ name: 'a', typeOid: 1, type: 't', extra: 1 }]];

function variants(event: Record<string, unknown>): unknown[] {
  const out: unknown[] = [event, { ...event, unknown: 1 }];
  for (const key of Object.keys(event)) {
    const { [key]: _removed, ...without } = event;
    out.push(without);
    for (const v of ODD) out.push({ ...event, [key]: v });
  }
  return out;
}

function agree(value: unknown): void {
  const zod = execEvent.safeParse(value);
  const mine = checkExecEvent(value);
  if (zod.success) expect(mine, JSON.stringify(value)).toEqual({ event: zod.data });
  else expect('problem' in mine, `accepted what zod refuses: ${JSON.stringify(value)}`).toBe(true);
}

describe('checkExecEvent', () => {
  it('accepts every event shape the contract defines, as zod parses it', () => {
    for (const event of VALID) {
      expect(execEvent.safeParse(event).success).toBe(true);
      agree(event);
    }
  });

  it('agrees with the zod schema on every field removed, retyped or added', () => {
    let refused = 0;
    for (const event of VALID) {
      for (const v of variants(event)) {
        agree(v);
        if (!execEvent.safeParse(v).success) refused++;
      }
    }
    // The corpus must exercise refusals, not only acceptances.
    expect(refused).toBeGreaterThan(200);
  });

  it('refuses what is not an event object, naming the problem', () => {
    for (const v of [null, 1, 'session', [], [{ type: 'session', id: 'x' }], { type: 'nope' }, { id: 'x' }, { type: 'constructor' }, { type: 'toString' }]) agree(v);
    expect(checkExecEvent({ type: 'end', status: 'fine', statements: 1 })).toEqual({ problem: expect.stringContaining('status') });
    expect(checkExecEvent({ type: 'rows', statement: 0, rows: [[1]] })).toEqual({ problem: expect.stringContaining('rows') });
  });

  it('drops unknown keys of columns, as zod does, and hands rows over without copying them', () => {
    const rows = [['1']];
    const checked = checkExecEvent({ type: 'rows', statement: 0, rows, extra: true });
    expect(checked).toEqual({ event: { type: 'rows', statement: 0, rows } });
    expect('event' in checked && checked.event.type === 'rows' && checked.event.rows).toBe(rows);
    expect(checkExecEvent({ type: 'columns', statement: 0, columns: [{ name: 'a', typeOid: 1, type: 't', x: 1 }] })).toEqual({ event: { type: 'columns', statement: 0, columns: [{ name: 'a', typeOid: 1, type: 't' }] } });
  });
});
