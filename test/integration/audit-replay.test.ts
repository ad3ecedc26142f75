// Replay prints results in psql's own table format. The formatter is checked byte for byte
// against the real psql on the same results; the replay of a tunnelled session end to end is in
// audit-trail.test.ts.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { psqlTable } from '../../src/commands/sessions/render.js';

const execFileAsync = promisify(execFile);
const cluster = inject('pgCluster');

const QUERIES = [
  "select 1 as id, 'alice' as name, null::text as n, 3.5::numeric as amount, true as ok, 'a much longer value here' as x union all select 22, 'b', 'z', 10, false, 'y'",
  "select 'x' as only",
  'select 1 where false',
  "select 'multi\nline' as m, 'ü' as u, 42::bigint as big",
  "select n, repeat('ab', n) as r, n * 1.5::float8 as f, (n % 2 = 0) as even from generate_series(1, 12) n",
  "select 'left' as a, null::int as b",
  'select 1 as a, 2 as a',
];

async function psql(sql: string): Promise<string> {
  const { stdout } = await execFileAsync(cluster.psqlPath, ['-X', '-h', cluster.host, '-p', String(cluster.port), '-U', cluster.user, '-d', cluster.database, '-c', sql], {
    env: { ...process.env, PGPASSWORD: cluster.password },
  });
  return stdout;
}

describe('replay renders results as psql does', () => {
  it.each(QUERIES)('%s', async (sql) => {
    const client = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, database: cluster.database });
    await client.connect();
    try {
      // Text values exactly as the server sent them, as the engine sees DataRow fields.
      const res = await client.query({ text: sql, rowMode: 'array', types: { getTypeParser: () => (v: string) => v } });
      const columns = res.fields.map((f) => ({ name: f.name, type: f.dataTypeID }));
      expect(psqlTable(columns, res.rows as (string | null)[][])).toBe(await psql(sql));
    } finally {
      await client.end();
    }
  });
});
