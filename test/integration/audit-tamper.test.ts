// History rewritten by someone with write access to the store but not the signing key, through the
// real binaries: the gateway records real psql sessions, stops, and its SQLite store is then edited
// as such an attacker would (test/support/auditTamper.ts): events rewritten with every hash after
// them recomputed and the checkpoints they cannot sign again dropped, the newest history cut off,
// checkpoints deleted, an older copy of the store put back. Each time the gateway refuses to start,
// naming its record of the last signed checkpoint, the ledger entry and what it found instead. A
// store changed under a running gateway stops its signatures, exports and new sessions. And the
// honest paths: a restart after a clean stop and after kill -9 starts, and the export verifies.
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { deleteCheckpoints, rewriteHistory, truncateHistory } from '../support/auditTamper.js';
import { exportAndVerify, GATEWAY_BIN, openTunnel, runCli, serviceToken, startGateway, tokenCtx, type CliEnv, type GatewayProcess } from '../support/binaries.js';

const cluster = inject('pgCluster');
const PASSWORD_ENV = 'PG_TEST_PASSWORD';
const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: PASSWORD_ENV }, sslmode: 'disable' };
// A checkpoint after every sealed session: each session below is signed before the next.
const options = { env: { [PASSWORD_ENV]: cluster.password }, connections: [{ name: 'pg-test', type: 'postgres', target, allow: { groups: ['eng'] } }], extra: { audit: { readers: ['eng'], checkpoint: { sessions: 1, seconds: 60 }, witness: { file: 'witness/checkpoints.jsonl' } } } };
const EVIDENCE = 'update accounts set balance = 0 where owner = $$evidence$$';

const running: GatewayProcess[] = [];
afterAll(async () => {
  for (const g of running) await g.stop('SIGKILL');
});

interface Recorded {
  dir: string;
  db: string;
  lastFile: string;
  token: string;
}

async function start(dir?: string): Promise<GatewayProcess> {
  const gw = await startGateway({ ...options, ...(dir !== undefined ? { dir } : {}) });
  running.push(gw);
  return gw;
}

async function psql(ctx: CliEnv, statements: string[]) {
  return runCli(['connect', 'pg-test', '--port', '0', '--', cluster.psqlPath, '-X', '-v', 'ON_ERROR_STOP=1', ...statements.flatMap((s) => ['-c', s])], ctx);
}

/** A gateway that recorded three sessions (the second holds EVIDENCE as a literal) and stopped cleanly. */
async function recorded(): Promise<Recorded> {
  const gw = await start();
  const token = serviceToken(gw, 'ci', 'eng');
  const ctx = tokenCtx(gw, token);
  for (const s of ['select 1', `select '${EVIDENCE}' as evidence`, 'select 3']) {
    const r = await psql(ctx, [s]);
    expect(r.code, r.stderr).toBe(0);
  }
  expect(await gw.stop()).toBe(0);
  const state = join(gw.dir, 'state');
  return { dir: gw.dir, db: join(state, 'sluice.db'), lastFile: join(state, 'audit-last-checkpoint.json'), token };
}

/** Starting the gateway on `r` must fail: returns what it printed. */
async function refusedStart(r: Recorded): Promise<string> {
  const message = await start(r.dir).then(
    () => 'it started',
    (err: Error) => err.message,
  );
  expect(message).toMatch(/^gateway exited with 1 before listening:/);
  return message;
}

const lastSigned = (r: Recorded) => (JSON.parse(readFileSync(r.lastFile, 'utf8')) as { checkpoint: { ledgerSeq: number } }).checkpoint.ledgerSeq;

describe('history changed in the store without the key: the gateway refuses to start', () => {
  it('events rewritten, every hash recomputed, the checkpoints it could not sign dropped', async () => {
    const r = await recorded();
    expect(lastSigned(r)).toBe(3);
    const changed = rewriteHistory(r.db, 'balance = 0 where owner', 'balance = balance where owner');
    expect(changed.sessions).toHaveLength(1);
    expect(changed.checkpointsDropped).toBeGreaterThanOrEqual(2);
    const out = await refusedStart(r);
    expect(out).toContain(`sluice-gateway: ${r.lastFile}: this gateway last signed a checkpoint of ledger #3`);
    expect(out).toMatch(/but the store's ledger has hash [0-9a-f]{12}… at #3: the ledger was rewritten\. The gateway does not sign over a history that does not contain what it signed before/);
  });

  it('the newest history cut off (ledger entries, their sessions and checkpoints)', async () => {
    const r = await recorded();
    truncateHistory(r.db, 2);
    expect(await refusedStart(r)).toMatch(/last signed a checkpoint of ledger #3 .* but the store's ledger ends at #1: ledger entries were removed \(truncated, or the store was restored from an older backup\)/);
  });

  it('checkpoints deleted, the ledger untouched', async () => {
    const r = await recorded();
    expect(deleteCheckpoints(r.db)).toBeGreaterThanOrEqual(3);
    expect(await refusedStart(r)).toMatch(/the last checkpoint this gateway signed, ledger #3 .* is not among the store's checkpoints: checkpoints were deleted from the store/);
  });

  it('the store restored from an older backup', async () => {
    const r = await recorded();
    copyFileSync(r.db, join(r.dir, 'backup.db'));
    const gw = await start(r.dir);
    const later = await psql(tokenCtx(gw, r.token), ['select 4']);
    expect(later.code, later.stderr).toBe(0);
    expect(await gw.stop()).toBe(0);
    expect(lastSigned(r)).toBe(4);
    copyFileSync(join(r.dir, 'backup.db'), r.db);
    expect(await refusedStart(r)).toMatch(/last signed a checkpoint of ledger #4 .* the store's ledger ends at #3/);
  });
});

describe('the record of the last checkpoint', () => {
  it('removed: the start is refused until `sluice-gateway audit accept-store`; replaced by an unsigned one: refused', async () => {
    const r = await recorded();
    const original = readFileSync(r.lastFile, 'utf8');
    rmSync(r.lastFile);
    expect(await refusedStart(r)).toContain(`${r.lastFile} does not exist, but the store's ledger holds entries #1–#3`);
    writeFileSync(r.lastFile, '{"format":"sluice-audit/1 last-checkpoint","checkpoint":null}');
    expect(await refusedStart(r)).toContain(`${r.lastFile} was not written by this gateway`);
    const accept = spawnSync(process.execPath, [GATEWAY_BIN, 'audit', 'accept-store', '--config', join(r.dir, 'gateway.yaml')], { encoding: 'utf8' });
    expect(accept.status, accept.stderr).toBe(0);
    expect(accept.stderr).toContain(`wrote ${r.lastFile}`);
    expect(readFileSync(r.lastFile, 'utf8')).not.toBe(original);
    const gw = await start(r.dir);
    expect((await psql(tokenCtx(gw, r.token), ['select 4'])).code).toBe(0);
    expect(await gw.stop()).toBe(0);
    expect(lastSigned(r)).toBe(4);
  });
});

describe('history changed under a running gateway', () => {
  it('is found at the next checkpoint: nothing more is signed, exports and new sessions are refused', async () => {
    const r = await recorded();
    const gw = await start(r.dir);
    const ctx = tokenCtx(gw, r.token);
    rewriteHistory(r.db, 'balance = 0 where owner', 'balance = balance where owner');
    // The next sealed session triggers a checkpoint, which checks the ledger first.
    expect((await psql(ctx, ['select 4'])).code).toBe(0);
    await expect.poll(() => gw.output(), { timeout: 10_000 }).toContain('the audit store does not hold what this gateway signed');
    expect(lastSigned(r)).toBe(3);
    const exp = await runCli(['audit', 'export'], ctx);
    expect(exp.code).not.toBe(0);
    expect(exp.stderr).toContain('the gateway does not sign this export');
    expect(exp.stderr).toContain('the ledger was rewritten');
    const refused = await psql(ctx, ['select 5']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/503|cannot write its audit trail/);
  });
});

describe('honest restarts', () => {
  it('after a clean stop and after kill -9 the gateway starts, and the export verifies', async () => {
    const r = await recorded();
    let gw = await start(r.dir);
    let ctx = tokenCtx(gw, r.token);
    const tunnel = await openTunnel('pg-test', ctx);
    const client = new pg.Client({ host: '127.0.0.1', port: tunnel.port, database: cluster.database, user: 'x' });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('select 42');
      // Killed with a session open: the next start closes and seals it.
      expect(await gw.stop('SIGKILL')).toBeNull();
    } finally {
      await client.end().catch(() => undefined);
      await tunnel.stop();
    }
    gw = await start(r.dir);
    ctx = tokenCtx(gw, r.token);
    const { trail, verify } = await exportAndVerify(ctx, r.dir);
    expect(verify.stderr).toMatch(/^verified: 4 sessions \(4 sealed, 0 still open\)/);
    expect(verify.code).toBe(0);
    const lines = trail.trimEnd().split('\n');
    const end = JSON.parse(lines.at(-1) as string) as { ledgerSeq: number; ledgerHash: string; checkpointSeconds: number };
    expect(end.checkpointSeconds).toBe(60);
    expect(JSON.parse(lines.at(-2) as string)).toMatchObject({ type: 'checkpoint', ledgerSeq: end.ledgerSeq, ledgerHash: end.ledgerHash });
    expect(lastSigned(r)).toBe(end.ledgerSeq);

    // The same export stripped of its checkpoints (each one is signed, the end line does not list them) does not verify.
    const file = join(r.dir, 'stripped.jsonl');
    writeFileSync(file, `${lines.filter((l) => !l.includes('"type":"checkpoint"')).join('\n')}\n`);
    const key = join(r.dir, 'gateway.pub');
    writeFileSync(key, (await runCli(['audit', 'key'], ctx)).stdout);
    const stripped = await runCli(['audit', 'verify', file, '--key', key], { configDir: ctx.configDir });
    expect(stripped.code).toBe(1);
    expect(stripped.stderr).toContain('the export has no signed checkpoint over its ledger: checkpoints were removed');

    // Against the witness the gateway appended every checkpoint to: the export holds each one.
    const witness = join(r.dir, 'witness', 'checkpoints.jsonl');
    const exported = join(r.dir, 'trail.jsonl');
    writeFileSync(exported, trail);
    const witnessed = await runCli(['audit', 'verify', exported, '--key', key, '--witness', witness], { configDir: ctx.configDir });
    expect(witnessed.stderr).toMatch(new RegExp(`; ${readFileSync(witness, 'utf8').trimEnd().split('\n').length} checkpoints of the witness found in the ledger\n$`));
    expect(witnessed.code).toBe(0);

    expect(await gw.stop()).toBe(0);
    const again = await start(r.dir);
    expect((await psql(tokenCtx(again, r.token), ['select 6'])).code).toBe(0);
    // Four gateway starts, two kills and several CLI runs: more than the default minute on a busy machine.
  }, 180_000);
});
