// The gateway's exec endpoint (`POST /v1/connections/NAME/exec`) end to end: the real gateway
// binary in front of the throwaway PostgreSQL, configured with the recommended policy, called over
// HTTPS with service tokens. Each effect is checked on the target itself, and the audit trail
// through the sessions API.
import { readFileSync } from 'node:fs';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXEC_CONTENT_TYPE, execEvent, type ExecEvent, type SessionDetail, type SessionList } from '../../src/api/contract.js';
import type { PolicyInput } from '../../gateway/policy/index.js';
import { RECOMMENDED_POLICY, SECRET_CARDS, SECRET_EMAILS, startArena, type Arena } from '../support/arena.js';
import { execFileSync } from 'node:child_process';
import { GATEWAY_BIN, serviceToken } from '../support/binaries.js';
import { waitFor } from '../support/pgEngineHarness.js';

const cluster = inject('pgCluster');

/** The recommended policy, with reviews that outlast a slow test machine. */
const POLICY: PolicyInput = {
  rules: (RECOMMENDED_POLICY.rules ?? []).map((r) => (r.id === 'payments-review' && r.review ? { ...r, review: { ...r.review, timeout: '5m' } } : r)),
};

let arena: Arena;
let dispatcher: Agent;
let ci: string;
let dba: string;

beforeAll(async () => {
  arena = await startArena(cluster, {
    prefix: 'exec_gw',
    policy: POLICY,
    // A view the pre-check cannot see through: only the engine, with the catalog, holds its writes.
    schema: 'create view payments_view as select * from payments;',
    gateway: { limits: { revocationCheckMs: 200, sessionsPerIdentity: 2 } },
  });
  ci = serviceToken(arena.gw, 'ci', 'eng');
  dba = serviceToken(arena.gw, 'oncall', 'dba');
  dispatcher = new Agent({ connect: arena.gw.caFile ? { ca: readFileSync(arena.gw.caFile) } : {} });
});

afterAll(async () => {
  await dispatcher?.close();
  await arena?.stop();
});

interface ExecReply {
  readonly status: number;
  readonly events: ExecEvent[];
  readonly error?: { code: string; message: string };
}

/** Calls exec; `onEvent` sees each event as it arrives (to act while the exec waits). */
async function exec(body: Record<string, unknown>, opts: { token?: string; signal?: AbortSignal; onEvent?: (e: ExecEvent) => void | Promise<void> } = {}): Promise<ExecReply> {
  const res = await fetch(`${arena.gw.url}/v1/connections/pg-prod/exec`, {
    method: 'POST',
    headers: { authorization: `Bearer ${opts.token ?? ci}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    dispatcher,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (res.headers.get('content-type') !== EXEC_CONTENT_TYPE) {
    const json = (await res.json()) as { error: { code: string; message: string } };
    return { status: res.status, events: [], error: json.error };
  }
  const events: ExecEvent[] = [];
  let carry = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    const lines = (carry + decoder.decode(chunk, { stream: true })).split('\n');
    carry = lines.pop() ?? '';
    for (const line of lines) {
      const e = execEvent.parse(JSON.parse(line));
      events.push(e);
      await opts.onEvent?.(e);
    }
  }
  expect(carry).toBe('');
  return { status: res.status, events };
}

const endOf = (r: ExecReply) => r.events.at(-1) as Extract<ExecEvent, { type: 'end' }>;
const ofType = <T extends ExecEvent['type']>(r: ExecReply, type: T) => r.events.filter((e): e is Extract<ExecEvent, { type: T }> => e.type === type);
const one = async (sql: string): Promise<unknown> => Object.values((await arena.admin.query(sql)).rows[0] ?? {})[0];

async function decide(id: string, verb: 'approve' | 'reject', reason?: string): Promise<number> {
  const res = await fetch(`${arena.gw.url}/v1/reviews/${id}/${verb}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${dba}`, 'content-type': 'application/json' },
    body: JSON.stringify(reason ? { reason } : {}),
    dispatcher,
  });
  await res.text();
  return res.status;
}

async function api<T>(path: string): Promise<T> {
  const res = await fetch(`${arena.gw.url}${path}`, { headers: { authorization: `Bearer ${ci}` }, dispatcher });
  expect(res.status).toBe(200);
  return (await res.json()) as T;
}

/** The exec's session as the audit trail holds it, once it has ended. */
async function endedSession(r: ExecReply): Promise<SessionDetail> {
  const id = (r.events[0] as { id: string }).id;
  await waitFor('the session to end', async () => (await api<SessionList>('/v1/sessions?limit=50')).sessions.some((s) => s.id === id && s.status !== 'open'));
  return api<SessionDetail>(`/v1/sessions/${id}`);
}

const sleeping = (tag: string) => one(`select count(*)::int from pg_stat_activity where state = 'active' and query like 'select pg_sleep(30) /* ${tag} */%'`);

describe('exec', () => {
  it('streams a select: session, columns with types, rows, complete, end ok', async () => {
    const r = await exec({ input: 'select id, name, 1.5::numeric as n from customers order by id' });
    expect(r.status).toBe(200);
    expect(r.events[0]).toMatchObject({ type: 'session', id: expect.stringMatching(/^s_/) });
    expect(ofType(r, 'columns')[0]?.columns).toEqual([
      { name: 'id', typeOid: 23, type: 'int4' },
      { name: 'name', typeOid: 25, type: 'text' },
      { name: 'n', typeOid: 1700, type: 'numeric' },
    ]);
    expect(ofType(r, 'rows').flatMap((e) => e.rows)).toEqual([
      ['1', 'Ada', '1.5'],
      ['2', 'Grace', '1.5'],
      ['3', 'Edsger', '1.5'],
    ]);
    expect(ofType(r, 'complete')).toEqual([{ type: 'complete', statement: 0, command: 'SELECT 3', rows: 3 }]);
    expect(endOf(r)).toEqual({ type: 'end', status: 'ok', statements: 1, session: (r.events[0] as { id: string }).id });
  });

  it('sends large results in batches', async () => {
    const r = await exec({ input: 'select g, repeat(\'x\', 100) from generate_series(1, 20000) g' });
    const batches = ofType(r, 'rows');
    expect(batches.length).toBeGreaterThan(10);
    expect(batches.reduce((n, b) => n + b.rows.length, 0)).toBe(20000);
    expect(endOf(r).status).toBe('ok');
  });

  it('streams a million rows with bounded gateway memory, holding the target while the client does not read', async () => {
    const pid = arena.gw.child.pid as number;
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
    const res = await fetch(`${arena.gw.url}/v1/connections/pg-prod/exec`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ci}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: "select g, md5(g::text) from generate_series(1, 1000000) g /* million */" }),
      dispatcher,
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let bytes = (await reader.read()).value?.length ?? 0;
    const before = rss();
    // The client reads nothing for a while: the gateway must stop reading too, not buffer the result.
    await new Promise((r) => setTimeout(r, 2000));
    const settled = rss();
    await new Promise((r) => setTimeout(r, 2000));
    // Memory levels off once the buffers between target and client are full (it would climb by
    // tens of MB a second if the gateway kept reading), and the target is still running the query.
    const paused = rss() - settled;
    expect(await one("select count(*)::int from pg_stat_activity where state = 'active' and pid <> pg_backend_pid() and query like '%/* million */%'")).toBe(1);
    let peak = 0;
    let tail = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      bytes += r.value.length;
      tail = (tail + Buffer.from(r.value).toString('utf8')).slice(-300);
      peak = Math.max(peak, rss());
    }
    expect(JSON.parse(tail.trim().split('\n').at(-1) as string)).toMatchObject({ type: 'end', status: 'ok', statements: 1 });
    expect(bytes).toBeGreaterThan(40_000_000);
    expect(paused).toBeLessThan(10);
    expect(peak - before).toBeLessThan(150);
  }, 120_000);

  it('runs a script in order and stops at the first error; earlier statements stay', async () => {
    const r = await exec({ input: 'insert into orders values (100, 1, 5);\nselect 1 / 0;\ninsert into orders values (101, 1, 6);' });
    expect(ofType(r, 'complete').map((c) => c.command)).toEqual(['INSERT 0 1']);
    expect(ofType(r, 'error')).toEqual([{ type: 'error', statement: 1, sqlstate: '22012', message: 'division by zero' }]);
    expect(endOf(r)).toMatchObject({ status: 'error', statements: 1 });
    expect(await one('select count(*)::int from orders where id = 100')).toBe(1);
    expect(await one('select count(*)::int from orders where id = 101')).toBe(0);
  });

  it('refuses the whole input when policy blocks a statement of it, running none', async () => {
    const r = await exec({ input: 'insert into orders values (102, 1, 1); drop table payments' });
    expect(ofType(r, 'error')).toEqual([{ type: 'error', statement: 1, sqlstate: '42501', rule: 'no-ddl', message: 'blocked by rule no-ddl: DDL is not allowed on production' }]);
    expect(endOf(r)).toMatchObject({ status: 'blocked', statements: 0 });
    expect(await one("select to_regclass('payments')::text")).toBe('payments');
    expect(await one('select count(*)::int from orders where id = 102')).toBe(0);
  });

  it('reports a block the engine makes while running as blocked', async () => {
    // A statement the parser cannot read is sent whole; the engine refuses it under block rules.
    const r = await exec({ input: 'select 1; selec 2' });
    expect(endOf(r).status).toBe('blocked');
    expect(ofType(r, 'error')[0]).toMatchObject({ statement: 0, sqlstate: '42601', rule: 'sluice:unparseable' });
  });

  it('streams COPY TO STDOUT as one text column and refuses COPY FROM STDIN', async () => {
    const out = await exec({ input: 'copy (select id, amount from orders where id <= 2 order by id) to stdout' });
    expect(ofType(out, 'columns')[0]?.columns).toEqual([{ name: 'copy', typeOid: 25, type: 'text' }]);
    expect(ofType(out, 'rows').flatMap((e) => e.rows)).toEqual([['1\t10'], ['2\t20']]);
    expect(ofType(out, 'complete')[0]?.command).toBe('COPY 2');
    const into = await exec({ input: 'copy orders from stdin' });
    expect(ofType(into, 'error')[0]).toMatchObject({ statement: 0, sqlstate: '57014', message: expect.stringContaining('exec has no input for COPY FROM STDIN; use -f with INSERT or a tunnel') });
    expect(endOf(into).status).toBe('error');
  });

  it('masks values as a tunnel does', async () => {
    const r = await exec({ input: 'select email, card_number from customers order by id' });
    const text = JSON.stringify(ofType(r, 'rows'));
    for (const secret of [...SECRET_EMAILS, ...SECRET_CARDS]) expect(text).not.toContain(secret);
    expect(endOf(r).status).toBe('ok');
  });

  it('refuses a bad body with the field and what is wrong, before streaming', async () => {
    const r = await exec({ input: 1 });
    expect(r.status).toBe(400);
    expect(r.error?.message).toMatch(/^invalid exec request: input: /);
    const bad = await exec({ input: 'select 1', extra: true });
    expect(bad.status).toBe(400);
  });

  it('with wait false leaves a pending review; once approved, review ID runs it exactly once', async () => {
    const input = 'update payments set amount = 999 where id = 1';
    const held = await exec({ input, wait: false });
    const review = ofType(held, 'review')[0];
    expect(review).toMatchObject({ status: 'pending', rule: 'payments-review', approvers: ['dba'], id: expect.stringMatching(/^R-/) });
    expect(endOf(held)).toMatchObject({ status: 'review_pending', statements: 0 });
    expect(await one('select amount::int from payments where id = 1')).toBe(100);
    const id = review?.id as string;

    const early = await exec({ input, review: id });
    expect(endOf(early).status).toBe('review_pending');
    expect(await decide(id, 'approve')).toBe(200);

    const changed = await exec({ input: `${input} `, review: id });
    expect([changed.status, changed.error?.message]).toEqual([409, `the input differs from what review ${id} approved; run it without --review to ask for a new review`]);

    const ran = await exec({ input, review: id });
    expect(ofType(ran, 'complete').map((c) => c.command)).toEqual(['UPDATE 1']);
    expect(endOf(ran).status).toBe('ok');
    expect(await one('select amount::int from payments where id = 1')).toBe(999);

    const again = await exec({ input, review: id });
    expect([again.status, again.error?.code]).toEqual([409, 'conflict']);
    expect(again.error?.message).toContain(`review ${id} has already run`);

    const other = await exec({ input, review: id }, { token: dba });
    expect(other.status).toBe(403);
  });

  it('a rejected review ends review_rejected', async () => {
    const input = 'update payments set amount = 1 where id = 2';
    const held = await exec({ input, wait: false });
    const id = ofType(held, 'review')[0]?.id as string;
    expect(await decide(id, 'reject', 'not during the freeze')).toBe(200);
    const r = await exec({ input, review: id });
    expect(ofType(r, 'review')[0]).toMatchObject({ id, status: 'rejected', reason: 'not during the freeze' });
    expect(endOf(r).status).toBe('review_rejected');
    expect(await one('select amount::int from payments where id = 2')).toBe(200);
  });

  it('waits for a review by default and runs once it is approved', async () => {
    const input = "update payments set note = 'approved' where id = 2";
    const r = await exec({ input }, {
      onEvent: async (e) => {
        if (e.type === 'review' && e.status === 'pending') expect(await decide(e.id, 'approve')).toBe(200);
      },
    });
    expect(ofType(r, 'review').map((e) => e.status)).toEqual(['pending', 'approved']);
    expect(endOf(r)).toMatchObject({ status: 'ok', statements: 1 });
    expect(await one('select note from payments where id = 2')).toBe('approved');
    const id = ofType(r, 'review')[0]?.id as string;
    expect((await exec({ input, review: id })).status).toBe(409);
  });

  it('a hold only the engine foresees: without wait it is cancelled and the exec ends review_pending', async () => {
    const r = await exec({ input: "insert into orders values (103, 1, 1); insert into payments_view values (30, 30, 'via view')", wait: false });
    expect(ofType(r, 'complete').map((c) => c.command)).toEqual(['INSERT 0 1']);
    expect(ofType(r, 'error')[0]).toMatchObject({ statement: 1, message: expect.stringMatching(/^statement 2 needed a review \(rule payments-review\) that only became known while it ran/) });
    expect(endOf(r)).toMatchObject({ status: 'review_pending', statements: 1 });
    expect(await one('select count(*)::int from orders where id = 103')).toBe(1);
    expect(await one('select count(*)::int from payments where id = 30')).toBe(0);
  });

  it('a hold only the engine foresees: with wait it is reviewed like a tunnel client', async () => {
    const r = await exec({ input: "insert into payments_view values (31, 31, 'via view')" }, {
      onEvent: async (e) => {
        if (e.type === 'review' && e.status === 'pending') expect(await decide(e.id, 'approve')).toBe(200);
      },
    });
    expect(ofType(r, 'review').map((e) => e.status)).toEqual(['pending', 'approved']);
    expect(endOf(r)).toMatchObject({ status: 'ok', statements: 1 });
    expect(await one('select count(*)::int from payments where id = 31')).toBe(1);
  });

  it('timeoutMs cancels the statement on the target', async () => {
    const r = await exec({ input: 'select pg_sleep(30) /* timeout */', timeoutMs: 1000 });
    expect(ofType(r, 'error')[0]).toMatchObject({ statement: 0, sqlstate: '57014' });
    expect(endOf(r).status).toBe('timeout');
    await waitFor('the sleep to stop on the target', async () => (await sleeping('timeout')) === 0);
    // The cancel is on record in the exec's own session, naming the statement it stopped and why.
    const detail = await endedSession(r);
    const query = detail.events.find((e) => e.kind === 'query' && e.data.text === 'select pg_sleep(30) /* timeout */');
    expect(detail.events.filter((e) => e.kind === 'postgres.cancel').map((e) => e.data)).toEqual([{ q: query?.data.q, statement: 1, reason: 'timeout', timeoutMs: 1000 }]);
    const cancelAt = detail.events.findIndex((e) => e.kind === 'postgres.cancel');
    const resultAt = detail.events.findIndex((e) => e.kind === 'result' && e.data.q === query?.data.q);
    expect(cancelAt).toBeLessThan(resultAt);
    expect(detail.events[resultAt]?.data).toMatchObject({ status: 'error', sqlstate: '57014' });
  });

  it('a client that goes away cancels the running statement', async () => {
    const abort = new AbortController();
    let id = '';
    const pending = exec({ input: 'select pg_sleep(30) /* abort */' }, { signal: abort.signal, onEvent: (e) => void (e.type === 'session' && (id = e.id)) }).catch((err: unknown) => err);
    await waitFor('the sleep to run on the target', async () => (await sleeping('abort')) === 1);
    abort.abort();
    await pending;
    await waitFor('the sleep to stop on the target', async () => (await sleeping('abort')) === 0);
    const detail = await endedSession({ status: 200, events: [{ type: 'session', id }] });
    expect(detail.events.filter((e) => e.kind === 'postgres.cancel').map((e) => e.data)).toEqual([expect.objectContaining({ statement: 1, reason: 'client_gone' })]);
  });

  it('a revoked service token ends the exec as denied and stops its statement', async () => {
    const doomed = serviceToken(arena.gw, 'doomed', 'eng');
    const pending = exec({ input: 'select pg_sleep(30) /* revoked */' }, { token: doomed });
    await waitFor('the sleep to run on the target', async () => (await sleeping('revoked')) === 1);
    execFileSync(process.execPath, [GATEWAY_BIN, 'token', 'revoke', 'doomed', '--config', arena.gw.configFile], { stdio: 'ignore' });
    const r = await pending;
    expect(ofType(r, 'error')[0]).toMatchObject({ sqlstate: '28000', message: expect.stringMatching(/service token "doomed" was revoked/) });
    expect(endOf(r).status).toBe('denied');
    await waitFor('the sleep to stop on the target', async () => (await sleeping('revoked')) === 0);
  });

  it('counts execs against the per-identity session limit, like tunnels', async () => {
    const busy = serviceToken(arena.gw, 'busy', 'eng');
    const abort = new AbortController();
    const running = [1, 2].map((n) => exec({ input: `select pg_sleep(30) /* busy${n} */` }, { token: busy, signal: abort.signal }).catch(() => undefined));
    await waitFor('both to run on the target', async () => (await sleeping('busy1')) === 1 && (await sleeping('busy2')) === 1);
    const third = await exec({ input: 'select 1' }, { token: busy });
    expect([third.status, third.error?.code]).toEqual([429, 'too_many_sessions']);
    expect(third.error?.message).toMatch(/busy already has 2 open sessions/);
    abort.abort();
    await Promise.all(running);
    await waitFor('the sleeps to stop', async () => (await sleeping('busy1')) === 0 && (await sleeping('busy2')) === 0);
  });

  it('records a refused input as the engine records a refused query', async () => {
    const r = await exec({ input: 'drop table payments' });
    const id = (r.events[0] as { id: string }).id;
    await waitFor('the session to end', async () => (await api<SessionList>('/v1/sessions?limit=50')).sessions.some((s) => s.id === id && s.status !== 'open'));
    const detail = await api<SessionDetail>(`/v1/sessions/${id}`);
    expect(detail.session).toMatchObject({ origin: 'exec', status: 'error' });
    const kinds = detail.events.map((e) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(['query', 'decision']));
    expect(detail.events.find((e) => e.kind === 'decision')?.data).toMatchObject({ verdict: 'block', rule: 'no-ddl' });
  });

  it('records an exec session with its statements in the audit trail', async () => {
    const r = await exec({ input: 'select 41 + 1; select 2' });
    const id = (r.events[0] as { id: string }).id;
    await waitFor('the session to be listed', async () => (await api<SessionList>('/v1/sessions?limit=50')).sessions.some((s) => s.id === id && s.status !== 'open'));
    const detail = await api<SessionDetail>(`/v1/sessions/${id}`);
    expect(detail.session).toMatchObject({ origin: 'exec', user: 'ci', status: 'ok', queries: 2 });
    const texts = detail.events.filter((e) => e.kind === 'query').map((e) => e.data.text);
    expect(texts).toEqual(['select 41 + 1', 'select 2']);
  });
});
