// Adversarial corpus, class "reads that write, reads by another name": views, materialized views
// and functions the database's owner created outside the gateway. A read of a view whose query
// calls a function that writes is judged as that write (block or review), and a rule blocking
// reads of a table holds for every relation or function that returns its rows. Each case goes
// through the real gateway and tunnel with psql and checks the effect on the target itself.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RECOMMENDED_POLICY, startArena, type Arena } from '../support/arena.js';

const cluster = inject('pgCluster');
const SECRET = 'TOP-SECRET-7731';

const SCHEMA = `
  create table ledger (id serial primary key, note text);
  create function log_read() returns int language plpgsql as $$ begin insert into ledger(note) values ('read'); return 1; end $$;
  create view innocent as select id, log_read() as n from orders;
  create view innocent_outer as select * from innocent;
  create function pay_touch() returns int language sql as $$ update payments set note = 'touched' where id = 1 returning 1 $$;
  create view pay_view as select pay_touch() as x;
  create function py_like() returns int language plpgsql as $$ begin execute 'insert into ledger(note) values (''dyn'')'; return 1; end $$;
  create view dynamic_view as select py_like() as x;
  create table secrets (id int, secret text);
  insert into secrets values (1, '${SECRET}');
  create schema other;
  create view other.secrets_v as select * from public.secrets;
  create view other.secrets_vv as select * from other.secrets_v;
  create materialized view other.secrets_mv as select * from public.secrets;
  create view other.secrets_sb with (security_barrier) as select * from public.secrets where id > 0;
  create function other.secrets_f() returns setof secrets language sql as $$ select * from public.secrets $$;
  create function other.secrets_plf() returns setof secrets language plpgsql as $$ begin return query select * from public.secrets; end $$;
  create view harmless as select id from orders;
`;

const POLICY = {
  rules: [
    ...(RECOMMENDED_POLICY.rules ?? []).filter((r) => !('mask' in r)),
    { id: 'no-ledger-writes', block: { statements: ['insert', 'update', 'delete'], tables: ['ledger'], match: 'all' as const } },
    { id: 'no-secrets', block: { statements: ['select'], tables: ['secrets'], match: 'all' as const } },
  ],
};

let arena: Arena;

beforeAll(async () => {
  arena = await startArena(cluster, { prefix: 'adv_view_reads', schema: SCHEMA, policy: POLICY });
});

afterAll(async () => {
  await arena?.stop();
});

const count = async (sql: string) => Number((await arena.admin.query(sql)).rows[0].n);

describe('a read through an existing view is judged as the write its query does', () => {
  it.each(['select * from innocent', 'select n from innocent_outer', 'select count(*) from public.innocent', 'with x as (select * from innocent) select 1 from x'])('%s → blocked, the ledger is untouched', async (sql) => {
    const out = await arena.psql(sql);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('no-ledger-writes');
    expect(await count('select count(*) as n from ledger')).toBe(0);
  });

  it('a view whose function writes payments is held for review (and expires): payments is untouched', async () => {
    const out = await arena.psql('select * from pay_view');
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(/review/i);
    expect(await count("select count(*) as n from payments where note = 'touched'")).toBe(0);
  });

  it('a view whose function runs SQL built at run time is refused as opaque code', async () => {
    const out = await arena.psql('select * from dynamic_view');
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('sluice:opaque-code');
    expect(await count('select count(*) as n from ledger')).toBe(0);
  });

  it('a view that only reads is still allowed', async () => {
    const out = await arena.psql('select count(*) from harmless');
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout.trim()).toBe('9');
  });
});

describe('a block on reading a table holds for every other name of its rows', () => {
  it.each([
    'select * from secrets',
    'select * from other.secrets_v',
    'select * from other.secrets_vv',
    'select * from other.secrets_mv',
    'select * from other.secrets_sb',
    'select * from other.secrets_f()',
    'select other.secrets_plf()',
    'table other.secrets_mv',
  ])('%s → blocked by no-secrets, the value reaches neither the client nor the audit', async (sql) => {
    const out = await arena.psql(sql);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('no-secrets');
    expect(out.stdout + out.stderr).not.toContain(SECRET);
    expect(arena.auditContains(SECRET)).toBe(false);
  });
});
