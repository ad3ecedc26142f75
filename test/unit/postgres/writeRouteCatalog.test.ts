// The session's write-route cache (writeRouteCatalog.ts) over an injected catalog seam: asked once
// per relation, asked again after DDL, and failing closed when the look-up fails, when there is
// no catalog, and while a definition sent for review may be uncommitted. The real catalog queries
// run against PostgreSQL in test/integration/adversarial-reviews.test.ts.
import { describe, expect, it } from 'vitest';
import { WriteRoutes, type CatalogRows } from '../../../gateway/engines/postgres/writeRouteCatalog.js';
import { evaluate } from '../../../gateway/policy/evaluate.js';
import type { SqlAnalysis } from '../../../gateway/policy/sql.js';
import { analyzeSql } from '../../../gateway/policy/sql.js';
import { policyFromYaml } from '../policy/fixtures.js';

const POLICY = policyFromYaml(`
rules:
  - id: no-ddl
    block: { statements: [drop] }
  - id: payments-review
    review: { statements: [insert, update, delete, merge], tables: [payments], match: all, approvers: [dba], timeout: 2s }
`);

/** A catalog where `payments_view` (oid 2) reads `payments` (oid 1) through its _RETURN rule. */
function fakeCatalog(): CatalogRows & { queries: string[]; fail: boolean } {
  const rel: Record<number, [string, string]> = { 1: ['public', 'payments'], 2: ['public', 'payments_view'], 3: ['public', 'orders'] };
  const cat = {
    queries: [] as string[],
    fail: false,
    rows(sql: string): Promise<(string | null)[][]> {
      cat.queries.push(sql);
      if (cat.fail) return Promise.reject(new Error('the catalog connection closed'));
      const fn = /proname = \$q\$(\w+)\$q\$/.exec(sql)?.[1];
      if (fn !== undefined) return Promise.resolve(fn === 'now' ? [['1299', 't']] : []);
      const named = /relname = \$q\$(\w+)\$q\$/.exec(sql)?.[1];
      if (named !== undefined) return Promise.resolve(Object.entries(rel).filter(([, [, n]]) => n === named).map(([oid]) => [oid]));
      const oids = (/c\.oid IN \(([\d, ]+)\)/.exec(sql)?.[1] ?? '').split(', ').map(Number);
      return Promise.resolve(oids.filter((o) => rel[o]).map((o) => [String(o), ...(rel[o] as [string, string]), '{}', '{}', o === 2 ? '{1}' : '{}', '{}', '{}', '{}']));
    },
  };
  return cat;
}

async function judge(routes: WriteRoutes, sql: string): Promise<string> {
  const parsed = analyzeSql(sql);
  let out: SqlAnalysis | Promise<void> = routes.expand(parsed);
  while (out instanceof Promise) {
    await out;
    out = routes.expand(parsed);
  }
  const d = evaluate({ groups: ['eng'] }, POLICY, { kind: 'sql', analysis: out, text: sql });
  routes.judged(out, d.verdict);
  return d.rule === undefined ? d.verdict : `${d.verdict} ${d.rule}`;
}

describe('write routes from the catalog', () => {
  it('holds a write through a view and asks about each relation once per session', async () => {
    const cat = fakeCatalog();
    const routes = new WriteRoutes(cat);
    expect(await judge(routes, 'insert into payments_view values (1)')).toBe('review payments-review');
    const asked = cat.queries.length;
    expect(await judge(routes, 'insert into payments_view values (2)')).toBe('review payments-review');
    expect(cat.queries.length).toBe(asked);
    // A read is looked up once too (the view's facts are known already: only its name is resolved).
    expect(await judge(routes, 'select * from payments_view')).toBe('allow');
    expect(cat.queries.length).toBe(asked + 1);
    expect(await judge(routes, 'select * from payments_view where id = 2')).toBe('allow');
    expect(cat.queries.length).toBe(asked + 1);
    expect(await judge(routes, 'insert into orders values (1)')).toBe('allow');
  });

  it('asks again after a minute, for routes made elsewhere', async () => {
    const cat = fakeCatalog();
    let now = 1_000_000;
    const routes = new WriteRoutes(cat, () => now);
    await judge(routes, 'insert into orders values (1)');
    const asked = cat.queries.length;
    now += 30_000;
    await judge(routes, 'insert into orders values (1)');
    expect(cat.queries.length).toBe(asked);
    now += 31_000;
    await judge(routes, 'insert into orders values (1)');
    expect(cat.queries.length).toBeGreaterThan(asked);
  });

  it('asks again after the session runs DDL', async () => {
    const cat = fakeCatalog();
    const routes = new WriteRoutes(cat);
    await judge(routes, 'insert into orders values (1)');
    const before = routes.generation;
    const asked = cat.queries.length;
    await judge(routes, 'create index on orders (id)');
    expect(routes.generation).toBeGreaterThan(before);
    await judge(routes, 'insert into orders values (1)');
    expect(cat.queries.length).toBeGreaterThan(asked + 1);
  });

  it('lets built-in functions through and refuses a call of a function the catalog does not know', async () => {
    const routes = new WriteRoutes(fakeCatalog());
    expect(await judge(routes, 'select now()')).toBe('allow');
    expect(await judge(routes, 'select made_in_this_transaction()')).toBe('block sluice:opaque-code');
  });

  it('fails closed when the look-up fails or there is no catalog', async () => {
    const cat = fakeCatalog();
    cat.fail = true;
    expect(await judge(new WriteRoutes(cat), 'insert into orders values (1)')).toBe('block sluice:opaque-code');
    expect(await judge(new WriteRoutes(undefined), 'insert into orders values (1)')).toBe('block sluice:opaque-code');
  });

  it('refuses writes after a definition went to review, until the target is idle outside a transaction', async () => {
    const routes = new WriteRoutes(fakeCatalog());
    expect(await judge(routes, 'create rule r as on insert to orders do also insert into payments values (new.id)')).toBe('review payments-review');
    expect(routes.waitsForCommit(analyzeSql('insert into orders values (1)'))).toBe(true);
    expect(routes.waitsForCommit(analyzeSql('select 1'))).toBe(false);
    expect(await judge(routes, 'insert into orders values (1)')).toBe('block sluice:opaque-code');
    expect(await judge(routes, 'select * from orders')).toBe('allow');
    routes.settled();
    expect(await judge(routes, 'insert into orders values (1)')).toBe('allow');
  });
});
