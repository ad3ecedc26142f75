// Operators are calls of their functions: in a session with column masks, an operator whose
// function an administrator wrote in the database is code the gateway cannot see into, refused
// like a call of that function by name (it could read masked columns and store them in clear).
// Operators shipped with PostgreSQL or an installed extension keep working.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SECRET_EMAILS, startArena, type Arena } from '../support/arena.js';

const cluster = inject('pgCluster');
let arena: Arena;

beforeAll(async () => {
  arena = await startArena(cluster, {
    prefix: 'adv_operators',
    schema: `
      create extension if not exists pg_trgm;
      create table sink (v text);
      create function leak_op(int, int) returns int language sql as
        $$ insert into sink select reverse(email) from customers; select 1 $$;
      create operator ~%~ (function = leak_op, leftarg = int, rightarg = int);
    `,
  });
});

afterAll(async () => {
  await arena?.stop();
});

const sinkRows = async () => (await arena.admin.query<{ n: number }>('select count(*)::int as n from sink')).rows[0]?.n;

describe('operators over functions written in the database, in a masked session', () => {
  it.each([
    ['select 1 ~%~ 1'],
    ['select id from orders where 1 ~%~ id = 1'],
    ['select (select 1 ~%~ 1)'],
    ['explain analyze select 1 ~%~ 1'],
    ['select 1 operator(public.~%~) 1'],
  ])('%s is refused, and the function never ran', async (sql) => {
    const res = await arena.psql(sql);
    expect(res.stderr).toMatch(/blocked by rule sluice:masked-derivation: operator (public\.)?~%~ runs a function written in the database/);
    expect(await sinkRows()).toBe(0);
    for (const e of SECRET_EMAILS) expect(res.stdout + res.stderr).not.toContain([...e].reverse().join(''));
  });

  it('shipped operators and an installed extension’s operators keep working', async () => {
    const res = await arena.psql(["select count(*) from orders where amount > 10 and id between 1 and 5", "select name % 'Ada' from customers where id = 1"]);
    expect(res.stderr).toBe('');
    expect(res.stdout).toBe('4\nt\n');
  });
});
