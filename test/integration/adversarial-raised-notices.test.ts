// Adversarial corpus, class "what attached code says": a trigger, a check constraint or a column
// default an administrator created outside the gateway runs on a write the client may make, and
// can RAISE NOTICE / WARNING / INFO / EXCEPTION (or fail in dynamic SQL) with a masked value in the
// message, detail, hint, context or internal query. The mask here is on a column no value detector
// recognises (customers.name), so only withholding holds. A real gateway with the masks alone and
// with the recommended policy, a raw wire client through the `sluice connect` tunnel and psql
// through `sluice dsn`, every byte received checked for the clear names; the writes' effects
// checked on the target (the write that raised a notice still happened). A trigger's pg_notify
// payload is withheld the same way.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PolicyInput } from '../../gateway/policy/index.js';
import { collect, runCli, serviceToken, tokenCtx } from '../support/binaries.js';
import { RECOMMENDED_POLICY, startArena, type Arena } from '../support/arena.js';
import type { RawMessage } from '../support/pgEngineHarness.js';
import { build } from '../unit/postgres/builder.js';

const cluster = inject('pgCluster');

const WITH_NAMES: PolicyInput = { rules: [...(RECOMMENDED_POLICY.rules ?? []), { id: 'names', mask: { columns: ['customers.name'], with: 'redact' as const } }] };
const MASKS_ONLY: PolicyInput = { rules: (WITH_NAMES.rules ?? []).filter((r) => 'mask' in r) };
/** The arena's customer names: plain words no detector finds. */
const NAMES = ['Ada', 'Grace', 'Edsger'];
const RAISED = 'withheld: raised while running code the gateway cannot see into (masked data)';

const SCHEMA = `
  create table guestbook (id int);
  create function greet() returns trigger language plpgsql as $$
    begin raise notice 'welcome %', (select name from customers where id = new.id); return new; end $$;
  create trigger greet after insert on guestbook for each row execute function greet();
  create table guard (id int);
  create function guard_fn() returns trigger language plpgsql as $$
    begin raise exception 'taken by %', (select name from customers where id = new.id)
      using detail = 'owner ' || (select name from customers where id = new.id), hint = (select name from customers where id = 3); end $$;
  create trigger guard_t before insert on guard for each row execute function guard_fn();
  create table warn (id int);
  create function warn_fn() returns trigger language plpgsql as $$
    begin raise warning using message = (select name from customers where id = new.id), errcode = '01000'; return new; end $$;
  create trigger warn_t before insert on warn for each row execute function warn_fn();
  create function info_ok(i int) returns bool language plpgsql as $$ begin raise info 'checked %', (select name from customers where id = i); return true; end $$;
  create table checked (id int check (info_ok(id)));
  create function name_rel(i int) returns oid language sql stable as $$ select (select name from customers where id = i)::regclass::oid $$;
  create table defaulted (id int, r oid default name_rel(1));
  create table notifier (id int);
  create function notify_fn() returns trigger language plpgsql as $$
    begin perform pg_notify('news', (select name from customers where id = new.id)); return new; end $$;
  create trigger notify_t after insert on notifier for each row execute function notify_fn();
  create table dyn (id int);
  create function dyn_fn() returns trigger language plpgsql as $$ begin execute 'select * from ' || (select name from customers where id = new.id); return new; end $$;
  create trigger dyn_t before insert on dyn for each row execute function dyn_fn();
`;

const CASES: [string, string, string, number][] = [
  ['RAISE NOTICE in an AFTER INSERT trigger (the write happens)', 'insert into guestbook values (1)', 'guestbook', 1],
  ['RAISE EXCEPTION with DETAIL and HINT in a BEFORE trigger', 'insert into guard values (2)', 'guard', 0],
  ['RAISE WARNING USING MESSAGE', 'insert into warn values (3)', 'warn', 1],
  ['RAISE INFO in a check constraint’s function', 'insert into checked values (1)', 'checked', 1],
  ['a column default’s SQL function failing on a value it read', 'insert into defaulted (id) values (1)', 'defaulted', 0],
  ['dynamic SQL built from a masked value in a trigger (QUERY and CONTEXT)', 'insert into dyn values (1)', 'dyn', 0],
];

let masksOnly: Arena;
let recommended: Arena;
beforeAll(async () => {
  masksOnly = await startArena(cluster, { prefix: 'adv_raised', policy: MASKS_ONLY, schema: SCHEMA, gateway: { listeners: { postgres: '127.0.0.1:0' } } });
  recommended = await startArena(cluster, { prefix: 'adv_raised_rec', policy: WITH_NAMES, schema: SCHEMA });
});
afterAll(async () => {
  await masksOnly?.stop();
  await recommended?.stop();
});

/** Sends `sql` as one simple Query through the tunnel; every message received until ReadyForQuery. */
async function viaTunnel(a: Arena, sql: string): Promise<RawMessage[]> {
  const raw = await a.raw();
  try {
    raw.send(build().cstring(sql).typed('Q'));
    return await raw.until(1);
  } finally {
    raw.close();
  }
}

const text = (ms: readonly RawMessage[]) => ms.map((m) => `${m.type}:${m.body.toString('utf8')}`).join('\n');
const count = async (a: Arena, table: string) => ((await a.admin.query(`select count(*)::int as n from ${table}`)).rows[0] as { n: number }).n;

describe.each([
  ['masks alone', () => masksOnly],
  ['the recommended policy', () => recommended],
])('with %s, what attached code raises is withheld', (_p, arena) => {
  it.each(CASES)('%s', async (_name, sql, table, written) => {
    const a = arena();
    const before = await count(a, table);
    const got = await viaTunnel(a, sql);
    const all = text(got);
    for (const n of NAMES) expect(all, all).not.toContain(n);
    for (const n of NAMES) expect(a.auditContains(n)).toBe(false);
    // The message says why (with a rule on functions, a trigger running dynamic SQL is refused first).
    const notice = got.find((m) => m.type === 'N' || m.type === 'E');
    expect(notice?.body.toString('utf8')).toMatch(new RegExp(`${RAISED.replace(/[()]/g, '\\$&')}|blocked by rule sluice:opaque-code: function public\\.dyn_fn`));
    expect(await count(a, table)).toBe(before + written);
  });
});

describe.each([
  ['masks alone', () => masksOnly],
  ['the recommended policy', () => recommended],
])('with %s, a notification a trigger sends', (_p, arena) => {
  it('has its payload withheld; the channel and the write stay', async () => {
    const a = arena();
    const raw = await a.raw();
    try {
      raw.send(Buffer.concat([build().cstring('LISTEN news').typed('Q'), build().cstring('insert into notifier values (1)').typed('Q')]));
      const got = await raw.until(2);
      const all = text(got);
      for (const n of NAMES) expect(all, all).not.toContain(n);
      const notes = got.filter((m) => m.type === 'A').map((m) => m.body.subarray(4).toString('utf8'));
      expect(notes).toEqual(['news\0withheld: masked data\0']);
    } finally {
      raw.close();
    }
    expect(await count(a, 'notifier')).toBeGreaterThan(0);
  });
});

it('through direct mode (`sluice dsn`), with psql printing every field', async () => {
  const ctx = tokenCtx(masksOnly.gw, serviceToken(masksOnly.gw, 'direct-attacker', 'eng'));
  const issued = await runCli(['dsn', 'pg-prod'], ctx);
  expect(issued.code, issued.stderr).toBe(0);
  const child = spawn(cluster.psqlPath, ['-X', '-At', '-v', 'VERBOSITY=verbose', '-v', 'SHOW_CONTEXT=always', issued.stdout.trim(), '-c', 'insert into guestbook values (2)', '-c', 'insert into guard values (3)'], {
    env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
  });
  const out = await collect(child);
  for (const n of NAMES) expect(out.stdout + out.stderr).not.toContain(n);
  expect(out.stderr).toContain(`NOTICE:  00000: ${RAISED}`);
  expect(out.stderr).toContain(`ERROR:  P0001: ${RAISED}`);
});

it('a context about the input being read is not code: a JSON error keeps its message', async () => {
  const got = await viaTunnel(masksOnly, `select '{"a":'::json`);
  expect(text(got)).toContain('invalid input syntax for type json');
});
