// exec's pre-opened upstream backends (gateway/engines/postgres/upstreamSpares.ts), observed on
// the target itself: which backend (pg_stat_activity's pid and backend_start) ran each exec, and
// which idle backends the gateway keeps. The real gateway binary, real PostgreSQL, service tokens.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXEC_CONTENT_TYPE, execEvent, type ExecEvent } from '../../src/api/contract.js';
import { startArena, type Arena } from '../support/arena.js';
import { GATEWAY_BIN, serviceToken, startGateway, type GatewayProcess } from '../support/binaries.js';
import { waitFor } from '../support/pgEngineHarness.js';

const cluster = inject('pgCluster');

let arena: Arena;
let dispatcher: Agent;
let ci: string;

beforeAll(async () => {
  arena = await startArena(cluster, { prefix: 'exec_spare', policy: { rules: [] }, gateway: { limits: { revocationCheckMs: 200 } } });
  ci = serviceToken(arena.gw, 'ci', 'eng');
  dispatcher = new Agent({ connect: arena.gw.caFile ? { ca: readFileSync(arena.gw.caFile) } : {} });
});

afterAll(async () => {
  await dispatcher?.close();
  await arena?.stop();
});

/** Where an exec ran: its backend's pid and start time (text, as the target prints it). */
const WHO_RAN = "select pg_backend_pid()::text, backend_start::text, application_name from pg_stat_activity where pid = pg_backend_pid()";

async function exec(gw: GatewayProcess, token: string, input: string): Promise<ExecEvent[]> {
  const d = gw === arena.gw ? dispatcher : new Agent({ connect: gw.caFile ? { ca: readFileSync(gw.caFile) } : {} });
  try {
    const res = await fetch(`${gw.url}/v1/connections/pg-prod/exec`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input }),
      dispatcher: d,
    });
    expect(res.headers.get('content-type')).toBe(EXEC_CONTENT_TYPE);
    return (await res.text()).split('\n').filter((l) => l !== '').map((l) => execEvent.parse(JSON.parse(l)));
  } finally {
    if (d !== dispatcher) await d.close();
  }
}

/** The backend an exec ran on; the exec must have succeeded. */
async function ranOn(gw: GatewayProcess, token: string): Promise<{ pid: number; started: string; app: string }> {
  const events = await exec(gw, token, WHO_RAN);
  expect(events.at(-1)).toMatchObject({ type: 'end', status: 'ok' });
  const row = events.find((e): e is Extract<ExecEvent, { type: 'rows' }> => e.type === 'rows')?.rows[0] as string[];
  return { pid: Number(row[0]), started: row[1] as string, app: row[2] as string };
}

/** Idle backends the gateway holds for `identity`'s execs (what a spare looks like on the target). */
async function idleFor(identity: string): Promise<number[]> {
  const r = await arena.admin.query<{ pid: number }>("select pid from pg_stat_activity where datname = $1 and application_name = $2 and state = 'idle' order by pid", [arena.database, `sluice:${identity}:sluice exec`]);
  return r.rows.map((x) => x.pid);
}

async function spareOf(identity: string, not?: number): Promise<number> {
  let pid = 0;
  await waitFor(`a spare backend for ${identity}`, async () => {
    const idle = (await idleFor(identity)).filter((p) => p !== not);
    pid = idle[0] ?? 0;
    return idle.length === 1;
  });
  return pid;
}

const nowOnTarget = async (): Promise<string> => (await arena.admin.query<{ t: string }>('select clock_timestamp()::text as t')).rows[0]!.t;
const before = async (a: string, b: string): Promise<boolean> => (await arena.admin.query<{ x: boolean }>('select $1::timestamptz < $2::timestamptz as x', [a, b])).rows[0]!.x;

describe('exec spare backends', () => {
  it('the next exec runs on a backend opened before it was asked for, which it alone used', async () => {
    const first = await ranOn(arena.gw, ci);
    expect(first.app).toBe('sluice:ci:sluice exec');
    const spare = await spareOf('ci', first.pid);
    expect(spare).not.toBe(first.pid);
    const asked = await nowOnTarget();
    const second = await ranOn(arena.gw, ci);
    expect(second.pid).toBe(spare);
    // Opened before this exec was asked for: it skipped connect and authentication.
    expect(await before(second.started, asked)).toBe(true);
    expect(second.app).toBe(first.app);
    // Never reused: the first backend is gone, and the next exec gets yet another one.
    const third = await ranOn(arena.gw, ci);
    expect(new Set([first.pid, second.pid, third.pid]).size).toBe(3);
    await waitFor('the used backends to close', async () => (await arena.admin.query('select 1 from pg_stat_activity where pid = any($1)', [[first.pid, second.pid]])).rowCount === 0);
  });

  it('a spare killed on the target is not used; the exec connects afresh and succeeds', async () => {
    await ranOn(arena.gw, ci);
    const spare = await spareOf('ci');
    // No waiting for the gateway to notice: the exec may take the spare before its close arrives.
    expect((await arena.admin.query<{ ok: boolean }>('select pg_terminate_backend($1) as ok', [spare])).rows[0]!.ok).toBe(true);
    const next = await ranOn(arena.gw, ci);
    expect(next.pid).not.toBe(spare);
    // And once more after the gateway surely saw it close.
    const killed = await spareOf('ci', next.pid);
    await arena.admin.query('select pg_terminate_backend($1)', [killed]);
    await waitFor('the killed spare to leave the target', async () => !(await idleFor('ci')).includes(killed));
    expect((await ranOn(arena.gw, ci)).pid).not.toBe(killed);
  });

  it('a spare is never shared across identities', async () => {
    const other = serviceToken(arena.gw, 'other', 'eng');
    await ranOn(arena.gw, ci);
    const ciSpare = await spareOf('ci');
    const theirs = await ranOn(arena.gw, other);
    expect(theirs.pid).not.toBe(ciSpare);
    expect(theirs.app).toBe('sluice:other:sluice exec');
    expect(await idleFor('ci')).toEqual([ciSpare]);
    expect((await ranOn(arena.gw, ci)).pid).toBe(ciSpare);
  });

  it("a revoked token's spare is closed and its exec refused", async () => {
    const doomed = serviceToken(arena.gw, 'doomed-spare', 'eng');
    await ranOn(arena.gw, doomed);
    const spare = await spareOf('doomed-spare');
    execFileSync(process.execPath, [GATEWAY_BIN, 'token', 'revoke', 'doomed-spare', '--config', arena.gw.configFile], { stdio: 'ignore' });
    await waitFor('the spare of the revoked token to close', async () => !(await idleFor('doomed-spare')).includes(spare));
    const res = await fetch(`${arena.gw.url}/v1/connections/pg-prod/exec`, {
      method: 'POST',
      headers: { authorization: `Bearer ${doomed}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: 'select 1' }),
      dispatcher,
    });
    expect(res.status).toBe(401);
    await res.text();
    expect(await idleFor('doomed-spare')).toEqual([]);
  });

  it('never leaks the target password into the gateway output', () => {
    expect(arena.gw.output()).not.toContain(cluster.roles.superuser.password);
  });
});

describe('exec spare limit', () => {
  const gateways: GatewayProcess[] = [];
  afterAll(async () => {
    for (const gw of gateways) await gw.stop();
  });

  async function gatewayWith(execSpareIdleMs: number): Promise<{ gw: GatewayProcess; token: string }> {
    const su = cluster.roles.superuser;
    const gw = await startGateway({
      env: { SPARE_PG_PASSWORD: su.password },
      connections: [
        {
          name: 'pg-prod',
          type: 'postgres',
          target: { host: cluster.host, port: cluster.port, database: arena.database, user: su.user, password: { env: 'SPARE_PG_PASSWORD' }, sslmode: 'disable' },
          allow: { groups: ['eng'] },
        },
      ],
      extra: { limits: { execSpareIdleMs } },
    });
    gateways.push(gw);
    return { gw, token: serviceToken(gw, `limit${execSpareIdleMs}`, 'eng') };
  }

  it('0 keeps no spare: every exec connects after it was asked for', async () => {
    const { gw, token } = await gatewayWith(0);
    const first = await ranOn(gw, token);
    await waitFor('the first backend to close', async () => (await arena.admin.query('select 1 from pg_stat_activity where pid = $1', [first.pid])).rowCount === 0);
    expect(await idleFor('limit0')).toEqual([]);
    const asked = await nowOnTarget();
    const second = await ranOn(gw, token);
    expect(await before(asked, second.started)).toBe(true);
    expect(await idleFor('limit0')).toEqual([]);
  });

  it('an idle spare closes after the limit', async () => {
    const { gw, token } = await gatewayWith(300);
    const first = await ranOn(gw, token);
    const spare = await spareOf('limit300', first.pid);
    await waitFor('the idle spare to close', async () => !(await idleFor('limit300')).includes(spare));
    expect(await idleFor('limit300')).toEqual([]);
    expect((await ranOn(gw, token)).pid).not.toBe(spare);
  });
});
