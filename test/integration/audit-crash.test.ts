// Crash: `kill -9` the gateway while clients stream statements through the tunnel. After a
// restart, every statement the target executed is in the trail (write-ahead), the sessions the
// dead gateway left open are closed and sealed, and the whole export verifies.
import { randomBytes } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { SessionDetail, SessionSummary } from '../../src/api/contract.js';
import { exportAndVerify, openTunnel, runCli, serviceToken, startGateway, tokenCtx, type GatewayProcess } from '../support/binaries.js';

const cluster = inject('pgCluster');
const PASSWORD_ENV = 'PG_TEST_PASSWORD';
const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: PASSWORD_ENV }, sslmode: 'disable' };
const gatewayOptions = { env: { [PASSWORD_ENV]: cluster.password }, connections: [{ name: 'pg-test', type: 'postgres', target, allow: { groups: ['eng'] } }], extra: { audit: { readers: ['eng'] } } };

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

function direct(): pg.Client {
  return new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, database: cluster.database });
}

/** Sends statements one after another until the tunnel breaks; returns how many were acknowledged. */
async function stream(client: pg.Client, send: (i: number) => Promise<unknown>): Promise<number> {
  let ok = 0;
  for (let i = 1; ; i++) {
    try {
      await send(i);
      ok++;
    } catch {
      return ok;
    }
  }
}

describe('gateway crash (kill -9) while statements stream', () => {
  // durability: process appends each statement to the journal; fsync also fdatasyncs it, with the
  // engine waiting for the group commit: both must lose nothing that ran.
  it.each(['process', 'fsync'])('loses no executed statement and the trail verifies after the restart (durability: %s)', async (durability) => {
    const table = `crash_${durability}_${randomBytes(4).toString('hex')}`;
    const admin = direct();
    await admin.connect();
    await admin.query(`create table ${table} (n int not null, via text not null)`);

    const options = { ...gatewayOptions, extra: { audit: { readers: ['eng'], durability } } };
    let gw: GatewayProcess = await startGateway(options);
    const port = Number(new URL(gw.url).port);
    const ctx = tokenCtx(gw, serviceToken(gw, 'ci', 'eng'));
    const tunnel = await openTunnel('pg-test', ctx);
    cleanups.push(() => tunnel.stop());
    const local = tunnel.port;

    const extended = new pg.Client({ host: '127.0.0.1', port: local, database: cluster.database, user: 'x' });
    const simple = new pg.Client({ host: '127.0.0.1', port: local, database: cluster.database, user: 'x' });
    for (const c of [extended, simple]) {
      c.on('error', () => undefined);
      await c.connect();
    }
    const streams = Promise.all([
      stream(extended, (i) => extended.query(`insert into ${table} (n, via) values ($1, 'extended')`, [i])),
      stream(simple, (i) => simple.query(`insert into ${table} (n, via) values (${i}, 'simple')`)),
    ]);
    await new Promise((r) => setTimeout(r, 1_500));
    gw.child.kill('SIGKILL');
    const acknowledged = await streams;
    expect(acknowledged[0]).toBeGreaterThan(10);
    expect(acknowledged[1]).toBeGreaterThan(10);

    gw = await startGateway({ ...options, dir: gw.dir, port });
    cleanups.push(() => gw.stop());
    const { rows } = await admin.query<{ n: number; via: string }>(`select n, via from ${table}`);
    await admin.end();

    const list = JSON.parse((await runCli(['sessions', '--json'], ctx)).stdout) as SessionSummary[];
    expect(list).toHaveLength(2);
    const recorded = { extended: new Set<number>(), simple: new Set<number>() };
    for (const s of list) {
      expect(s.status).toBe('error');
      expect(s.ledgerSeq).not.toBeNull(); // closed and sealed by the restarted gateway
      const detail = JSON.parse((await runCli(['sessions', 'show', s.id, '--json'], ctx)).stdout) as SessionDetail;
      const end = detail.events.at(-1)!;
      expect(end).toMatchObject({ kind: 'session.end', data: { status: 'error', recovered: true } });
      for (const e of detail.events.filter((x) => x.kind === 'query')) {
        const text = String(e.data.text);
        if (Array.isArray(e.data.params)) recorded.extended.add(Number(e.data.params[0]));
        const m = /values \((\d+), 'simple'\)/.exec(text);
        if (m) recorded.simple.add(Number(m[1]));
      }
    }
    // Everything the target executed was recorded before it was forwarded.
    expect(rows.length).toBeGreaterThanOrEqual(acknowledged[0]! + acknowledged[1]!);
    for (const r of rows) expect(recorded[r.via as 'extended' | 'simple'].has(r.n), `${r.via} ${r.n} executed but not in the trail`).toBe(true);

    const { verify: v } = await exportAndVerify(ctx, gw.dir);
    expect(v.stderr).toMatch(/^verified: 2 sessions \(2 sealed, 0 still open\)/);
    expect(v.code).toBe(0);
    expect(gw.output()).toContain('closed a session left open by a gateway that stopped');
    for (const c of [extended, simple]) await c.end().catch(() => undefined);
  });

  it('refuses to start on a corrupt journal, naming the file and line, and starts once it is moved away', async () => {
    const first = await startGateway(gatewayOptions);
    await first.stop();
    const journal = join(first.dir, 'state', 'audit-journal-a.jsonl');
    writeFileSync(journal, '{"n":1,"op":"session"\nnot json\n');
    const refused = await startGateway({ ...gatewayOptions, dir: first.dir }).then(
      (g) => g.stop().then(() => undefined),
      (err: Error) => err.message,
    );
    expect(refused).toContain(`${journal}: line 1 is not JSON`);
    expect(refused).toContain('The gateway starts once the file is repaired or moved away');
    renameSync(journal, `${journal}.broken`);
    const again = await startGateway({ ...gatewayOptions, dir: first.dir });
    cleanups.push(() => again.stop());
  });
});
