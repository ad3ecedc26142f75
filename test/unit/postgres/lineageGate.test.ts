// The engine's lineage gate without a database: catalog facts asked once per name and kept, the
// fast path for statements nothing masked can reach, both derived modes, cursors and prepared
// statements across messages, forgetting facts after DDL, and COPY (query) plans.
import { describe, expect, it } from 'vitest';
import { copyPlanFromLineage, LineageGate, RULE_COPY, RULE_DERIVED, RULE_PREDICATE, type LineageFacts, type LineageVerdict } from '../../../gateway/engines/postgres/lineageGate.js';
import { lineageKey } from '../../../gateway/engines/postgres/catalog.js';
import { analyzeSql, compilePolicy, maskPolicyFor, policySchema, type FunctionKind, type MaskPolicy, type QualifiedRef, type RelationFacts, type StatementAnalysis } from '../../../gateway/policy/index.js';

const RELATIONS: RelationFacts[] = [
  { schema: 'public', name: 'customers', kind: 'table', columns: ['id', 'name', 'email'] },
  { schema: 'public', name: 'pgbench_accounts', kind: 'table', columns: ['aid', 'bid', 'abalance', 'filler'] },
  { schema: 'public', name: 'contacts', kind: 'view', columns: ['id', 'contact'], definition: ' SELECT customers.id, customers.email AS contact FROM customers;' },
];

function mask(derived?: 'redact'): MaskPolicy {
  return maskPolicyFor(compilePolicy(policySchema.parse({ rules: [{ id: 'pii', mask: { columns: ['customers.email'], with: 'partial' } }], backstop: false, ...(derived ? { derived } : {}) })), []) as MaskPolicy;
}

function facts(): LineageFacts & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    async lineageRelations(refs: readonly QualifiedRef[]) {
      asked.push(...refs.map((r) => `rel:${r.name}`));
      return new Map(refs.map((r) => [lineageKey(r), RELATIONS.filter((f) => f.name === r.name)]));
    },
    async functionKinds(refs: readonly QualifiedRef[]) {
      asked.push(...refs.map((r) => `fn:${r.name}`));
      return new Map(refs.map((r): [string, FunctionKind] => [lineageKey(r), r.name === 'leak' ? 'user' : 'stable']));
    },
    async operatorKinds(refs: readonly QualifiedRef[]) {
      asked.push(...refs.map((r) => `op:${r.name}`));
      return new Map(refs.map((r): [string, FunctionKind] => [lineageKey(r), r.name === '~%~' ? 'user' : 'stable']));
    },
  };
}

const statements = (sql: string): readonly StatementAnalysis[] => {
  const a = analyzeSql(sql);
  if (!a.ok) throw new Error(a.error);
  return a.statements;
};

async function judge(gate: LineageGate, sql: string): Promise<LineageVerdict> {
  for (let i = 0; i < 5; i++) {
    const v = gate.judge(statements(sql));
    if (!(v instanceof Promise)) return v;
    await v;
  }
  throw new Error('facts never settled');
}

describe('LineageGate', () => {
  it('asks the catalog once per name, and answers a clean statement with nothing to do', async () => {
    const f = facts();
    const gate = new LineageGate(mask(), f, () => undefined);
    expect(await judge(gate, 'select abalance from pgbench_accounts where aid = 1')).toEqual({ results: [] });
    expect(await judge(gate, 'select abalance from pgbench_accounts where aid = 2')).toEqual({ results: [] });
    expect(f.asked).toEqual(['rel:pgbench_accounts', 'op:=']);
  });

  it('refuses an operator that runs a function written in the database, like a call of that function', async () => {
    const f = facts();
    const gate = new LineageGate(mask(), f, () => undefined);
    expect((await judge(gate, 'select 1 ~%~ 1')).refusal).toEqual({ rule: RULE_DERIVED, reason: expect.stringContaining('operator ~%~ runs a function written in the database') });
    expect((await judge(gate, 'select id from orders where (select 1 ~%~ 2) is null')).refusal?.rule).toBe(RULE_DERIVED);
    expect((await judge(gate, 'select id from pgbench_accounts where aid = 1 + 1')).refusal).toBeUndefined();
  });

  it('keeps pass-through lineage for the RowDescription, refuses derived columns by default and redacts them on request', async () => {
    const refuse = new LineageGate(mask(), facts(), () => undefined);
    const pass = await judge(refuse, 'select contact from contacts union all select email from customers');
    expect(pass.results[0]?.[0]?.lineage).toMatchObject({ kind: 'pass', strategy: 'partial' });
    expect((await judge(refuse, 'select upper(contact) as u from contacts')).refusal).toEqual({ rule: RULE_DERIVED, reason: expect.stringContaining('output column "u" is computed from public.customers.email') });
    expect((await judge(refuse, "select id from customers where email like 'a%'")).refusal?.rule).toBe(RULE_PREDICATE);
    expect((await judge(refuse, 'update customers set name = email where id = 1')).refusal?.rule).toBe(RULE_COPY);
    expect((await judge(refuse, 'select leak(1)')).refusal?.reason).toContain('leak()');
    expect((await judge(refuse, 'create function f() returns int language sql as $$select 1$$')).refusal?.reason).toContain('CREATE FUNCTION');
    expect((await judge(refuse, 'set enable_seqscan = off')).refusal?.rule).toBe(RULE_PREDICATE);
    expect((await judge(refuse, "select set_config('enable_indexscan', 'on', false)")).refusal?.rule).toBe(RULE_PREDICATE);
    expect((await judge(refuse, "set statement_timeout = '1s'")).refusal).toBeUndefined();
    const redact = new LineageGate(mask('redact'), facts(), () => undefined);
    const r = await judge(redact, 'select id, upper(email) from customers');
    expect(r.refusal).toBeUndefined();
    expect(r.results[0]?.map((c) => c.lineage.kind)).toEqual(['clean', 'derived']);
    expect((await judge(redact, "select id from customers where email like 'a%'")).refusal?.rule).toBe(RULE_PREDICATE);
  });

  it('FETCH returns what its DECLARE traced, in the same message or later; an unknown cursor is derived', async () => {
    const gate = new LineageGate(mask('redact'), facts(), () => undefined);
    const same = await judge(gate, 'declare c cursor for select id, email from customers; fetch 1 from c');
    expect(same.results.map((r) => r?.map((c) => c.lineage.kind))).toEqual([undefined, ['clean', 'pass']]);
    expect((await judge(gate, 'fetch 2 from c')).results[0]?.map((c) => c.lineage.kind)).toEqual(['clean', 'pass']);
    expect((await judge(gate, 'fetch 2 from nobody')).results[0]).toEqual([{ name: undefined, lineage: { kind: 'derived', source: expect.stringContaining('did not see declared') }, spread: true }]);
    await judge(gate, 'close c');
    expect((await judge(gate, 'fetch 2 from c')).results[0]?.[0]?.spread).toBe(true);
  });

  it('EXECUTE returns what the confirmed PREPARE traced', async () => {
    const prepared = new Map([['p', 'prepare p as select email from customers union all select email from customers']]);
    const gate = new LineageGate(mask(), facts(), (name) => prepared.get(name));
    expect((await judge(gate, 'execute p')).results[0]?.[0]?.lineage.kind).toBe('pass');
    expect((await judge(gate, 'execute unknown')).refusal?.reason).toContain('prepared statement unknown');
    expect((await judge(gate, 'prepare q as select 1; execute q')).refusal).toBeUndefined();
  });

  it('forgets what it looked up after DDL, and after the commit of a transaction that ran DDL', async () => {
    const f = facts();
    const gate = new LineageGate(mask(), f, () => undefined);
    await judge(gate, 'select id from customers');
    await judge(gate, 'create view v as select 1 as x');
    await judge(gate, 'select id from customers');
    await judge(gate, 'commit');
    await judge(gate, 'select id from customers');
    await judge(gate, "set statement_timeout = '1s'");
    await judge(gate, 'select id from customers');
    expect(f.asked.filter((a) => a === 'rel:customers')).toHaveLength(3);
    await judge(gate, 'set search_path = public');
    await judge(gate, 'select id from customers');
    expect(f.asked.filter((a) => a === 'rel:customers')).toHaveLength(4);
  });

  it('plans COPY (query) from lineage: pass-throughs masked, derived redacted, unknown widths refused', () => {
    const copy = { direction: 'to', target: 'stdio', format: 'text', header: false } as const;
    const plan = copyPlanFromLineage(mask(), copy, [
      { name: 'id', lineage: { kind: 'clean' } },
      { name: 'e', lineage: { kind: 'pass', strategy: 'partial', source: 'x' } },
      { name: 'u', lineage: { kind: 'derived', source: 'x' } },
    ]);
    expect(plan.action === 'mask' && [...plan.options.columns]).toEqual([
      [1, 'partial'],
      [2, 'redact'],
    ]);
    expect(copyPlanFromLineage(mask(), copy, [{ name: undefined, lineage: { kind: 'derived', source: 'x' }, spread: true }]).action).toBe('refuse');
    expect(copyPlanFromLineage(mask(), copy, undefined).action).toBe('none');
  });
});
