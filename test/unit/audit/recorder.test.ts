// The audit core as a protocol other than postgres uses it: actions with verdicts and outcomes,
// the protocol's own event kinds, neutral field names, record: sessions, and fail closed.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { AuditUnavailableError } from '../../../gateway/audit/contract.js';
import { AuditWriter } from '../../../gateway/audit/writer.js';
import type { Identity } from '../../../gateway/model.js';
import { createSessionAudit, REFUSED_UNRECORDED } from '../../../gateway/sessionAudit.js';
import { openSqliteStore } from '../../../gateway/store/sqlite.js';
import type { EventRecord, Store } from '../../../gateway/store/types.js';
import { eventHash, GENESIS_HASH, type EventKind } from '../../../src/api/auditTrail.js';

const log = pino({ level: 'silent' });
const BOB: Identity = { subject: 'user:bob', name: 'bob@example.com', groups: ['ops'], kind: 'human' };
let n = 0;

function setup(record?: 'sessions') {
  const store = openSqliteStore(':memory:');
  const writer = new AuditWriter({ store, log, instance: 'g_test', retryMs: 20 });
  const id = `s_core${++n}`;
  const meta = { id, connection: 'web-1', protocol: 'ssh', identity: BOB, origin: 'connect', clientAddress: '127.0.0.1', ...(record ? { record } : {}) };
  const audit = createSessionAudit({ writer, limits: { maxRows: 3, maxBytes: 20 }, instance: 'g_test', log }, meta);
  return { store, writer, id, audit };
}

const body = (e: EventRecord) => JSON.parse(e.body) as { session: string; seq: number; kind: EventKind; at: string; data: Record<string, unknown> };

function verifyChain(events: EventRecord[]): void {
  let prev = GENESIS_HASH;
  events.forEach((e, i) => {
    expect(e.seq).toBe(i + 1);
    expect(eventHash(prev, body(e))).toBe(e.hash);
    prev = e.hash;
  });
}

describe('audit core (a protocol without its own vocabulary)', () => {
  it('records start, an action with its verdict and outcome, own event kinds and the end, chained', async () => {
    const { store, writer, id, audit } = setup();
    audit.onSessionStart({ target: 'deploy@10.0.0.7', clientUser: 'deploy' });
    const a = audit.onAction({ kind: 'exec', text: 'uptime' });
    // Write-ahead: the action is in the store before onAction returns.
    expect((await store.listEvents(id)).map((e) => e.kind)).toEqual(['session.start', 'action']);
    audit.onDecision({ queryId: a, verdict: 'allow' });
    audit.onEvent('ssh.output', { q: a, ms: 12, data: ' 11:20 up 1 day\n' });
    audit.onOutcome({ queryId: a, status: 'error', code: '1', durationMs: 15, bytes: 16 });
    const b = audit.onAction({ kind: 'exec', text: 'sudo reboot' });
    audit.onDecision({ queryId: b, verdict: 'review', rule: 'sudo-needs-review' });
    audit.onReview({ queryId: b, event: 'created', reviewId: 'R-2345' });
    audit.onSessionEnd({ status: 'error', code: 'EXIT', message: 'closed', bytesFromClient: 5, bytesToClient: 16 });
    await writer.flush();
    const events = await store.listEvents(id);
    verifyChain(events);
    expect(events.map((e) => e.kind)).toEqual(['session.start', 'action', 'decision', 'ssh.output', 'result', 'action', 'decision', 'review.created', 'session.end']);
    const data = events.map((e) => body(e).data);
    expect(data[0]).toMatchObject({ protocol: 'ssh', target: 'deploy@10.0.0.7', clientUser: 'deploy' });
    expect(data[0]).not.toHaveProperty('database');
    expect(data[1]).toEqual({ q: a, kind: 'exec', text: 'uptime' });
    expect(data[3]).toEqual({ q: a, ms: 12, data: ' 11:20 up 1 day\n' });
    expect(data[4]).toEqual({ q: a, status: 'error', code: '1', durationMs: 15, bytes: 16 });
    expect(data[8]).toEqual({ status: 'error', code: 'EXIT', message: 'closed', bytesFromClient: 5, bytesToClient: 16, actions: 2 });
    expect(await store.getSession(id)).toMatchObject({ protocol: 'ssh', status: 'error', error: 'EXIT closed', queries: 2, reviewed: 1 });
  });

  it('record: sessions keeps only the actions the policy refused or held, with their outcomes', async () => {
    const { store, writer, id, audit } = setup('sessions');
    audit.onSessionStart({ target: 'deploy@10.0.0.7' });
    const a = audit.onAction({ kind: 'exec', text: 'uptime' });
    audit.onDecision({ queryId: a, verdict: 'allow' });
    audit.onOutcome({ queryId: a, status: 'ok', code: '0', durationMs: 1 });
    const b = audit.onAction({ kind: 'exec', text: 'rm -rf /*' });
    audit.onDecision({ queryId: b, verdict: 'block', rule: 'no-destroy' });
    audit.onOutcome({ queryId: b, status: 'error', code: '3', durationMs: 0 });
    audit.onSessionEnd({ status: 'ok', bytesFromClient: 0, bytesToClient: 0 });
    await writer.flush();
    const events = await store.listEvents(id);
    expect(events.map((e) => [e.kind, body(e).data.q])).toEqual([
      ['session.start', undefined],
      ['action', b],
      ['decision', b],
      ['result', b],
      ['session.end', undefined],
    ]);
    expect(await store.getSession(id)).toMatchObject({ queries: 2, blocked: 1 });
  });

  it('fails closed: an action the store cannot record is refused, and the trail shows it once the store is back', async () => {
    const inner = openSqliteStore(':memory:');
    let failing = false;
    const store: Store = {
      ...inner,
      commit: async (ops) => {
        if (failing) throw new Error('SQLITE_FULL: database or disk is full');
        return inner.commit(ops);
      },
      commitSync: (ops) => {
        if (failing) throw new Error('SQLITE_FULL: database or disk is full');
        inner.commitSync!(ops);
      },
    };
    const writer = new AuditWriter({ store, log, instance: 'g_test', retryMs: 20 });
    const audit = createSessionAudit({ writer, limits: { maxRows: 3, maxBytes: 20 }, instance: 'g_test', log }, { id: 's_corefail', connection: 'web-1', protocol: 'ssh', identity: BOB, origin: 'connect', clientAddress: '127.0.0.1' });
    audit.onSessionStart({ target: 'deploy@10.0.0.7' });
    failing = true;
    let thrown: unknown;
    try {
      audit.onAction({ kind: 'exec', text: 'uptime' });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(AuditUnavailableError);
    expect((thrown as AuditUnavailableError).reason).toBe('store');
    audit.onSessionEnd({ status: 'error', bytesFromClient: 0, bytesToClient: 0 });
    failing = false;
    await expect.poll(() => writer.healthy, { timeout: 2000 }).toBe(true);
    await expect.poll(async () => (await store.listEvents('s_corefail')).length, { timeout: 2000 }).toBe(4);
    const events = await store.listEvents('s_corefail');
    expect(events.map((e) => e.kind)).toEqual(['session.start', 'action', 'result', 'session.end']);
    const refusal = events.find((e) => e.kind === 'result');
    // No protocol code: this protocol has none for it (postgres records 58030).
    expect(refusal && body(refusal).data).toEqual({ q: 1, status: 'error', message: REFUSED_UNRECORDED, durationMs: 0 });
  });

  it('refuses actions after the end and drops an event whose data is not canonical JSON', async () => {
    const { store, writer, id, audit } = setup();
    audit.onSessionStart({ target: 't' });
    audit.onEvent('ssh.window', { cols: Number.NaN });
    audit.onSessionEnd({ status: 'ok', bytesFromClient: 0, bytesToClient: 0 });
    expect(() => audit.onAction({ kind: 'exec', text: 'true' })).toThrow(expect.objectContaining({ reason: 'ended' }) as Error);
    await writer.flush();
    expect((await store.listEvents(id)).map((e) => e.kind)).toEqual(['session.start', 'session.end']);
  });
});
