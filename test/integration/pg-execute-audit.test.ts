// Every protocol Execute is on record: one that follows a Bind in its cycle belongs to the Bind's
// statement; one without (a later Execute of a portal suspended by its row limit, or an Execute of
// a cursor declared in SQL) is recorded as a statement of its own, naming the portal and the SQL
// behind it, before it is forwarded. Raw extended-protocol messages through the real engine and
// a real cluster, with and without a policy.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startEngine, connectionFor, freshDatabase, rawClient, compile, type Engine, type RawClient, type RawMessage, type RecordingAudit } from '../support/pgEngineHarness.js';

const cluster = inject('pgCluster');

let open: Engine;
let policed: Engine;
let database: string;
let drop: () => Promise<void>;

beforeAll(async () => {
  const fresh = await freshDatabase(cluster, 'execute_audit');
  database = fresh.target.database;
  drop = fresh.drop;
  open = await startEngine(connectionFor(fresh.target, 'pg-open'));
  policed = await startEngine(connectionFor(fresh.target, 'pg-policed'), { policy: compile({ rules: [{ id: 'no-drop', block: { statements: ['drop'] } }] }) });
});

afterAll(async () => {
  await open?.close();
  await policed?.close();
  await drop?.();
});

/** One frontend message: type, length, then the parts (strings NUL-terminated, numbers as int16/int32 as tagged). */
function msg(type: string, ...parts: (string | { i16: number } | { i32: number })[]): Buffer {
  const bodies = parts.map((p) => {
    if (typeof p === 'string') return Buffer.from(`${p}\0`, 'utf8');
    const b = Buffer.alloc('i16' in p ? 2 : 4);
    if ('i16' in p) b.writeInt16BE(p.i16);
    else b.writeInt32BE(p.i32);
    return b;
  });
  const body = Buffer.concat(bodies);
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const parse = (name: string, sql: string) => msg('P', name, sql, { i16: 0 });
const bind = (portal: string, statement: string) => msg('B', portal, statement, { i16: 0 }, { i16: 0 }, { i16: 0 });
const execute = (portal: string, limit: number) => msg('E', portal, { i32: limit });
const sync = () => msg('S');
const query = (sql: string) => msg('Q', sql);

const dataRows = (ms: RawMessage[]) => ms.filter((m) => m.type === 'D').length;

/** A raw client on `e` and the audit of its session, closed after `body`. */
async function session(e: Engine, body: (c: RawClient, audit: RecordingAudit) => Promise<void>): Promise<void> {
  const before = e.sessions.length;
  const c = await rawClient(e.port, database);
  try {
    await body(c, e.sessions[before]!);
  } finally {
    c.close();
  }
}

describe.each([
  ['no policy', () => open],
  ['a policy', () => policed],
])('with %s', (_label, engine) => {
  it('records each Execute of a portal suspended by its row limit', () =>
    session(engine(), async (c, audit) => {
      c.send(Buffer.concat([query('begin'), parse('s1', 'select g from generate_series(1, 5) g'), bind('p1', 's1'), execute('p1', 2), sync()]));
      const first = await c.until(2);
      expect(dataRows(first)).toBe(2);
      const recorded = audit.queries.length;
      c.send(Buffer.concat([execute('p1', 2), sync()]));
      const second = await c.until(1);
      expect(dataRows(second)).toBe(2);
      expect(audit.queries.length).toBe(recorded + 1);
      const last = audit.queries[recorded]!;
      expect(last.text).toContain('portal "p1"');
      expect(last.text).toContain('select g from generate_series(1, 5) g');
      c.send(query('commit'));
      await c.until(1);
    }));

  it('records an Execute of a cursor declared in SQL', () =>
    session(engine(), async (c, audit) => {
      c.send(query('begin; declare cur cursor for select g from generate_series(1, 3) g'));
      await c.until(1);
      const recorded = audit.queries.length;
      c.send(Buffer.concat([execute('cur', 0), sync()]));
      const rows = await c.until(1);
      expect(dataRows(rows)).toBe(3);
      expect(audit.queries.length).toBe(recorded + 1);
      expect(audit.queries[recorded]!.text).toContain('portal "cur"');
      c.send(query('commit'));
      await c.until(1);
    }));

  it('does not record a Bind and its Execute twice', () =>
    session(engine(), async (c, audit) => {
      const recorded = audit.queries.length;
      c.send(Buffer.concat([parse('', 'select 1'), bind('', ''), execute('', 0), sync()]));
      await c.until(1);
      expect(audit.queries.length).toBe(recorded + 1);
    }));
});
