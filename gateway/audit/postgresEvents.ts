// The postgres engine's event kinds on top of the audit core (audit/recorder.ts): `query` events
// (statement text, Bind values, simple or extended protocol) and `result` events with a capped
// sample of the columns and rows the client received. Their data is written as canonical JSON by
// hand (keys in sorted order, undefined members left out): JSON.stringify of the equivalent
// objects was the largest part of recording a result on the event loop.
// test/unit/audit/sessionAudit.test.ts checks both against canonicalJson.
import { jsonString as str } from '../../src/api/auditTrail.js';
import type { AuditVocabulary, SessionAudit } from './contract.js';
import type { RecorderCore } from './recorder.js';

/** How postgres sessions name their fields in the trail (docs/audit.md). */
export const postgresVocabulary: AuditVocabulary = { targetKey: 'database', codeKey: 'sqlstate', countKey: 'queries', unrecordedCode: '58030' };

/**
 * What a statement's result was (onResult). The engine may hand over its own record of the
 * statement; it does not change it afterwards, so the audit may keep it until it builds the event.
 */
export interface ResultInfo {
  queryId: number;
  status: 'ok' | 'error';
  /** CommandComplete tags, e.g. `SELECT 3`. */
  commands?: readonly string[] | undefined;
  rows?: number | undefined;
  sqlstate?: string | undefined;
  message?: string | undefined;
  durationMs: number;
  /** Total bytes of the result's rows as sent to the client (the audit keeps a capped sample). */
  bytes?: number | undefined;
  /** Columns whose values masking changed. */
  masked?: readonly string[] | undefined;
}

export interface QueryInfo {
  text: string;
  params?: readonly (string | null)[];
  protocol: 'simple' | 'extended';
  /** Statement kinds from the parser, e.g. `['SELECT']` (optional). */
  kinds?: readonly string[];
  /** Stage the event and return at once; the engine awaits `flush()` before forwarding. */
  deferCommit?: boolean;
}

/**
 * The audit hooks of a SQL session: the core's, plus statements and their results. onQuery is
 * onAction for a statement (write-ahead, fails only with AuditUnavailableError).
 */
export interface PostgresSessionAudit extends SessionAudit {
  /** A statement the client sent; returns an id to pair with its decision and result. */
  onQuery(query: QueryInfo): number;
  onResult(result: ResultInfo): void;
  /** The columns of a statement's result (RowDescription), before its rows. */
  onColumns?(queryId: number, columns: readonly { name: string; typeOid?: number }[]): void;
  /**
   * One result row as the client receives it (after masking; NULL as null). Returns false once the
   * audit has its sample (caps `audit.maxRows` / `maxBytes`): the engine may stop calling it for
   * that statement and only count rows and bytes for `onResult`. The array is the audit's to
   * keep: the engine builds one per call and never touches it again.
   */
  onRow?(queryId: number, values: (string | null)[]): boolean;
}

interface Capture {
  /** The columns as canonical JSON (`[{"name":…,"type":…},…]`). */
  columns?: string;
  rows: (string | null)[][];
  keptBytes: number;
  seenRows: number;
  seenBytes: number;
  full: boolean;
}

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

function queryJson(q: QueryInfo, id: number): string {
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

/** The session's audit with the statement hooks added (one object: its shape stays fixed, so the engine's calls stay fast). */
export function withPostgresEvents<A extends SessionAudit & { readonly started: boolean }>(audit: A, core: RecorderCore): PostgresSessionAudit & { readonly started: boolean } {
  const { limits } = core.ctx;
  const captures = new Map<number, Capture>();
  const everyStatement = core.meta.record !== 'sessions';

  /** Result events not built yet (see onResult), in order: result, capture, epoch ms — three slots each, no closure per result. */
  let deferred: (ResultInfo | Capture | number | undefined)[] = [];
  const settle = () => {
    if (deferred.length === 0) return;
    const run = deferred;
    deferred = [];
    for (let i = 0; i < run.length; i += 3) core.stageEvent('result', resultJson(run[i] as ResultInfo, run[i + 1] as Capture | undefined), run[i + 2] as number);
    core.commitSoon();
  };
  core.settle = settle;

  const recorder: PostgresSessionAudit & { readonly started: boolean } = {
    get started() {
      return audit.started;
    },
    onSessionStart: audit.onSessionStart,
    onAction: audit.onAction,
    onDecision: audit.onDecision,
    onReview: audit.onReview,
    onOutcome: audit.onOutcome,
    onEvent: audit.onEvent,
    onSessionEnd: audit.onSessionEnd,
    flush: audit.flush,
    afterFlush: audit.afterFlush,

    onQuery(q) {
      // After the end, nextId refuses: a statement is never forwarded unrecorded.
      const id = core.nextId();
      core.action(id, 'query', queryJson(q, id), q.deferCommit);
      return id;
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
        if (c.rows.length < limits.maxRows && c.keptBytes + size <= limits.maxBytes) {
          c.rows.push(values);
          c.keptBytes += size;
        } else {
          c.full = true;
        }
      }
      return !c.full && c.rows.length < limits.maxRows;
    },

    onResult(r) {
      if (!core.outcomeOnRecord(r.queryId)) return;
      const c = captures.get(r.queryId);
      captures.delete(r.queryId);
      // The result's event is built after the relay has passed the target's answer on (the
      // engine reports results while it scans the chunk it is about to send): off the round
      // trip. Any other event of this session settles it first, so the chain keeps its order.
      // The engine hands over its own record of the statement, which it no longer changes.
      if (deferred.length === 0) process.nextTick(settle);
      deferred.push(r, c, core.nowMs());
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
