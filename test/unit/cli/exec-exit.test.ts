// `sluice exec` exit codes (docs/cli.md), review waiting and its progress lines, Ctrl-C and
// --timeout: each through runExec with a scripted gateway and a clock the test moves.
import { describe, expect, it } from 'vitest';
import type { ExecEvent } from '../../../src/api/contract.js';
import { AuthError, CliError } from '../../../src/errors.js';
import { REVIEW_SILENCE_MS, TIMEOUT_GRACE_MS } from '../../../src/commands/exec.js';
import { FakeClock, fakeExec, run, settle, until } from './execFakes.js';

const ended = (status: Extract<ExecEvent, { type: 'end' }>['status'], ...before: ExecEvent[]): ExecEvent[] => [...before, { type: 'end', status, statements: 1 }];

describe('sluice exec exit codes', () => {
  it('0 when every statement ran', async () => {
    const r = await run({}, { client: fakeExec(ended('ok', { type: 'complete', statement: 0, command: 'SELECT 1', rows: 1 })) });
    expect(r).toMatchObject({ code: 0, stderr: '' });
  });

  it('1 for a SQL error, with SQLSTATE and message on stderr and where it stopped', async () => {
    const r = await run(
      { input: 'insert into t values (1); select * from x; select 2' },
      {
        client: fakeExec([
          { type: 'complete', statement: 0, command: 'INSERT 0 1', rows: 1 },
          { type: 'error', statement: 1, sqlstate: '42P01', message: 'relation "x" does not exist' },
          { type: 'end', status: 'error', statements: 3 },
        ]),
      },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('sluice: stopped at statement 2: the statements before it ran, the ones after it did not\nsluice: ERROR 42P01: relation "x" does not exist\n');
    expect(r.stdout).toBe('');
  });

  it('3 when a policy rule blocks the input, naming the rule', async () => {
    const r = await run({ input: 'drop table customers' }, { client: fakeExec(ended('blocked', { type: 'error', statement: 0, sqlstate: '42501', message: 'DDL is not allowed on production', rule: 'no-ddl' })) });
    expect(r.code).toBe(3);
    expect(r.stderr).toBe('sluice: blocked by policy rule no-ddl: DDL is not allowed on production\n');
  });

  it('4 when the gateway denies the exec or refuses the token', async () => {
    const denied = await run({}, { client: fakeExec(ended('denied', { type: 'error', message: 'you may not use pg-prod' })) });
    expect(denied).toMatchObject({ code: 4, stderr: 'sluice: you may not use pg-prod\n' });
    const refused = await run({ json: true }, { client: fakeExec([], new AuthError('SLUICE_TOKEN was refused: token_revoked')) });
    expect(refused.code).toBe(4);
    expect(JSON.parse(refused.stdout)).toEqual({ status: 'denied', statements: [], error: { message: 'SLUICE_TOKEN was refused: token_revoked' } });
  });

  it('5 when the review is rejected or expires', async () => {
    const rejected = await run({}, {
      client: fakeExec(ended('review_rejected', { type: 'review', id: 'R-8F3K', status: 'rejected', by: 'alice@example.com', reason: 'use a ticket' })),
    });
    expect(rejected).toMatchObject({ code: 5, stderr: expect.stringContaining('sluice: review R-8F3K was rejected by alice@example.com: use a ticket; not executed') });
    const expired = await run({}, { client: fakeExec(ended('review_expired', { type: 'review', id: 'R-8F3K', status: 'expired' })) });
    expect(expired).toMatchObject({ code: 5, stderr: expect.stringContaining('sluice: review R-8F3K expired without a decision: not executed') });
  });

  it('75 with --no-wait, printing the id and the command to run once approved', async () => {
    const client = fakeExec(ended('review_pending', { type: 'review', id: 'R-8F3K', status: 'pending', rule: 'payments-review', approvers: ['dba'] }));
    const piped = await run({ wait: false, input: "update payments set note = 'x' where id = 1" }, { client });
    expect(piped.code).toBe(75);
    expect(client.calls.at(-1)?.request.wait).toBe(false);
    expect(piped.stderr).toBe(
      "sluice: review R-8F3K is pending (rule payments-review, approvers dba); once it is approved, run: sluice exec pg-prod --review R-8F3K -i 'update payments set note = '\\''x'\\'' where id = 1'\n",
    );
    const json = await run({ wait: false, json: true }, { client });
    expect(JSON.parse(json.stdout)).toMatchObject({ status: 'review_pending', review: { id: 'R-8F3K', status: 'pending' } });
  });

  it('1 for a gateway-side timeout, saying which flag', async () => {
    const r = await run({ timeout: '30s' }, { client: fakeExec(ended('timeout', { type: 'error', statement: 0, sqlstate: '57014', message: 'canceling statement due to user request' })) });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('sluice: cancelled after 30s (--timeout): canceling statement due to user request\n');
    expect(r.calls[0]?.request.timeoutMs).toBe(30_000);
  });

  it('1 when the stream ends without its end event', async () => {
    const r = await run({}, { client: fakeExec([{ type: 'session', id: 's_1' }]) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/broke off/);
  });

  it('1 for other errors of the gateway client', async () => {
    const r = await run({}, { client: fakeExec([], new CliError('cannot reach the gateway at https://gw: ECONNREFUSED')) });
    expect(r).toMatchObject({ code: 1, stderr: 'sluice: cannot reach the gateway at https://gw: ECONNREFUSED\n' });
  });

  it('2 for a bad --timeout, --format or --review, before anything is sent', async () => {
    for (const opts of [{ timeout: 'soon' }, { timeout: '0s' }, { timeout: '8d' }, { format: 'xml' }, { review: 'R 1; drop' }]) {
      const client = fakeExec(ended('ok'));
      const r = await run(opts, { client });
      expect(r.code, JSON.stringify(opts)).toBe(2);
      expect(client.calls).toHaveLength(0);
    }
    expect((await run({ timeout: 'soon' }, { client: fakeExec(ended('ok')) })).stderr).toMatch(/--timeout "soon" is not a duration: e\.g\. 500ms/);
  });
});

describe('sluice exec waiting for a review', () => {
  /** A gateway that holds the input for review until `approve()`; aborting the request drops it. */
  function heldClient() {
    let approve!: () => void;
    const decided = new Promise<void>((r) => (approve = r));
    let aborted = false;
    const client = fakeExec(async function* (_req, signal) {
      signal.addEventListener('abort', () => (aborted = true));
      yield { type: 'session', id: 's_9' };
      yield { type: 'review', id: 'R-7Q2M', status: 'pending', rule: 'payments-review', approvers: ['dba'] };
      await until(decided, signal);
      yield { type: 'review', id: 'R-7Q2M', status: 'approved', by: 'alice@example.com' };
      yield { type: 'complete', statement: 0, command: 'UPDATE 1', rows: 1 };
      yield { type: 'end', status: 'ok', statements: 1 };
    });
    return { client, approve, wasAborted: () => aborted };
  }

  it('without a terminal: one line at the start, one every 30 s, then runs once approved', async () => {
    const clock = new FakeClock();
    const held = heldClient();
    const done = run({ review: 'R-7Q2M', format: 'table' }, { client: held.client, clock });
    await settle();
    await clock.advance(29_000);
    await clock.advance(1_000);
    await clock.advance(30_000);
    held.approve();
    const r = await done;
    expect(r.code).toBe(0);
    expect(held.client.calls[0]?.request.review).toBe('R-7Q2M');
    expect(r.stderr).toBe(
      [
        'sluice: waiting for review R-7Q2M (rule payments-review, approvers dba); Ctrl-C gives up and cancels it',
        'sluice: still waiting for review R-7Q2M (30s)',
        'sluice: still waiting for review R-7Q2M (1m 0s)',
        'sluice: review R-7Q2M approved by alice@example.com; running',
        '',
      ].join('\n'),
    );
    expect(r.stdout).toBe('UPDATE 1\n');
  });

  it('Ctrl-C while waiting drops the request (the gateway cancels the review) and exits 130', async () => {
    const held = heldClient();
    const interrupt = new AbortController();
    const done = run({}, { client: held.client, signal: interrupt.signal });
    await settle();
    interrupt.abort();
    const r = await done;
    expect(r.code).toBe(130);
    expect(held.wasAborted()).toBe(true);
    expect(r.stderr).toMatch(/sluice: interrupted; review R-7Q2M is cancelled with it\n$/);
  });

  it('on a terminal: a spinner instead of plain lines', async () => {
    const held = heldClient();
    const done = run({}, { client: held.client, stderrTTY: true });
    await settle();
    held.approve();
    const r = await done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('sluice: waiting for review');
    expect(r.stderr).toContain('waiting for review R-7Q2M');
  });
});

describe('sluice exec --timeout when the gateway goes silent', () => {
  it('gives up on its own once the timeout and a grace period pass with no event', async () => {
    const clock = new FakeClock();
    let aborted = false;
    const client = fakeExec(async function* (_req, signal) {
      signal.addEventListener('abort', () => (aborted = true));
      yield { type: 'session', id: 's_3' };
      await until(new Promise<never>(() => {}), signal);
    });
    const done = run({ timeout: '1s' }, { client, clock });
    await settle();
    await clock.advance(1_000 + TIMEOUT_GRACE_MS - 1);
    expect(aborted).toBe(false);
    await clock.advance(1);
    const r = await done;
    expect(aborted).toBe(true);
    expect(r).toMatchObject({ code: 1, stderr: 'sluice: cancelled after 1s (--timeout): the gateway did not end the exec in time\n' });
  });

  it('allows the longer silence between keep-alives while a review is pending', async () => {
    const clock = new FakeClock();
    let aborted = false;
    const client = fakeExec(async function* (_req, signal) {
      signal.addEventListener('abort', () => (aborted = true));
      yield { type: 'review', id: 'R-7Q2M', status: 'pending' };
      await until(new Promise<never>(() => {}), signal);
    });
    const done = run({ timeout: '1s' }, { client, clock });
    await settle();
    await clock.advance(REVIEW_SILENCE_MS - 1);
    expect(aborted).toBe(false);
    await clock.advance(1);
    expect((await done).code).toBe(1);
    expect(aborted).toBe(true);
  });
});
