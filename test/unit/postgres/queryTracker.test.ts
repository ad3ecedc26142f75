// How the audit pairs statements with results: simple queries with several commands, pipelined
// extended-protocol statements, errors that make the target skip to Sync, statements executed
// by name after their Parse, and sessions that end with results outstanding.
import { describe, expect, it } from 'vitest';
import type { PostgresSessionAudit } from '../../../gateway/audit/postgresEvents.js';
import { QueryTracker, SKIPPED_MESSAGE } from '../../../gateway/engines/postgres/queryTracker.js';
import { build } from './builder.js';
import { coreAuditNoops } from '../../support/auditStubs.js';

type Query = Parameters<PostgresSessionAudit['onQuery']>[0];
type Result = Parameters<PostgresSessionAudit['onResult']>[0];

function setup() {
  const queries: Query[] = [];
  const results: Result[] = [];
  let clock = 0;
  const audit: PostgresSessionAudit = {
    ...coreAuditNoops,
    onSessionStart: () => undefined,
    onQuery: (q) => queries.push(q),
    // What the audit is told, member by member (the tracker hands over its own record of the statement).
    onResult: ({ queryId, status, commands, rows, sqlstate, message, durationMs, bytes, masked }) =>
      results.push(JSON.parse(JSON.stringify({ queryId, status, commands, rows, sqlstate, message, durationMs, bytes, masked })) as Result),
    onSessionEnd: () => undefined,
  };
  const tracker = new QueryTracker(audit, () => (clock += 10));
  return { tracker, queries, results };
}

describe('QueryTracker', () => {
  it('simple query: all command tags and summed rows, reported at ReadyForQuery', () => {
    const { tracker, queries, results } = setup();
    tracker.query('insert into t values (1),(2); select * from t');
    expect(queries).toEqual([{ text: 'insert into t values (1),(2); select * from t', protocol: 'simple' }]);
    tracker.commandComplete('INSERT 0 2');
    tracker.commandComplete('SELECT 2');
    expect(results).toEqual([]);
    tracker.ready();
    expect(results).toEqual([{ queryId: 1, status: 'ok', commands: ['INSERT 0 2', 'SELECT 2'], rows: 4, durationMs: 10 }]);
  });

  it('simple query error keeps the commands that ran', () => {
    const { tracker, results } = setup();
    tracker.query('create table a(); select 1/0; select 1');
    tracker.commandComplete('CREATE TABLE');
    tracker.error('22012', 'division by zero');
    tracker.ready();
    expect(results[0]).toMatchObject({ status: 'error', commands: ['CREATE TABLE'], sqlstate: '22012', message: 'division by zero' });
    expect(results[0]!.rows).toBeUndefined();
  });

  it('extended protocol: Bind records the Parse SQL with parameters, binary as hex', () => {
    const { tracker, queries, results } = setup();
    tracker.parse('', 'select $1::int, $2::bytea, $3::text');
    tracker.bind('', ['7', Buffer.of(0xca, 0xfe), null]);
    tracker.commandComplete('SELECT 1');
    tracker.sync();
    tracker.ready();
    expect(queries).toEqual([{ text: 'select $1::int, $2::bytea, $3::text', params: ['7', '\\xcafe', null], protocol: 'extended' }]);
    expect(results).toEqual([{ queryId: 1, status: 'ok', commands: ['SELECT 1'], rows: 1, durationMs: 10 }]);
  });

  it('named statements are found again by later Binds and forgotten on Close', () => {
    const { tracker, queries } = setup();
    tracker.parse('s1', 'select 1');
    tracker.bind('s1', []);
    tracker.bind('s1', []);
    tracker.closeStatement('s1');
    tracker.bind('s1', []);
    expect(queries.map((q) => q.text)).toEqual(['select 1', 'select 1', expect.stringContaining('prepared statement "s1"')]);
  });

  it('pipelined statements take results in order; after an error the rest of the cycle is skipped', () => {
    const { tracker, results } = setup();
    tracker.parse('', 'insert into t values (1)');
    tracker.bind('', []);
    tracker.parse('', 'select 1/0');
    tracker.bind('', []);
    tracker.parse('', 'select 3');
    tracker.bind('', []);
    tracker.sync();
    tracker.parse('', 'select 4');
    tracker.bind('', []);
    tracker.sync();
    tracker.commandComplete('INSERT 0 1');
    tracker.error('22012', 'division by zero');
    tracker.ready();
    expect(results.map((r) => [r.queryId, r.status, r.sqlstate, r.message])).toEqual([
      [1, 'ok', undefined, undefined],
      [2, 'error', '22012', 'division by zero'],
      [3, 'error', undefined, SKIPPED_MESSAGE],
    ]);
    tracker.commandComplete('SELECT 1');
    tracker.ready();
    expect(results[3]).toMatchObject({ queryId: 4, status: 'ok', commands: ['SELECT 1'] });
  });

  it('an error in a cycle with no statement (a failed Parse) does not leak into the next cycle', () => {
    const { tracker, results } = setup();
    tracker.parse('', 'selec 1');
    tracker.sync();
    tracker.parse('', 'select 1');
    tracker.bind('', []);
    tracker.sync();
    tracker.error('42601', 'syntax error');
    tracker.ready();
    expect(results).toEqual([]);
    tracker.commandComplete('SELECT 1');
    tracker.ready();
    expect(results).toEqual([expect.objectContaining({ status: 'ok', commands: ['SELECT 1'] })]);
  });

  it('EmptyQueryResponse and PortalSuspended answer an Execute', () => {
    const { tracker, results } = setup();
    tracker.parse('', '');
    tracker.bind('', []);
    tracker.parse('', 'select generate_series(1, 10)');
    tracker.bind('', []);
    tracker.sync();
    tracker.executeAnswered();
    tracker.executeAnswered();
    tracker.ready();
    expect(results.map((r) => [r.status, r.commands])).toEqual([
      ['ok', []],
      ['ok', []],
    ]);
  });

  it('abandon reports outstanding statements as failed with the session end reason', () => {
    const { tracker, results } = setup();
    tracker.query('select pg_sleep(60)');
    tracker.abandon('08006', 'the target closed the connection');
    expect(results).toEqual([expect.objectContaining({ status: 'error', sqlstate: '08006', message: 'the target closed the connection' })]);
    tracker.abandon(undefined, 'again');
    expect(results).toHaveLength(1);
  });
});

describe('QueryTracker and the fast path', () => {
  it('records a FunctionCall as a statement with its arguments, answered at ReadyForQuery', () => {
    const { tracker, queries, results } = setup();
    tracker.functionCall(764, [Buffer.of(0, 0, 0, 7), '1']);
    tracker.ready();
    expect(queries).toEqual([{ text: '/* FunctionCall of the function with OID 764 */', params: ['\\x00000007', '1'], protocol: 'extended' }]);
    expect(results).toEqual([expect.objectContaining({ queryId: 1, status: 'ok', commands: [] })]);
  });
});

describe('QueryTracker on raw messages', () => {
  it('an Execute with no Bind of its portal before it is a statement of its own; a failed record stops it', () => {
    const { tracker, queries, results } = setup();
    tracker.parse('s', 'select generate_series(1, 10)');
    tracker.bind('s', [], undefined, 'p');
    expect(tracker.execute('p')).toBeUndefined();
    expect(tracker.execute('p')).toBe(2);
    expect(tracker.execute('cur')).toBe(3);
    tracker.sync();
    tracker.executeAnswered();
    tracker.executeAnswered();
    tracker.commandComplete('FETCH 3');
    tracker.ready();
    expect(queries.map((q) => q.text)).toEqual(['select generate_series(1, 10)', '/* Execute of portal "p" */ select generate_series(1, 10)', '/* Execute of portal "cur" (a cursor declared in SQL) */']);
    expect(results.map((r) => r.commands)).toEqual([[], [], ['FETCH 3']]);
    tracker.closePortal('p');
    expect(tracker.execute('p')).toBe(4);
    expect(queries[3]!.text).toBe('/* Execute of portal "p" (a cursor declared in SQL) */');

    const failing = new QueryTracker({
      ...coreAuditNoops,
      onSessionStart: () => undefined,
      onQuery: () => {
        throw new Error('audit unavailable');
      },
      onResult: () => undefined,
      onSessionEnd: () => undefined,
    });
    const execute = build().cstring('cur').int32(0).typed('E');
    expect(() => failing.clientMessage(0x45, execute, 5, execute.length)).toThrow('audit unavailable');
  });

  it('portals bound and never executed are forgotten past the cap, oldest first, in both lists', () => {
    const { tracker, queries } = setup();
    tracker.parse('s', 'select 1');
    for (let i = 0; i <= 1024; i++) tracker.bind('s', [], undefined, `p${i}`);
    const held = tracker as unknown as { portals: Map<string, string>; unexecuted: Set<string> };
    expect(held.portals.size).toBe(1024);
    expect(held.unexecuted.size).toBe(1024);
    // The evicted portal's Execute is recorded on its own rather than passing unrecorded.
    expect(tracker.execute('p0')).toBe(1026);
    expect(queries.at(-1)!.text).toBe('/* Execute of portal "p0" (a cursor declared in SQL) */');
    expect(tracker.execute('p1')).toBeUndefined();
  });

  it('decodes client and target messages into the same calls', () => {
    const { tracker, queries, results } = setup();
    const feed = (side: 'client' | 'server', frame: Buffer) =>
      side === 'client' ? tracker.clientMessage(frame[0]!, frame, 5, frame.length) : tracker.serverMessage(frame[0]!, frame, 5, frame.length);
    feed('client', build().cstring('s').cstring('select $1').int16(0).typed('P'));
    feed('client', build().cstring('').cstring('s').int16(0).int16(1).int32(1).raw('9').int16(0).typed('B'));
    feed('client', build().cstring('').int32(0).typed('E'));
    feed('client', build().typed('S'));
    feed('server', build().cstring('SELECT 1').typed('C'));
    const fatal = build().byte('V').cstring('FATAL').byte('C').cstring('57P01').byte('M').cstring('bye').byte(0).typed('E');
    expect(tracker.serverMessage(0x45, fatal, 5, fatal.length)).toMatchObject({ severity: 'FATAL', code: '57P01' });
    feed('server', build().byte('I').typed('Z'));
    expect(queries).toEqual([{ text: 'select $1', params: ['9'], protocol: 'extended' }]);
    expect(results).toEqual([expect.objectContaining({ status: 'ok', commands: ['SELECT 1'], rows: 1 })]);
  });
});

describe('QueryTracker for policy and masking', () => {
  it('reports row bytes and masked columns with the statement, kinds with the query', () => {
    const { tracker, queries, results } = setup();
    const id = tracker.query('select email from customers; select 1', ['SELECT', 'SELECT']);
    expect(tracker.currentId()).toBe(id);
    tracker.noteRows(120, ['email']);
    tracker.commandComplete('SELECT 3');
    tracker.noteRows(30, ['detect:email', 'email']);
    tracker.commandComplete('SELECT 1');
    tracker.ready();
    expect(queries[0]).toMatchObject({ kinds: ['SELECT', 'SELECT'] });
    expect(results[0]).toMatchObject({ bytes: 150, masked: ['email', 'detect:email'], rows: 4 });
  });

  it('a refused Parse is a statement of its own; a failed audit commit marks its batch as not forwarded', () => {
    const { tracker, results } = setup();
    tracker.refusedParse('drop table t', ['DROP TABLE']);
    tracker.sync();
    tracker.error('42501', 'blocked by rule no-ddl');
    tracker.ready();
    expect(results[0]).toMatchObject({ status: 'error', sqlstate: '42501', message: 'blocked by rule no-ddl' });
    tracker.query('select 1');
    const mark = tracker.recorded;
    tracker.query('insert into t values (1)');
    tracker.query('insert into t values (2)');
    tracker.notForwarded(mark, '58030', 'not forwarded');
    tracker.abandon('58030', 'the session ended');
    expect(results.slice(1).map((r) => [r.queryId, r.message])).toEqual([
      [2, 'the session ended'],
      [3, 'not forwarded'],
      [4, 'not forwarded'],
    ]);
  });
  it('a client gone mid-statement: each result says so with what the target reported, a held statement is left alone', () => {
    const { tracker, results } = setup();
    const note = 'cancelled: the client went away';
    tracker.query('select pg_sleep(60)');
    tracker.query('update t set v = 1 where id = 1');
    const held = tracker.query('insert into payments values (1)');
    expect(tracker.clientGone(note, held)).toBe(true);
    expect(tracker.goneLeft).toBe(2);
    tracker.error('57014', 'canceling statement due to user request');
    tracker.ready();
    tracker.commandComplete('UPDATE 1');
    tracker.ready();
    expect(tracker.goneLeft).toBe(0);
    tracker.abandon('08006', 'the session ended');
    expect(results.map((r) => [r.status, r.sqlstate, r.message])).toEqual([
      ['error', '57014', `${note}; canceling statement due to user request`],
      ['ok', undefined, `${note}; the target had completed it (UPDATE 1)`],
      ['error', '08006', 'the session ended'],
    ]);
  });

  it('a client gone with no answer before the close: the result says the target reported none', () => {
    const { tracker, results } = setup();
    tracker.query('select pg_sleep(60)');
    tracker.clientGone('cancelled: gone', undefined);
    tracker.abandon('08006', 'the session ended');
    expect(results[0]).toMatchObject({ status: 'error', sqlstate: '08006', message: 'cancelled: gone; the target reported no outcome before its connection was closed' });
    expect(tracker.clientGone('x', undefined)).toBe(false);
  });
});
