// Unbounded writes, fail closed: a WHERE (or MERGE ON / WHEN … AND) bounds a write only when it
// refers to a column that provably belongs to the target row.
import { describe, expect, it } from 'vitest';
import { analyzeSql, type StatementAnalysis } from '../../../gateway/policy/sql.js';

function only(sql: string): StatementAnalysis {
  const a = analyzeSql(sql);
  if (!a.ok) throw new Error(a.error);
  return a.statements[0] as StatementAnalysis;
}

/** The write of a statement: itself, or the UPDATE/DELETE action of a MERGE. */
const unbounded = (sql: string): boolean => {
  const s = only(sql);
  return s.command === 'merge' ? s.nested.some((n) => n.via === 'merge-action' && n.statement.unboundedWrite) : s.unboundedWrite;
};

describe('unbounded writes', () => {
  it.each([
    'DELETE FROM t',
    'DELETE FROM t WHERE true',
    'DELETE FROM t WHERE 1 = 1',
    "DELETE FROM t WHERE 'a' IS NOT NULL",
    'DELETE FROM t WHERE EXISTS (SELECT 1)',
    'DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = 1)',
    'DELETE FROM t WHERE (SELECT count(*) FROM u) > 0',
    'DELETE FROM t WHERE EXISTS (SELECT 1 FROM t WHERE t.id = 1)',
    'DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE id = 1)',
    'DELETE FROM t WHERE $1',
    'DELETE FROM t WHERE now() > $1',
    'DELETE FROM t WHERE random() < 2',
    'DELETE FROM t WHERE id = 1 OR true',
    'DELETE FROM t WHERE NOT (id <> 1 AND false)',
    'DELETE FROM t WHERE id = id',
    'DELETE FROM t WHERE id + 1 = id + 1',
    'DELETE FROM t WHERE id + 1 = id + 2',
    'DELETE FROM t AS x WHERE t.id = 1',
    'DELETE FROM public.t WHERE other.t.id = 1',
    'DELETE FROM t WHERE u.id = 1',
    'DELETE FROM t USING u WHERE u.id = 1',
    'DELETE FROM t USING u WHERE id = u.id',
    'UPDATE t SET a = 1 FROM u WHERE u.flag',
    'UPDATE t SET a = 1 FROM u WHERE a = u.a',
    'WITH d AS (DELETE FROM t WHERE 1 = 1 RETURNING *) SELECT * FROM d',
    'MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE',
    'MERGE INTO t USING s ON s.id = 1 WHEN MATCHED THEN UPDATE SET a = 1',
    'MERGE INTO t USING s ON id = s.id WHEN MATCHED THEN DELETE',
    'MERGE INTO t USING s ON true WHEN MATCHED AND t.a = 1 THEN DELETE WHEN MATCHED THEN DELETE',
    'MERGE INTO t x USING s ON 1 = 1 WHEN MATCHED AND s.a = 1 THEN UPDATE SET a = 2',
  ])('%s is unbounded', (sql) => {
    const s = only(sql);
    expect(sql.startsWith('WITH') ? s.nested[0]?.statement.unboundedWrite : unbounded(sql)).toBe(true);
  });

  it.each([
    'DELETE FROM t WHERE id = 1',
    'DELETE FROM t WHERE t.id = 1',
    'DELETE FROM public.t WHERE public.t.id = 1',
    'DELETE FROM t AS x WHERE x.id = 1',
    'DELETE FROM t WHERE CURRENT OF c',
    'DELETE FROM t WHERE id = $1',
    'DELETE FROM t WHERE id IN (SELECT tid FROM u)',
    'DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.tid = t.id)',
    'DELETE FROM t WHERE id = 1 AND true',
    'DELETE FROM t WHERE id = 1 OR id = 2',
    'DELETE FROM t WHERE NOT (id = 1)',
    'DELETE FROM t USING u WHERE t.id = u.id',
    'UPDATE t SET a = 1 FROM u WHERE t.id = u.tid',
    'UPDATE t x SET a = 1 FROM u WHERE x.id = u.tid',
    'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE',
    'MERGE INTO t USING s ON true WHEN MATCHED AND t.a = 1 THEN DELETE',
    'MERGE INTO t USING s ON true WHEN NOT MATCHED THEN INSERT VALUES (1)',
  ])('%s is bounded', (sql) => {
    expect(unbounded(sql)).toBe(false);
  });
});
