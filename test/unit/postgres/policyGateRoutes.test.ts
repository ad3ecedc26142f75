// PolicyGate with a review rule on a table and column masks: a definition that would make a new
// route to the reviewed table is judged by the write routes (review) and then by the masking
// gates, which refuse it in masked sessions. Only the final verdict may mark the definition as
// sent for review: one the masking gates refused never reaches the target, so it must not leave
// the session's writes failing closed, nor have its own retry (after a catalog look-up) refused
// for a definition "sent for review earlier in this transaction".
import { describe, expect, it } from 'vitest';
import { PolicyGate } from '../../../gateway/engines/postgres/policyGate.js';
import { settle } from './judged.js';
import type { LineageFacts } from '../../../gateway/engines/postgres/lineageGate.js';
import type { CatalogRows } from '../../../gateway/engines/postgres/writeRouteCatalog.js';
import { lineageKey } from '../../../gateway/engines/postgres/catalog.js';
import type { ColumnNameResolver, FunctionKind, QualifiedRef, RelationFacts } from '../../../gateway/policy/index.js';
import { policyFromYaml } from '../policy/fixtures.js';

const REVIEW_AND_MASKS = policyFromYaml(`
rules:
  - id: payments-review
    review: { statements: [insert, update, delete, merge], tables: [payments], match: all, approvers: [dba], timeout: 2s }
  - id: pii
    mask: { columns: [customers.email] }
`);
const IDENTITY = { subject: 'user:eve', name: 'eve', groups: ['eng'], kind: 'human' as const };

/** One catalog for every look-up: write routes (rows), lineage and the copy guard. */
function fakeCatalog(): ColumnNameResolver & LineageFacts & CatalogRows {
  const rel: Record<number, [string, string]> = { 1: ['public', 'payments'], 3: ['public', 'orders'], 4: ['public', 'customers'] };
  const facts: RelationFacts[] = [
    { schema: 'public', name: 'customers', kind: 'table', columns: ['id', 'name', 'email'] },
    { schema: 'public', name: 'orders', kind: 'table', columns: ['id', 'amount'] },
    { schema: 'public', name: 'payments', kind: 'table', columns: ['id', 'amount'] },
  ];
  return {
    rows(sql: string): Promise<(string | null)[][]> {
      if (/proname = /.test(sql)) return Promise.resolve([]);
      const named = /relname = \$q\$(\w+)\$q\$/.exec(sql)?.[1];
      if (named !== undefined) return Promise.resolve(Object.entries(rel).filter(([, [, n]]) => n === named).map(([oid]) => [oid]));
      const oids = (/c\.oid IN \(([\d, ]+)\)/.exec(sql)?.[1] ?? '').split(', ').map(Number);
      return Promise.resolve(oids.filter((o) => rel[o]).map((o) => [String(o), ...(rel[o] as [string, string]), '{}', '{}', '{}', '{}', '{}', '{}', '{}']));
    },
    lineageRelations: async (refs: readonly QualifiedRef[]) => new Map(refs.map((r) => [lineageKey(r), facts.filter((f) => f.name === r.name)])),
    functionKinds: async (refs: readonly QualifiedRef[]) => new Map(refs.map((r): [string, FunctionKind] => [lineageKey(r), 'user'])),
    operatorKinds: async (refs: readonly QualifiedRef[]) => new Map(refs.map((r): [string, FunctionKind] => [lineageKey(r), 'stable'])),
    resolve: async () => new Map(),
    relationColumns: async () => undefined,
    relationsNamed: async () => [],
    functionIsUserCode: async () => true,
  };
}


describe('PolicyGate: write routes and masking together', () => {
  it('a definition the masking gates refuse is refused for masking, and leaves writes allowed', async () => {
    const gate = new PolicyGate(IDENTITY, REVIEW_AND_MASKS, fakeCatalog());
    for (const sql of [
      "create rule orders_sneak as on insert to orders do also insert into payments (id, amount) values (new.id + 100, new.amount)",
      'create function pay_sneak() returns void language sql as $$ insert into payments values (22, 1) $$',
    ]) {
      const def = await settle(gate, sql);
      expect(def.decision.verdict).toBe('block');
      expect(def.decision.rule).toMatch(/^sluice:masked-/);
      expect(def.decision.reason).not.toMatch(/sent for review earlier/);
    }
    expect((await settle(gate, 'insert into orders values (1, 1)')).decision.verdict).toBe('allow');
    expect(gate.judge('insert into orders values (2, 1)', true)).not.toBe('wait');
  });

  it('a write to the reviewed table itself is still held', async () => {
    const gate = new PolicyGate(IDENTITY, REVIEW_AND_MASKS, fakeCatalog());
    expect((await settle(gate, 'insert into payments values (1, 1)')).decision).toMatchObject({ verdict: 'review', rule: 'payments-review' });
  });
});
