// `sessions replay` and `sessions show` rendering with fake IO: order, timing (divided by
// --speed, idle capped), results as recorded (sample tables, truncation, masking, errors).
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { SessionDetail, SessionEvent } from '../../../src/api/contract.js';
import { parseSince } from '../../../src/duration.js';
import { timeline } from '../../../src/commands/sessions/render.js';
import { MAX_IDLE_MS, replay } from '../../../src/commands/sessions/replay.js';
import type { Io } from '../../../src/io.js';

function fakeIo(): Io & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { stdin: new PassThrough(), stdout, stderr, env: {}, out: () => out, err: () => err };
}

const t = (s: number) => new Date(Date.parse('2026-11-05T10:00:00.000Z') + s * 1000).toISOString();
let seq = 0;
const ev = (kind: string, at: number, data: Record<string, unknown>): SessionEvent => ({ seq: ++seq, kind, at: t(at), data, hash: '0'.repeat(64) });

const detail: SessionDetail = {
  session: {
    id: 's_replay',
    connection: 'pg-prod',
    protocol: 'postgres',
    subject: 'user:alice',
    user: 'alice@example.com',
    email: 'alice@example.com',
    kind: 'human',
    groups: ['eng'],
    origin: 'connect',
    clientAddress: '127.0.0.1',
    database: 'app',
    startedAt: t(0),
    endedAt: t(100),
    status: 'ok',
    error: null,
    bytesFromClient: 100,
    bytesToClient: 2048,
    queries: 3,
    events: 9,
    ledgerSeq: 7,
    purgedAt: null,
  },
  events: [
    ev('session.start', 0, {}),
    ev('query', 1, { q: 1, text: 'select id, email\nfrom customers', protocol: 'simple' }),
    ev('decision', 1, { q: 1, verdict: 'allow', rule: 'read-only' }),
    ev('result', 1.5, { q: 1, status: 'ok', commands: ['SELECT 3'], rows: 3, durationMs: 0.4, columns: [{ name: 'id', type: 23 }, { name: 'email' }], sample: [['1', 'a***@example.com'], ['2', null]], truncated: true, masked: ['email'] }),
    ev('query', 61.5, { q: 2, text: 'delete from orders', protocol: 'extended', params: ['7', null] }),
    ev('decision', 61.5, { q: 2, verdict: 'block', rule: 'no-deletes', reason: 'deletes need a review' }),
    ev('result', 61.5, { q: 2, status: 'error', sqlstate: '42501', message: 'blocked by policy rule no-deletes', durationMs: 0 }),
    ev('query', 62, { q: 3, text: 'insert into t values (1)', protocol: 'simple' }),
    ev('result', 62.25, { q: 3, status: 'ok', commands: ['INSERT 0 1'], rows: 1, durationMs: 250 }),
    ev('session.end', 100, { status: 'ok', bytesFromClient: 100, bytesToClient: 2048, queries: 3 }),
  ],
};

describe('sessions replay', () => {
  it('prints statements and recorded results in order, waiting real time ÷ speed with idle gaps capped', async () => {
    const io = fakeIo();
    const waits: number[] = [];
    await replay(io, detail, 2, new AbortController().signal, async (ms) => void waits.push(ms));
    expect(io.out()).toBe(
      [
        'app=> select id, email',
        'app-> from customers',
        ' id |      email       ',
        '----+------------------',
        '  1 | a***@example.com',
        '  2 | ',
        '(3 rows)',
        '',
        '(the audit kept the first 2 of 3 rows)',
        '',
        '(masked: email)',
        '',
        'app=> delete from orders',
        '-- parameters: "7", NULL',
        '-- block: deletes need a review',
        'ERROR:  blocked by policy rule no-deletes',
        'app=> insert into t values (1)',
        'INSERT 0 1',
        '',
      ].join('\n'),
    );
    expect(waits).toEqual([500, 250, MAX_IDLE_MS, 250, 125, MAX_IDLE_MS]);
    expect(io.err()).toContain('replaying session s_replay: alice@example.com on pg-prod from 2026-11-05 10:00:00Z at 2×');
    expect(io.err()).toContain('session ended 2026-11-05 10:01:40Z: ok');
  });

  it('--speed 0 never waits', async () => {
    const io = fakeIo();
    const waits: number[] = [];
    await replay(io, detail, 0, new AbortController().signal, async (ms) => void waits.push(ms));
    expect(waits).toEqual([]);
  });

  it('show prints the timeline', () => {
    const text = timeline(detail);
    expect(text).toContain('session s_replay · pg-prod (postgres, database app)');
    expect(text).toContain('who     alice@example.com (user; groups: eng)');
    expect(text).toContain('when    2026-11-05 10:00:00Z → 2026-11-05 10:01:40Z (1m 40s)');
    expect(text).toContain('trail   10 events, sealed in ledger #7');
    expect(text).toContain('10:00:01.000  #1  select id, email from customers\n              allow (rule read-only) → SELECT 3 · 3 rows · 0.40 ms\n              masked: email');
    expect(text).toContain('#2  delete from orders\n              block (rule no-deletes) → error 42501: blocked by policy rule no-deletes · 0.00 ms');
    expect(text).toContain('#3  insert into t values (1)\n              recorded → INSERT 0 1 · 1 row · 250.0 ms');
  });

  it('--since takes a duration back from now or a time', () => {
    const now = Date.parse('2026-11-05T12:00:00.000Z');
    expect(parseSince('2h', now)).toBe('2026-11-05T10:00:00.000Z');
    expect(parseSince('7d', now)).toBe('2026-10-29T12:00:00.000Z');
    expect(parseSince('2026-11-01T00:00:00Z', now)).toBe('2026-11-01T00:00:00.000Z');
    expect(() => parseSince('yesterday', now)).toThrow(/invalid --since "yesterday"/);
  });
});
