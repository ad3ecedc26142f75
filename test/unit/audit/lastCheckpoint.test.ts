// The last signed checkpoint kept outside the store (gateway/audit/lastCheckpoint.ts): a real audit
// service over a SQLite file, then what someone with write access to that file but not the key can
// do — rewrite and rehash, truncate, delete checkpoints, restore an older copy — each refused at the
// next start or the next signature; and the honest paths: restarts, the crash between signing and
// storing a checkpoint, an upgrade without the file. Then exports: they end with a checkpoint of
// their head, sign the checkpoint interval, and one stripped of its checkpoints does not verify.
import { createPublicKey } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOrCreateAuditKey } from '../../../gateway/audit/keys.js';
import { acceptStore, AuditHistoryError } from '../../../gateway/audit/lastCheckpoint.js';
import { startAudit, type AuditService, type AuditSettings } from '../../../gateway/audit/service.js';
import type { Identity } from '../../../gateway/model.js';
import { AuditUnavailableError } from '../../../gateway/audit/contract.js';
import { openSqliteStore } from '../../../gateway/store/sqlite.js';
import type { Store } from '../../../gateway/store/types.js';
import { exportEndMessage, type ExportEndBody } from '../../../src/api/auditTrail.js';
import { verifyTrail } from '../../../src/commands/audit/trailVerifier.js';
import { readWitness } from '../../../src/commands/audit/verify.js';
import { deleteCheckpoints, rewriteHistory, truncateHistory } from '../../support/auditTamper.js';

const log = pino({ level: 'silent' });
const ALICE: Identity = { subject: 'user:alice', name: 'alice@example.com', email: 'alice@example.com', groups: ['eng'], kind: 'human' };
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let clock = Date.parse('2026-12-01T10:00:00.000Z');
const now = () => new Date(clock);

interface Gateway {
  dir: string;
  db: string;
  lastFile: string;
  settings: AuditSettings;
}

function newGateway(): Gateway {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-last-cp-'));
  dirs.push(dir);
  const settings: AuditSettings = { durability: 'process', maxRows: 10, maxBytes: 4096, readers: [], keyFile: join(dir, 'audit-ed25519.pem'), journalDir: dir, checkpoint: { sessions: 1000, seconds: 60 } };
  return { dir, db: join(dir, 'trail.db'), lastFile: join(dir, 'audit-last-checkpoint.json'), settings };
}

/** Starts the audit on the gateway's store; `wrap` may replace store methods. */
async function start(g: Gateway, wrap: (s: Store) => Store = (s) => s): Promise<{ audit: AuditService; store: Store; stop: () => Promise<void> }> {
  const store = openSqliteStore(g.db);
  let audit: AuditService;
  try {
    audit = await startAudit({ store: wrap(store), settings: g.settings, log, now });
  } catch (err) {
    await store.close();
    throw err;
  }
  return {
    audit,
    store,
    stop: async () => {
      await audit.close();
      await store.close();
    },
  };
}

async function session(audit: AuditService, id: string, text: string): Promise<void> {
  const a = audit.openSession({ id, connection: 'pg', protocol: 'postgres', identity: ALICE, origin: 'connect', clientAddress: '127.0.0.1' });
  a.onSessionStart({ target: 'app', clientUser: 'x' });
  clock += 1000;
  a.onResult({ queryId: a.onQuery({ text, protocol: 'simple' }), status: 'ok', durationMs: 1 });
  clock += 1000;
  a.onSessionEnd({ status: 'ok', bytesFromClient: 0, bytesToClient: 0 });
  await audit.writer.flush();
}

/** A gateway that recorded three sessions, signed a checkpoint (ledger #3) and stopped cleanly. */
async function recorded(): Promise<Gateway> {
  const g = newGateway();
  const gw = await start(g);
  for (const [i, text] of ['select 1', "update accounts set balance = 0 where id = 7 -- evidence", 'select 3'].entries()) await session(gw.audit, `s_${i + 1}`, text);
  await gw.stop();
  return g;
}

const fileOf = (g: Gateway) => JSON.parse(readFileSync(g.lastFile, 'utf8')) as { checkpoint: { ledgerSeq: number; ledgerHash: string } | null; pending?: unknown };

describe('the last signed checkpoint, outside the store', () => {
  it('is written beside the key on first start and moves with each checkpoint; a clean restart starts', async () => {
    const g = newGateway();
    const gw = await start(g);
    expect(fileOf(g)).toEqual({ format: 'sluice-audit/1 last-checkpoint', checkpoint: null, sig: expect.any(String) });
    await session(gw.audit, 's_1', 'select 1');
    await gw.audit.checkpoint();
    expect(fileOf(g).checkpoint).toMatchObject({ ledgerSeq: 1, ledgerHash: await gw.store.ledgerHashAt(1) });
    await gw.stop();
    const again = await start(g);
    expect(again.audit.healthy).toBe(true);
    await again.stop();
  });

  it('refuses to start on a history rewritten and rehashed without the key', async () => {
    const g = await recorded();
    const r = rewriteHistory(g.db, 'balance = 0 where id = 7 -- evidence', 'balance = balance where id = 7');
    expect(r).toMatchObject({ sessions: ['s_2'], checkpointsDropped: 1 });
    const err = await start(g).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuditHistoryError);
    expect((err as Error).message).toMatch(new RegExp(`^${g.lastFile}: this gateway last signed a checkpoint of ledger #3 \\(hash [0-9a-f]{12}…, signed .+\\), but the store's ledger has hash [0-9a-f]{12}… at #3: the ledger was rewritten`));
  });

  it('refuses to start on a truncated history', async () => {
    const g = await recorded();
    truncateHistory(g.db, 1);
    await expect(start(g)).rejects.toThrow(/this gateway last signed a checkpoint of ledger #3 .* but the store's ledger ends at #2: ledger entries were removed \(truncated, or the store was restored from an older backup\)/);
  });

  it('refuses to start on a store restored from an older copy', async () => {
    const g = await recorded();
    copyFileSync(g.db, join(g.dir, 'backup.db'));
    const gw = await start(g);
    await session(gw.audit, 's_4', 'delete from audit_me');
    await gw.stop();
    copyFileSync(join(g.dir, 'backup.db'), g.db);
    await expect(start(g)).rejects.toThrow(/last signed a checkpoint of ledger #4 .* the store's ledger ends at #3/);
  });

  it('refuses to start when the last checkpoint was deleted, even with the ledger untouched', async () => {
    const g = await recorded();
    expect(deleteCheckpoints(g.db)).toBe(1);
    await expect(start(g)).rejects.toThrow(`${g.lastFile}: the last checkpoint this gateway signed, ledger #3`);
    await expect(start(g)).rejects.toThrow(/is not among the store's checkpoints: checkpoints were deleted from the store$/);
  });

  it('a running gateway refuses to sign over a history changed under it: no checkpoint, no export, new sessions refused', async () => {
    const g = await recorded();
    const gw = await start(g);
    try {
      rewriteHistory(g.db, 'select 3', 'select 33');
      await session(gw.audit, 's_4', 'select 4');
      await gw.audit.checkpoint();
      expect(gw.audit.healthy).toBe(false);
      expect(await gw.store.lastCheckpoint()).toBeUndefined();
      const err = await gw.audit.exportTrail({ kind: 'all' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuditUnavailableError);
      expect((err as Error).message).toMatch(/^the gateway does not sign this export: .*last signed a checkpoint of ledger #3 .* the ledger was rewritten/);
    } finally {
      await gw.stop();
    }
  });

  it('recovers the crash between signing a checkpoint and storing it: the next start stores it from the file', async () => {
    const g = newGateway();
    let crash = true;
    const gw = await start(g, (s) => ({
      ...s,
      addCheckpoint: async (c) => {
        if (crash) throw new Error('killed before the store had it');
        return s.addCheckpoint(c);
      },
    }));
    await session(gw.audit, 's_1', 'select 1');
    await gw.audit.checkpoint();
    expect(fileOf(g)).toMatchObject({ checkpoint: null, pending: { ledgerSeq: 1 } });
    expect(await gw.store.lastCheckpoint()).toBeUndefined();
    await gw.stop(); // its last checkpoint on the way out dies the same way
    expect(fileOf(g)).toMatchObject({ checkpoint: null, pending: { ledgerSeq: 1 } });
    crash = false;
    const again = await start(g);
    try {
      expect(await again.store.hasCheckpoint(1, (await again.store.ledgerHashAt(1)) as string)).toBe(true);
      expect(fileOf(g)).toEqual({ format: 'sluice-audit/1 last-checkpoint', checkpoint: expect.objectContaining({ ledgerSeq: 1 }), sig: expect.any(String) });
    } finally {
      await again.stop();
    }
  });

  it('without the file a store with history is refused until the operator accepts it', async () => {
    const g = await recorded();
    rmSync(g.lastFile);
    await expect(start(g)).rejects.toThrow(`${g.lastFile} does not exist, but the store's ledger holds entries #1–#3 (its last checkpoint: ledger #3, `);
    await expect(start(g)).rejects.toThrow(/To accept the store as it is, run `sluice-gateway audit accept-store` with this configuration and start again/);
    const gw = await start(g).catch(() => undefined);
    expect(gw).toBeUndefined();
    await acceptStore(g.lastFile, loadOrCreateAuditKey(g.settings.keyFile, log));
    const accepted = await start(g);
    await session(accepted.audit, 's_4', 'select 4');
    await accepted.audit.checkpoint();
    await accepted.stop();
    expect(fileOf(g).checkpoint).toMatchObject({ ledgerSeq: 4 });
  });

  it('a file edited or replaced (unsigned, or naming an older checkpoint copied from the store) stops the start', async () => {
    const g = await recorded();
    const gw = await start(g);
    await session(gw.audit, 's_4', 'select 4');
    await gw.stop();
    const store = openSqliteStore(g.db);
    const [first] = (await store.snapshot({ kind: 'all' })).checkpoints;
    await store.close();
    expect(first?.ledgerSeq).toBe(3); // older than the file's #4
    const older = { ledgerSeq: first!.ledgerSeq, ledgerHash: first!.ledgerHash, at: first!.at.toISOString(), key: first!.keyId, sig: first!.signature };
    const original = readFileSync(g.lastFile, 'utf8');
    for (const forged of [
      { format: 'sluice-audit/1 last-checkpoint', checkpoint: null },
      { format: 'sluice-audit/1 last-checkpoint', checkpoint: older, sig: (JSON.parse(original) as { sig: string }).sig },
    ]) {
      writeFileSync(g.lastFile, JSON.stringify(forged));
      await expect(start(g)).rejects.toThrow(`${g.lastFile} was not written by this gateway (it is not signed with the audit key`);
    }
    writeFileSync(g.lastFile, '{"format":"sluice-audit/1 last-checkpoint","checkpoint":{"ledgerSeq":"three"}}');
    await expect(start(g)).rejects.toThrow(`${g.lastFile} is not the gateway's record of its last signed checkpoint`);
    writeFileSync(g.lastFile, original);
    await (await start(g)).stop();
  });
});

describe('exports end with a checkpoint and sign the interval', () => {
  it('an honest export ends with a checkpoint of its head; one stripped of its checkpoints or without the interval does not verify', async () => {
    const g = newGateway();
    const gw = await start(g);
    try {
      await session(gw.audit, 's_1', 'select 1');
      await gw.audit.checkpoint();
      clock += 5 * 60_000; // five checkpoint intervals with nothing sealed
      await session(gw.audit, 's_2', 'select 2');
      const lines = await gw.audit.exportTrail({ kind: 'all' });
      const key = createPublicKey(gw.audit.signer.publicKeyPem);
      const text = (l: string[]) => `${l.join('\n')}\n`;
      expect(verifyTrail(text(lines), key).problems).toEqual([]);
      const end = JSON.parse(lines.at(-1) as string) as ExportEndBody & { type: 'end'; sig: string };
      expect(end.checkpointSeconds).toBe(60);
      expect(JSON.parse(lines.at(-2) as string)).toMatchObject({ type: 'checkpoint', ledgerSeq: end.ledgerSeq, ledgerHash: end.ledgerHash, at: end.at });
      expect(await gw.store.hasCheckpoint(end.ledgerSeq, end.ledgerHash)).toBe(true);

      const stripped = lines.filter((l, i) => i !== lines.length - 2);
      expect(verifyTrail(text(stripped), key).problems.map((p) => p.message)).toEqual([
        expect.stringMatching(/^the trail goes on 30\d s after the export's last signed checkpoint \(ledger #1, .+\), longer than the gateway's checkpoint interval of 60 s: checkpoints were removed/),
      ]);
      const none = lines.filter((l) => !l.includes('"type":"checkpoint"'));
      expect(verifyTrail(text(none), key).problems[0]?.message).toMatch(/^the export has no signed checkpoint over its ledger/);

      // The same export as a gateway that did not sign its interval would have made it.
      const { type: _t, sig: _s, checkpointSeconds: _c, ...body } = end;
      const old = [...lines.slice(0, -1), JSON.stringify({ type: 'end', ...body, sig: gw.audit.signer.sign(exportEndMessage(body)) })];
      expect(verifyTrail(text(old), key).problems.map((p) => p.message)).toEqual([expect.stringMatching(/^the signed end line does not say the gateway’s checkpoint interval/)]);
    } finally {
      await gw.stop();
    }
  });
});

describe('a witness: every checkpoint also appended to a file kept elsewhere', () => {
  it('the gateway appends each checkpoint; verify --witness passes an honest export and fails one behind it or one rewritten with the key', async () => {
    const g = newGateway();
    const witness = join(g.dir, 'elsewhere', 'witness.jsonl');
    mkdirSync(join(g.dir, 'elsewhere'));
    g.settings = { ...g.settings, witnessFile: witness, checkpoint: { sessions: 1000, seconds: 3600 } };
    const gw = await start(g);
    try {
      const key = createPublicKey(gw.audit.signer.publicKeyPem);
      const text = (l: string[]) => `${l.join('\n')}\n`;
      await session(gw.audit, 's_1', 'select 1');
      await gw.audit.checkpoint();
      const earlier = await gw.audit.exportTrail({ kind: 'all' });
      await session(gw.audit, 's_2', 'select 2');
      await gw.audit.checkpoint();
      const witnessed = readFileSync(witness, 'utf8').trimEnd().split('\n');
      expect(witnessed.map((l) => (JSON.parse(l) as { ledgerSeq: number }).ledgerSeq)).toEqual([1, 2]);
      const anchors = await readWitness(witness, key);

      const current = verifyTrail(text(await gw.audit.exportTrail({ kind: 'all' })), key, anchors);
      expect(current.problems).toEqual([]);
      expect(current.summary.witnessed).toBe(2);
      expect(verifyTrail(text(earlier), key, anchors).problems.map((p) => p.message)).toEqual([
        `the export ends at ledger #1, behind the witness's checkpoint (${witness} line 2) of #2: ledger entries were removed, or the export is older than the witness`,
      ]);

      // Whoever holds the key and the store rebuilds the history elsewhere: it verifies on its own, not against the witness.
      const forgerDir = mkdtempSync(join(tmpdir(), 'sluice-forger-'));
      dirs.push(forgerDir);
      const forgedStore = openSqliteStore(':memory:');
      const forger = await startAudit({ store: forgedStore, settings: { ...g.settings, journalDir: forgerDir, lastCheckpointFile: join(forgerDir, 'last.json'), witnessFile: join(forgerDir, 'w.jsonl') }, log, now });
      try {
        await session(forger, 's_1', 'select 1');
        await session(forger, 's_2', 'select 2 -- not what happened');
        const forged = await forger.exportTrail({ kind: 'all' });
        expect(verifyTrail(text(forged), key).ok).toBe(true);
        // Its seals were made at other times, so both witnessed entries differ.
        expect(verifyTrail(text(forged), key, anchors).problems.map((p) => p.message)).toEqual(
          [1, 2].map((n) => `the ledger differs at #${n} from the witness's checkpoint (${witness} line ${n}): history was rewritten after it was signed`),
        );
      } finally {
        await forger.close();
        await forgedStore.close();
      }

      writeFileSync(witness, `${witnessed[0]}\n${witnessed[1]!.replace(/"ledgerSeq":2/, '"ledgerSeq":3')}\n`);
      await expect(readWitness(witness, key)).rejects.toThrow(`the witness ${witness} line 2 is not a checkpoint signed with the given key`);
    } finally {
      await gw.stop();
    }
  });

  it('a session export of a session still open verifies and ends with a checkpoint of the head', async () => {
    const g = newGateway();
    const gw = await start(g);
    try {
      await session(gw.audit, 's_1', 'select 1');
      const open = gw.audit.openSession({ id: 's_open', connection: 'pg', protocol: 'postgres', identity: ALICE, origin: 'connect', clientAddress: '127.0.0.1' });
      open.onSessionStart({ target: 'app', clientUser: 'x' });
      await gw.audit.writer.flush();
      const lines = await gw.audit.exportTrail({ kind: 'session', session: 's_open' });
      expect(verifyTrail(`${lines.join('\n')}\n`, createPublicKey(gw.audit.signer.publicKeyPem)).problems).toEqual([]);
      expect(JSON.parse(lines.at(-2) as string)).toMatchObject({ type: 'checkpoint', ledgerSeq: 1 });
    } finally {
      await gw.stop();
    }
  });
});
