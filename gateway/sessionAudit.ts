// The audit of one tunnel session, behind the engines' SessionAudit interface: turns the engine's
// hooks into events (docs/audit.md), stages them with the gateway's one AuditWriter, and makes
// `query`/`decision` events durable before the engine forwards the statement. The events are
// staged as entries — numbered, data in canonical JSON — and hash-chained where they are
// committed to the store (audit/chain.ts), off the event loop. A statement is appended to the
// journal at once when its session is the only one open; otherwise (and with durability: fsync, or
// a store that only commits asynchronously) the engine passes `deferCommit` and awaits `flush()`,
// and the statements of one event-loop turn share one append (AuditWriter.commitsAtOnce).
import type { Logger } from 'pino';
import { canonicalJson, jsonString as str, type EventKind } from '../src/api/auditTrail.js';
import type { EventEntry, StagedOp } from './audit/chain.js';
import type { AuditWriter } from './audit/writer.js';
import type { Identity } from './model.js';
import { AuditUnavailableError, type ResultInfo, type SessionAudit } from './engines/types.js';

export interface SessionMeta {
  id: string;
  connection: string;
  protocol: string;
  identity: Identity;
  origin: string;
  clientAddress: string;
  /** `sessions`: keep only the session and the statements the policy refused or held (the connection's `record`). Default `statements`. */
  record?: 'statements' | 'sessions';
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

/** What a refused statement's result says in the trail. */
export const REFUSED_UNRECORDED = 'not forwarded: the audit store could not record it';

interface Capture {
  /** The columns as canonical JSON (`[{"name":…,"type":…},…]`). */
  columns?: string;
  rows: (string | null)[][];
  keptBytes: number;
  seenRows: number;
  seenBytes: number;
  full: boolean;
}

let warnedNotWriteAhead = false;

// The data of the two events of every round trip, written as canonical JSON by hand (keys in
// sorted order, undefined members left out): JSON.stringify of the equivalent objects was the
// largest part of recording a result on the event loop. test/unit/audit/sessionAudit.test.ts
// checks both against canonicalJson.

/** A number as canonical JSON writes it; the one that is not finite is written as null (never fails a recording). */
const num = (n: number): string => (Number.isFinite(n) ? `${n}` : 'null');

/** The last single command tag written, and its JSON (a session mostly repeats the same statements). */
let lastTag = '';
let lastTagJson = '[""]';

/** A list of strings as canonical JSON. */
function strs(list: readonly string[]): string {
  if (list.length === 1) {
    const tag = list[0]!;
    if (tag !== lastTag) {
      lastTag = tag;
      lastTagJson = `[${str(tag)}]`;
    }
    return lastTagJson;
  }
  let out = '';
  for (const s of list) out += out === '' ? str(s) : `,${str(s)}`;
  return `[${out}]`;
}

/** Result columns as canonical JSON; the engine hands over the same array for a repeated RowDescription, so the last one is kept. */
let lastColumns: readonly { name: string; typeOid?: number }[] | undefined;
let lastColumnsJson = '';
function columnsJson(columns: readonly { name: string; typeOid?: number }[]): string {
  if (columns === lastColumns) return lastColumnsJson;
  let cols = '';
  for (const col of columns) cols += `${cols === '' ? '' : ','}{"name":${str(col.name)}${col.typeOid === undefined ? '' : `,"type":${num(col.typeOid)}`}}`;
  lastColumns = columns;
  lastColumnsJson = `[${cols}]`;
  return lastColumnsJson;
}

/**
 * A duration in milliseconds rounded to the microsecond, as canonical JSON writes
 * `Math.round(ms * 1000) / 1000`, from integers: turning a fraction into its shortest decimal
 * was a visible part of building a result on the event loop. (A decimal of up to 15 significant
 * digits is what the nearest double prints as, so both agree; the sessionAudit test sweeps it.)
 */
export function durationJson(ms: number): string {
  const us = Math.round(ms * 1000);
  if (!(us >= 0 && us < 1e15)) return num(Math.round(ms * 1000) / 1000);
  const whole = Math.floor(us / 1000);
  let frac = us - whole * 1000;
  if (frac === 0) return `${whole}`;
  let digits = 3;
  while (frac % 10 === 0) {
    frac /= 10;
    digits--;
  }
  return `${whole}.${`${frac}`.padStart(digits, '0')}`;
}

function queryJson(q: Parameters<SessionAudit['onQuery']>[0], id: number): string {
  let out = '{';
  if (q.kinds !== undefined) out += `"kinds":${strs(q.kinds)},`;
  if (q.params !== undefined) out += `"params":${JSON.stringify(q.params)},`;
  return `${out}"protocol":${str(q.protocol)},"q":${id},"text":${str(q.text)}}`;
}

function resultJson(r: ResultInfo, c: Capture | undefined): string {
  const rows = r.rows ?? (c ? c.seenRows : undefined);
  const bytes = r.bytes ?? (c ? c.seenBytes : undefined);
  // Members in sorted key order; durationMs is always present, so only the first one (bytes or columns) needs care about its comma.
  let out = '{';
  if (bytes !== undefined) out += `"bytes":${num(bytes)},`;
  if (c?.columns !== undefined) out += `"columns":${c.columns},`;
  if (r.commands && r.commands.length > 0) out += `"commands":${strs(r.commands)},`;
  out += `"durationMs":${durationJson(r.durationMs)}`;
  if (r.masked && r.masked.length > 0) out += `,"masked":${strs(r.masked)}`;
  if (r.message !== undefined) out += `,"message":${str(r.message)}`;
  out += `,"q":${r.queryId}`;
  if (rows !== undefined) out += `,"rows":${num(rows)}`;
  if (c && (c.columns !== undefined || c.rows.length > 0)) out += `,"sample":${JSON.stringify(c.rows)}`;
  if (r.sqlstate !== undefined) out += `,"sqlstate":${str(r.sqlstate)}`;
  out += `,"status":${str(r.status)}`;
  if (c && rows !== undefined && c.rows.length < rows) out += ',"truncated":true';
  return `${out}}`;
}

export function createSessionAudit(ctx: SessionAuditContext, meta: SessionMeta): SessionAudit & { readonly started: boolean } {
  const now = ctx.now ?? (() => new Date());
  const nowMs = ctx.now === undefined ? Date.now : () => now().getTime();
  const { writer } = ctx;
  let started = false;
  let ended = false;
  let startedAt = now();
  let seq = 0;
  let ticket = 0;
  let queries = 0;
  let blocked = 0;
  let reviewed = 0;
  const refused = new Set<number>();
  const captures = new Map<number, Capture>();
  const everyStatement = meta.record !== 'sessions';
  /** record: sessions — the last statements, kept until the policy's decision says whether they go on record. */
  const undecided = new Map<number, { data: string; at: number }>();
  /** record: sessions — statements on record (refused or held), whose results are recorded too. */
  const onRecord = new Set<number>();

  /** Result events not built yet (see onResult), in order: result, capture, epoch ms — three slots each, no closure per result. */
  let deferred: (ResultInfo | Capture | number | undefined)[] = [];
  const settle = () => {
    if (deferred.length === 0) return;
    const run = deferred;
    deferred = [];
    for (let i = 0; i < run.length; i += 3) {
      stage({ op: 'entry', entry: event('result', resultJson(run[i] as ResultInfo, run[i + 1] as Capture | undefined), run[i + 2] as number) });
    }
    writer.commitSoon();
  };
  /** `data`: canonical JSON (canonicalJson, or one of the hand-built forms below). */
  const event = (kind: EventKind, data: string, at: number = nowMs()): EventEntry => {
    settle(); // a result still to be built comes first in the chain
    return { session: meta.id, seq: ++seq, kind, at, data };
  };
  const stage = (...ops: StagedOp[]) => (ticket = writer.stage(...ops));

  /** Makes the statement's events durable now, or refuses it (fail closed). */
  const writeAhead = (queryId: number, deferCommit: boolean | undefined): void => {
    if (!writer.healthy) refuse(queryId, undefined);
    if (deferCommit && !writer.commitsAtOnce) return writer.schedule();
    if (writer.canCommitNow) {
      try {
        writer.commitNow();
      } catch (err) {
        refuse(queryId, err);
      }
      return;
    }
    if (!warnedNotWriteAhead) {
      warnedNotWriteAhead = true;
      ctx.log.warn('the engine does not wait for audit commits and this store cannot commit synchronously: statements may be forwarded before they are recorded');
    }
    writer.schedule();
  };
  const refuse = (queryId: number, cause: unknown): never => {
    refused.add(queryId);
    // Staged behind the query: written when the store is back, so the trail shows the refusal.
    stage({ op: 'entry', entry: event('result', canonicalJson({ q: queryId, status: 'error', sqlstate: '58030', message: REFUSED_UNRECORDED, durationMs: 0 })) });
    throw cause instanceof AuditUnavailableError ? cause : new AuditUnavailableError(undefined, { cause });
  };

  const recorder: SessionAudit & { readonly started: boolean } = {
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
            database: info.database,
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
              database: info.database,
              clientUser: info.clientUser,
              clientApplication: info.clientApplication,
              gateway: ctx.instance,
            }),
            startedAt.getTime(),
          ),
        },
      );
      writer.schedule();
    },

    onQuery(q) {
      // A statement after the end has nothing to be recorded in (the session is sealed): refused, never forwarded unrecorded.
      if (ended) throw new AuditUnavailableError('the session has ended; the statement was not executed');
      const id = ++queries;
      const data = queryJson(q, id);
      if (!everyStatement) {
        undecided.set(id, { data, at: nowMs() });
        // Without a policy no decision ever comes: keep only the few a pipeline can have in flight.
        if (undecided.size > 256) undecided.delete(undecided.keys().next().value as number);
        return id;
      }
      stage({ op: 'entry', entry: event('query', data) });
      writeAhead(id, q.deferCommit);
      return id;
    },

    onDecision(d) {
      if (ended) throw new AuditUnavailableError('the session has ended; the statement was not executed');
      if (refused.has(d.queryId)) return;
      if (d.verdict === 'block') blocked++;
      if (!everyStatement) {
        const q = undecided.get(d.queryId);
        undecided.delete(d.queryId);
        if (d.verdict === 'allow' || q === undefined) return;
        onRecord.add(d.queryId);
        stage({ op: 'entry', entry: event('query', q.data, q.at) });
      }
      stage({ op: 'entry', entry: event('decision', canonicalJson({ q: d.queryId, verdict: d.verdict, rule: d.rule, reason: d.reason })) });
      writeAhead(d.queryId, d.deferCommit);
    },

    onReview(r) {
      if (ended) return;
      if (r.event === 'created') reviewed++;
      stage({ op: 'entry', entry: event(`review.${r.event}`, canonicalJson({ q: r.queryId, review: r.reviewId, by: r.by, reason: r.reason })) });
      writer.schedule();
    },

    onColumns(queryId, columns) {
      const c = captures.get(queryId) ?? { rows: [], keptBytes: 0, seenRows: 0, seenBytes: 0, full: false };
      c.columns = columnsJson(columns);
      captures.set(queryId, c);
    },

    onRow(queryId, values) {
      let c = captures.get(queryId);
      if (!c) captures.set(queryId, (c = { rows: [], keptBytes: 0, seenRows: 0, seenBytes: 0, full: false }));
      let size = 0;
      for (const v of values) if (v !== null) size += Buffer.byteLength(v);
      c.seenRows++;
      c.seenBytes += size;
      if (!c.full) {
        if (c.rows.length < ctx.limits.maxRows && c.keptBytes + size <= ctx.limits.maxBytes) {
          c.rows.push(values);
          c.keptBytes += size;
        } else {
          c.full = true;
        }
      }
      return !c.full && c.rows.length < ctx.limits.maxRows;
    },

    onResult(r) {
      if (ended || refused.has(r.queryId)) return;
      if (!everyStatement && !onRecord.delete(r.queryId)) return;
      const c = captures.get(r.queryId);
      captures.delete(r.queryId);
      // The result's event is built after the relay has passed the target's answer on (the
      // engine reports results while it scans the chunk it is about to send): off the round
      // trip. Any other event of this session settles it first, so the chain keeps its order.
      // The engine hands over its own record of the statement, which it no longer changes.
      if (deferred.length === 0) process.nextTick(settle);
      deferred.push(r, c, nowMs());
    },

    onSessionEnd(e) {
      if (!started || ended) return;
      ended = true;
      writer.sessionEnded();
      const endedAt = now();
      const error = e.message ? (e.sqlstate ? `${e.sqlstate} ${e.message}` : e.message) : null;
      const last = event(
        'session.end',
        canonicalJson({ status: e.status, sqlstate: e.sqlstate, message: e.message, bytesFromClient: e.bytesFromClient, bytesToClient: e.bytesToClient, queries }),
        endedAt.getTime(),
      );
      stage(
        { op: 'entry', entry: last },
        { op: 'end', id: meta.id, end: { endedAt, status: e.status, error, bytesFromClient: e.bytesFromClient, bytesToClient: e.bytesToClient, queries, blocked, reviewed, events: seq } },
        // Sealed with the chain's final hash once chained (audit/chain.ts).
        { op: 'close', close: { id: meta.id, startedAt, events: seq } },
      );
      ctx.onSealed?.();
      writer.schedule();
    },

    flush() {
      settle();
      return writer.whenCommitted(ticket);
    },
  };
  if (!everyStatement) {
    // No result samples to keep: without these hooks the engine does not decode result rows at all.
    // Set to undefined, not deleted: a deleted property turns the object into a dictionary, and
    // the engine's calls on every recorder (both kinds share one gateway) would stop being fast.
    recorder.onColumns = undefined;
    recorder.onRow = undefined;
  }
  return recorder;
}
