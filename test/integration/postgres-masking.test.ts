// Masking in the PostgreSQL engine against a real server: by source column (aliases, joins,
// subqueries, views, RETURNING), by value detectors (expressions, free text, JSON, cards with
// Luhn), the three strategies, NULLs, multi-byte UTF-8, binary result formats, Executes without a
// Describe, COPY TO STDOUT in text and CSV (binary and COPY (query) refused), and the audit's
// sample rows — which must never hold a clear value.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { REDACTED, WITHHELD_RAISED } from '../../gateway/policy/index.js';
import { build } from '../unit/postgres/builder.js';
import { client, compile, connectionFor, freshDatabase, psql, rawClient, startEngine, type Engine } from '../support/pgEngineHarness.js';

const cluster = inject('pgCluster');

const MASKING = compile({
  rules: [
    { id: 'pii-email', mask: { columns: ['customers.email'], with: 'partial' } },
    { id: 'pii-card', mask: { columns: ['customers.card_number'], with: 'hash' } },
    { id: 'pii-phone', mask: { columns: ['customers.phone', 'customers.birthday'], with: 'redact' } },
    { id: 'pii-anywhere', mask: { detect: ['credit_card', 'email'], with: 'redact' } },
  ],
});

const CLEAR = ['ann@example.com', 'bob@example.com', 'zoë.müller@exämple.de', '4111111111111111', '5555555555554444', '+1 415 555 2671'];

let db: Awaited<ReturnType<typeof freshDatabase>>;
let gw: Engine;
let database: string;

beforeAll(async () => {
  db = await freshDatabase(cluster, 'masking');
  database = db.target.database;
  await db.admin.query(`
    create table customers (id int primary key, name text, email text, card_number text, phone text, birthday date, notes text, profile jsonb);
    insert into customers values
      (1, 'Ann', 'ann@example.com', '4111111111111111', '+1 415 555 2671', '1990-01-02', 'paid with 4111 1111 1111 1111', '{"contact": "ann@example.com", "tier": 2}'),
      (2, 'Bob', 'bob@example.com', '4111111111111111', null, null, 'card 4111 1111 1111 1112 is not a card', '{"tier": 1}'),
      (3, 'Zoë', 'zoë.müller@exämple.de', '5555555555554444', '+1 415 555 2672', '1985-05-06', null, null),
      (4, 'Nul', null, null, null, null, 'nothing to see', '{}');
    create table orders (id int primary key, customer_id int references customers(id), amount int);
    insert into orders values (1, 1, 10), (2, 3, 20);
    create view contacts as select id, email as contact, upper(name) as shout from customers;
    create view contacts2 as select contact as c2 from contacts;
    alter table customers owner to app; alter table orders owner to app;
    alter view contacts owner to app; alter view contacts2 owner to app;
    create table copy_rows as select g as id, 'row' || g || '@example.com' as email from generate_series(1, 3) g;
    alter table copy_rows owner to app;
  `);
  gw = await startEngine(connectionFor(db.target), { policy: MASKING });
});

afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

async function rows(sql: string, opts: { values?: unknown[]; binary?: boolean } = {}): Promise<Record<string, unknown>[]> {
  const c = client(gw.port, database);
  await c.connect();
  try {
    return (await c.query({ text: sql, ...(opts.values ? { values: opts.values } : {}), ...(opts.binary ? { binary: true } : {}) })).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

describe('masking by source column', () => {
  it('applies partial, hash and redact; NULL stays NULL; multi-byte characters are counted, not cut', async () => {
    const r = await rows('select id, email, card_number, phone from customers order by id');
    // 21 characters (24 bytes): 17 stars and the last 4 characters.
    expect(r.map((x) => x.email)).toEqual(['***********.com', '***********.com', `${'*'.repeat(17)}e.de`, null]);
    expect(r[0]!.card_number).toMatch(/^h:[0-9a-f]{16}$/);
    // Equal inputs, equal outputs: joins and counts still work.
    expect(r[1]!.card_number).toBe(r[0]!.card_number);
    expect(r[2]!.card_number).not.toBe(r[0]!.card_number);
    expect(r[3]!.card_number).toBeNull();
    expect(r.map((x) => x.phone)).toEqual([REDACTED, null, REDACTED, null]);
  });

  it('follows the column through aliases, joins, subqueries, RETURNING and views', async () => {
    expect((await rows('select email as e from customers where id = 1'))[0]).toEqual({ e: '***********.com' });
    expect((await rows('select o.id, c.email from orders o join customers c on c.id = o.customer_id order by o.id')).map((x) => x.email)).toEqual(['***********.com', expect.stringMatching(/^\*+e\.de$/)]);
    expect((await rows('select x from (select email as x from customers where id = 2) s'))[0]).toEqual({ x: '***********.com' });
    expect((await rows('update customers set name = name where id = 1 returning email'))[0]).toEqual({ email: '***********.com' });
    expect((await rows('select contact, shout from contacts where id = 1'))[0]).toEqual({ contact: '***********.com', shout: 'ANN' });
    expect((await rows('select c2 from contacts2')).map((x) => x.c2).sort()).toEqual([`${'*'.repeat(17)}e.de`, '***********.com', '***********.com', null]);
    // Grouping sorts or hashes by the value itself, which can give its order away: refused.
    await expect(rows('select card_number, count(*)::int as n from customers group by 1')).rejects.toThrow(/sluice:masked-predicate: GROUP BY uses public\.customers\.card_number/);
  });

  it('masks binary-format results: text in place, other types as NULL', async () => {
    const r = await rows('select id, email, birthday, name from customers where id = 1', { binary: true });
    expect(r[0]).toEqual({ id: 1, email: '***********.com', birthday: null, name: 'Ann' });
  });

  it('masks the extended protocol with parameters, named statements and Executes without a Describe', async () => {
    expect(await rows('select email from customers where id = $1', { values: [1] })).toEqual([{ email: '***********.com' }]);
    const c = await rawClient(gw.port, database);
    c.send(
      Buffer.concat([
        build().cstring('s1').cstring('select email from customers where id = $1').int16(0).typed('P'),
        build().typed('S'),
        build().cstring('').cstring('s1').int16(0).int16(1).int32(1).raw('2').int16(0).typed('B'),
        build().cstring('').int32(0).typed('E'),
        build().typed('S'),
      ]),
    );
    const got = (await c.until(2)).filter((m) => !'SKRN'.includes(m.type)).map((m) => (m.type === 'D' ? `D:${m.body.toString('utf8', 6)}` : m.type));
    c.close();
    // The gateway's own Describe is answered to the gateway, not to the client.
    expect(got).toEqual(['1', 'Z', '2', 'D:***********.com', 'C', 'Z']);
  });
});

describe('tables the catalog cannot see yet', () => {
  it('refuses what reads a table created in the open transaction, and reads it once it is committed', async () => {
    const c = client(gw.port, database);
    await c.connect();
    const raw = { types: { getTypeParser: () => (v: string) => v } };
    try {
      await c.query('begin');
      await c.query("create table fresh as select 1 as n, 'hello' as t");
      await expect(c.query({ text: 'select n, t from fresh', ...raw })).rejects.toThrow(/sluice:masked-derivation: output column "n" is computed from fresh, a relation the gateway cannot look up/);
      await c.query('rollback');
      await c.query('begin');
      await c.query("create table fresh as select 1 as n, 'hello' as t");
      await c.query('commit');
      expect((await c.query({ text: 'select n, t from fresh', ...raw })).rows).toEqual([{ n: '1', t: 'hello' }]);
    } finally {
      await c.end();
    }
  });
});

describe('masking by value detectors', () => {
  it('catches what columns cannot: free text, JSON — and leaves Luhn-invalid numbers', async () => {
    // Expressions over masked columns are refused by lineage (derived: refuse is the default).
    await expect(rows('select upper(email) as u from customers where id = 1')).rejects.toThrow(/sluice:masked-derivation: output column "u" is computed from public\.customers\.email/);
    expect((await rows('select notes from customers order by id')).map((x) => x.notes)).toEqual([`paid with ${REDACTED}`, 'card 4111 1111 1111 1112 is not a card', null, 'nothing to see']);
    expect((await rows('select profile from customers where id = 1'))[0]).toEqual({ profile: { contact: REDACTED, tier: 2 } });
    expect((await rows("select profile->>'contact' as c from customers where id = 1"))[0]).toEqual({ c: REDACTED });
    expect((await rows("select 'plain text' as t, 42 as n"))[0]).toEqual({ t: 'plain text', n: 42 });
  });

  it('masks 100 000 rows', async () => {
    const r = await rows("select email, 'x' || g as n from customers, generate_series(1, 25000) g");
    expect(r).toHaveLength(100_000);
    expect(r.filter((x) => x.email !== null && !(x.email as string).startsWith('*'))).toHaveLength(0);
  });
});

describe('COPY TO STDOUT', () => {
  it('masks text and CSV row by row (psql \\copy) and COPY (query) by lineage, refuses binary', async () => {
    const text = await psql(cluster.psqlPath, gw.port, database, ['-c', '\\copy (select 1) to stdout']);
    expect(text.stdout).toBe('1\n');
    const t = await psql(cluster.psqlPath, gw.port, database, ['-c', '\\copy customers (id, email, card_number, notes) to stdout']);
    expect(t.stderr).toBe('');
    // Physical order: sort by id (an earlier UPDATE moved row 1).
    const lines = t.stdout.trim().split('\n').map((l) => l.split('\t')).sort((a, b) => Number(a[0]) - Number(b[0]));
    expect(lines.map((l) => l[1])).toEqual(['***********.com', '***********.com', expect.stringMatching(/^\*+e\.de$/), '\\N']);
    expect(lines[0]![2]).toMatch(/^h:[0-9a-f]{16}$/);
    expect(lines[0]![3]).toBe(`paid with ${REDACTED}`);
    const csv = await psql(cluster.psqlPath, gw.port, database, ['-c', '\\copy customers (id, email, notes) to stdout with (format csv, header)']);
    const csvLines = csv.stdout.trim().split('\n');
    expect(csvLines[0]).toBe('id,email,notes');
    expect(csvLines.slice(1).sort()).toEqual(['1,"***********.com","paid with [redacted]"', '2,"***********.com",card 4111 1111 1111 1112 is not a card', `3,"${'*'.repeat(17)}e.de",`, '4,,nothing to see']);
    const bin = await psql(cluster.psqlPath, gw.port, database, ['-c', 'copy customers to stdout (format binary)']);
    expect(bin.stderr).toContain('binary COPY cannot be masked');
    const query = await psql(cluster.psqlPath, gw.port, database, ['-c', '\\copy (select id, email as e from customers order by id) to stdout']);
    expect(query.stdout.split('\n').slice(0, 2)).toEqual(['1\t***********.com', '2\t***********.com']);
    const derived = await psql(cluster.psqlPath, gw.port, database, ['-c', '\\copy (select upper(email) from customers) to stdout']);
    expect(derived.stderr).toContain('sluice:masked-derivation');
    // A table without masked columns still has its values scanned by the detectors.
    const other = await psql(cluster.psqlPath, gw.port, database, ['-c', 'copy copy_rows to stdout (format csv)']);
    expect(other.stdout).toBe(`1,"${REDACTED}"\n2,"${REDACTED}"\n3,"${REDACTED}"\n`);
    for (const secret of CLEAR) expect(t.stdout + csv.stdout + other.stdout + query.stdout).not.toContain(secret);
  });
});

describe('the audit trail', () => {
  it('records columns, masked sample rows and masked column names — never a clear value', async () => {
    const c = client(gw.port, database);
    await c.connect();
    await c.query('select id, email, card_number, notes, profile from customers order by id');
    await c.end();
    const s = gw.sessions.at(-1)!;
    await s.ended;
    const rec = s.of('select id, email');
    expect(s.columns.get(rec.id)).toEqual(['id', 'email', 'card_number', 'notes', 'profile']);
    expect(s.rows.get(rec.id)?.[0]).toEqual(['1', '***********.com', expect.stringMatching(/^h:/), `paid with ${REDACTED}`, `{"tier": 2, "contact": "${REDACTED}"}`]);
    expect(rec.result?.masked).toEqual(expect.arrayContaining(['email', 'card_number', 'detect:credit_card', 'detect:email']));
    expect(rec.result?.bytes).toBeGreaterThan(0);
    const everything = JSON.stringify(gw.sessions.map((x) => ({ events: x.events, rows: [...x.rows.values()] })));
    for (const secret of CLEAR) expect(everything).not.toContain(secret);
  });
});

describe('errors and notices', () => {
  it('withholds what a constraint error quotes from masked data and masks what a notice says, keeping the session usable', async () => {
    await db.admin.query(`
      create schema crm;
      create table crm.customers (id int primary key, name text not null, email text unique);
      insert into crm.customers values (1, 'Ann', 'ann@example.com');
      create table crm.tags (id int primary key, label text not null);
      insert into crm.tags values (1, 'vip');
      create function crm.leak() returns int language plpgsql as $$ begin raise notice 'card 4111111111111111 for ann@example.com'; return 1; end $$;
      create function crm.tagged() returns trigger language plpgsql as $$ begin perform crm.leak(); return new; end $$;
      create trigger tagged after insert on crm.tags for each row execute function crm.tagged();
      alter schema crm owner to app; alter table crm.customers owner to app; alter table crm.tags owner to app; alter function crm.leak() owner to app;
    `);
    const c = client(gw.port, database);
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    await c.connect();
    const fail = (sql: string) => c.query(sql).then(() => undefined, (e: { code?: string; detail?: string; message?: string }) => e);
    try {
      const dup = await fail(`insert into crm.customers values (2, 'Bob', 'ann@example.com')`);
      expect(dup).toMatchObject({ code: '23505', detail: 'Key (email)=(withheld: masked data) already exists.' });
      const row = await fail('update crm.customers set name = null where id = 1');
      expect(row).toMatchObject({ code: '23502', detail: 'Failing row contains (withheld: masked data).' });
      // Any table's failing row (it could be a partition of a masked one); other keys are kept.
      const tag = await fail('update crm.tags set label = null where id = 1');
      expect(tag).toMatchObject({ code: '23502', detail: 'Failing row contains (withheld: masked data).' });
      const key = await fail(`insert into crm.tags values (1, 'again')`);
      expect(key).toMatchObject({ code: '23505', detail: 'Key (id)=(1) already exists.' });
      // Calling a function the gateway cannot see into is refused; a trigger the owner set up still runs.
      await expect(c.query('select crm.leak() as v')).rejects.toThrow(/sluice:masked-derivation: the statement runs leak\(\)/);
      await c.query(`insert into crm.tags values (7, 'new')`);
      // What code raised (here a trigger's function) is withheld whole for someone with column masks.
      expect(notices).toEqual([WITHHELD_RAISED]);
      expect((await c.query('select 1 as still')).rows).toEqual([{ still: 1 }]);
    } finally {
      await c.end();
    }
  });
});
