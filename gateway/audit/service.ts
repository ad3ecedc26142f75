// The gateway's audit trail as one service: the signing key, the writer, session recorders,
// periodic signed checkpoints, retention, crash recovery of sessions a dead gateway left open,
// and exports. server.ts starts it after the store and closes it before the store.
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { canonicalJson, chainHashOfText, type ExportScope } from '../../src/api/auditTrail.js';
import { AuditUnavailableError } from './contract.js';
import { createSessionAudit, type GatewaySessionAudit, type SessionMeta } from '../sessionAudit.js';
import type { StoreSettings } from '../store/open.js';
import type { Store } from '../store/types.js';
import { exportLines } from './export.js';
import { loadOrCreateAuditKey, type AuditSigner } from './keys.js';
import { AuditHistoryError, LastCheckpoint, lastCheckpointFileOf } from './lastCheckpoint.js';
import { purgeEntry, sealOp, signCheckpoint } from './ledger.js';
import { EventChains, storeLookup } from './chain.js';
import { commitStaged, inlineIngester, workerIngester } from './ingest.js';
import { AuditJournal } from './journal.js';
import { AuditWriter } from './writer.js';

export interface AuditSettings {
  readonly durability: 'process' | 'fsync';
  readonly maxRows: number;
  readonly maxBytes: number;
  /** Events of sessions that ended longer ago are deleted (their seals stay); undefined = keep all. */
  readonly retainDays?: number;
  /** Groups whose members may read every session; others read their own. */
  readonly readers: readonly string[];
  /** Where the write-ahead journal lives (the state directory); one gateway process per directory. */
  readonly journalDir: string;
  /** Path of the Ed25519 signing key (created 0600 on first start). */
  readonly keyFile: string;
  /** A signed checkpoint after this many sealed sessions, or this many seconds, whichever first. */
  readonly checkpoint: { readonly sessions: number; readonly seconds: number };
  /** Where the last signed checkpoint is kept outside the store; default: `audit-last-checkpoint.json` beside the key. */
  readonly lastCheckpointFile?: string;
  /** Every checkpoint signed is also appended here (a witness kept elsewhere than the store). */
  readonly witnessFile?: string;
}

export interface AuditService {
  readonly instance: string;
  readonly signer: AuditSigner;
  readonly settings: AuditSettings;
  /** False while the store cannot be written: new sessions are refused. */
  readonly healthy: boolean;
  readonly writer: AuditWriter;
  openSession(meta: SessionMeta): GatewaySessionAudit;
  /** The export as JSON Lines (each string one line without its newline). */
  exportTrail(scope: ExportScope, gateway?: string): Promise<string[]>;
  /** The same lines, read from the store as they are consumed (for the HTTP export: bounded memory). */
  streamTrail(scope: ExportScope, gateway?: string): AsyncGenerator<string>;
  /** Signs the ledger's head now (if it moved since the last checkpoint). */
  checkpoint(): Promise<void>;
  /** Applies retention now; returns how many sessions' events were removed. */
  applyRetention(): Promise<number>;
  /** Flushes, writes a last checkpoint and stops the timers. The store stays open. */
  close(): Promise<void>;
}

const HEARTBEAT_MS = 10_000;
/** A PostgreSQL replica silent this long is presumed dead and its open sessions are closed. */
const REPLICA_TIMEOUT_MS = 60_000;
const RETENTION_EVERY_MS = 3_600_000;

export interface StartAuditOptions {
  store: Store;
  /** How to open the store again from a worker thread: given, journaled ops are ingested there (ingest.ts); absent, on this thread. */
  ingestThread?: StoreSettings;
  settings: AuditSettings;
  log: Logger;
  now?: () => Date;
}

export async function startAudit({ store, ingestThread, settings, log, now: clock }: StartAuditOptions): Promise<AuditService> {
  const now = clock ?? (() => new Date());
  const instance = `g_${randomBytes(6).toString('base64url')}`;
  // A key is made only for a store that holds no signed history: one made for a store with
  // history would sign checkpoints over entries the old key vouched for, and verify none of them.
  if (!existsSync(settings.keyFile)) {
    const head = await store.ledgerHead();
    if (head.seq > 0) {
      throw new AuditHistoryError(
        `the audit key ${settings.keyFile} does not exist, but the store's ledger holds entries #1–#${head.seq}, signed with the key this gateway had: restore the key file (a new key would not verify what was signed). Replicas sharing a store must share the key`,
      );
    }
  }
  const signer = loadOrCreateAuditKey(settings.keyFile, log);
  await store.heartbeat(instance, now());
  // Before the journal's replay appends to it: a store that lost or changed what this gateway
  // signed is refused as it is found.
  const lastSigned = await LastCheckpoint.open({
    file: lastCheckpointFileOf(settings),
    ...(settings.witnessFile !== undefined ? { witness: settings.witnessFile } : {}),
    store,
    signer,
    log,
  });
  // Before anything reads the trail: what a stopped gateway journaled but did not ingest.
  const journal = await AuditJournal.open({ dir: settings.journalDir, durability: settings.durability }, async (ops) => {
    for (const p of await commitStaged(store, new EventChains(storeLookup(store)), ops, true, now)) {
      log.error({ session: p.session, dropped: p.dropped }, 'audit events not stored: %s', p.message);
    }
    log.warn({ ops: ops.length }, 'replayed audit events a stopped gateway had journaled but not yet stored');
  });
  const ingester = ingestThread !== undefined ? workerIngester({ store: ingestThread, durability: settings.durability }) : inlineIngester(store, now);
  const writer = new AuditWriter({ store, journal, ingester, log: log.child({ component: 'audit' }), instance, now });

  let sealsSinceCheckpoint = 0;
  let lastCheckpointAt = now().getTime();
  let lastCheckpointSeq = (await store.lastCheckpoint())?.ledgerSeq ?? 0;
  let checkpointing: Promise<void> | undefined;
  /** Set once the store no longer holds what this gateway signed: nothing is signed after that, new sessions are refused. */
  let historyProblem: string | undefined;
  /** Checkpoints are signed one at a time, so the file's record only moves forward. */
  let signing: Promise<unknown> = Promise.resolve();
  const serially = <T>(f: () => Promise<T>): Promise<T> => {
    const next = signing.then(f, f);
    signing = next.catch(() => undefined);
    return next;
  };
  const historyFailed = (err: AuditHistoryError) => {
    if (historyProblem === undefined) log.error({ code: err.code }, 'the audit store does not hold what this gateway signed; no more checkpoints or exports are signed and new sessions are refused: %s', err.message);
    historyProblem = err.message;
  };

  /** Signs the ledger's head if it moved; throws AuditHistoryError when the store lost what was signed before. */
  function signHead(): Promise<void> {
    if (checkpointing) return checkpointing;
    checkpointing = serially(async () => {
      try {
        await writer.flush();
        const head = await store.ledgerHead();
        sealsSinceCheckpoint = 0;
        lastCheckpointAt = now().getTime();
        if (historyProblem !== undefined) throw new AuditHistoryError(historyProblem);
        await lastSigned.assertInStore();
        if (head.seq === lastCheckpointSeq || head.seq === 0) return;
        await lastSigned.record(signCheckpoint(head, signer, now()));
        lastCheckpointSeq = head.seq;
      } finally {
        checkpointing = undefined;
      }
    });
    return checkpointing;
  }

  async function checkpoint(): Promise<void> {
    try {
      await signHead();
    } catch (err) {
      if (err instanceof AuditHistoryError) historyFailed(err);
      else log.error({ err }, 'cannot write an audit checkpoint');
    }
  }

  async function recoverOrphans(): Promise<void> {
    const staleBefore = new Date(now().getTime() - (store.kind === 'sqlite' ? 0 : REPLICA_TIMEOUT_MS));
    for (const o of await store.orphanedSessions(instance, staleBefore)) {
      const at = now();
      const seq = o.last.seq + 1;
      const message = 'the gateway stopped before the session ended; closed when the trail was next opened';
      const body = canonicalJson({ session: o.session.id, seq, kind: 'session.end', at: at.toISOString(), data: { status: 'error', message, recovered: true, queries: o.queries } });
      const hash = chainHashOfText(o.last.hash, body);
      try {
        await store.commit([
          { op: 'event', event: { session: o.session.id, seq, kind: 'session.end', at, body, hash } },
          { op: 'end', id: o.session.id, end: { endedAt: at, status: 'error', error: message, bytesFromClient: 0, bytesToClient: 0, queries: o.queries, blocked: o.blocked, reviewed: o.reviewed, events: seq } },
          sealOp({ id: o.session.id, startedAt: o.session.startedAt, events: seq, final: hash }, now),
        ]);
        sealsSinceCheckpoint++;
        log.warn({ session: o.session.id, events: seq }, 'closed a session left open by a gateway that stopped');
      } catch (err) {
        // Another replica may have closed it first (its end event took this seq).
        log.info({ err, session: o.session.id }, 'could not close an orphaned session');
      }
    }
  }

  /** Exports in progress: retention waits for its next round rather than delete what they are reading. */
  let exporting = 0;

  async function* streamTrail(scope: ExportScope, gateway?: string): AsyncGenerator<string> {
    exporting++;
    try {
      await writer.flush();
      // Journaled events that cannot reach the store would be missing from a signed export.
      if (!writer.healthy) throw new AuditUnavailableError('the audit store cannot be written right now, so an export would miss the latest events; try again when GET /healthz says ok');
      const snap = await exportSnapshot(scope);
      yield* exportLines(snap.snap, (id, after, upTo, limit) => store.eventsPage(id, after, upTo, limit), scope, signer, now(), { gateway, final: snap.final, checkpointSeconds: settings.checkpoint.seconds });
    } finally {
      exporting--;
    }
  }

  /**
   * The snapshot an export signs, after checking that it passes through the last checkpoint signed,
   * and the checkpoint it ends with: one of the snapshot's ledger head, signed now if none is stored
   * (and recorded like any other when it is newer than the last), so an honest export always ends
   * covered by a checkpoint and one cut short of it cannot pass (docs/audit.md).
   */
  async function exportSnapshot(scope: ExportScope) {
    try {
      await signHead();
      const snap = await store.snapshot(scope.kind === 'all' ? scope : scope.kind === 'since' ? { kind: 'since', since: new Date(scope.since) } : { kind: 'session', id: scope.session });
      lastSigned.assertInSnapshot(snap);
      const head = snap.head;
      let final = snap.checkpoints.find((c) => c.ledgerSeq === head.seq && c.ledgerHash === head.hash);
      if (final === undefined) {
        const signed = signCheckpoint(head, signer, now());
        await serially(async () => {
          if (head.seq <= lastSigned.seq) return;
          await lastSigned.assertInStore();
          await lastSigned.record(signed);
          lastCheckpointSeq = Math.max(lastCheckpointSeq, head.seq);
        });
        final = signed;
      }
      return { snap, final };
    } catch (err) {
      if (!(err instanceof AuditHistoryError)) throw err;
      historyFailed(err);
      throw new AuditUnavailableError(`the gateway does not sign this export: ${err.message}`);
    }
  }

  async function applyRetention(): Promise<number> {
    if (settings.retainDays === undefined) return 0;
    const postponed = () => {
      if (exporting === 0) return false;
      log.info({ exports: exporting }, 'retention postponed: an export is reading the trail');
      return true;
    };
    if (postponed()) return 0;
    const at = now();
    const cutoff = new Date(at.getTime() - settings.retainDays * 86_400_000);
    await writer.flush();
    if (postponed()) return 0;
    const removed = await store.purge(cutoff, purgeEntry(cutoff), at);
    if (removed.sessions.length > 0) {
      log.info({ sessions: removed.sessions.length, events: removed.events, before: cutoff.toISOString() }, 'retention removed old sessions\u2019 events (their seals stay in the ledger)');
      await checkpoint();
    }
    return removed.sessions.length;
  }

  await recoverOrphans();
  await applyRetention().catch((err: unknown) => log.error({ err }, 'retention failed'));
  // What the journal's replay and the recovery sealed is signed now, not an interval later: the
  // unsigned window after a crash closes at the start.
  await checkpoint();

  const timers = [
    setInterval(() => {
      const due = sealsSinceCheckpoint >= settings.checkpoint.sessions || now().getTime() - lastCheckpointAt >= settings.checkpoint.seconds * 1000;
      if (due && writer.healthy) void checkpoint();
    }, 1_000),
    setInterval(() => {
      void writer.heartbeat();
      if (store.kind === 'postgres' && writer.healthy) void recoverOrphans().catch((err: unknown) => log.error({ err }, 'orphan recovery failed'));
    }, HEARTBEAT_MS),
    setInterval(() => void applyRetention().catch((err: unknown) => log.error({ err }, 'retention failed')), RETENTION_EVERY_MS),
  ];
  for (const t of timers) t.unref();

  const sessionLog = log.child({ component: 'audit' });
  return {
    instance,
    signer,
    settings,
    writer,
    get healthy() {
      return writer.healthy && historyProblem === undefined;
    },
    openSession: (meta) =>
      createSessionAudit(
        {
          writer,
          limits: { maxRows: settings.maxRows, maxBytes: settings.maxBytes },
          instance,
          log: sessionLog,
          onSealed: () => {
            if (++sealsSinceCheckpoint >= settings.checkpoint.sessions) setImmediate(() => void checkpoint());
          },
          // Only a clock the caller set: without one, recorders read Date.now() (no Date per event).
          ...(clock !== undefined ? { now: clock } : {}),
        },
        meta,
      ),
    async exportTrail(scope, gateway) {
      const lines: string[] = [];
      for await (const line of streamTrail(scope, gateway)) lines.push(line);
      return lines;
    },
    streamTrail,
    checkpoint,
    applyRetention,
    async close() {
      for (const t of timers) clearInterval(t);
      await writer.flush();
      if (writer.healthy) await checkpoint();
      writer.close();
      journal.close();
      await ingester.close();
      // The group-commit ratio: how many ops each store commit carried on average.
      log.info({ ...writer.stats }, 'audit writer closed');
    },
  };
}
