// `record: sessions` on a connection, end to end through the real binaries: the trail keeps who
// connected when and every statement the policy refused (with its decision and result), but not
// the statements that ran — and `sluice connections` says so. A `record: statements` connection on
// the same gateway keeps everything, as before.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ConnectionInfo, SessionDetail, SessionSummary } from '../../src/api/contract.js';
import { exportAndVerify, runCli, serviceToken, startGateway, tokenCtx, type CliEnv, type GatewayProcess } from '../support/binaries.js';

const cluster = inject('pgCluster');
const PASSWORD_ENV = 'PG_TEST_PASSWORD';
const MARKER = `quiet_${randomBytes(4).toString('hex')}`;
const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: PASSWORD_ENV }, sslmode: 'disable' };
const policy = { rules: [{ id: 'no-ddl', block: { statements: ['drop'] } }] };

let gw: GatewayProcess;
let ctx: CliEnv;

beforeAll(async () => {
  gw = await startGateway({
    env: { [PASSWORD_ENV]: cluster.password },
    connections: [
      { name: 'pg-quiet', type: 'postgres', target, allow: { groups: ['eng'] }, policy, record: 'sessions' },
      { name: 'pg-full', type: 'postgres', target, allow: { groups: ['eng'] }, policy },
    ],
    extra: { audit: { readers: ['eng'] } },
  });
  ctx = tokenCtx(gw, serviceToken(gw, 'ci', 'eng'));
});
afterAll(async () => {
  await gw?.stop();
});

async function psqlOn(connection: string, statements: string[]) {
  const res = await runCli(['connect', connection, '--port', '0', '--', cluster.psqlPath, '-X', '-v', 'ON_ERROR_STOP=0', ...statements.flatMap((s) => ['-c', s])], ctx);
  // psql's exit code is 1: the last statement is the refused one.
  expect(res.code, res.stderr).toBe(1);
  return res;
}

async function timeline(connection: string): Promise<SessionDetail> {
  const list = JSON.parse((await runCli(['sessions', '--json', '--connection', connection], ctx)).stdout) as SessionSummary[];
  expect(list).toHaveLength(1);
  const show = await runCli(['sessions', 'show', list[0]!.id, '--json'], ctx);
  expect(show.code, show.stderr).toBe(0);
  return JSON.parse(show.stdout) as SessionDetail;
}

describe('record: sessions', () => {
  it('keeps the session and the refused statement, not the statements that ran', async () => {
    const run = await psqlOn('pg-quiet', [`select '${MARKER}' as m`, 'select 2', `drop table if exists ${MARKER}`]);
    expect(run.stdout).toContain(MARKER); // the statements did run
    expect(run.stderr).toContain('blocked by rule no-ddl');
    const t = await timeline('pg-quiet');
    expect(t.events.map((e) => e.kind)).toEqual(['session.start', 'query', 'decision', 'result', 'session.end']);
    expect(t.events[1]!.data).toMatchObject({ q: 3, text: `drop table if exists ${MARKER}` });
    expect(t.events[2]!.data).toMatchObject({ q: 3, verdict: 'block', rule: 'no-ddl' });
    expect(t.events[4]!.data).toMatchObject({ status: 'ok', queries: 3 });
    expect(JSON.stringify(t)).not.toContain(`select '${MARKER}'`);
    expect(t.session.queries).toBe(3);
  });

  it('a record: statements connection on the same gateway keeps every statement and its result', async () => {
    await psqlOn('pg-full', [`select '${MARKER}' as m`, `drop table if exists ${MARKER}`]);
    const t = await timeline('pg-full');
    expect(t.events.map((e) => e.kind)).toEqual(['session.start', 'query', 'decision', 'result', 'query', 'decision', 'result', 'session.end']);
    expect(t.events[3]!.data).toMatchObject({ rows: 1, sample: [[MARKER]] });
  });

  it('sluice connections shows what each connection records, and the whole trail verifies', async () => {
    const list = JSON.parse((await runCli(['connections', '--json'], ctx)).stdout) as ConnectionInfo[];
    expect(list.map((c) => [c.name, c.record])).toEqual([
      ['pg-quiet', 'sessions'],
      ['pg-full', 'statements'],
    ]);
    const { verify } = await exportAndVerify(ctx, gw.dir);
    expect(verify.code, verify.stderr).toBe(0);
  });
});
