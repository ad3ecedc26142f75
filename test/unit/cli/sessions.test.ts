// sluice sessions ls/show/replay with a fake gateway.
import { describe, expect, it } from 'vitest';
import { AuthError } from '../../../src/errors.js';
import { detail, fakeFactory, run, session } from './fakes.js';

describe('sluice sessions', () => {
  it('ls is the default: a table on stdout', async () => {
    const f = fakeFactory({ gateway: { audit: { sessions: async () => ({ sessions: [session({ blocked: 1, reviewed: 2 }), session({ id: 'S-2', status: 'open', endedAt: null, email: null })] }) } } });
    expect(await run(f, 'sessions')).toBe(0);
    expect(f.out().split('\n')).toEqual([
      'ID   STARTED               USER               CONNECTION  STATUS  QUERIES  BLOCKED  REVIEWED  DURATION',
      'S-1  2026-11-05 11:00:00Z  alice@example.com  pg-prod     ok      3        1        2         2m 5s',
      'S-2  2026-11-05 11:00:00Z  alice              pg-prod     open    -        -        -         open',
      '',
    ]);
    expect(f.err()).toBe('');
  });

  it('passes the filters, --since relative to the clock, and prints --json', async () => {
    const f = fakeFactory({ gateway: { audit: { sessions: async () => ({ sessions: [session()] }) } } });
    expect(await run(f, 'sessions', 'ls', '--connection', 'pg-prod', '--user', 'alice', '--since', '1h30m', '--limit', '5', '--json')).toBe(0);
    expect(f.calls).toEqual(['audit.sessions({"connection":"pg-prod","user":"alice","since":"2026-11-05T10:30:00.000Z","limit":5})']);
    expect(JSON.parse(f.out())).toEqual([session()]);
  });

  it('a bad --since is a usage error (exit 2) naming the flag, before the gateway is asked', async () => {
    const f = fakeFactory();
    expect(await run(f, 'sessions', '--since', 'yesterday')).toBe(2);
    expect(f.err()).toBe('sluice: invalid --since "yesterday": expected a duration such as 2h or 7d, or a time such as 2026-11-05T09:00:00Z\n');
    expect(f.calls).toEqual([]);
  });

  it('none match: a notice on stderr', async () => {
    const f = fakeFactory({ gateway: { audit: { sessions: async () => ({ sessions: [] }) } } });
    expect(await run(f, 'sessions')).toBe(0);
    expect(f.out()).toBe('');
    expect(f.err()).toBe('no recorded sessions match\n');
  });

  it('show prints the timeline, or the detail with --json', async () => {
    const f = fakeFactory({ gateway: { audit: { session: async () => detail() } } });
    expect(await run(f, 'sessions', 'show', 'S-1')).toBe(0);
    expect(f.out()).toContain('S-1');
    const j = fakeFactory({ gateway: { audit: { session: async () => detail() } } });
    expect(await run(j, 'sessions', 'show', 'S-1', '--json')).toBe(0);
    expect(JSON.parse(j.out())).toEqual(detail());
    expect(j.calls).toEqual(['audit.session("S-1")']);
  });

  it('show lists another protocol\'s actions (an HTTP request) with verdict, rule and status code', async () => {
    const events = [
      { seq: 1, kind: 'action', at: '2026-11-05T11:00:01Z', data: { q: 1, kind: 'http', text: 'DELETE /admin/users/1' }, hash: 'h1' },
      { seq: 2, kind: 'decision', at: '2026-11-05T11:00:01Z', data: { q: 1, verdict: 'block', rule: 'read-only' }, hash: 'h2' },
      { seq: 3, kind: 'result', at: '2026-11-05T11:00:01Z', data: { q: 1, status: 'error', code: '403', durationMs: 2 }, hash: 'h3' },
      { seq: 4, kind: 'action', at: '2026-11-05T11:00:02Z', data: { q: 2, kind: 'http', text: 'GET /v1/customers' }, hash: 'h4' },
      { seq: 5, kind: 'result', at: '2026-11-05T11:00:02Z', data: { q: 2, status: 'ok', code: '200', durationMs: 5 }, hash: 'h5' },
    ];
    const f = fakeFactory({ gateway: { audit: { session: async () => ({ ...detail(), events }) } } });
    expect(await run(f, 'sessions', 'show', 'S-1')).toBe(0);
    expect(f.out()).toContain('#1  DELETE /admin/users/1');
    expect(f.out()).toContain('block (rule read-only) → error 403');
    expect(f.out()).toContain('#2  GET /v1/customers');
    expect(f.out()).toContain('recorded → ok 200');
  });

  it('show of a session that is not yours: exit 4', async () => {
    const f = fakeFactory({ gateway: { audit: { session: () => Promise.reject(new AuthError('only audit readers may see others\u2019 sessions', 403)) } } });
    expect(await run(f, 'sessions', 'show', 'S-9')).toBe(4);
  });

  it('replay writes the session to stdout and notices to stderr', async () => {
    const f = fakeFactory({ gateway: { audit: { session: async () => detail() } } });
    expect(await run(f, 'sessions', 'replay', 'S-1', '--speed', '0')).toBe(0);
    expect(f.err()).toContain('replaying session S-1');
    expect(f.err()).toContain('the session is still open');
  });

  it('replay with a negative --speed is a usage error', async () => {
    const f = fakeFactory();
    expect(await run(f, 'sessions', 'replay', 'S-1', '--speed', '-1')).toBe(2);
    expect(f.err()).toBe('sluice: --speed must be a number ≥ 0 (0: no waiting)\n');
  });

  it('Ctrl-C during a replay exits 130', async () => {
    const events = [
      { seq: 1, kind: 'query', at: '2026-11-05T11:00:01Z', data: { q: 1, text: 'select 1' }, hash: 'h1' },
      { seq: 2, kind: 'result', at: '2026-11-05T11:00:02Z', data: { q: 1, status: 'ok', commands: ['SELECT 1'] }, hash: 'h2' },
    ];
    const f = fakeFactory({ gateway: { audit: { session: async () => ({ ...detail(), events }) } } });
    f.interrupt.abort();
    expect(await run(f, 'sessions', 'replay', 'S-1')).toBe(130);
    expect(f.err()).toContain('sluice: replay stopped');
  });
});
