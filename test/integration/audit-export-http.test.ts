// The streamed export over HTTP (gateway/audit/routes.ts) against a real audit service over
// SQLite: a client that stops reading is cut off after the stall limit, one that goes away is let
// go at once — either way the export stops holding retention back — and while the store cannot
// be written the export is refused with 503 instead of signing a trail that misses events.
// In-process, with an authenticator that answers one identity (authentication has its own tests).
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createAuditRoutes } from '../../gateway/audit/routes.js';
import { startAudit, type AuditService } from '../../gateway/audit/service.js';
import type { Identity } from '../../gateway/model.js';
import { openSqliteStore } from '../../gateway/store/sqlite.js';
import type { Store } from '../../gateway/store/types.js';

const log = pino({ level: 'silent' });
const AUDITOR: Identity = { subject: 'user:ada', name: 'ada@example.com', email: 'ada@example.com', groups: ['auditors'], kind: 'human' };
const DAY = 86_400_000;

interface Setup {
  audit: AuditService;
  store: Store;
  server: Server;
  port: number;
  failing: { on: boolean };
}
const open: Setup[] = [];

/** An audit with one session older than retention and one long session (~6 MB of export), served over HTTP. */
async function setup(stallMs?: number): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-export-http-'));
  const inner = openSqliteStore(join(dir, 'trail.db'));
  const failing = { on: false };
  const full = () => new Error('SQLITE_FULL: database or disk is full');
  const store: Store = {
    ...inner,
    commitSync: (ops, o) => {
      if (failing.on) throw full();
      inner.commitSync!(ops, o);
    },
    commit: async (ops, o) => {
      if (failing.on) throw full();
      return inner.commit(ops, o);
    },
    heartbeat: async (i, at) => {
      if (failing.on) throw full();
      return inner.heartbeat(i, at);
    },
  };
  let t = Date.parse('2026-10-01T00:00:00.000Z');
  const audit = await startAudit({
    store,
    settings: { durability: 'process', maxRows: 10, maxBytes: 4096, readers: ['auditors'], keyFile: join(dir, 'k.pem'), journalDir: dir, checkpoint: { sessions: 1000, seconds: 3600 }, retainDays: 30 },
    log,
    now: () => new Date(t),
  });
  const record = (id: string, statements: number) => {
    const s = audit.openSession({ id, connection: 'pg', protocol: 'postgres', identity: AUDITOR, origin: 'connect', clientAddress: '127.0.0.1' });
    s.onSessionStart({ target: 'app', clientUser: 'x' });
    for (let i = 0; i < statements; i++) s.onResult({ queryId: s.onQuery({ text: `select ${i}, '${'x'.repeat(200)}'`, protocol: 'simple' }), status: 'ok', rows: 1, durationMs: 0.1 });
    s.onSessionEnd({ status: 'ok', bytesFromClient: 0, bytesToClient: 0 });
  };
  record('s_old', 1);
  await audit.writer.flush();
  t += 40 * DAY;
  record('s_long', 10_000);
  await audit.writer.flush();
  const routes = createAuditRoutes({ audit, store, authenticate: async () => AUDITOR, log, url: 'https://gateway.test', ...(stallMs !== undefined ? { stallMs } : {}) });
  const server = createServer((req, res) => {
    void routes(req, res, new URL(req.url ?? '/', 'http://x').pathname).then((handled) => {
      if (!handled) res.writeHead(404).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const s = { audit, store: inner, server, port: (server.address() as AddressInfo).port, failing };
  open.push(s);
  return s;
}

afterEach(async () => {
  for (const s of open.splice(0)) {
    s.server.closeAllConnections();
    s.server.close();
    s.failing.on = false;
    await s.audit.close();
    await s.store.close();
  }
});

/** Sends GET /v1/audit/export on a raw socket (the test decides whether it reads the answer). */
function requestExport(port: number) {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write('GET /v1/audit/export HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer t\r\n\r\n');
  return socket;
}

/** Polls retention until it runs (an export in progress postpones it): the number of sessions it purged. */
async function retentionRuns(audit: AuditService, withinMs: number): Promise<number> {
  const until = Date.now() + withinMs;
  for (;;) {
    const n = await audit.applyRetention();
    if (n > 0 || Date.now() > until) return n;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('streamed export over HTTP', () => {
  it('cuts off a client that stops reading after the stall limit; retention waits until then', async () => {
    const { audit, store, port } = await setup(500);
    const client = requestExport(port);
    client.pause(); // reads nothing: the gateway's writes back up
    await new Promise((r) => setTimeout(r, 200));
    expect(await audit.applyRetention()).toBe(0); // postponed: the export is reading the trail
    expect((await store.listEvents('s_old')).length).toBeGreaterThan(0);
    expect(await retentionRuns(audit, 3000)).toBe(1); // the export was cut off, though the client never closed
    expect(await store.listEvents('s_old')).toEqual([]);
    // What the client had not read yet ends without the signed end line: a truncated export, which
    // `sluice audit verify` names as such, never one that looks complete.
    let received = '';
    client.on('data', (d: Buffer) => (received += d.toString('latin1')));
    client.resume();
    await once(client, 'close');
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
    expect(received).not.toContain('"type":"end"');
  });

  it('lets an export go as soon as its client disconnects', async () => {
    const { audit, port } = await setup(); // the default stall limit (60 s) is far away
    const client = requestExport(port);
    await once(client, 'data'); // the export has started
    expect(await audit.applyRetention()).toBe(0);
    client.destroy();
    expect(await retentionRuns(audit, 2000)).toBe(1);
  });

  it('answers 503 while the store cannot be written, and exports again once it can', async () => {
    const { audit, port, failing } = await setup();
    failing.on = true;
    const s = audit.openSession({ id: 's_during', connection: 'pg', protocol: 'postgres', identity: AUDITOR, origin: 'connect', clientAddress: '127.0.0.1' });
    s.onSessionStart({ target: 'app', clientUser: 'x' });
    await expect.poll(() => audit.writer.healthy, { timeout: 3000 }).toBe(false);
    const refused = await fetch(`http://127.0.0.1:${port}/v1/audit/export?session=s_old`);
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: { code: 'unavailable', message: expect.stringMatching(/^the audit store cannot be written right now, so an export would miss the latest events/) } });
    failing.on = false;
    await expect.poll(() => audit.writer.healthy, { timeout: 5000 }).toBe(true);
    const ok = await fetch(`http://127.0.0.1:${port}/v1/audit/export?session=s_old`);
    expect(ok.status).toBe(200);
    expect((await ok.text()).trimEnd().split('\n').at(-1)).toContain('"type":"end"');
  });
});
