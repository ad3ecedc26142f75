// Target → client: the relay of the target's messages with everything the gateway does to them.
// Always: pair results with statements for the audit, replace the errors that answer the
// gateway's refusal markers (refusals.ts), note FATALs. With a policy: follow the extended
// protocol message by message (the `expected` queue mirrors what the client sent and the target
// must answer, in order), so prepared statements are learned from the target's confirmations and
// each DataRow is matched with the RowDescription it belongs to. With masking: rewrite DataRow and
// COPY rows. Without masking only the few small result messages are looked at and target chunks
// go to the client as they came.
import type { CopyMaskPlan, OutputColumn, RowColumn, RowMasker, StatementAnalysis } from '../../policy/index.js';
import { createCopyMasker, maskNoticeFields } from '../../policy/index.js';
import type { PgSessionContext } from './context.js';
import type { ApplicationNameShown } from './startup.js';
import { decodeCommandComplete, decodeErrorFields, decodeParameterStatus, encodeErrorResponse, encodeNoticeFields, type PgErrorFields, type TransactionStatus } from './codec/backend.js';
import { INTERCEPT, OBSERVE, PASS, PgBackendRelay, type RelayVerdict } from './codec/backendRelay.js';
import { withheldError } from './lineageGate.js';
import type { PolicyGate, StatementDef } from './policyGate.js';
import type { QueryTracker } from './queryTracker.js';
import type { Refusals } from './refusals.js';
import { maskFunctionResult, maskNotification } from './untracedValues.js';
import { keepsIdentity } from '../../policy/applicationName.js';
import { upstreamApplicationName } from './startupSettings.js';
import { maskedNames, rowValues, type ResultMasking, type ResultPlan } from './resultMasking.js';

/** What the client sent that the target still has to answer (policy sessions only). */
export type Expected =
  | { readonly k: 'parse'; readonly name: string; readonly def: StatementDef | undefined }
  | { readonly k: 'bind'; readonly portal: string; readonly def: StatementDef | undefined }
  | { readonly k: 'describe'; readonly portal?: string; readonly injected: boolean }
  | { readonly k: 'execute'; readonly portal: string }
  | { readonly k: 'close'; readonly statement?: string }
  | { readonly k: 'sync' }
  | { k: 'query'; readonly def: StatementDef; done: number }
  | { readonly k: 'call' };

/** What the target answers with a ReadyForQuery of its own: the end of a cycle. */
const endsCycle = (e: Expected): boolean => e.k === 'sync' || e.k === 'query' || e.k === 'call';

interface Portal {
  readonly def: StatementDef | undefined;
  plan?: ResultPlan;
}

/**
 * The lineage of a portal no Bind the gateway judged created (a cursor DECLAREd in SQL, reached by
 * a protocol Describe/Execute): it fits no result, so every column is redacted.
 */
const UNATTRIBUTED: readonly OutputColumn[] = Object.freeze([]);

/** The result rows currently arriving belong to this. */
interface Current {
  columns: readonly RowColumn[] | undefined;
  masker: RowMasker | undefined;
  sampling: boolean;
  queryId: number | undefined;
  /** Rows of an Execute whose portal has no plan while masking applies: every value goes out NULL. */
  readonly withheld?: true;
}

const t = (c: string) => c.charCodeAt(0);
const CC = t('C'), EE = t('E'), II = t('I'), ss = t('s'), ZZ = t('Z'), TT = t('T'), DD = t('D'), nn = t('n'), dd = t('d'), cc = t('c'), HH = t('H'), SS = t('S');
const ONE = t('1'), TWO = t('2'), THREE = t('3');
const NOTICE = t('N');
const NOTIFICATION = t('A');
const FUNCTION_RESULT = t('V');

export interface ServerFlowOptions {
  readonly ctx: PgSessionContext;
  readonly tracker: QueryTracker;
  readonly refusals: Refusals;
  /** Writes bytes to the client. */
  readonly emit: (bytes: Buffer) => void;
  /** The relay waited for a catalog look-up and may take target bytes again. */
  readonly onResume: () => void;
  readonly gate?: PolicyGate;
  readonly masking?: ResultMasking;
  /** The target reports a setting under which it reads text differently from the gateway: end the session. */
  readonly readingContradicted?: (problem: string) => void;
  /** The target reports an application_name without the session's identity prefix: end the session. */
  readonly applicationNameDropped?: (value: string) => void;
  /** The startup's application_name and what the client is shown for it (startup.ts). */
  readonly applicationName?: ApplicationNameShown;
}

export class ServerFlow {
  readonly relay: PgBackendRelay;
  /** The target's transaction status at its last ReadyForQuery. */
  status: TransactionStatus = 'I';
  /** A FATAL or PANIC the target sent: the session ends with it. */
  fatal: { sqlstate: string; message: string } | undefined;
  private readonly expected: Expected[] = [];
  private readonly portals = new Map<string, Portal>();
  private current: Current | undefined;
  private readonly result: Current = { columns: undefined, masker: undefined, sampling: false, queryId: undefined };
  /** The last RowDescription decoded for the audit (columnsOf). */
  private lastColumns: { readonly bytes: Buffer; readonly plan: ResultPlan } | undefined;
  private copyMask: ((line: Buffer) => Buffer) | undefined;
  private rowBytesReported = 0;
  private byteDelta = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly o: ServerFlowOptions) {
    this.relay = new PgBackendRelay(this.onMessage, o.emit, o.onResume);
    const a = this.relay.actions;
    for (const c of 'CIsZ') a[t(c)] = OBSERVE;
    a[EE] = INTERCEPT;
    // RowDescription starts the audit's sample of a result.
    if (o.ctx.audit.onColumns !== undefined || o.ctx.audit.onRow !== undefined) a[TT] = OBSERVE;
    if (o.gate !== undefined) for (const c of '123tnTHcGWVS') a[t(c)] = OBSERVE;
    // Every session: a changed application_name must keep the identity prefix (policy/applicationName.ts).
    // The target reports settings rarely (at ReadyForQuery after a change), so this costs nothing per row.
    if (o.applicationNameDropped !== undefined) a[SS] = OBSERVE;
    // And the startup's name, when the session goes back to it, is shown as the client's own.
    if (o.applicationName !== undefined) a[SS] = INTERCEPT;
    if (o.masking !== undefined) {
      a[TT] = INTERCEPT;
      a[nn] = INTERCEPT;
      // Notices can quote data too (RAISE NOTICE in a function): masked like errors.
      a[NOTICE] = INTERCEPT;
      // So can notification payloads (pg_notify from another session or a trigger) and the
      // results of FunctionCall, which have no source column.
      a[NOTIFICATION] = INTERCEPT;
      a[FUNCTION_RESULT] = INTERCEPT;
    }
  }

  /** Cycles (Query, Sync, FunctionCall) the target has not finished yet. */
  get outstanding(): number {
    const c = this.o.tracker.cycles;
    return c.client - c.server;
  }

  /** Resolves once the target has answered everything sent so far. */
  whenIdle(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The client sent (or the gateway injected) a message the target must answer. */
  expect(e: Expected): void {
    this.expected.push(e);
    if (this.expected.length === 1) this.frontChanged();
  }

  private readonly onMessage = (type: number, buf: Buffer, start: number, end: number): RelayVerdict | Promise<RelayVerdict> => {
    switch (type) {
      case DD:
        return this.dataRow(buf, start, end);
      case dd:
        return this.copyData(buf, start, end);
      case ZZ:
        return this.ready(buf[start + 5] as number);
      case CC: {
        this.noteRows();
        const tag = decodeCommandComplete(buf, start + 5, end);
        this.o.tracker.commandComplete(tag);
        this.endResult();
        const f = this.expected[0];
        if (f?.k === 'query') {
          const statement = f.def.analysis.ok ? f.def.analysis.statements[f.done++] : undefined;
          if (statement?.portals !== undefined) this.forgetPortals(statement.portals);
          this.o.gate?.completed(statement, f.def.text);
        } else if (f?.k === 'execute') {
          const def = this.portals.get(f.portal)?.def;
          if (def?.analysis.ok) this.o.gate?.completed(def.analysis.statements[0], def.text);
          this.shift();
        }
        return undefined;
      }
      case II:
      case ss:
        this.noteRows();
        this.o.tracker.executeAnswered();
        this.endResult();
        if (this.expected[0]?.k === 'execute') this.shift();
        return undefined;
      case EE:
        return this.error(buf, start, end);
      case TT:
        return this.rowDescription(buf, start, end);
      case nn: {
        const f = this.expected[0];
        if (f?.k !== 'describe') return undefined;
        this.shift();
        return f.injected ? null : undefined;
      }
      case ONE: {
        const f = this.expected[0];
        if (f?.k === 'parse') {
          this.shift();
          this.o.gate?.parseAnswered(f.name, f.def);
        }
        return undefined;
      }
      case TWO: {
        const f = this.expected[0];
        if (f?.k === 'bind') {
          this.shift();
          this.portals.set(f.portal, { def: f.def });
        }
        return undefined;
      }
      case THREE: {
        const f = this.expected[0];
        if (f?.k === 'close') {
          this.shift();
          if (f.statement !== undefined) this.o.gate?.closed(f.statement);
        }
        return undefined;
      }
      case HH:
        this.copyOut();
        return undefined;
      case cc:
        this.setCopyMask(undefined);
        return undefined;
      case SS: {
        const p = decodeParameterStatus(buf.subarray(start + 5, end));
        if (p.name === 'application_name' && !keepsIdentity(p.value, upstreamApplicationName(this.o.ctx.identity.name, undefined))) {
          this.o.applicationNameDropped?.(p.value);
          return undefined;
        }
        // Back to the startup's name (RESET, SET … TO DEFAULT): the client is shown its own, as at startup.
        if (p.name === 'application_name' && this.o.applicationName !== undefined && p.value === this.o.applicationName.upstream) return this.o.applicationName.frame;
        const problem = this.o.gate?.parameterStatus(p.name, p.value);
        if (problem !== undefined) this.o.readingContradicted?.(problem);
        return undefined;
      }
      case NOTICE:
        return this.maskNotice('N', buf.subarray(start, end));
      case NOTIFICATION:
        return this.o.masking?.mask === undefined ? undefined : maskNotification(buf.subarray(start, end), this.o.masking.mask);
      case FUNCTION_RESULT:
        return this.o.masking?.mask === undefined ? undefined : maskFunctionResult(buf.subarray(start, end), this.o.masking.mask);
    }
    return undefined;
  };

  /**
   * With masking: the frame with what the target quoted from masked data withheld or masked
   * (policy/mask/notices.ts), or undefined to keep it. One that does not decode cannot be checked:
   * an error is replaced by a generic one, a notice dropped (null).
   */
  private maskNotice(type: 'E' | 'N', frame: Buffer): Buffer | null | undefined {
    const mask = this.o.masking?.mask;
    if (mask === undefined) return undefined;
    let fields: ReadonlyMap<string, string>;
    try {
      fields = decodeErrorFields(frame.subarray(5)).fields;
    } catch {
      if (type === 'N') return null;
      return encodeErrorResponse({ severity: 'ERROR', sqlstate: 'XX000', message: `the target of ${this.o.ctx.connection.name} sent an error the gateway could not read; withheld because masking applies` });
    }
    const masked = maskNoticeFields([...fields].map(([code, value]) => ({ code: code.charCodeAt(0), value })), mask);
    if (masked === undefined) return undefined;
    return encodeNoticeFields(type, masked.map((f) => [String.fromCharCode(f.code), f.value] as const));
  }

  private ready(status: number): undefined {
    this.noteRows();
    this.o.tracker.ready();
    this.o.refusals.expire(this.o.tracker.cycles.server);
    this.status = status === 0x54 ? 'T' : status === 0x45 ? 'E' : 'I';
    this.endResult();
    this.setCopyMask(undefined);
    const f = this.expected[0];
    if (f !== undefined) {
      // Whatever the target skipped before this ReadyForQuery (after an error) is over too.
      while (this.expected.length > 0 && !endsCycle(this.expected[0]!)) this.drop();
      this.shift();
    }
    // Portals do not outlive their transaction.
    if (this.status === 'I' && this.portals.size > 0) this.portals.clear();
    this.o.gate?.ready(this.status, this.outstanding === 0);
    if (this.outstanding === 0 && this.idleWaiters.length > 0) for (const w of this.idleWaiters.splice(0)) w();
    return undefined;
  }

  private error(buf: Buffer, start: number, end: number): RelayVerdict {
    this.noteRows();
    const front = this.expected[0];
    const statement = front?.k === 'query' ? front.def : front?.k === 'execute' ? this.portals.get(front.portal)?.def : undefined;
    const replacement = this.o.refusals.replacement(buf, start, end) ?? (statement?.withholdErrors === true ? withheldError(buf.subarray(start, end)) : this.maskNotice('E', buf.subarray(start, end)));
    const body = replacement ?? buf.subarray(start, end);
    let e: PgErrorFields | undefined;
    try {
      e = decodeErrorFields(body.subarray(5));
    } catch {
      e = undefined;
    }
    this.o.tracker.error(e?.code ?? '', e?.message ?? 'error too large to record');
    if (e && (e.severity === 'FATAL' || e.severity === 'PANIC')) this.fatal = { sqlstate: e.code, message: e.message };
    this.endResult();
    this.setCopyMask(undefined);
    const f = this.expected[0];
    if (f !== undefined && f.k !== 'query' && f.k !== 'call' && f.k !== 'sync') {
      // Extended protocol: the failed message, and everything up to Sync, gets no other answer.
      this.drop();
      while (this.expected.length > 0 && this.expected[0]!.k !== 'sync') this.drop();
      this.frontChanged();
    }
    return replacement;
  }

  private rowDescription(buf: Buffer, start: number, end: number): RelayVerdict | Promise<RelayVerdict> {
    const f = this.expected[0];
    const statementDescribe = f?.k === 'describe' && f.portal === undefined;
    if (statementDescribe) {
      this.shift();
      return undefined;
    }
    if (this.o.masking === undefined && f === undefined) {
      // A simple Query without a policy: only the audit's sample needs the columns.
      this.startResult(this.o.ctx.audit.onColumns !== undefined || this.o.ctx.audit.onRow !== undefined ? this.columnsOf(buf, start, end) : undefined);
      return undefined;
    }
    const injected = f?.k === 'describe' && f.injected;
    const apply = (plan: ResultPlan | undefined): RelayVerdict => {
      if (f?.k === 'describe') {
        const name = f.portal as string;
        const portal = this.portals.get(name);
        if (portal !== undefined && plan !== undefined) portal.plan = plan;
        else if (portal === undefined && plan !== undefined && this.o.masking !== undefined) this.portals.set(name, { def: undefined, plan });
        this.shift();
      } else this.startResult(plan);
      return injected ? null : undefined;
    };
    if (this.o.masking === undefined) {
      // Without masking only the audit's sample needs the columns.
      return apply(this.o.ctx.audit.onColumns !== undefined || this.o.ctx.audit.onRow !== undefined ? this.columnsOf(buf, start, end) : undefined);
    }
    const lineage = f?.k === 'query' ? f.def.lineage?.[f.done] : f?.k === 'describe' && f.portal !== undefined ? this.portalLineage(f.portal) : undefined;
    const plan = this.o.masking.forRowDescription(buf, start, end, lineage);
    if (plan instanceof Promise) return plan.then(apply);
    return apply(plan);
  }

  /** The lineage a described portal's rows are masked by; a portal no judged Bind made fits nothing. */
  private portalLineage(name: string): readonly OutputColumn[] | undefined {
    const portal = this.portals.get(name);
    if (portal === undefined) return this.o.masking !== undefined && this.o.masking.mask.columns.length > 0 ? UNATTRIBUTED : undefined;
    return portal.def?.lineage?.[0];
  }

  /**
   * SQL DECLARE and CLOSE make and drop named portals the protocol can reach by the same name
   * (a cursor is a portal): a plan kept for the old portal does not describe the new one's rows.
   */
  private forgetPortals(which: NonNullable<StatementAnalysis['portals']>): void {
    if (!which.all) this.portals.delete(which.name);
    else for (const name of this.portals.keys()) if (name !== '') this.portals.delete(name);
  }

  /**
   * The columns of a RowDescription, decoded once per distinct description: a session mostly
   * repeats the same few statements, and the audit then recognises the same array (and reuses
   * what it built from it) instead of decoding and serialising the columns on every round trip.
   */
  private columnsOf(buf: Buffer, start: number, end: number): ResultPlan | undefined {
    const last = this.lastColumns;
    if (last !== undefined && last.bytes.length === end - start && buf.compare(last.bytes, 0, last.bytes.length, start, end) === 0) return last.plan;
    const columns = decodeColumns(buf, start, end);
    this.lastColumns = columns === undefined ? undefined : { bytes: Buffer.from(buf.subarray(start, end)), plan: { columns, masker: undefined } };
    return this.lastColumns?.plan;
  }

  /** A result starts: its columns go to the audit; rows are masked and sampled as it says. */
  private startResult(plan: ResultPlan | undefined): void {
    const queryId = this.o.tracker.currentId();
    if (plan !== undefined && queryId !== undefined) this.o.ctx.audit.onColumns?.(queryId, plan.columns);
    // One object for every result of the session (one result at a time): nothing keeps it past endResult.
    const c = (this.current = this.result);
    c.columns = plan?.columns;
    c.masker = plan?.masker;
    c.sampling = plan !== undefined && queryId !== undefined && this.o.ctx.audit.onRow !== undefined;
    c.queryId = queryId;
    this.rowAction();
  }

  private endResult(): void {
    const masker = this.current?.masker;
    if (masker !== undefined && masker.stats.valuesMasked > 0) this.o.tracker.noteRows(0, maskedNames(masker));
    if (this.current !== undefined) {
      this.current = undefined;
      this.rowAction();
    }
  }

  private rowAction(): void {
    const c = this.current;
    this.relay.actions[DD] = c?.masker !== undefined || c?.withheld === true ? INTERCEPT : c?.sampling ? OBSERVE : PASS;
  }

  private dataRow(buf: Buffer, start: number, end: number): RelayVerdict {
    const c = this.current;
    if (c === undefined) return undefined;
    if (c.withheld === true) {
      const row = nulledRow(buf, start);
      this.byteDelta += row.length - (end - start);
      return row;
    }
    let frame = buf;
    let at = start;
    let verdict: RelayVerdict;
    if (c.masker !== undefined) {
      const masked = c.masker.maskDataRowAt(buf, start, end);
      if (masked !== undefined) {
        verdict = masked;
        frame = masked;
        at = 0;
        this.byteDelta += masked.length - (end - start);
      }
    }
    if (c.sampling && c.queryId !== undefined && c.columns !== undefined) {
      if (this.o.ctx.audit.onRow?.(c.queryId, rowValues(frame, at, c.columns)) === false) {
        c.sampling = false;
        this.rowAction();
      }
    }
    return verdict;
  }

  private copyOut(): void {
    const f = this.expected[0];
    let plan: CopyMaskPlan | undefined;
    let def: StatementDef | undefined;
    if (f?.k === 'query') {
      def = f.def;
      plan = f.def.copyPlans?.[f.done];
    } else if (f?.k === 'execute') {
      def = this.portals.get(f.portal)?.def;
      plan = def?.copyPlans?.[0];
    }
    if (this.o.masking === undefined) return;
    if (plan?.action === 'mask') this.setCopyMask(createCopyMasker(plan.options));
    else if (plan?.action !== 'none') {
      // Not planned (a COPY the gateway did not see coming): its rows cannot leave unmasked.
      this.o.ctx.log.warn({ statement: def?.text.slice(0, 200) }, 'COPY TO STDOUT without a masking plan: rows withheld');
      this.setCopyMask(() => EMPTY_COPY);
    }
  }

  private setCopyMask(m: ((line: Buffer) => Buffer) | undefined): void {
    this.copyMask = m;
    if (this.o.masking !== undefined) this.relay.actions[dd] = m === undefined ? PASS : INTERCEPT;
  }

  private copyData(buf: Buffer, start: number, end: number): RelayVerdict {
    const m = this.copyMask;
    if (m === undefined) return undefined;
    const line = buf.subarray(start + 5, end);
    const out = m(line);
    if (out === line) return undefined;
    if (out === EMPTY_COPY) return null;
    const frame = Buffer.allocUnsafe(5 + out.length);
    frame[0] = dd;
    frame.writeInt32BE(4 + out.length, 1);
    out.copy(frame, 5);
    this.byteDelta += out.length - line.length;
    return frame;
  }

  /** Row bytes since the last report go to the statement results currently belong to. */
  private noteRows(): void {
    const seen = this.relay.rowBytes;
    const n = seen - this.rowBytesReported + this.byteDelta;
    this.rowBytesReported = seen;
    this.byteDelta = 0;
    if (n !== 0) this.o.tracker.noteRows(n);
  }

  private shift(): void {
    this.expected.shift();
    this.frontChanged();
  }

  /** Removes the front without an answer (the target skipped it after an error). */
  private drop(): void {
    const f = this.expected.shift();
    if (f?.k === 'parse') this.o.gate?.parseAnswered(f.name, undefined);
  }

  /** An Execute's rows use the plan its portal was described with. */
  private frontChanged(): void {
    const f = this.expected[0];
    if (f?.k === 'execute' && this.current === undefined) {
      const plan = this.portals.get(f.portal)?.plan;
      if (plan !== undefined) this.startResult(plan);
      else if (this.o.masking !== undefined) {
        // Described before SQL replaced the portal (DECLARE/CLOSE), so no RowDescription says what
        // its rows hold: NULL is valid for every column type and shows nothing.
        this.current = { columns: undefined, masker: undefined, sampling: false, queryId: this.o.tracker.currentId(), withheld: true };
        this.rowAction();
      }
    }
  }
}

/** A DataRow with every value NULL (the column count kept). */
function nulledRow(buf: Buffer, start: number): Buffer {
  const n = buf.readUInt16BE(start + 5);
  const frame = Buffer.alloc(7 + 4 * n, 0xff);
  frame[0] = DD;
  frame.writeInt32BE(6 + 4 * n, 1);
  frame.writeUInt16BE(n, 5);
  return frame;
}

const EMPTY_COPY = Buffer.alloc(0);

function decodeColumns(buf: Buffer, start: number, end: number): RowColumn[] | undefined {
  try {
    const n = buf.readUInt16BE(start + 5);
    const cols: RowColumn[] = [];
    let p = start + 7;
    for (let i = 0; i < n; i++) {
      const nul = buf.indexOf(0, p);
      if (nul < 0 || nul + 19 > end) return undefined;
      cols.push({ name: buf.toString('utf8', p, nul), tableOid: buf.readUInt32BE(nul + 1), attnum: buf.readInt16BE(nul + 5), typeOid: buf.readUInt32BE(nul + 7), typeSize: buf.readInt16BE(nul + 11), typeMod: buf.readInt32BE(nul + 13), formatCode: buf.readInt16BE(nul + 17) });
      p = nul + 19;
    }
    return cols;
  } catch {
    return undefined;
  }
}
