// The audit key's files changed while the gateway is down, through the real binaries: the key
// deleted (a gateway that made a new one would sign over history the old key vouched for), the key
// swapped for another, the `.pub` beside it swapped (auditors who take the key from it would verify
// someone else's signatures), the witness rolled back or its last line edited. Each time the gateway refuses to start, naming the file and what it
// found; nothing is written; with the files put back it starts and the export verifies.
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { exportAndVerify, runCli, serviceToken, startGateway, tokenCtx, type GatewayProcess } from '../support/binaries.js';

const cluster = inject('pgCluster');
const PASSWORD_ENV = 'PG_TEST_PASSWORD';
const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: PASSWORD_ENV }, sslmode: 'disable' };
const options = { env: { [PASSWORD_ENV]: cluster.password }, connections: [{ name: 'pg-test', type: 'postgres', target, allow: { groups: ['eng'] } }], extra: { audit: { readers: ['eng'], checkpoint: { sessions: 1, seconds: 60 }, witness: { file: 'witness/checkpoints.jsonl' } } } };

const running: GatewayProcess[] = [];
afterAll(async () => {
  for (const g of running) await g.stop('SIGKILL');
});

async function start(dir?: string): Promise<GatewayProcess> {
  const gw = await startGateway({ ...options, ...(dir !== undefined ? { dir } : {}) });
  running.push(gw);
  return gw;
}

/** A gateway that recorded `sessions` sessions (a checkpoint after each) and stopped cleanly: its directory and files. */
async function recorded(sessions = 1) {
  const gw = await start();
  const token = serviceToken(gw, 'ci', 'eng');
  for (let i = 0; i < sessions; i++) {
    const r = await runCli(['connect', 'pg-test', '--port', '0', '--', cluster.psqlPath, '-X', '-v', 'ON_ERROR_STOP=1', '-c', 'select 1'], tokenCtx(gw, token));
    expect(r.code, r.stderr).toBe(0);
  }
  expect(await gw.stop()).toBe(0);
  const state = join(gw.dir, 'state');
  const key = join(state, 'audit-ed25519.pem');
  expect(existsSync(key)).toBe(true);
  return { dir: gw.dir, key, pub: `${key}.pub`, token, db: join(state, 'sluice.db'), witness: join(gw.dir, 'witness/checkpoints.jsonl') };
}

async function refusedStart(dir: string): Promise<string> {
  const message = await start(dir).then(
    () => 'it started',
    (err: Error) => err.message,
  );
  expect(message).toMatch(/^gateway exited with 1 before listening:/);
  return message;
}

async function startsAndVerifies(dir: string, token: string): Promise<void> {
  const gw = await start(dir);
  const { verify } = await exportAndVerify(tokenCtx(gw, token), dir);
  expect(verify.code, verify.stderr).toBe(0);
  expect(await gw.stop()).toBe(0);
}

describe('the audit key changed while the gateway is down', () => {
  it('deleted: the start is refused and no new key is made', async () => {
    const r = await recorded();
    copyFileSync(r.key, `${r.key}.saved`);
    rmSync(r.key);
    const dbBefore = readFileSync(r.db);
    expect(await refusedStart(r.dir)).toContain(`the audit key ${r.key} does not exist, but the store's ledger holds entries #1–#1, signed with the key this gateway had: restore the key file`);
    expect(existsSync(r.key)).toBe(false);
    expect(readFileSync(r.db).equals(dbBefore)).toBe(true);
    copyFileSync(`${r.key}.saved`, r.key);
    await startsAndVerifies(r.dir, r.token);
  });

  it('replaced by another key: the record of the last checkpoint names the key that signed it', async () => {
    const r = await recorded();
    const original = readFileSync(r.key);
    const originalPub = readFileSync(r.pub);
    const other = generateKeyPairSync('ed25519');
    writeFileSync(r.key, other.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(r.pub, other.publicKey.export({ type: 'spki', format: 'pem' }));
    const message = await refusedStart(r.dir);
    expect(message).toMatch(new RegExp(`audit-last-checkpoint\\.json was signed with the audit key [0-9a-f]{16}, but the audit key ${r.key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is key [0-9a-f]{16}: the key was replaced`));
    writeFileSync(r.key, original, { mode: 0o600 });
    writeFileSync(r.pub, originalPub);
    await startsAndVerifies(r.dir, r.token);
  });

  it('the .pub beside it replaced: refused; deleted: written again from the key', async () => {
    const r = await recorded();
    const original = readFileSync(r.pub, 'utf8');
    writeFileSync(r.pub, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
    expect(await refusedStart(r.dir)).toMatch(new RegExp(`${r.pub.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} holds key [0-9a-f]{16}, not the public half of the audit key .* one of the two was replaced`));
    writeFileSync(r.pub, 'not a key\n');
    expect(await refusedStart(r.dir)).toContain(`${r.pub} is not a PEM public key`);
    rmSync(r.pub);
    await startsAndVerifies(r.dir, r.token);
    expect(readFileSync(r.pub, 'utf8')).toBe(original);
  });

  it('the witness rolled back or its last line edited: refused, naming the witness; put back, the gateway starts', async () => {
    const r = await recorded(2);
    const original = readFileSync(r.witness, 'utf8');
    const lines = original.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    writeFileSync(r.witness, `${lines.slice(0, -1).join('\n')}\n`);
    expect(await refusedStart(r.dir)).toMatch(new RegExp(`the audit witness ${r.witness.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} ends at the checkpoint of ledger #\\d+ \\(signed \\S+\\), but this gateway last signed ledger #\\d+ .* the witness was rolled back or cut`));
    const forged = JSON.parse(lines.at(-1)!) as { ledgerSeq: number };
    forged.ledgerSeq += 5;
    writeFileSync(r.witness, `${[...lines.slice(0, -1), JSON.stringify(forged)].join('\n')}\n`);
    expect(await refusedStart(r.dir)).toContain(`the audit witness ${r.witness} holds a line that is not a checkpoint signed with the audit key`);
    writeFileSync(r.witness, original);
    await startsAndVerifies(r.dir, r.token);
  });
});
