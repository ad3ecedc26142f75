// For PolicyGate tests: a statement's verdict once every catalog look-up it waits for has settled.
import type { PolicyGate, StatementDef } from '../../../gateway/engines/postgres/policyGate.js';

export async function settle(gate: PolicyGate, sql: string): Promise<StatementDef> {
  for (let i = 0; i < 8; i++) {
    const r = gate.judge(sql, false);
    if (r === 'wait') throw new Error('unexpected wait');
    if (!(r instanceof Promise)) return r;
    await r;
  }
  throw new Error('the judgement never settled');
}
