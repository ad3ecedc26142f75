// Adversarial corpus, class "writes to a reviewed table by a way the review rule does not name"
// (issue 13, item 4). The arena's policy reviews insert/update/delete/merge on `payments` (2 s
// timeout, approvers dba); the attacker (group eng) tries every route to write it that the parser
// can see: views (auto-updatable, INSTEAD rule, INSTEAD OF trigger), an inheritance child, a
// cascading foreign key, COPY FROM, MERGE, writable CTEs, upserts, EXPLAIN ANALYZE, PREPARE/EXECUTE,
// the extended protocol, a pipeline, and definitions that would make a new route (rules, triggers,
// SQL functions, views, inheritance). Each is checked on the target itself: the rows of payments
// (children included) are unchanged, and no definition was left behind. Writes elsewhere and
// reads of payments stay allowed; an approver sees a held Bind's values and approves it once.
//
// The corpus runs twice: against the recommended block and review rules alone, where this class's
// own mechanism (the hold) shows for every route, and against the whole recommended policy, whose
// column masks refuse user-written code and definitions of code earlier (sluice:masked-*): there
// the same routes must stay held or refused, with the same effect on the target.
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ReviewInfo } from '../../src/api/contract.js';
import { MessageWriter } from '../../gateway/engines/postgres/codec/wire.js';
import type { PolicyInput } from '../../gateway/policy/index.js';
import { RECOMMENDED_POLICY, startArena, type Arena } from '../support/arena.js';
import { runCli, serviceToken, tokenCtx } from '../support/binaries.js';
import { waitFor } from '../support/pgEngineHarness.js';

const cluster = inject('pgCluster');

/** Routes the admin builds before the attacker arrives: the catalog must find them. */
const ROUTES_SCHEMA = `
  create table payment_batches (id int primary key);
  insert into payment_batches values (1);
  alter table payments add column batch_id int references payment_batches(id) on delete cascade;
  update payments set batch_id = 1 where id = 1;
  create view payments_view as select * from payments;
  create view payments_rule_view as select id, amount from payments group by id, amount;
  create rule payments_rule_view_ins as on insert to payments_rule_view
    do instead insert into payments (id, amount, note) values (new.id, new.amount, 'via rule');
  create function payments_trigger_fn() returns trigger language plpgsql as
    $$ begin insert into payments (id, amount, note) values (new.id, new.amount, 'via trigger'); return new; end $$;
  create view payments_trigger_view as select id, amount from payments group by id, amount;
  create trigger payments_trigger_view_ins instead of insert on payments_trigger_view
    for each row execute function payments_trigger_fn();
  create table payments_2024 () inherits (payments);
  insert into payments_2024 (id, amount, note) values (3, 300, 'child');
  create table order_notes (id int primary key, body text, updated_at timestamptz);
  create function touch_fn() returns trigger language plpgsql as $$ begin new.updated_at := now(); return new; end $$;
  create trigger order_notes_touch before insert or update on order_notes for each row execute function touch_fn();
  create table refunds (id int primary key, amount numeric);
  create function refunds_to_payments_fn() returns trigger language plpgsql as
    $$ begin insert into payments (id, amount, note) values (new.id + 2000, -new.amount, 'refund'); return new; end $$;
  create trigger refunds_to_payments after insert on refunds for each row execute function refunds_to_payments_fn();
  create function dynamic_fn() returns trigger language plpgsql as
    $$ begin execute 'insert into pay' || 'ments (id, amount) values (9999, 1)'; return new; end $$;
  create function pay_admin_fn() returns void language sql as $$ insert into payments (id, amount, note) values (50, 1, 'admin fn') $$;
  create procedure pay_admin_proc() language plpgsql as $$ begin insert into payments (id, amount, note) values (51, 1, 'admin proc'); end $$;
  create function pay_outer_fn() returns int language plpgsql as $$ begin perform pay_admin_fn(); return 1; end $$;
  create function order_count() returns bigint language sql as $$ select count(*) from orders $$;
  create function receipt_fn() returns int language sql as
    $$ insert into payments (id, amount, note) values (60, 1, 'via default'); select 1 $$;
  create table donations (id int primary key, amount numeric, receipt int default receipt_fn());
  create function orders_to_payments_fn() returns trigger language plpgsql as
    $$ begin insert into payments (id, amount, note) values (new.id + 1000, new.amount, 'via orders trigger'); return new; end $$;
`;

const HELD = /query held for review R-[2-9A-Z]{4} by rule payments-review[\s\S]*expired without a decision: not executed/;
const REFUSED = /ERROR: {2}(blocked by rule|DDL is not allowed|.*the policy cannot be checked)/;
const MASKED_REFUSAL = /ERROR: {2}blocked by rule sluice:masked-/;

/** The recommended policy's block and review rules without its column masks: this class alone. */
const REVIEWS_POLICY: PolicyInput = { rules: (RECOMMENDED_POLICY.rules ?? []).filter((r) => r.mask === undefined) };

const paymentsRows = async (arena: Arena): Promise<string> =>
  (await arena.admin.query<{ s: string }>("select string_agg(concat_ws(':', id, amount, note, batch_id), ',' order by id) as s from payments")).rows[0]?.s ?? '';
const first = async (arena: Arena, sql: string): Promise<unknown> => Object.values((await arena.admin.query(sql)).rows[0] ?? {})[0];

interface Route {
  readonly sql: string | readonly string[];
  readonly input?: string;
  /** held for review (then expired), or refused outright */
  readonly outcome: 'held' | 'refused';
  /**
   * Under column masks, refused before it is judged for review by a masking rule (sluice:masked-*):
   * a call of user-written code or a definition of code, which could read masked columns.
   */
  readonly masked?: 'refused';
  /** A query on the target that must answer true afterwards (the definition was not made). */
  readonly after?: string;
}

const ROUTES: Record<string, Route> = {
  'the direct insert (the baseline)': { sql: "insert into payments values (10, 1, 'direct')", outcome: 'held' },
  'a schema-qualified, quoted name': { sql: `insert into public."payments" values (11, 1, 'quoted')`, outcome: 'held' },
  'an auto-updatable view (insert)': { sql: "insert into payments_view values (12, 1, 'view')", outcome: 'held' },
  'an auto-updatable view (update)': { sql: 'update payments_view set amount = 0 where id = 1', outcome: 'held' },
  'a view with an INSTEAD rule': { sql: 'insert into payments_rule_view values (13, 1)', outcome: 'held' },
  'a view with an INSTEAD OF trigger': { sql: 'insert into payments_trigger_view values (14, 1)', outcome: 'held' },
  'an inheritance child (insert)': { sql: "insert into payments_2024 (id, amount, note) values (15, 1, 'child')", outcome: 'held' },
  'an inheritance child (delete)': { sql: 'delete from payments_2024 where id = 3', outcome: 'held' },
  'a foreign key that cascades into payments': { sql: 'delete from payment_batches where id = 1', outcome: 'held' },
  'COPY … FROM STDIN': { sql: 'copy payments (id, amount, note) from stdin', input: '16\t1\tcopy\n\\.\n', outcome: 'held' },
  'COPY … FROM STDIN into the child': { sql: 'copy payments_2024 (id, amount, note) from stdin', input: '17\t1\tcopy\n\\.\n', outcome: 'held' },
  'MERGE … WHEN NOT MATCHED THEN INSERT': {
    sql: "merge into payments p using (values (18, 1)) v(id, amount) on p.id = v.id when not matched then insert (id, amount, note) values (v.id, v.amount, 'merge')",
    outcome: 'held',
  },
  'MERGE into the child … THEN DELETE': { sql: 'merge into payments_2024 p using orders o on p.id = o.id when matched then delete', outcome: 'held' },
  'a writable CTE': { sql: "with w as (insert into payments_view values (19, 1, 'cte') returning id) select * from w", outcome: 'held' },
  'INSERT … ON CONFLICT DO UPDATE': { sql: "insert into payments values (1, 999, 'upsert') on conflict (id) do update set amount = excluded.amount", outcome: 'held' },
  'EXPLAIN ANALYZE through the view': { sql: "explain analyze insert into payments_view values (20, 1, 'explain')", outcome: 'held' },
  'PREPARE then EXECUTE through the child': { sql: ["prepare p as insert into payments_2024 (id, amount, note) values (21, 1, 'prepared')", 'execute p'], outcome: 'held' },
  'TRUNCATE of the child': { sql: 'truncate payments_2024', outcome: 'refused' },
  'CREATE RULE on orders that also inserts into payments': {
    sql: "create rule orders_sneak as on insert to orders do also insert into payments (id, amount, note) values (new.id + 100, new.amount, 'rule')",
    outcome: 'held',
    masked: 'refused',
    after: "select not exists (select 1 from pg_rewrite where rulename = 'orders_sneak')",
  },
  'a SQL function that writes payments': { sql: 'select pay_admin_fn()', outcome: 'held', masked: 'refused' },
  'a procedure that writes payments': { sql: 'call pay_admin_proc()', outcome: 'held', masked: 'refused' },
  'a function in a WHERE clause that calls one that writes payments': { sql: 'select * from orders where id = pay_outer_fn()', outcome: 'held', masked: 'refused' },
  'a table whose column default calls a function that writes payments': { sql: 'insert into donations (id, amount) values (1, 5)', outcome: 'held' },
  'a table whose existing trigger writes payments': { sql: 'insert into refunds values (40, 5)', outcome: 'held' },
  // Refused before its review by sluice:parse-state, masks or not: a trigger on any function but a
  // trusted built-in would run code no statement names (code that could change client_encoding).
  // That the route it would make is held shows in test/unit/policy/writeRoutes.test.ts.
  'CREATE TRIGGER on orders whose function writes payments': {
    sql: 'create trigger orders_sneak after insert on orders for each row execute function orders_to_payments_fn()',
    outcome: 'refused',
    after: "select not exists (select 1 from pg_trigger where tgname = 'orders_sneak')",
  },
  'CREATE TRIGGER whose function builds its SQL at run time': {
    sql: 'create trigger orders_dynamic after insert on orders for each row execute function dynamic_fn()',
    outcome: 'refused',
    after: "select not exists (select 1 from pg_trigger where tgname = 'orders_dynamic')",
  },
  'CREATE FUNCTION in SQL whose body writes payments': {
    sql: "create function pay_sneak() returns void language sql as $$ insert into payments_view values (22, 1, 'function') $$",
    outcome: 'held',
    masked: 'refused',
    after: "select to_regprocedure('pay_sneak()') is null",
  },
  'CREATE FUNCTION … BEGIN ATOMIC writing the child': {
    sql: 'create function pay_sneak_atomic() returns void language sql begin atomic; delete from payments_2024 where id = 3; end',
    outcome: 'held',
    masked: 'refused',
    after: "select to_regprocedure('pay_sneak_atomic()') is null",
  },
  'CREATE VIEW over payments (a new auto-updatable route)': { sql: 'create view my_payments as select * from payments', outcome: 'held', after: "select to_regclass('my_payments') is null" },
  'a temporary view that shadows orders': { sql: 'create temp view orders as select * from payments', outcome: 'held' },
  'CREATE TABLE … INHERITS (payments)': { sql: 'create table payments_2025 () inherits (payments)', outcome: 'held', after: "select to_regclass('payments_2025') is null" },
  'ALTER TABLE orders INHERIT payments': {
    sql: 'alter table orders inherit payments',
    outcome: 'refused',
    after: "select not exists (select 1 from pg_inherits where inhrelid = 'orders'::regclass)",
  },
};

/** An allowed case; `masked` says why the masked arena refuses it instead (a check that must hold then). */
interface Allowed {
  readonly sql: string;
  readonly check: string;
  readonly masked?: { readonly why: string; readonly check: string };
}

const ALLOWED: Record<string, Allowed> = {
  'an insert into orders': { sql: 'insert into orders values (100, 1, 5)', check: 'select count(*) = 1 from orders where id = 100' },
  'an update of orders': { sql: 'update orders set amount = 7 where id = 9', check: 'select amount = 7 from orders where id = 9' },
  'an insert into the table payments references (inserts do not cascade)': { sql: 'insert into payment_batches values (2)', check: 'select count(*) = 1 from payment_batches where id = 2' },
  'a table made and filled in one transaction': { sql: 'begin; create table scratch (id int); insert into scratch values (1); commit', check: 'select count(*) = 1 from scratch' },
  'a view over orders': { sql: 'create view order_totals as select customer_id, sum(amount) from orders group by 1', check: "select to_regclass('order_totals') is not null" },
  'a function that only reads': {
    sql: 'select order_count()',
    check: 'select true',
    // Masked sessions refuse calls of user-written code: the gateway cannot see what it reads.
    masked: { why: 'a function the gateway cannot see into', check: 'select true' },
  },
  'built-in functions': { sql: "select upper('x'), now(), count(*) from orders", check: 'select true' },
  'a write to a table whose trigger writes nothing else': { sql: "insert into order_notes values (1, 'note')", check: 'select updated_at is not null from order_notes where id = 1' },
  // A trigger on a user-written function (even one that writes nothing else, like touch_fn) is
  // refused by sluice:parse-state (see the last case); one on a built-in stays allowed.
  'a trigger whose function is a built-in': {
    sql: 'create trigger orders_same before update on orders for each row execute function pg_catalog.suppress_redundant_updates_trigger()',
    check: "select count(*) = 1 from pg_trigger where tgname = 'orders_same'",
    // Masked sessions refuse every definition of code that runs without being named.
    masked: { why: 'CREATE TRIGGER defines code', check: "select count(*) = 0 from pg_trigger where tgname = 'orders_same'" },
  },
};

describe.each([
  { label: 'reviews alone (the recommended block and review rules, no column masks)', masked: false },
  { label: 'the recommended policy (column masks too)', masked: true },
])('$label', ({ masked }) => {
  let arena: Arena;
  let before: string;
  const one = (sql: string) => first(arena, sql);

  beforeAll(async () => {
    arena = await startArena(cluster, { prefix: masked ? 'adv_reviews_masked' : 'adv_reviews', schema: ROUTES_SCHEMA, policy: masked ? RECOMMENDED_POLICY : REVIEWS_POLICY });
    before = await paymentsRows(arena);
  });
  afterAll(async () => {
    await arena?.stop();
  });

  describe('writes to a reviewed table by routes the rule does not name', () => {
    it.each(Object.entries(ROUTES))('%s', async (_name, route) => {
      const res = await arena.psql(route.sql, [], route.input);
      expect(res.code, res.stdout).not.toBe(0);
      if (masked && route.masked === 'refused') {
        expect(res.stderr).toMatch(MASKED_REFUSAL);
        expect(res.stderr).not.toMatch(/held for review/);
      } else if (route.outcome === 'held') expect(res.stderr).toMatch(HELD);
      else {
        expect(res.stderr).toMatch(REFUSED);
        expect(res.stderr).not.toMatch(/held for review/);
      }
      expect(await paymentsRows(arena)).toBe(before);
      if (route.after !== undefined) expect(await one(route.after)).toBe(true);
    });

    it('an extended-protocol Bind through the view is held, and nothing is written when it expires', async () => {
      const c = await arena.client();
      try {
        const err = await c.query('insert into payments_view (id, amount, note) values ($1, $2, $3)', [23, 1, 'bind']).then(() => undefined, (e: unknown) => e as { code?: string });
        expect(err?.code).toBe('57014');
      } finally {
        await c.end();
      }
      expect(await paymentsRows(arena)).toBe(before);
    });

    it('in a pipeline, the allowed write runs and the one through the child waits and expires', async () => {
      const raw = await arena.raw();
      try {
        const q = (sql: string) => new MessageWriter().cstring(sql).typed('Q');
        raw.send(Buffer.concat([q('insert into orders values (200, 1, 1)'), q("insert into payments_2024 (id, amount, note) values (24, 1, 'pipelined')")]));
        const messages = await raw.until(2);
        const texts = messages.filter((m) => m.type === 'E' || m.type === 'N').map((m) => m.body.toString('utf8'));
        expect(texts.some((t) => t.includes('held for review'))).toBe(true);
        expect(texts.some((t) => t.includes('expired without a decision'))).toBe(true);
      } finally {
        raw.close();
      }
      expect(await one('select count(*)::int from orders where id = 200')).toBe(1);
      expect(await paymentsRows(arena)).toBe(before);
    });
  });

  describe('what stays allowed', () => {
    it.each(Object.entries(ALLOWED))('%s', async (_name, { sql, check, masked: refusedMasked }) => {
      const res = await arena.psql(sql);
      if (masked && refusedMasked !== undefined) {
        expect(res.stderr).toMatch(MASKED_REFUSAL);
        expect(res.stderr).toContain(refusedMasked.why);
        expect(await one(refusedMasked.check)).toBe(true);
        return;
      }
      expect(res.code, res.stderr).toBe(0);
      expect(res.stderr).not.toMatch(/held for review|ERROR/);
      expect(await one(check)).toBe(true);
    });

    it('COPY into orders', async () => {
      const res = await arena.psql('copy orders from stdin', [], '300\t1\t30\n\\.\n');
      expect(res.code, res.stderr).toBe(0);
      expect(await one('select count(*) = 1 from orders where id = 300')).toBe(true);
    });

    it('reads of payments, directly, through the view and the child', async () => {
      const res = await arena.psql(['select count(*) from payments', 'select count(*) from payments_view', 'select count(*) from payments_2024']);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout.trim().split('\n')).toEqual(['3', '3', '1']);
      expect(await paymentsRows(arena)).toBe(before);
    });

    // Not allowed, but here because it writes nothing else: sluice:parse-state refuses a trigger on
    // any function but a trusted built-in, whatever the function does, since it would run code no
    // statement names and the gateway could not see it change client_encoding.
    it('a trigger whose function writes nothing else is refused all the same', async () => {
      const res = await arena.psql('create trigger orders_touch before update on orders for each row execute function touch_fn()');
      expect(res.code).not.toBe(0);
      // Judged before the masking rules, so refused for this reason under masks too.
      expect(res.stderr).toMatch(/ERROR: {2}blocked by rule sluice:parse-state: touch_fn\(\) as a trigger function/);
      expect(await one("select count(*) = 0 from pg_trigger where tgname = 'orders_touch'")).toBe(true);
    });
  });
});

describe('an approver sees the values of a held Bind and approves them', () => {
  let slow: Arena;
  beforeAll(async () => {
    // The reviews-only policy with time for three CLI runs before the review expires. No column
    // masks: masked sessions refuse CREATE RULE before its review (sluice:masked-derivation), and
    // these cases need a rule that is approved.
    const policy = structuredClone(REVIEWS_POLICY);
    const review = policy.rules?.find((r) => r.id === 'payments-review')?.review;
    if (review === undefined) throw new Error('the reviews policy reviews payments');
    review.timeout = '60s';
    slow = await startArena(cluster, { prefix: 'adv_reviews_ok', schema: ROUTES_SCHEMA, policy });
  });
  afterAll(async () => {
    await slow?.stop();
  });

  it('the write happens exactly once, with exactly those values', async () => {
    const approver = tokenCtx(slow.gw, serviceToken(slow.gw, 'oncall', 'dba'));
    const c = await slow.client();
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    try {
      const write = c.query('insert into payments_view (id, amount, note) values ($1, $2, $3)', [30, '42.50', "approved 'bind'"]);
      write.catch(() => undefined); // awaited below; a failed step before that must not leave it unhandled
      await waitFor('the review notice', () => notices.some((n) => n.includes('held for review')), 20_000);
      const id = /held for review (R-[2-9A-Z]{4})/.exec(notices.join('\n'))?.[1] as string;

      const list = await runCli(['reviews', 'ls', '--json'], approver);
      expect(list.code, list.stderr).toBe(0);
      expect((JSON.parse(list.stdout) as ReviewInfo[]).map((r) => r.id)).toContain(id);
      const show = await runCli(['reviews', 'show', id, '--json'], approver);
      expect(show.code, show.stderr).toBe(0);
      const info = JSON.parse(show.stdout) as ReviewInfo;
      expect(info.sql).toBe('insert into payments_view (id, amount, note) values ($1, $2, $3)');
      expect(info.parameters).toEqual([
        { value: '30', bytes: 2 },
        { value: '42.50', bytes: 5 },
        { value: "approved 'bind'", bytes: 15 },
      ]);
      expect(info.reason).toMatch(/payments/);
      const text = await runCli(['reviews', 'show', id], approver);
      expect(text.stdout).toContain(`$3 = "approved 'bind'"`);

      const approve = await runCli(['reviews', 'approve', id, '--reason', 'ticket OPS-13'], approver);
      expect(approve.code, approve.stderr).toBe(0);
      await write;
    } finally {
      await c.end();
    }
    const rows = await slow.admin.query("select amount::text, note from payments where id = 30");
    expect(rows.rows).toEqual([{ amount: '42.50', note: "approved 'bind'" }]);
  });

  /** A pg client through the slow arena whose notices name the reviews it waits for. */
  async function requester(): Promise<{ c: pg.Client; heldAt: (n: number) => Promise<string> }> {
    const c = await slow.client();
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    const heldAt = async (n: number): Promise<string> => {
      const held = () => notices.filter((m) => m.includes('held for review'));
      await waitFor(`review notice ${n + 1}`, () => held().length > n, 20_000);
      return /held for review (R-[2-9A-Z]{4})/.exec(held()[n] as string)?.[1] as string;
    };
    return { c, heldAt };
  }
  const decide = async (verb: 'approve' | 'reject', id: string) => {
    const res = await runCli(['reviews', verb, id, '--reason', `${verb} in test`], tokenCtx(slow.gw, serviceToken(slow.gw, `oncall-${verb}-${id}`, 'dba')));
    expect(res.code, res.stderr).toBe(0);
  };

  it('a statement prepared before an approved rule made a route is judged again at its next Bind', async () => {
    const { c, heldAt } = await requester();
    try {
      const insert = (id: number) => c.query({ name: 'ins_orders', text: 'insert into orders values ($1, 1, 1)', values: [id] });
      await insert(501);
      const rule = c.query("create rule orders_to_payments as on insert to orders do also insert into payments (id, amount, note) values (new.id, new.amount, 'via approved rule')");
      await decide('approve', await heldAt(0));
      await rule;
      const again = insert(502).then(() => undefined, (e: unknown) => e as { code?: string });
      await decide('reject', await heldAt(1));
      expect((await again)?.code).toBe('42501');
    } finally {
      await c.end();
      await slow.admin.query('drop rule if exists orders_to_payments on orders');
    }
    expect(await one2('select count(*)::int from orders where id in (501, 502)')).toBe(1);
    expect(await one2('select count(*)::int from payments where id in (501, 502)')).toBe(0);
  });

  it('in the transaction of an approved rule, writes are refused until it commits', async () => {
    const { c, heldAt } = await requester();
    try {
      await c.query('begin');
      const rule = c.query("create rule orders_to_payments_tx as on insert to orders do also insert into payments (id, amount, note) values (new.id, new.amount, 'via uncommitted rule')");
      await decide('approve', await heldAt(0));
      await rule;
      const err = await c.query('insert into orders values (503, 1, 1)').then(() => undefined, (e: unknown) => e as { code?: string; message?: string });
      expect(err?.code).toBe('42501');
      expect(err?.message).toMatch(/committed/);
      await c.query('rollback');
    } finally {
      await c.end();
    }
    expect(await one2("select count(*)::int from pg_rewrite where rulename = 'orders_to_payments_tx'")).toBe(0);
    expect(await one2('select count(*)::int from payments where id = 503')).toBe(0);
  });

  it('a write pipelined behind a rule that is approved waits for it, and is then held through it', async () => {
    const approver = tokenCtx(slow.gw, serviceToken(slow.gw, 'oncall-pipeline', 'dba'));
    const pending = async (seen: readonly string[]): Promise<string> => {
      let id: string | undefined;
      await waitFor('a new pending review', async () => {
        const ls = await runCli(['reviews', 'ls', '--json'], approver);
        id = (JSON.parse(ls.stdout) as ReviewInfo[]).map((r) => r.id).find((r) => !seen.includes(r));
        return id !== undefined;
      }, 30_000);
      return id as string;
    };
    const raw = await slow.raw();
    try {
      const q = (sql: string) => new MessageWriter().cstring(sql).typed('Q');
      raw.send(
        Buffer.concat([
          q("create rule orders_pipe as on insert to orders do also insert into payments (id, amount, note) values (new.id, new.amount, 'via pipelined rule')"),
          q('insert into orders values (504, 1, 1)'),
        ]),
      );
      // Counted from now: both ReadyForQuery come while the reviews are decided.
      const answered = raw.until(2);
      const rule = await pending([]);
      await decide('approve', rule);
      await decide('reject', await pending([rule]));
      const texts = (await answered).filter((m) => m.type === 'E').map((m) => m.body.toString('utf8'));
      expect(texts.some((t) => t.includes('rejected in review'))).toBe(true);
    } finally {
      raw.close();
      await slow.admin.query('drop rule if exists orders_pipe on orders');
    }
    expect(await one2('select count(*)::int from orders where id = 504')).toBe(0);
    expect(await one2('select count(*)::int from payments where id = 504')).toBe(0);
  });

  const one2 = async (sql: string): Promise<unknown> => Object.values((await slow.admin.query(sql)).rows[0] ?? {})[0];
});
