// Exports and their offline verification: a real audit service over SQLite, then every kind of
// tampering the issue names (and a few more), each detected and named.
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAudit, type AuditService, type AuditSettings } from '../../../gateway/audit/service.js';
import type { Identity } from '../../../gateway/model.js';
import { openSqliteStore } from '../../../gateway/store/sqlite.js';
import type { Store } from '../../../gateway/store/types.js';
import { verifyTrail } from '../../../src/commands/audit/trailVerifier.js';

const log = pino({ level: 'silent' });
const ALICE: Identity = { subject: 'user:alice', name: 'alice@example.com', email: 'alice@example.com', groups: ['eng'], kind: 'human' };
const BOB: Identity = { subject: 'user:bob', name: 'bob@example.com', email: 'bob@example.com', groups: ['eng'], kind: 'human' };

const dir = mkdtempSync(join(tmpdir(), 'sluice-verify-'));
const settings = (over: Partial<AuditSettings> = {}): AuditSettings => ({
  durability: 'process',
  maxRows: 100,
  maxBytes: 65536,
  readers: ['auditors'],
  keyFile: join(dir, 'audit-ed25519.pem'),
  journalDir: dir,
  checkpoint: { sessions: 2, seconds: 3600 },
  ...over,
});

let clock = Date.parse('2026-11-01T10:00:00.000Z');
const now = () => new Date(clock);
let store: Store;
let audit: AuditService;
let key: KeyObject;
const ids: string[] = [];

async function session(who: Identity, statements: string[]): Promise<string> {
  const id = `s_v${ids.length + 1}`;
  ids.push(id);
  const a = audit.openSession({ id, connection: 'pg', protocol: 'postgres', identity: who, origin: 'connect', clientAddress: '127.0.0.1' });
  a.onSessionStart({ target: 'app', clientUser: 'x' });
  for (const text of statements) {
    clock += 1000;
    const q = a.onQuery({ text, protocol: 'simple' });
    a.onColumns!(q, [{ name: 'n', typeOid: 23 }]);
    a.onRow!(q, ['1']);
    a.onResult({ queryId: q, status: 'ok', commands: ['SELECT 1'], rows: 1, durationMs: 0.5 });
  }
  clock += 1000;
  a.onSessionEnd({ status: 'ok', bytesFromClient: 1, bytesToClient: 2 });
  await audit.writer.flush();
  return id;
}

beforeAll(async () => {
  store = openSqliteStore(join(dir, 'trail.db'));
  audit = await startAudit({ store, settings: settings(), log, now });
  key = createPublicKey(audit.signer.publicKeyPem);
  await session(ALICE, ['select 1', 'select 2', 'select 3']);
  await session(BOB, ['select 4']);
  await session(ALICE, ['select 5', 'select 6']);
  await audit.checkpoint();
  // one still open
  const open = audit.openSession({ id: 's_open', connection: 'pg', protocol: 'postgres', identity: BOB, origin: 'exec', clientAddress: '10.0.0.1' });
  open.onSessionStart({ target: 'app', clientUser: 'x' });
  open.onQuery({ text: 'select pg_sleep(100)', protocol: 'simple' });
  await audit.writer.flush();
});
afterAll(async () => {
  await audit?.close();
  await store?.close();
});

const lines = async (scope: Parameters<AuditService['exportTrail']>[0] = { kind: 'all' }) => audit.exportTrail(scope);
const text = (l: string[]) => l.join('\n') + '\n';
const edit = (l: string[], i: number, f: (o: Record<string, unknown>) => void) => {
  const out = [...l];
  const o = JSON.parse(out[i] as string) as Record<string, unknown>;
  f(o);
  out[i] = JSON.stringify(o);
  return out;
};
const firstProblem = (l: string[], k: KeyObject = key) => {
  const v = verifyTrail(text(l), k);
  expect(v.ok).toBe(false);
  return v.problems[0]!;
};
const eventLine = (l: string[], session: string, seq: number) => l.findIndex((x) => x.includes(`"session":"${session}","seq":${seq},`));

describe('audit export and offline verification', () => {
  it('creates the signing key 0600 and publishes its public half', () => {
    expect(statSync(join(dir, 'audit-ed25519.pem')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'audit-ed25519.pem.pub'), 'utf8')).toBe(audit.signer.publicKeyPem);
  });

  it('a whole export verifies: sealed sessions, an open one, checkpoints, the signed end line', async () => {
    const l = await lines();
    const v = verifyTrail(text(l), key);
    expect(v.problems).toEqual([]);
    expect(v.ok).toBe(true);
    expect(v.summary).toMatchObject({ sessions: 4, sealed: 3, open: 1, ledger: { from: 1, to: 3 }, purged: 0 });
    expect(v.summary.checkpoints).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(l[0]!)).toMatchObject({ type: 'header', format: 'sluice-audit/1', scope: { kind: 'all' }, key: audit.signer.keyId });
    expect(JSON.parse(l.at(-1)!)).toMatchObject({ type: 'end', ledgerSeq: 3, sessions: expect.arrayContaining([{ id: 's_open', events: 2, last: expect.any(String) }]) });
  });

  it('partial exports verify: one session, and sessions since a time', async () => {
    for (const scope of [{ kind: 'session', session: ids[1]! }, { kind: 'since', since: new Date(Date.parse('2026-11-01T10:00:05.000Z')).toISOString() }] as const) {
      const v = verifyTrail(text(await lines(scope)), key);
      expect(v.problems).toEqual([]);
    }
    const one = verifyTrail(text(await lines({ kind: 'session', session: ids[1]! })), key);
    expect(one.summary.sessions).toBe(1);
    expect(one.summary.ledger).toEqual({ from: 2, to: 3 });
  });

  it('an edited payload is named with its session and event', async () => {
    const l = await lines();
    const i = eventLine(l, ids[0]!, 4);
    const p = firstProblem(edit(l, i, (o) => ((o.data as Record<string, unknown>).text = 'select 2 -- harmless')));
    expect(p.line).toBe(i + 1);
    expect(p.message).toBe(`session ${ids[0]} event #4 (query): its content does not match its hash: it was changed after it was recorded`);
  });

  it('a deleted event is named', async () => {
    const l = await lines();
    const i = eventLine(l, ids[0]!, 3);
    const p = firstProblem(l.filter((_, k) => k !== i));
    expect(p.message).toBe(`session ${ids[0]}: event #3 is missing (the export goes from #2 to #4)`);
  });

  it('two reordered events are named', async () => {
    const l = await lines();
    const i = eventLine(l, ids[0]!, 4);
    const swapped = [...l];
    [swapped[i], swapped[i + 1]] = [swapped[i + 1]!, swapped[i]!];
    expect(firstProblem(swapped).message).toBe(`session ${ids[0]}: events are out of order: #5 (line ${i + 1}) comes before #4 (line ${i + 2})`);
  });

  it('a deleted session is named, whether its events or also its place in the end line are gone', async () => {
    const l = await lines();
    const without = l.filter((x) => !x.includes(`"type":"event","session":"${ids[1]}"`));
    expect(firstProblem(without).message).toMatch(new RegExp(`^session ${ids[1]} was sealed in ledger #2 \\(\\d+ events\\) but its events are not in the export: the session was deleted$`));
    const endless = edit(without, without.length - 1, (o) => (o.sessions = (o.sessions as { id: string }[]).filter((s) => s.id !== ids[1])));
    const v = verifyTrail(text(endless), key);
    expect(v.problems.map((p) => p.message)).toEqual(expect.arrayContaining([expect.stringContaining(`session ${ids[1]} was sealed in ledger #2`), expect.stringContaining("the end line's signature does not verify")]));
  });

  it('a truncated tail is named', async () => {
    const l = await lines();
    expect(firstProblem(l.slice(0, -1)).message).toMatch(/^the export has no signed end line: it was truncated after line \d+ \(a checkpoint line\)$/);
    const cut = l.slice(0, eventLine(l, 's_open', 2));
    expect(firstProblem(cut).message).toMatch(/no signed end line: it was truncated after line \d+ \(an event line\)/);
  });

  it('the wrong key fails every signature and says which key signed', async () => {
    const other = generateKeyPairSync('ed25519').publicKey;
    const p = firstProblem(await lines(), other);
    expect(p.message).toMatch(new RegExp(`^checkpoint of ledger #\\d+ \\(.+\\): the signature does not verify with the given key \\(signed by key ${audit.signer.keyId}, not the given key [0-9a-f]{16}\\)$`));
    const v = verifyTrail(text(await lines()), other);
    expect(v.problems.at(-1)?.message).toMatch(/end line's signature does not verify/);
  });

  it('a rewritten ledger, a forged checkpoint and an added session are each named', async () => {
    const l = await lines();
    const li = l.findIndex((x) => x.includes('"type":"ledger"'));
    expect(firstProblem(edit(l, li, (o) => (o.events = 99))).message).toMatch(/^ledger entry #1 \(seal of session s_v1\): its content does not match its hash/);
    const ci = l.findIndex((x) => x.includes('"type":"checkpoint"'));
    expect(firstProblem(edit(l, ci, (o) => (o.ledgerHash = 'f'.repeat(64)))).message).toMatch(/signature does not verify/);
    const added = [...l];
    added.splice(1, 0, JSON.stringify({ ...JSON.parse(l[1]!), session: 's_fake' }));
    expect(verifyTrail(text(added), key).problems.map((p) => p.message)).toEqual(expect.arrayContaining([expect.stringMatching(/session s_fake event #1 .*content does not match|session s_fake is in the export but not in the signed end line/)]));
  });

  it('events deleted inside the store are caught in the next export', async () => {
    const raw = new Database(join(dir, 'trail.db'));
    // The SQLite store keeps a session's events of one commit as lines of one row (a run).
    const run = (raw.prepare('SELECT id, lines FROM audit_event_runs WHERE session_id = ?').all(ids[2]) as { id: number; lines: string }[]).find((r) => r.lines.split('\n').some((l) => l.startsWith('3\t')))!;
    try {
      raw.prepare('UPDATE audit_event_runs SET lines = ? WHERE id = ?').run(run.lines.split('\n').filter((l) => !l.startsWith('3\t')).join('\n'), run.id);
      const p = firstProblem(await lines());
      expect(p.message).toBe(`session ${ids[2]}: event #3 is missing (the export goes from #2 to #4)`);
    } finally {
      raw.prepare('UPDATE audit_event_runs SET lines = ? WHERE id = ?').run(run.lines, run.id);
      raw.close();
    }
    expect(verifyTrail(text(await lines()), key).ok).toBe(true);
  });
});

describe('retention', () => {
  it("removes old sessions' events, keeps their seals, and the rest still verifies", async () => {
    const rdir = mkdtempSync(join(tmpdir(), 'sluice-retention-'));
    let t = Date.parse('2026-10-01T00:00:00.000Z');
    const rstore = openSqliteStore(join(rdir, 'r.db'));
    const a = await startAudit({ store: rstore, settings: settings({ keyFile: join(rdir, 'k.pem'), journalDir: rdir, retainDays: 30 }), log, now: () => new Date(t) });
    try {
      const run = async (id: string) => {
        const s = a.openSession({ id, connection: 'pg', protocol: 'postgres', identity: ALICE, origin: 'connect', clientAddress: '127.0.0.1' });
        s.onSessionStart({ target: 'app', clientUser: 'x' });
        s.onResult({ queryId: s.onQuery({ text: `select '${id}'`, protocol: 'simple' }), status: 'ok', durationMs: 1 });
        s.onSessionEnd({ status: 'ok', bytesFromClient: 0, bytesToClient: 0 });
        await a.writer.flush();
      };
      await run('s_old');
      t += 40 * 86_400_000;
      await run('s_new');
      expect(await a.applyRetention()).toBe(1);
      expect(await rstore.listEvents('s_old')).toEqual([]);
      expect((await rstore.getSession('s_old'))?.purgedAt).toBeInstanceOf(Date);
      const l = await a.exportTrail({ kind: 'all' });
      const v = verifyTrail(text(l), createPublicKey(a.signer.publicKeyPem));
      expect(v.problems).toEqual([]);
      expect(v.summary).toMatchObject({ sessions: 1, purged: 1, ledger: { from: 1, to: 3 } });
      expect(l.some((x) => x.includes('"kind":"purge"') && x.includes('s_old'))).toBe(true);
      // Removing the purge record to hide the removal breaks the ledger.
      const hidden = l.filter((x) => !x.includes('"kind":"purge"'));
      expect(verifyTrail(text(hidden), createPublicKey(a.signer.publicKeyPem)).ok).toBe(false);
    } finally {
      await a.close();
      await rstore.close();
    }
  });
});

describe('anchors: a later export must extend an earlier one', () => {
  it('passes when the ledger still contains the earlier head, and names a rewritten history', async () => {
    const earlier = await lines();
    const endOf = (l: string[]) => JSON.parse(l.at(-1)!) as { ledgerSeq: number; ledgerHash: string };
    const anchor = { ...endOf(earlier), name: 'earlier.jsonl' };
    await session(BOB, ['select 7']);
    const later = await lines();
    expect(verifyTrail(text(later), key, [anchor]).problems).toEqual([]);
    // Whoever holds the key and the store rebuilds a history without some session: the new trail
    // verifies on its own, but not against what was exported before.
    const forgedStore = openSqliteStore(':memory:');
    // The key holder starts a gateway on the forged store with a state directory of their own.
    const forgerDir = mkdtempSync(join(tmpdir(), 'sluice-forger-'));
    const forger = await startAudit({ store: forgedStore, settings: settings({ journalDir: forgerDir, lastCheckpointFile: join(forgerDir, 'last.json') }), log, now });
    try {
      for (let i = 0; i < 4; i++) {
        const s = forger.openSession({ id: `s_f${i}`, connection: 'pg', protocol: 'postgres', identity: ALICE, origin: 'connect', clientAddress: '127.0.0.1' });
        s.onSessionStart({ target: 'app', clientUser: 'x' });
        s.onSessionEnd({ status: 'ok', bytesFromClient: 0, bytesToClient: 0 });
      }
      await forger.writer.flush();
      const forged = await forger.exportTrail({ kind: 'all' });
      expect(verifyTrail(text(forged), key).ok).toBe(true);
      expect(verifyTrail(text(forged), key, [anchor]).problems.map((p) => p.message)).toEqual([`the ledger differs from earlier.jsonl at #${anchor.ledgerSeq}: history was rewritten since that export`]);
      const shorter = { ...anchor, ledgerSeq: 99 };
      expect(verifyTrail(text(later), key, [shorter]).problems[0]?.message).toMatch(/the ledger ends at #\d+, before earlier.jsonl's #99: ledger entries were removed since/);
    } finally {
      await forger.close();
      await forgedStore.close();
    }
  });
});

describe('streamed export', () => {
  it('reads a session longer than one page in order, and the export verifies', async () => {
    const sdir = mkdtempSync(join(tmpdir(), 'sluice-stream-'));
    const sstore = openSqliteStore(join(sdir, 's.db'));
    const a = await startAudit({ store: sstore, settings: settings({ keyFile: join(sdir, 'k.pem'), journalDir: sdir }), log, now });
    try {
      const s = a.openSession({ id: 's_long', connection: 'pg', protocol: 'postgres', identity: ALICE, origin: 'connect', clientAddress: '127.0.0.1' });
      s.onSessionStart({ target: 'app', clientUser: 'x' });
      for (let i = 0; i < 1200; i++) s.onResult({ queryId: s.onQuery({ text: `select ${i}`, protocol: 'simple' }), status: 'ok', durationMs: 0 });
      s.onSessionEnd({ status: 'ok', bytesFromClient: 0, bytesToClient: 0 });
      const streamed: string[] = [];
      for await (const line of a.streamTrail({ kind: 'all' })) streamed.push(line);
      const events = streamed.filter((l) => l.includes('"type":"event"')).map((l) => (JSON.parse(l) as { seq: number }).seq);
      expect(events).toEqual(Array.from({ length: 2402 }, (_, i) => i + 1));
      const v = verifyTrail(text(streamed), createPublicKey(a.signer.publicKeyPem));
      expect(v.problems).toEqual([]);
      expect(v.summary).toMatchObject({ sessions: 1, sealed: 1 });
    } finally {
      await a.close();
      await sstore.close();
    }
  });
});
