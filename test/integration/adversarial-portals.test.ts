// Adversarial corpus, class "names shared by SQL and the protocol": PostgreSQL keeps one
// namespace of prepared statements for PREPARE and Parse, and one of portals for DECLARE and
// Bind, so a cursor declared in SQL can be described and executed by protocol messages, and a
// name the gateway learned from one side can be dropped and reused from the other. A real gateway
// with the recommended policy and a mask on a column no value detector recognises
// (customers.name), a raw wire client, and the bytes it received checked for every clear value.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PolicyInput } from '../../gateway/policy/index.js';
import { RECOMMENDED_POLICY, SECRET_CARDS, SECRET_EMAILS, startArena, type Arena } from '../support/arena.js';
import type { RawClient, RawMessage } from '../support/pgEngineHarness.js';
import { build } from '../unit/postgres/builder.js';

const cluster = inject('pgCluster');

const POLICY: PolicyInput = { rules: [...(RECOMMENDED_POLICY.rules ?? []), { id: 'names', mask: { columns: ['customers.name'], with: 'redact' as const } }] };

/** Clear values no client may see; the names are plain words no detector finds. */
const MARKERS = [...SECRET_EMAILS, ...SECRET_CARDS, 'Grace', 'Edsger', 'lovelace', '411111'];

/** Result columns that carry no table OID (so only the gateway's lineage knows their source). */
const NAMES = 'select name from customers union all select name from customers';
const EMAILS = 'select email from customers union all select email from customers';

const q = (sql: string) => build().cstring(sql).typed('Q');
const parse = (name: string, sql: string) => build().cstring(name).cstring(sql).int16(0).typed('P');
const bind = (portal: string, statement: string) => build().cstring(portal).cstring(statement).int16(0).int16(0).int16(0).typed('B');
const execute = (portal: string, rows = 0) => build().cstring(portal).int32(rows).typed('E');
const describePortal = (portal: string) => build().byte('P').cstring(portal).typed('D');
const closeStatement = (name: string) => build().byte('S').cstring(name).typed('C');
const sync = () => build().typed('S');
const cycle = (...m: Buffer[]) => Buffer.concat([...m, sync()]);

/** Sends each step and waits for its ReadyForQuery; returns everything received. */
async function run(arena: Arena, steps: readonly Buffer[]): Promise<RawMessage[]> {
  const raw: RawClient = await arena.raw();
  try {
    const out: RawMessage[] = [];
    for (const s of steps) {
      raw.send(s);
      out.push(...(await raw.until(1)));
    }
    return out;
  } finally {
    raw.close();
  }
}

const text = (ms: readonly RawMessage[]) => ms.map((m) => `${m.type}:${m.body.toString('latin1')}`).join('\n');
const leaked = (ms: readonly RawMessage[]) => MARKERS.filter((m) => text(ms).includes(m));
/** The first value of every DataRow (null for NULL). */
function firstValues(ms: readonly RawMessage[]): (string | null)[] {
  return ms.filter((m) => m.type === 'D').map((m) => {
    const len = m.body.readInt32BE(2);
    return len < 0 ? null : m.body.toString('utf8', 6, 6 + len);
  });
}
const errors = (ms: readonly RawMessage[]) => ms.filter((m) => m.type === 'E').map((m) => m.body.toString('utf8'));

// One gateway for the file: each case opens its own session, so names do not carry over.
let arena: Arena;
beforeAll(async () => {
  arena = await startArena(cluster, { prefix: 'adv_portals', policy: POLICY });
});
afterAll(async () => {
  await arena?.stop();
});

describe('a cursor declared in SQL, reached by protocol Describe/Execute', () => {
  it.each([
    ['described by the client', true],
    ['described by the gateway (Execute alone)', false],
  ])('in a transaction, %s: every column redacted', async (_, describe) => {
    const got = await run(arena, [q('begin'), q(`declare c cursor for ${NAMES}`), cycle(...(describe ? [describePortal('c')] : []), execute('c')), q('commit')]);
    expect(leaked(got), text(got)).toEqual([]);
    expect(firstValues(got)).toEqual(Array.from({ length: 6 }, () => '[redacted]'));
  });

  it('WITH HOLD, executed after its transaction committed', async () => {
    const got = await run(arena, [q(`declare h cursor with hold for ${EMAILS}`), cycle(describePortal('h'), execute('h')), q('close h')]);
    expect(leaked(got), text(got)).toEqual([]);
    expect(firstValues(got)).toEqual(Array.from({ length: 6 }, () => '[redacted]'));
  });

  it('executed a few rows at a time', async () => {
    const got = await run(arena, [q('begin'), q(`declare c2 cursor for ${NAMES}`), cycle(describePortal('c2'), execute('c2', 2)), cycle(execute('c2', 2)), cycle(execute('c2')), q('commit')]);
    expect(leaked(got), text(got)).toEqual([]);
    expect(firstValues(got)).toHaveLength(6);
    expect(new Set(firstValues(got))).toEqual(new Set(['[redacted]']));
  });

  const BOUND = "select 'x'::text from generate_series(1, 3)";
  const NULLS = Array.from({ length: 6 }, () => null);
  const REDACTED = Array.from({ length: 6 }, () => '[redacted]');
  // The client described `p` before SQL replaced it: no RowDescription comes with the new rows.
  it.each([
    ['closed and declared again under its name: rows go out NULL', [q('begin'), cycle(parse('', BOUND), bind('p', ''), describePortal('p'), execute('p', 1)), q('close p'), q(`declare p cursor for ${NAMES}`), cycle(execute('p')), q('commit')], NULLS],
    ['after CLOSE ALL, described again: redacted', [q('begin'), cycle(parse('', BOUND), bind('p', ''), execute('p', 1)), q('close all'), q(`declare p cursor for ${EMAILS}`), cycle(describePortal('p'), execute('p')), q('commit')], REDACTED],
    ['bound in one transaction, its name declared in the next: NULL', [q('begin'), cycle(parse('', BOUND), bind('p', ''), describePortal('p'), execute('p', 1)), q('commit'), q('begin'), q(`declare p cursor for ${NAMES}`), cycle(execute('p')), q('commit')], NULLS],
  ] as const)('a portal the client bound, %s', async (_, steps, rows) => {
    const got = await run(arena, steps);
    expect(leaked(got), text(got)).toEqual([]);
    expect(firstValues(got)).toEqual(['x', ...rows]);
  });

  it('a protocol portal fetched with SQL FETCH is refused (the gateway saw no DECLARE)', async () => {
    const got = await run(arena, [q('begin'), cycle(parse('', NAMES), bind('pp', '')), q('fetch all from pp'), q('commit')]);
    expect(leaked(got), text(got)).toEqual([]);
    expect(errors(got).join('\n')).toContain('sluice:masked-derivation');
  });

  it('a declared cursor read with FETCH keeps its own lineage', async () => {
    const got = await run(arena, [q('begin'), q(`declare f cursor for ${NAMES}`), q('fetch all from f'), q('commit')]);
    expect(leaked(got), text(got)).toEqual([]);
    expect(firstValues(got)).toEqual(Array.from({ length: 6 }, () => '[redacted]'));
  });
});

describe('prepared statement names dropped on one side and reused on the other', () => {
  it.each([
    ['DEALLOCATE name', 'deallocate s'],
    ['DEALLOCATE ALL', 'deallocate all'],
    ['DISCARD ALL', 'discard all'],
  ])('Parse, %s, PREPARE under the same name, Bind: masked by the PREPARE', async (_, drop) => {
    const got = await run(arena, [cycle(parse('s', "select 'x'::text as name")), q(drop), q(`prepare s as ${NAMES}`), cycle(bind('', 's'), describePortal(''), execute(''))]);
    expect(leaked(got), text(got)).toEqual([]);
    expect(firstValues(got)).toEqual(Array.from({ length: 6 }, () => '[redacted]'));
  });

  it('PREPARE, protocol Close and Parse under the same name, EXECUTE: masked by the Parse', async () => {
    const got = await run(arena, [q("prepare s2 as select 'x'::text"), cycle(closeStatement('s2'), parse('s2', NAMES)), q('execute s2')]);
    expect(leaked(got), text(got)).toEqual([]);
    expect(firstValues(got).filter((v) => v !== null && v !== 'x')).toEqual(firstValues(got));
    expect(firstValues(got).every((v) => v === '[redacted]') || errors(got).some((e) => e.includes('sluice:'))).toBe(true);
  });

  it('a Parse inside a transaction rolled back (the server forgets it), then PREPARE under its name', async () => {
    const got = await run(arena, [q('begin'), cycle(parse('s3', "select 'x'::text")), q('rollback'), q(`prepare s3 as ${NAMES}`), cycle(bind('', 's3'), describePortal(''), execute(''))]);
    expect(leaked(got), text(got)).toEqual([]);
  });

  it('a blocked statement prepared under a name the protocol used before stays blocked', async () => {
    const got = await run(arena, [cycle(parse('d', 'select 1')), q('deallocate d'), q('prepare d as delete from payments'), cycle(bind('', 'd'), execute(''))]);
    expect(errors(got).join('\n')).toContain('blocked by rule no-unbounded-writes');
    expect((await arena.admin.query('select count(*)::int as n from payments')).rows[0]).toEqual({ n: 2 });
  });
});

describe('odd protocol messages', () => {
  it('a Parse declaring 65 535 parameter types, then a Bind with none: the target refuses, the session goes on', async () => {
    const types = build().cstring('big').cstring(NAMES).int16(65535);
    for (let i = 0; i < 65535; i++) types.int32(25);
    const got = await run(arena, [cycle(types.typed('P'), bind('', 'big'), execute('')), q('select 1')]);
    expect(leaked(got), text(got)).toEqual([]);
    expect(errors(got).join('\n')).toMatch(/bind message supplies 0 parameters/);
    expect(firstValues(got)).toEqual(['1']);
  });

  it('a Parse that declares more parameter types than it carries ends that session only', async () => {
    const short = build().cstring('').cstring('select 1').int16(500).int32(25).typed('P');
    const got = await run(arena, [cycle(short)]);
    expect(got.map((m) => m.type)).toContain('E');
    const after = await run(arena, [q('select 2')]);
    expect(firstValues(after)).toEqual(['2']);
  });

  it('a named portal bound twice in a transaction: the second Bind fails, the first portal keeps its mask', async () => {
    const got = await run(arena, [
      q('begin'),
      cycle(parse('', NAMES), bind('twice', ''), describePortal('twice'), execute('twice', 1)),
      cycle(parse('', "select 'x'::text"), bind('twice', '')),
      q('rollback'),
    ]);
    expect(leaked(got), text(got)).toEqual([]);
    expect(firstValues(got)).toEqual(['[redacted]']);
    expect(errors(got).join('\n')).toMatch(/C42P03\0/);
  });

  it('an error mid-pipeline skips to Sync: what follows in the same cycle never runs', async () => {
    const got = await run(arena, [cycle(parse('', 'select 1/0'), bind('', ''), execute(''), parse('', 'drop table payments'), bind('', ''), execute(''))]);
    expect(errors(got).join('\n')).toMatch(/division by zero|DDL is not allowed/);
    expect((await arena.admin.query("select to_regclass('payments') is not null as present")).rows[0]).toEqual({ present: true });
  });

  it('nothing above reached the audit store', () => {
    expect(MARKERS.filter((m) => arena.auditContains(m))).toEqual([]);
  });
});

describe('what keeps working', () => {
  it('a named portal executed in chunks with SQL statements between them keeps its plan', async () => {
    const got = await run(arena, [q('begin'), cycle(parse('', 'select id, name from customers order by id'), bind('k', ''), describePortal('k'), execute('k', 1)), q('select 42'), cycle(execute('k'))]);
    expect(leaked(got), text(got)).toEqual([]);
    expect(firstValues(got)).toEqual(['1', '42', '2', '3']);
    const names = got.filter((m) => m.type === 'D' && m.body.readUInt16BE(0) === 2).map((m) => m.body.toString('utf8', 6 + m.body.readInt32BE(2) + 4));
    expect(names).toEqual(['[redacted]', '[redacted]', '[redacted]']);
  });

  it('a SQL cursor declared and closed under another name leaves a bound portal its plan', async () => {
    const got = await run(arena, [
      q('begin'),
      cycle(parse('', 'select id, name from customers order by id'), bind('k2', ''), describePortal('k2'), execute('k2', 1)),
      q('declare other cursor for select 1'),
      q('close other'),
      cycle(execute('k2')),
      q('commit'),
    ]);
    expect(leaked(got), text(got)).toEqual([]);
    expect(firstValues(got)).toEqual(['1', '2', '3']);
  });

  it('the pg driver: parameters and an unmasked column come back as they are', async () => {
    const c = await arena.client();
    try {
      const r = await c.query('select id, name from customers where id = $1', [2]);
      expect(r.rows).toEqual([{ id: 2, name: '[redacted]' }]);
      const o = await c.query('select amount from orders where id = $1', [3]);
      expect(o.rows).toEqual([{ amount: '30' }]);
    } finally {
      await c.end();
    }
  });
});
