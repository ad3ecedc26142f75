// What the audit of one proxied HTTP request costs, in one process and without the tunnel: the
// events the http engine records for an allowed GET (action, http.request, decision — made durable
// before forwarding — then http.response and result), through the gateway's real recorder, writer,
// journal and SQLite store, eight sessions interleaved as under the `BENCH_ONLY=http` load. The
// ingest runs inline here, so the figure is the main thread's part plus the ingest thread's. Also
// measured without the two http.* events, which is what folding them into the others could save
// at most. CPU time, so steadier under load than anything timed; asserts nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { AuditJournal } from '../../gateway/audit/journal.js';
import { createSessionRecorder } from '../../gateway/audit/recorder.js';
import { AuditWriter } from '../../gateway/audit/writer.js';
import type { SessionAudit } from '../../gateway/audit/contract.js';
import { openSqliteStore } from '../../gateway/store/sqlite.js';

const SESSIONS = 8;

/** CPU µs per request over `requests` requests, with or without the http.request / http.response events. */
async function measure(httpEvents: boolean, requests: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-http-audit-'));
  const store = openSqliteStore(join(dir, 'audit.db'));
  const log = pino({ level: 'warn' });
  const writer = new AuditWriter({ store, journal: await AuditJournal.open({ dir, durability: 'process' }, async () => undefined), log, instance: 'g_bench' });
  try {
    const identity = { subject: 'token:bench', name: 'bench', kind: 'service' as const, groups: ['bench'] };
    const sessions: SessionAudit[] = Array.from({ length: SESSIONS }, (_, i) => {
      const meta = { id: `s_bench_http_${httpEvents ? 5 : 3}_${i}`, connection: 'bench', protocol: 'http', identity, origin: 'connect', clientAddress: '127.0.0.1' };
      return createSessionRecorder({ writer, limits: { maxRows: 10, maxBytes: 1024 }, instance: 'g_bench', log }, meta).audit;
    });
    for (const a of sessions) a.onSessionStart({ target: 'https://localhost:8443' });
    await writer.flush();
    // What hooks.ts records for `GET /v1/customers` answered with a small JSON body.
    const one = async (audit: SessionAudit): Promise<void> => {
      const id = audit.onAction({ kind: 'http', text: 'GET /v1/customers', deferCommit: true });
      if (httpEvents) audit.onEvent('http.request', { action: id, method: 'GET', target: '/v1/customers', path: '/v1/customers', headers: { 'user-agent': 'undici', accept: '*/*' } });
      audit.onDecision({ queryId: id, verdict: 'allow', deferCommit: true });
      await audit.flush();
      if (httpEvents) {
        audit.onEvent('http.response', {
          action: id,
          status: 200,
          result: 'forwarded',
          headers: { 'content-type': 'application/json', 'content-length': '61' },
          requestBytes: 0,
          responseBytes: 61,
          responseSample: '{"customers":[{"name":"Ada","id":1},{"name":"Bob","id":2}]}',
        });
      }
      audit.onOutcome({ queryId: id, status: 'ok', code: '200', durationMs: 1, bytes: 61 });
    };
    let started = 0;
    const before = process.cpuUsage();
    await Promise.all(
      sessions.map(async (a) => {
        while (started < requests) {
          started++;
          await one(a);
        }
      }),
    );
    await writer.flush();
    const spent = process.cpuUsage(before);
    return (spent.user + spent.system) / started;
  } finally {
    writer.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Medians of `rounds` alternating measurements: [all five events, without the two http.* ones]. */
export async function httpAuditCost(rounds = 3, requests = 20_000): Promise<{ five: number; three: number }> {
  const five: number[] = [];
  const three: number[] = [];
  await measure(true, requests / 4); // warm-up: the first run pays for compiling the path
  for (let i = 0; i < rounds; i++) {
    five.push(await measure(true, requests));
    three.push(await measure(false, requests));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { five: median(five), three: median(three) };
}
