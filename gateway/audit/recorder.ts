// The audit of one tunnel session, whatever its protocol: turns the engine's hooks
// (audit/contract.ts) into events (docs/audit.md), stages them with the gateway's one
// AuditWriter, and makes action and decision events durable before the engine carries the action
// out. The events are staged as entries — numbered, data in canonical JSON — and hash-chained
// where they are committed to the store (audit/chain.ts), off the event loop. An engine that
// passes `deferCommit` stages the actions of what it read (a statement and its decision, a
// pipeline) and calls `flush()` before forwarding them: one append then carries them all, made
// in `flush()` itself when the session is the only one open (AuditWriter.commitsAtOnce), else at
// the end of the event loop's turn, shared with the other sessions' (and with durability: fsync,
// or a store that only commits asynchronously). A protocol's own event kinds are built on `RecorderCore`
// (postgres: audit/postgresEvents.ts) without changing this module.
import type { Logger } from 'pino';
import { canonicalJson, jsonString as str } from '../../src/api/auditTrail.js';
import type { Identity } from '../model.js';
import type { EventEntry, StagedOp } from './chain.js';
import { AuditUnavailableError, neutralVocabulary, type AuditVocabulary, type SessionAudit } from './contract.js';
import type { AuditWriter } from './writer.js';

export interface SessionMeta {
  id: string;
  connection: string;
  protocol: string;
  identity: Identity;
  origin: string;
  clientAddress: string;
  /** `sessions`: keep only the session and the actions the policy refused or held (the connection's `record`). Default `statements`. */
  record?: 'statements' | 'sessions';
  /** How this protocol's events name their fields (engines/registry.ts); default neutralVocabulary. */
  vocabulary?: AuditVocabulary;
}

export interface SessionAuditContext {
  writer: AuditWriter;
  /** Caps on each result's recorded sample; the true totals are recorded as well. */
  limits: { maxRows: number; maxBytes: number };
  /** This gateway process (recorded with the session, for crash recovery). */
  instance: string;
  log: Logger;
  /** Called when a session's seal is staged (checkpoints count sessions). */
  onSealed?: () => void;
  now?: () => Date;
}

/** What a refused action's outcome says in the trail. */
export const REFUSED_UNRECORDED = 'not forwarded: the audit store could not record it';

/** What a protocol's event builders get from the core (one per session). */
export interface RecorderCore {
  readonly ctx: SessionAuditContext;
  readonly meta: SessionMeta;
  readonly nowMs: () => number;
  /** The session has ended: nothing more is recorded. */
  readonly ended: () => boolean;
  /** A new action id (`q` in the trail). */
  nextId(): number;
  /**
   * Records an action's event (`data`: its canonical JSON) write-ahead, or — with `record:
   * sessions` — keeps it until the decision says whether it goes on record. Throws
   * AuditUnavailableError if it cannot be made durable.
   */
  action(id: number, kind: string, data: string, deferCommit: boolean | undefined): void;
  /** Whether the action's outcome goes on record (not refused; on record under `record: sessions`). Call once per outcome. */
  outcomeOnRecord(id: number): boolean;
  /** Stages one event (`data`: canonical JSON) in the session's chain; `at`: epoch ms. Call commitSoon() after a run of them. */
  stageEvent(kind: string, data: string, at?: number): void;
  commitSoon(): void;
  /** Set by a protocol that builds some events late: called before any other event is staged, so the chain keeps its order. */
  settle: (() => void) | undefined;
}

let warnedNotWriteAhead = false;

export function createSessionRecorder(ctx: SessionAuditContext, meta: SessionMeta): { audit: SessionAudit & { readonly started: boolean }; core: RecorderCore } {
  const now = ctx.now ?? (() => new Date());
  const nowMs = ctx.now === undefined ? Date.now : () => now().getTime();
  const words = meta.vocabulary ?? neutralVocabulary;
  const { writer } = ctx;
  let started = false;
  let ended = false;
  let startedAt = now();
  let seq = 0;
  let ticket = 0;
  let actions = 0;
  let blocked = 0;
  let reviewed = 0;
  const refused = new Set<number>();
  const everyAction = meta.record !== 'sessions';
  /** record: sessions — the last actions, kept until the policy's decision says whether they go on record. */
  const undecided = new Map<number, { kind: string; data: string; at: number }>();
  /** record: sessions — actions on record (refused or held), whose outcomes are recorded too. */
  const onRecord = new Set<number>();

  const stage = (...ops: StagedOp[]) => (ticket = writer.stage(...ops));
  /** One event (every statement and result): no rest-parameter array. */
  const stageEntry = (entry: EventEntry) => (ticket = writer.stageOne({ op: 'entry', entry }));
  const event = (kind: string, data: string, at: number = nowMs()): EventEntry => {
    core.settle?.(); // an event still to be built comes first in the chain
    return { session: meta.id, seq: ++seq, kind, at, data };
  };

  /** Makes the action's events durable now, or refuses it (fail closed). */
  const writeAhead = (id: number, deferCommit: boolean | undefined): void => {
    if (!writer.healthy) refuse(id, undefined);
    // The engine flushes before it forwards (the contract of deferCommit): alone, flush() appends
    // at once, with the decision if one follows; else the turn's group commit takes it.
    if (deferCommit) return writer.commitsAtOnce ? undefined : writer.schedule();
    if (writer.canCommitNow) {
      try {
        writer.commitNow();
      } catch (err) {
        refuse(id, err);
      }
      return;
    }
    if (!warnedNotWriteAhead) {
      warnedNotWriteAhead = true;
      ctx.log.warn('the engine does not wait for audit commits and this store cannot commit synchronously: actions may be carried out before they are recorded');
    }
    writer.schedule();
  };
  const refuse = (id: number, cause: unknown): never => {
    refused.add(id);
    // Staged behind the action: written when the store is back, so the trail shows the refusal.
    const code = words.unrecordedCode === undefined ? {} : { [words.codeKey]: words.unrecordedCode };
    stage({ op: 'entry', entry: event('result', canonicalJson({ q: id, status: 'error', ...code, message: REFUSED_UNRECORDED, durationMs: 0 })) });
    throw cause instanceof AuditUnavailableError ? cause : new AuditUnavailableError(undefined, { cause });
  };
  const afterEnd = () => new AuditUnavailableError(undefined, { reason: 'ended' });

  const core: RecorderCore = {
    ctx,
    meta,
    nowMs,
    ended: () => ended,
    nextId: () => {
      if (ended) throw afterEnd();
      return ++actions;
    },
    action(id, kind, data, deferCommit) {
      if (!everyAction) {
        undecided.set(id, { kind, data, at: nowMs() });
        // Without a policy no decision ever comes: keep only the few a pipeline can have in flight.
        if (undecided.size > 256) undecided.delete(undecided.keys().next().value as number);
        return;
      }
      stageEntry(event(kind, data));
      writeAhead(id, deferCommit);
    },
    outcomeOnRecord: (id) => !ended && !refused.has(id) && (everyAction || onRecord.delete(id)),
    stageEvent(kind, data, at) {
      stageEntry(event(kind, data, at));
    },
    commitSoon: () => writer.commitSoon(),
    settle: undefined,
  };

  const audit: SessionAudit & { readonly started: boolean } = {
    get started() {
      return started;
    },
    onSessionStart(info) {
      if (started) return;
      started = true;
      startedAt = now();
      writer.sessionStarted();
      const id = meta.identity;
      stage(
        {
          op: 'session',
          session: {
            id: meta.id,
            connection: meta.connection,
            protocol: meta.protocol,
            subject: id.subject,
            identityName: id.name,
            email: id.email ?? null,
            identityKind: id.kind,
            groups: [...id.groups],
            origin: meta.origin,
            clientAddress: meta.clientAddress,
            // The store keeps every protocol's target in its `database` column (sessions list shows it).
            database: info.target,
            startedAt,
            instance: ctx.instance,
          },
        },
        {
          op: 'entry',
          entry: event(
            'session.start',
            canonicalJson({
              connection: meta.connection,
              protocol: meta.protocol,
              identity: { subject: id.subject, name: id.name, email: id.email, groups: [...id.groups], kind: id.kind },
              origin: meta.origin,
              clientAddress: meta.clientAddress,
              [words.targetKey]: info.target,
              clientUser: info.clientUser,
              clientApplication: info.clientApplication,
              clientSettings: info.clientSettings,
              gateway: ctx.instance,
            }),
            startedAt.getTime(),
          ),
        },
      );
      writer.schedule();
    },

    onAction(a) {
      // An action after the end has nothing to be recorded in (the session is sealed): refused, never carried out unrecorded.
      const id = core.nextId();
      core.action(id, 'action', `{"kind":${str(a.kind)},"q":${id},"text":${str(a.text)}}`, a.deferCommit);
      return id;
    },

    onDecision(d) {
      if (ended) throw afterEnd();
      if (refused.has(d.queryId)) return;
      if (d.verdict === 'block') blocked++;
      if (!everyAction) {
        const a = undecided.get(d.queryId);
        undecided.delete(d.queryId);
        if (d.verdict === 'allow' || a === undefined) return;
        onRecord.add(d.queryId);
        stage({ op: 'entry', entry: event(a.kind, a.data, a.at) });
      }
      stageEntry(event('decision', canonicalJson({ q: d.queryId, verdict: d.verdict, rule: d.rule, reason: d.reason })));
      writeAhead(d.queryId, d.deferCommit);
    },

    onReview(r) {
      if (ended) return;
      if (r.event === 'created') reviewed++;
      stage({ op: 'entry', entry: event(`review.${r.event}`, canonicalJson({ q: r.queryId, review: r.reviewId, by: r.by, reason: r.reason })) });
      writer.schedule();
    },

    onOutcome(o) {
      if (!core.outcomeOnRecord(o.queryId)) return;
      const code = o.code === undefined ? {} : { [words.codeKey]: o.code };
      core.stageEvent('result', canonicalJson({ q: o.queryId, status: o.status, ...code, message: o.message, durationMs: o.durationMs, bytes: o.bytes }));
      writer.commitSoon();
    },

    onEvent(kind, data) {
      if (ended) return;
      try {
        core.stageEvent(kind, canonicalJson(data));
        writer.commitSoon();
      } catch (err) {
        // Data the trail cannot hold is the engine's bug; the session goes on, the log says so.
        ctx.log.error({ err, kind }, 'audit event dropped: its data is not canonical JSON');
      }
    },

    onSessionEnd(e) {
      if (!started || ended) return;
      ended = true;
      writer.sessionEnded();
      const endedAt = now();
      const error = e.message ? (e.code ? `${e.code} ${e.message}` : e.message) : null;
      const last = event(
        'session.end',
        canonicalJson({ status: e.status, [words.codeKey]: e.code, message: e.message, bytesFromClient: e.bytesFromClient, bytesToClient: e.bytesToClient, [words.countKey]: actions }),
        endedAt.getTime(),
      );
      stage(
        { op: 'entry', entry: last },
        { op: 'end', id: meta.id, end: { endedAt, status: e.status, error, bytesFromClient: e.bytesFromClient, bytesToClient: e.bytesToClient, queries: actions, blocked, reviewed, events: seq } },
        // Sealed with the chain's final hash once chained (audit/chain.ts).
        { op: 'close', close: { id: meta.id, startedAt, events: seq } },
      );
      ctx.onSealed?.();
      writer.schedule();
    },

    flush() {
      core.settle?.();
      if (ticket <= writer.committedOps || !writer.commitsAtOnce) return writer.whenCommitted(ticket);
      try {
        writer.commitNow();
      } catch (err) {
        return Promise.reject(err as Error);
      }
      return undefined;
    },

    afterFlush(onDone, onFail) {
      core.settle?.();
      if (ticket <= writer.committedOps || !writer.commitsAtOnce) return writer.afterCommit(ticket, onDone, onFail);
      try {
        writer.commitNow();
      } catch (err) {
        queueMicrotask(() => onFail(err as Error));
        return true;
      }
      return false;
    },
  };
  return { audit, core };
}
