// Adversarial corpus, class "unbounded writes": a real gateway with the recommended policy
// (`unboundedWrites: true`), a real tunnel, real psql and the pg driver, a superuser target role.
// Each attack writes every row of a table behind a WHERE (or MERGE ON) that does not restrict
// the target row — a constant, a parameter, an uncorrelated or shadowed subquery, a column of
// another relation of FROM/USING, `x = x`, an OR with a true branch. The tables are checked on
// the target directly afterwards; bounded writes must keep working.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startArena, type Arena } from '../support/arena.js';

const cluster = inject('pgCluster');

const UNBOUNDED: readonly string[] = [
  'DELETE FROM orders WHERE true',
  'DELETE FROM orders WHERE 1 = 1',
  "delete from \"orders\" where 'a' = 'a' -- and id = 1",
  'DELETE FROM orders WHERE EXISTS (SELECT 1)',
  'DELETE FROM orders WHERE (SELECT count(*) FROM customers) > 0',
  'DELETE FROM orders WHERE EXISTS (SELECT 1 FROM orders WHERE orders.id = 1)',
  'DELETE FROM orders WHERE EXISTS (SELECT 1 FROM customers WHERE id = 1)',
  "UPDATE orders SET amount = 0 WHERE now() > '2000-01-01'",
  'UPDATE orders SET amount = 0 WHERE random() < 2',
  'UPDATE orders SET amount = 0 WHERE id = 1 OR true',
  'UPDATE orders SET amount = 0 WHERE id = id',
  'DELETE FROM orders WHERE NOT (id = 1 AND false)',
  'DELETE FROM orders USING customers WHERE name IS NOT NULL',
  'DELETE FROM orders USING customers c WHERE c.id = 1',
  "UPDATE orders SET amount = 0 FROM customers WHERE customers.name = 'Ada'",
  'WITH d AS (DELETE FROM orders WHERE 1 = 1 RETURNING *) SELECT count(*) FROM d',
  'EXPLAIN ANALYZE DELETE FROM orders WHERE EXISTS (SELECT 1)',
  'COPY (DELETE FROM orders WHERE true RETURNING id) TO STDOUT',
  'MERGE INTO orders USING (SELECT 1) s ON true WHEN MATCHED THEN DELETE',
  'MERGE INTO orders USING (SELECT 1 AS id) s ON s.id = 1 WHEN MATCHED THEN UPDATE SET amount = 0',
  'MERGE INTO orders USING (SELECT 1 AS k) s ON k = 1 WHEN MATCHED THEN DELETE',
  'MERGE INTO orders o USING (SELECT 1 AS id) s ON true WHEN MATCHED AND o.id = 1 THEN UPDATE SET amount = 0 WHEN MATCHED THEN DELETE',
  'PREPARE wipe AS DELETE FROM orders WHERE $1::bool',
  'DELETE FROM payments WHERE EXISTS (SELECT 1)',
];

let arena: Arena;

/** Row counts and the sum of amounts: any write to every row changes one of them. */
const state = async () => (await arena.admin.query('SELECT (SELECT count(*)::int FROM orders) AS orders, (SELECT sum(amount)::int FROM orders) AS amount, (SELECT count(*)::int FROM payments) AS payments')).rows[0] as { orders: number; amount: number; payments: number };

beforeAll(async () => {
  arena = await startArena(cluster, { prefix: 'adv_unbounded' });
});

afterAll(async () => {
  await arena?.stop();
});

describe('writes to every row behind a WHERE that does not restrict the target', () => {
  it.each(UNBOUNDED)('%s', async (sql) => {
    const before = await state();
    const r = await arena.psql(sql, ['-v', 'VERBOSITY=verbose']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ERROR:\s+42501/);
    expect(r.stderr).toContain('no-unbounded-writes');
    expect(await state()).toEqual(before);
  });

  it('a parameter as the whole condition (extended protocol) is refused', async () => {
    const before = await state();
    const c = await arena.client();
    try {
      await expect(c.query('DELETE FROM orders WHERE $1', [true])).rejects.toMatchObject({ code: '42501' });
      await expect(c.query('UPDATE orders SET amount = 0 WHERE $1::int = $2::int', [1, 1])).rejects.toMatchObject({ code: '42501' });
    } finally {
      await c.end();
    }
    expect(await state()).toEqual({ ...before });
  });

  it('left every table as it was', async () => {
    expect(await state()).toEqual({ orders: 9, amount: 450, payments: 2 });
  });
});

describe('bounded writes keep working', () => {
  it.each([
    ['UPDATE orders SET amount = amount WHERE id = 1', 'UPDATE 1'],
    ['DELETE FROM orders WHERE id = 999', 'DELETE 0'],
    ['UPDATE orders SET amount = amount WHERE id = 1 OR id = 2', 'UPDATE 2'],
    ["UPDATE orders o SET amount = o.amount FROM customers c WHERE o.customer_id = c.id AND c.name = 'Ada'", 'UPDATE 3'],
    ["DELETE FROM orders WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = orders.customer_id AND c.name = 'nobody')", 'DELETE 0'],
    ['DELETE FROM orders WHERE id IN (SELECT id FROM orders WHERE amount > 1000)', 'DELETE 0'],
    ['MERGE INTO orders o USING (SELECT 1 AS id) s ON o.id = s.id WHEN MATCHED THEN UPDATE SET amount = o.amount', 'MERGE 1'],
    ['BEGIN; DECLARE c CURSOR FOR SELECT * FROM orders ORDER BY id FOR UPDATE; FETCH c; UPDATE orders SET amount = amount WHERE CURRENT OF c; COMMIT', 'UPDATE 1'],
  ])('%s', async (sql, tag) => {
    const r = await arena.psql(sql);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(tag);
    expect(await state()).toEqual({ orders: 9, amount: 450, payments: 2 });
  });

  it('a parameter compared with a column of the target is a bound', async () => {
    const c = await arena.client();
    try {
      expect((await c.query('UPDATE orders SET amount = amount WHERE id = $1', [2])).rowCount).toBe(1);
    } finally {
      await c.end();
    }
  });
});
