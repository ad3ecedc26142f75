// Policy enforcement in the PostgreSQL engine against a real server, with psql and the pg driver:
// blocked statements (with the usual evasions) never reach the target — the target's tables are
// checked afterwards — the client gets 42501 naming the rule and the session stays usable; the
// extended protocol (blocked Parse, pipelines), prepared statements judged by what the target
// confirmed, fast-path function calls, and every decision on record.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { decodeErrorFields } from '../../gateway/engines/postgres/codec/backend.js';
import type { PostgresTarget } from '../../gateway/model.js';
import { build } from '../unit/postgres/builder.js';
import { client, compile, connectionFor, freshDatabase, psql, rawClient, startEngine, type Engine, type RawMessage } from '../support/pgEngineHarness.js';
import { ALLOWED, BLOCKED, CORPUS_POLICY, CORPUS_SCHEMA } from '../support/policyCorpus.js';

const cluster = inject('pgCluster');

const BLOCKING = compile(CORPUS_POLICY);

let db: Awaited<ReturnType<typeof freshDatabase>>;
let target: PostgresTarget;
let gw: Engine;

const counts = async () => {
  const r = await db.admin.query("select (select count(*)::int from orders) as orders, (select count(*)::int from customers) as customers, (select count(*)::int from pg_attribute where attrelid = 'orders'::regclass and attnum > 0 and not attisdropped) as order_columns");
  return r.rows[0] as { orders: number; customers: number; order_columns: number };
};

beforeAll(async () => {
  db = await freshDatabase(cluster, 'policy');
  target = db.target;
  await db.admin.query(CORPUS_SCHEMA);
  gw = await startEngine(connectionFor(target), { policy: BLOCKING });
});

afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

describe('blocking with the simple protocol (pg driver)', () => {
  it.each(BLOCKED)('blocks %j by %s, runs nothing, and keeps the session usable', async (sql, rule) => {
    const before = await counts();
    const c = client(gw.port, target.database);
    await c.connect();
    try {
      const err = (await c.query(sql).then(() => undefined, (e: unknown) => e)) as { code?: string; message?: string } | undefined;
      // A text the parser rejects is a syntax error (42601), as from the server; every other block is 42501.
      expect(err?.code, sql).toBe(rule === 'sluice:unparseable' ? '42601' : '42501');
      expect(err?.message).toContain(rule === 'no-ddl' && !sql.includes('dblink') ? 'DDL is not allowed on production' : rule);
      expect((await c.query('select 40 + 2 as v')).rows).toEqual([{ v: 42 }]);
    } finally {
      await c.end();
    }
    expect(await counts()).toEqual(before);
    const s = gw.sessions.at(-1)!;
    await s.ended;
    const rec = s.of(sql.slice(0, 12));
    expect(rec.decision).toMatchObject({ verdict: 'block', rule });
    expect(rec.result).toMatchObject({ status: 'error', sqlstate: rule === 'sluice:unparseable' ? '42601' : '42501' });
  });

  it.each(ALLOWED)('allows %j', async (sql) => {
    const c = client(gw.port, target.database);
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
    const s = gw.sessions.at(-1)!;
    await s.ended;
    expect(s.of(sql.slice(0, 12)).decision).toMatchObject({ verdict: 'allow' });
  });

  it('inside a transaction a blocked statement aborts it, as a server error would, and the status is the real one', async () => {
    const c = client(gw.port, target.database);
    await c.connect();
    try {
      await c.query('begin');
      await c.query('insert into orders values (500, 1, 1)');
      await expect(c.query('drop table orders')).rejects.toMatchObject({ code: '42501' });
      await expect(c.query('select 1')).rejects.toMatchObject({ code: '25P02' });
      await c.query('commit'); // becomes ROLLBACK: the insert must not survive
      expect((await c.query('select count(*)::int as n from orders where id = 500')).rows).toEqual([{ n: 0 }]);
    } finally {
      await c.end();
    }
  });

  it('psql: a script with one blocked statement among others runs the others and says why', async () => {
    const r = await psql(cluster.psqlPath, gw.port, target.database, ['-At', '-f', '-'], 'select 1;\ndrop table customers;\nselect 2;\n');
    expect(r.stdout).toBe('1\n2\n');
    expect(r.stderr).toContain('ERROR:  blocked by rule no-ddl: DDL is not allowed on production');
    // -c sends the string as one Query: nothing of it runs.
    const one = await psql(cluster.psqlPath, gw.port, target.database, ['-At', '-c', 'SELECT 3; TRUNCATE customers; SELECT 4']);
    expect(one.stdout).toBe('');
    expect(one.stderr).toContain('ERROR:  blocked by rule no-ddl');
    expect((await counts()).customers).toBe(5);
  });
});

describe('blocking with the extended protocol', () => {
  it('a blocked Parse answers 42501 and the session goes on (pg driver, unnamed and named)', async () => {
    const c = client(gw.port, target.database);
    await c.connect();
    try {
      await expect(c.query({ text: 'DELETE FROM orders', queryMode: 'extended' } as never)).rejects.toMatchObject({ code: '42501' });
      await expect(c.query({ name: 'wipe', text: 'TRUNCATE orders' })).rejects.toMatchObject({ code: '42501' });
      expect((await c.query('select $1::int * 2 as v', [21])).rows).toEqual([{ v: 42 }]);
      await expect(c.query({ text: 'update orders set amount = $1', values: [0] })).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('no-unbounded-writes') });
      expect((await c.query({ name: 'ok', text: 'select count(*)::int as n from orders where id < $1', values: [5] })).rows).toEqual([{ n: 4 }]);
      expect((await c.query({ name: 'ok', text: 'select count(*)::int as n from orders where id < $1', values: [3] })).rows).toEqual([{ n: 2 }]);
    } finally {
      await c.end();
    }
    const s = gw.sessions.at(-1)!;
    await s.ended;
    expect(s.of('count(*)::int').query).toMatchObject({ params: ['5'], protocol: 'extended' });
    expect(s.queries.filter((q) => q.text.includes('count(*)::int')).map((q) => q.params)).toEqual([['5'], ['3']]);
    expect(s.of('update orders set amount').decision).toMatchObject({ verdict: 'block', rule: 'no-unbounded-writes' });
  });

  it('a pipeline: the blocked statement fails after the answers before it, the rest of its batch is skipped, the next batch runs', async () => {
    const before = await counts();
    const c = await rawClient(gw.port, target.database);
    const parse = (sql: string) => build().cstring('').cstring(sql).int16(0).typed('P');
    const bind = build().cstring('').cstring('').int16(0).int16(0).int16(0).typed('B');
    const exec = build().cstring('').int32(0).typed('E');
    const sync = build().typed('S');
    const query = (sql: string) => build().cstring(sql).typed('Q');
    c.send(
      Buffer.concat([
        parse('insert into orders values (600, 1, 1)'), bind, exec,
        parse('drop table orders'), bind, exec,
        parse('select 1'), bind, exec, sync,
        parse('insert into orders values (601, 1, 1)'), bind, exec, sync,
        query('select 1; drop table customers'),
        query('select 2'),
      ]),
    );
    const seen = (await c.until(4))
      .filter((m) => !'SKRD'.includes(m.type))
      .map((m) => {
        if (m.type === 'E') return `E:${decodeErrorFields(m.body).code}`;
        if (m.type === 'C') return `C:${m.body.toString('utf8', 0, m.body.length - 1)}`;
        if (m.type === 'Z') return `Z:${String.fromCharCode(m.body[0]!)}`;
        return m.type;
      });
    c.close();
    expect(seen).toEqual(['1', '2', 'C:INSERT 0 1', 'E:42501', 'Z:I', '1', '2', 'C:INSERT 0 1', 'Z:I', 'E:42501', 'Z:I', 'T', 'C:SELECT 1', 'Z:I']);
    // The first insert was in the failed implicit transaction, as with a server error.
    const after = await counts();
    expect(after.orders).toBe(before.orders + 1);
    expect((await db.admin.query('select id from orders where id between 600 and 699 order by id')).rows).toEqual([{ id: 601 }]);
    await db.admin.query('delete from orders where id between 600 and 699');
  });
});

describe('settings the parser depends on, and COPY FROM STDIN', () => {
  it('refuses a change to a setting under which the server would read statements differently', async () => {
    const c = client(gw.port, target.database);
    await c.connect();
    try {
      await expect(c.query('set standard_conforming_strings = off')).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('standard_conforming_strings would be off') });
      await expect(c.query("set client_encoding = 'SJIS'")).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('client_encoding would be SJIS') });
      await expect(c.query("set names 'BIG5'")).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('client_encoding would be BIG5') });
      await expect(c.query("select set_config('client_encoding', 'SJIS', false)")).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('sluice:parse-state: client_encoding would be SJIS') });
      await c.query("set client_encoding = 'UTF8'");
      await c.query('set standard_conforming_strings = on');
      await c.query("select set_config('statement_timeout', '0', false)");
      expect((await c.query("select 'a\\' as x")).rows).toEqual([{ x: 'a\\' }]);
    } finally {
      await c.end();
    }
  });

  /**
   * Startup with `params`, then `queries` — all in one write (pipelined), or each after the answer
   * to the one before — and the SQLSTATE and error message (or 'ok') of each.
   */
  async function outcomes(params: [string, string][], queries: (string | Buffer)[], sequential = false): Promise<string[]> {
    const frame = (q: string | Buffer) => build().raw(Buffer.concat([Buffer.from(q), Buffer.from([0])])).typed('Q');
    const errorOf = (msgs: RawMessage[]) => {
      const error = msgs.find((m) => m.type === 'E');
      if (error === undefined) return 'ok';
      const e = decodeErrorFields(error.body);
      return `${e.code} ${e.message}`;
    };
    const c = await rawClient(gw.port, target.database, params);
    const out: string[] = [];
    if (sequential) {
      for (const q of queries) {
        c.send(frame(q));
        out.push(errorOf(await c.until(1)));
      }
    } else {
      c.send(Buffer.concat(queries.map(frame)));
      // Split the answers at each ReadyForQuery: one per query.
      let current: RawMessage[] = [];
      for (const m of await c.until(queries.length)) {
        current.push(m);
        if (m.type === 'Z') {
          out.push(errorOf(current));
          current = [];
        }
      }
    }
    c.close();
    return out;
  }

  it('a session that starts in another client encoding is ended before anything runs', async () => {
    const c = await rawClient(gw.port, target.database, [['client_encoding', 'LATIN1']]);
    const msgs = await c.until(1);
    c.close();
    expect(msgs.map((m) => m.type)).toEqual(['E']);
    const e = decodeErrorFields((msgs[0] as RawMessage).body);
    expect(e).toMatchObject({ severity: 'FATAL', code: '0A000' });
    expect(e.message).toContain('client_encoding is LATIN1');
  });

  it('a pipelined switch to SJIS cannot smuggle a DROP past the policy inside a string literal', async () => {
    // In SJIS, 0x95 0x5C is one character; read as UTF-8, 0x5C is a backslash that escapes the
    // quote after it. Had the SET reached the server, the server would end the literal there and
    // run the DROP, while a gateway reading UTF-8 saw one SELECT of one long string.
    await db.admin.query('create table sjis_victim (id int); alter table sjis_victim owner to app');
    const evil = Buffer.concat([Buffer.from("select E'"), Buffer.from([0x95, 0x5c]), Buffer.from("'; drop table sjis_victim; --'")]);
    const errors = await outcomes([], ["set client_encoding = 'SJIS'", evil]);
    expect(errors[0]).toContain('client_encoding would be SJIS');
    // 22021 (invalid byte sequence): the server read the bytes as UTF-8. The corpus policy masks a
    // column, so the message's quoted parts (a data exception's) are withheld: the code says it.
    expect(errors[1]).toMatch(/^22021 invalid byte sequence for encoding|^42501 .*blocked/);
    expect((await db.admin.query("select to_regclass('sjis_victim') is not null as present")).rows).toEqual([{ present: true }]);
    await db.admin.query('drop table sjis_victim');
  });

  it('psql \\copy FROM STDIN goes through a policy (and is judged as COPY)', async () => {
    const r = await psql(cluster.psqlPath, gw.port, target.database, ['-c', '\\copy orders from stdin'], '700\t1\t5\n701\t2\t6\n\\.\n');
    expect(r.stdout).toBe('COPY 2\n');
    expect((await db.admin.query('select count(*)::int as n from orders where id in (700, 701)')).rows).toEqual([{ n: 2 }]);
    await db.admin.query('delete from orders where id in (700, 701)');
  });
});

describe('prepared statements and fast-path calls', () => {
  it('EXECUTE is judged as the statement the target confirmed, not the last one sent', async () => {
    const c = client(gw.port, target.database);
    await c.connect();
    const n = (await counts()).orders;
    try {
      await c.query('PREPARE total AS SELECT count(*)::int AS n FROM orders');
      expect((await c.query('EXECUTE total')).rows).toEqual([{ n }]);
      // A redefinition the server refuses (the name exists) must not change what EXECUTE runs.
      await expect(c.query('PREPARE total AS SELECT 1 AS n')).rejects.toMatchObject({ code: '42P05' });
      expect((await c.query('EXECUTE total')).rows).toEqual([{ n }]);
      await c.query('DEALLOCATE total');
      await expect(c.query('EXECUTE total')).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('not seen prepared') });
      // PREPARE and EXECUTE in one message.
      const both = (await c.query('PREPARE two AS SELECT 2 AS n; EXECUTE two')) as unknown as { rows: unknown[] }[];
      expect(both[1]?.rows).toEqual([{ n: 2 }]);
    } finally {
      await c.end();
    }
  });

  it('fast-path function calls are judged by the function they name (\\lo_import uses lowrite)', async () => {
    const r = await psql(cluster.psqlPath, gw.port, target.database, ['-At', '-c', "\\lo_import '/etc/hostname'"]);
    expect(r.stderr).toContain('blocked by rule no-file-access: function');
    const s = gw.sessions.at(-1)!;
    await s.ended;
    expect(s.decisions.some((d) => d.verdict === 'block' && d.rule === 'no-file-access')).toBe(true);
    expect(s.queries.some((q) => q.text.includes('"pg_catalog"."lowrite"'))).toBe(true);
  });
});
