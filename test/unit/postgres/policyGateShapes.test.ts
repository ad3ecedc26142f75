// PolicyGate judges a statement repeated with other literals once per session (evaluate()'s
// verdict kept per statement shape), and never where something besides the shape can decide: a
// rule matching the text, the user-defined objects read again after the session defined one,
// EXECUTE of a prepared statement.
import { describe, expect, it } from 'vitest';
import { PolicyGate } from '../../../gateway/engines/postgres/policyGate.js';
import { settle } from './judged.js';
import type { UserObjectsSource } from '../../../gateway/engines/postgres/sessionUserObjects.js';
import { NO_USER_OBJECTS, userObjectsFromRows, type StatementAnalysis, type UserObjects } from '../../../gateway/policy/index.js';
import { policyFromYaml } from '../policy/fixtures.js';

const IDENTITY = { subject: 'user:eve', name: 'eve', groups: ['eng'], kind: 'human' as const };


const verdicts = async (gate: PolicyGate, texts: string[]) => {
  const out: string[] = [];
  for (const t of texts) out.push((await settle(gate, t)).decision.verdict);
  return out;
};

describe('PolicyGate verdicts per statement shape', () => {
  it('judges every text of one shape alike, and reuses the verdict', async () => {
    const gate = new PolicyGate(IDENTITY, policyFromYaml('rules: [{ id: d, block: { statements: [delete] } }]'), undefined);
    const first = await settle(gate, 'SELECT abalance FROM pgbench_accounts WHERE aid = 1');
    const second = await settle(gate, 'SELECT abalance FROM pgbench_accounts WHERE aid = 2');
    expect(second.decision).toBe(first.decision);
    expect(await verdicts(gate, ['DELETE FROM t WHERE id = 1', 'DELETE FROM t WHERE id = 2', 'SELECT 1 FROM t WHERE id = 2'])).toEqual(['block', 'block', 'allow']);
  });

  it('judges each text again when a rule matches the text itself', async () => {
    const gate = new PolicyGate(IDENTITY, policyFromYaml("rules: [{ id: beast, block: { sql: 'aid = 666\\b' } }]"), undefined);
    expect(await verdicts(gate, ['SELECT abalance FROM pgbench_accounts WHERE aid = 1', 'SELECT abalance FROM pgbench_accounts WHERE aid = 666', 'SELECT abalance FROM pgbench_accounts WHERE aid = 7'])).toEqual([
      'allow',
      'block',
      'allow',
    ]);
  });

  it('judges again once the user-defined objects were read again', async () => {
    // The second read finds an operator ### that runs pg_read_file, as if the session had created it.
    const reads: UserObjects[] = [NO_USER_OBJECTS, userObjectsFromRows([['operator', 'public', '###', 'pg_catalog', 'pg_read_file']])];
    const source: UserObjectsSource = { userObjects: () => Promise.resolve(reads.shift() ?? NO_USER_OBJECTS) };
    const gate = new PolicyGate(IDENTITY, policyFromYaml('rules: [{ id: files, block: { functions: [pg_read_file] } }]'), undefined, source);
    expect(await verdicts(gate, ["SELECT ### 'a'", "SELECT ### 'b'"])).toEqual(['allow', 'allow']);
    const created = await settle(gate, 'CREATE OPERATOR ### (FUNCTION = pg_read_file, RIGHTARG = text)');
    gate.completed((created.analysis.ok ? created.analysis.statements[0] : undefined) as StatementAnalysis, created.text);
    expect(await verdicts(gate, ["SELECT ### 'c'"])).toEqual(['block']);
  });

  it('judges EXECUTE against the statement prepared under that name now', async () => {
    const gate = new PolicyGate(IDENTITY, policyFromYaml('rules: [{ id: d, block: { statements: [delete] } }]'), undefined);
    const define = async (sql: string) => {
      const def = await settle(gate, sql);
      gate.completed((def.analysis.ok ? def.analysis.statements[0] : undefined) as StatementAnalysis, def.text);
    };
    await define('PREPARE p AS SELECT 1');
    expect(await verdicts(gate, ['EXECUTE p(1)'])).toEqual(['allow']);
    await define('DEALLOCATE p');
    await define('PREPARE p AS DELETE FROM t');
    expect(await verdicts(gate, ['EXECUTE p(2)'])).toEqual(['block']);
  });
});
