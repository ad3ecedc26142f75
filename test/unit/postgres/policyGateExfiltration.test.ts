// PolicyGate with column masks and no block rule: statements are still analysed and copies of
// masked values refused; relations and functions are looked up once per session, and again after
// a statement that may have changed what a name refers to.
import { describe, expect, it } from 'vitest';
import { PolicyGate } from '../../../gateway/engines/postgres/policyGate.js';
import { settle } from './judged.js';
import type { LineageFacts } from '../../../gateway/engines/postgres/lineageGate.js';
import { lineageKey } from '../../../gateway/engines/postgres/catalog.js';
import type { ColumnNameResolver, FunctionKind, NamedRelation, QualifiedRef, RelationFacts } from '../../../gateway/policy/index.js';
import { analyzeSql } from '../../../gateway/policy/sql.js';
import { policyFromYaml } from '../policy/fixtures.js';

const MASKS_ONLY = policyFromYaml('rules: [{ id: pii, mask: { columns: [customers.email] } }]');
const IDENTITY = { subject: 'user:eve', name: 'eve', groups: ['eng'], kind: 'human' as const };

function fakeCatalog() {
  const asked: string[] = [];
  const relations = new Map<string, NamedRelation>([['archive', { schema: 'public', table: 'archive', columns: new Map([[1, 'id'], [2, 'note']]), ancestors: [] }]]);
  // Lineage's facts (lineageGate.ts) are answered too, without being counted: this test is about
  // the exfiltration guard's own look-ups.
  const facts: RelationFacts[] = [
    { schema: 'public', name: 'customers', kind: 'table', columns: ['id', 'name', 'email'] },
    { schema: 'public', name: 'archive', kind: 'table', columns: ['id', 'note'] },
  ];
  const resolver: ColumnNameResolver & LineageFacts = {
    lineageRelations: async (refs: readonly QualifiedRef[]) => new Map(refs.map((r) => [lineageKey(r), facts.filter((f) => f.name === r.name)])),
    functionKinds: async (refs: readonly QualifiedRef[]) => new Map(refs.map((r): [string, FunctionKind] => [lineageKey(r), r.name === 'admin_fn' ? 'user' : 'stable'])),
    operatorKinds: async (refs: readonly QualifiedRef[]) => new Map(refs.map((r): [string, FunctionKind] => [lineageKey(r), 'stable'])),
    resolve: async () => new Map(),
    relationColumns: async () => undefined,
    relationsNamed: async (r) => {
      asked.push(r.name);
      const rel = relations.get(r.name);
      return rel === undefined ? [] : [rel];
    },
    functionIsUserCode: async (name) => {
      asked.push(`${name}()`);
      return name === 'admin_fn';
    },
  };
  return { asked, resolver };
}


describe('PolicyGate with column masks only', () => {
  it('refuses copies, opaque code and exposing catalogs before anything is forwarded', async () => {
    const { resolver } = fakeCatalog();
    const gate = new PolicyGate(IDENTITY, MASKS_ONLY, resolver);
    expect(gate.enforce).toBe(false);
    expect((await settle(gate, 'CREATE TABLE leak AS SELECT email FROM customers')).decision).toMatchObject({ verdict: 'block', rule: 'sluice:masked-copy' });
    expect((await settle(gate, 'DO $$ BEGIN INSERT INTO archive SELECT 1, email FROM customers; END $$')).decision).toMatchObject({ verdict: 'block', rule: 'sluice:masked-copy' });
    expect((await settle(gate, 'SELECT * FROM pg_stats')).decision).toMatchObject({ verdict: 'block', rule: 'sluice:masked-catalog' });
    expect((await settle(gate, 'INSERT INTO archive SELECT 1, admin_fn()')).decision).toMatchObject({ verdict: 'block', reason: expect.stringContaining('admin_fn()') });
    expect((await settle(gate, 'SELECT email FROM customers')).decision).toEqual({ verdict: 'allow', hits: [] });
    expect((await settle(gate, 'SELEC email FROM customers')).decision).toMatchObject({ verdict: 'block', rule: 'sluice:unparseable' });
    expect((await settle(gate, 'INSERT INTO archive SELECT id, note FROM archive')).decision).toEqual({ verdict: 'allow', hits: [] });
  });

  it('looks a relation up once, and again after DDL', async () => {
    const { asked, resolver } = fakeCatalog();
    const gate = new PolicyGate(IDENTITY, MASKS_ONLY, resolver);
    const sql = 'INSERT INTO archive SELECT id, note FROM archive WHERE id = 1';
    await settle(gate, sql);
    await settle(gate, sql.replace('1', '2'));
    expect(asked).toEqual(['archive']);
    const ddl = analyzeSql('CREATE TABLE other (a int)');
    gate.completed(ddl.ok ? ddl.statements[0] : undefined, 'CREATE TABLE other (a int)');
    await settle(gate, sql);
    expect(asked).toEqual(['archive', 'archive']);
  });

  it('without a catalog, refuses what it would have to look up', async () => {
    const gate = new PolicyGate(IDENTITY, MASKS_ONLY, undefined);
    expect((await settle(gate, 'INSERT INTO archive SELECT id, note FROM archive')).decision).toMatchObject({ verdict: 'block', reason: expect.stringContaining('cannot find') });
  });
});
