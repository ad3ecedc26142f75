// Pairs what a client asks with what the target answers, for the audit trail, without holding
// up the relay: the session hands it client messages before forwarding them and the few target
// messages that carry results (decoding only those). Each client Query, Sync or FunctionCall opens one "cycle" that the target closes
// with exactly one ReadyForQuery; statements are recorded when sent (Query, or Bind for the
// extended protocol, with the SQL of the statement it binds) and get their result when their
// cycle ends. An Execute with no Bind of its portal before it (a later Execute of a portal its
// row limit suspended, or of a cursor declared in SQL) sends rows no Bind accounts for, so it is
// recorded as a statement of its own, naming the portal and what it runs. Within a cycle, extended-protocol statements take results in order (each Execute
// answers with one CommandComplete, EmptyQueryResponse, PortalSuspended or ErrorResponse); after
// an error the target skips to Sync, so the rest of that cycle is reported as not executed.
import type { PostgresSessionAudit, ResultInfo } from '../../audit/postgresEvents.js';
import { decodeCommandComplete, decodeErrorFields, rowCountFromTag, type PgErrorFields } from './codec/backend.js';
import { decodeBind, decodeClose, decodeExecute, decodeFunctionCall, decodeParse, decodeQueryText, type BindParam } from './codec/frontend.js';

/**
 * A statement waiting for its result. It is also what the audit is told when the result is
 * complete (ResultInfo): handed over as it is, with every member present from the start so all
 * of them share one shape — a new object per result was a noticeable part of recording a round trip.
 */
class Pending implements ResultInfo {
  status: 'ok' | 'error' = 'ok';
  readonly commands: string[] = [];
  rows: number | undefined = undefined;
  sqlstate: string | undefined = undefined;
  message: string | undefined = undefined;
  durationMs = 0;
  /** Bytes of the rows sent to the client (DataRow and CopyData frames). */
  bytes: number | undefined = undefined;
  /** Names of the result columns masking changed, each once. */
  masked: string[] | undefined = undefined;
  finished: number | undefined = undefined;
  done = false;

  constructor(
    readonly queryId: number,
    /** Order of recording in this session. */
    readonly seq: number,
    readonly protocol: 'simple' | 'extended',
    readonly cycle: number,
    readonly started: number,
  ) {}
}

/** Named portals remembered for their Executes; beyond it, oldest first out (a portal dies with its transaction). */
const MAX_PORTALS = 1024;

/** Message used for statements a target skipped because an earlier one in its pipeline failed. */
export const SKIPPED_MESSAGE = 'not executed: an earlier message before the same Sync failed';

/**
 * Turns client messages and target results into `onQuery`/`onResult` calls. Audit hooks are
 * called synchronously, before the message that triggered them is forwarded.
 */
export class QueryTracker {
  private readonly statements = new Map<string, string>();
  /** Portal → the SQL its Bind bound (portals of cursors declared in SQL are not here). */
  private readonly portals = new Map<string, string>();
  /** Portals bound and not executed yet: their first Execute belongs to the Bind's record. */
  private readonly unexecuted = new Set<string>();
  private readonly pending: Pending[] = [];
  /**
   * Cycles the client has opened and the target has closed, counted in place: `cycles` hands out
   * this object (read several times per message) rather than a new one per read.
   */
  private readonly counts = { client: 0, server: 0 };
  private recordedCount = 0;
  private cycleFailed = false;
  /** Statements running when the client went away (the gateway cancelled them), and why. */
  private gone: { readonly statements: Set<Pending>; readonly note: string } | undefined;

  constructor(
    private readonly audit: PostgresSessionAudit,
    private readonly now: () => number = () => performance.now(),
    /** Stage `query` events without committing: the engine awaits `audit.flush()` before forwarding. */
    private readonly deferCommit = false,
  ) {}

  /** Cycles the client has opened (Query, Sync, FunctionCall) and the target has closed (ReadyForQuery). */
  get cycles(): { readonly client: number; readonly server: number } {
    return this.counts;
  }

  /** The audit id of the statement results currently belong to, if any. */
  currentId(): number | undefined {
    return this.current()?.queryId;
  }

  /**
   * The client went away while the target ran what is pending (all but `held`, a statement held
   * for review that the target was not sent), and the gateway cancels it: each such statement's
   * result starts with `note`, followed by the outcome the target reported (its error, or that it
   * had completed), or that it reported none. False when nothing was pending.
   */
  clientGone(note: string, held: number | undefined): boolean {
    const statements = new Set(this.pending.filter((q) => q.queryId !== held));
    this.gone = { statements, note };
    return statements.size > 0;
  }

  /** Statements marked by clientGone() whose results the target has not finished yet. */
  get goneLeft(): number {
    return this.gone?.statements.size ?? 0;
  }

  /** How many statements were recorded so far: a mark for notForwarded(). */
  get recorded(): number {
    return this.recordedCount;
  }

  /**
   * Statements recorded after `mark` never reached the target (their audit commit failed): they
   * are reported with this error whatever else happens.
   */
  notForwarded(mark: number, sqlstate: string, message: string): void {
    const t = this.now();
    for (const q of this.pending) {
      if (q.seq <= mark || q.done) continue;
      q.done = true;
      q.status = 'error';
      q.sqlstate = sqlstate;
      q.message = message;
      q.finished = t;
    }
  }

  /** Adds row bytes and masked column names to the statement results currently belong to. */
  noteRows(bytes: number, masked?: Iterable<string>): void {
    const q = this.current();
    if (!q) return;
    if (bytes > 0) q.bytes = (q.bytes ?? 0) + bytes;
    if (masked) {
      for (const m of masked) {
        const list = (q.masked ??= []);
        if (!list.includes(m)) list.push(m);
      }
    }
  }

  /**
   * Takes note of one client message (`buf[start, end)` is its body) before it is forwarded.
   * @throws PgProtocolError for a malformed Query, Parse, Bind, FunctionCall or Close, and
   * whatever `onQuery` throws (AuditUnavailableError): either way the message must not go on.
   */
  clientMessage(type: number, buf: Buffer, start: number, end: number): void {
    switch (type) {
      case 0x51 /* Q */:
        this.query(decodeQueryText(buf, start, end));
        return;
      case 0x50 /* P */: {
        const p = decodeParse(buf.subarray(start, end));
        return this.parse(p.statement, p.sql);
      }
      case 0x42 /* B */: {
        const b = decodeBind(buf.subarray(start, end));
        this.bind(b.statement, b.params, undefined, b.portal);
        return;
      }
      case 0x45 /* E */:
        this.execute(decodeExecute(buf.subarray(start, end)).portal);
        return;
      case 0x43 /* C */: {
        const c = decodeClose(buf.subarray(start, end));
        if (c.kind === 'statement') this.closeStatement(c.name);
        else this.closePortal(c.name);
        return;
      }
      case 0x53 /* S */:
        return this.sync();
      case 0x46 /* F */: {
        const call = decodeFunctionCall(buf.subarray(start, end));
        this.functionCall(call.functionOid, call.args);
        return;
      }
    }
  }

  /**
   * Takes note of a target message (CommandComplete, ErrorResponse, EmptyQueryResponse, PortalSuspended, ReadyForQuery); returns the fields of an
   * ErrorResponse so the caller can see a FATAL. An empty body (too large to collect) is an error
   * without details.
   */
  serverMessage(type: number, buf: Buffer, start: number, end: number): PgErrorFields | undefined {
    switch (type) {
      case 0x43 /* C */:
        this.commandComplete(decodeCommandComplete(buf, start, end));
        return undefined;
      case 0x45 /* E */: {
        const e = start === end ? undefined : decodeErrorFields(buf.subarray(start, end));
        this.error(e?.code ?? '', e?.message ?? 'error too large to record');
        return e;
      }
      case 0x49 /* I */:
      case 0x73 /* s */:
        this.executeAnswered();
        return undefined;
      case 0x5a /* Z */:
        this.ready();
        return undefined;
    }
    return undefined;
  }

  /** A simple Query: one statement string, its own cycle. Returns its audit id. */
  query(sql: string, kinds?: readonly string[]): number {
    const id = this.record(sql, undefined, 'simple', kinds);
    this.counts.client++;
    return id;
  }

  /** Parse: remembers the statement's SQL for the Binds that follow. */
  parse(statement: string, sql: string): void {
    this.statements.set(statement, sql);
  }

  /** Bind: the statement is about to run with these parameters. Returns its audit id. */
  bind(statement: string, params: readonly BindParam[], kinds?: readonly string[], portal = ''): number {
    const sql = this.statements.get(statement) ?? `/* prepared statement "${statement}" (not prepared in this session's protocol) */`;
    const id = this.record(sql, params.map(paramText), 'extended', kinds);
    this.portals.delete(portal);
    this.portals.set(portal, sql);
    if (this.portals.size > MAX_PORTALS) {
      // The oldest goes from both: a client binding new portal names it never executes must not
      // grow the session. Its Execute, if one still comes, is then recorded on its own.
      const oldest = this.portals.keys().next().value as string;
      this.portals.delete(oldest);
      this.unexecuted.delete(oldest);
    }
    this.unexecuted.add(portal);
    return id;
  }

  /**
   * Execute: the first one after its portal's Bind is that Bind's statement; any other is recorded
   * now as a statement of its own. Returns its audit id, or undefined when the Bind's record covers it.
   * @throws whatever `onQuery` throws: the Execute must not go on unrecorded.
   */
  execute(portal: string): number | undefined {
    if (this.unexecuted.delete(portal)) return undefined;
    const sql = this.portals.get(portal);
    const text = sql === undefined ? `/* Execute of portal "${portal}" (a cursor declared in SQL) */` : `/* Execute of portal "${portal}" */ ${sql}`;
    return this.record(text, undefined, 'extended');
  }

  /** Close of a portal: its next Execute (if any) fails at the target; forget its SQL. */
  closePortal(portal: string): void {
    this.portals.delete(portal);
    this.unexecuted.delete(portal);
  }

  /** A Parse the gateway refuses: recorded as a statement of its own (no Bind will follow it). */
  refusedParse(sql: string, kinds?: readonly string[]): number {
    return this.record(sql, undefined, 'extended', kinds);
  }

  /** Close of a prepared statement: forget it so long sessions do not accumulate SQL. */
  closeStatement(statement: string): void {
    this.statements.delete(statement);
  }

  /** Sync: ends the client's current cycle. */
  sync(): void {
    this.counts.client++;
  }

  /** FunctionCall: runs a function by OID without SQL; recorded as a statement, its own cycle. */
  functionCall(functionOid: number, args: readonly BindParam[], name?: string): number {
    const id = this.record(`/* FunctionCall of ${name ?? `the function with OID ${functionOid}`} */`, args.map(paramText), 'extended');
    this.counts.client++;
    return id;
  }

  /** CommandComplete from the target. */
  commandComplete(tag: string): void {
    const q = this.current();
    if (!q) return;
    q.commands.push(tag);
    const rows = rowCountFromTag(tag);
    if (rows !== undefined) q.rows = (q.rows ?? 0) + rows;
    if (q.protocol === 'extended') this.finish(q);
  }

  /** EmptyQueryResponse or PortalSuspended: an Execute answered without a command tag. */
  executeAnswered(): void {
    const q = this.current();
    if (q && q.protocol === 'extended') this.finish(q);
  }

  /** ErrorResponse from the target. */
  error(sqlstate: string, message: string): void {
    this.cycleFailed = true;
    const q = this.current();
    if (!q) return;
    q.status = 'error';
    q.sqlstate = sqlstate;
    q.message = message;
    this.finish(q);
  }

  /** ReadyForQuery: the target finished the oldest open cycle; report its statements. */
  ready(): void {
    const t = this.now();
    let k = 0;
    while (k < this.pending.length && this.pending[k]!.cycle === this.counts.server) {
      const q = this.pending[k++]!;
      if (!q.done && this.cycleFailed) {
        q.status = 'error';
        q.message = SKIPPED_MESSAGE;
      }
      this.report(q, t);
    }
    if (k === this.pending.length) this.pending.length = 0;
    else this.pending.splice(0, k);
    this.counts.server++;
    this.cycleFailed = false;
  }

  /** Session over: report every statement still waiting for its result as failed. */
  abandon(sqlstate: string | undefined, message: string): void {
    const t = this.now();
    for (const q of this.pending) {
      if (!q.done) {
        q.status = 'error';
        if (sqlstate !== undefined) q.sqlstate = sqlstate;
        q.message = this.gone?.statements.has(q) === true ? 'the target reported no outcome before its connection was closed' : message;
      }
      this.report(q, t);
    }
    this.pending.length = 0;
  }

  private record(text: string, params: (string | null)[] | undefined, protocol: 'simple' | 'extended', kinds?: readonly string[]): number {
    // Every member present (undefined when absent): one object shape, no spreads, on every statement.
    const id = this.audit.onQuery({ text, params, protocol, kinds, deferCommit: this.deferCommit || undefined });
    this.pending.push(new Pending(id, ++this.recordedCount, protocol, this.counts.client, this.now()));
    return id;
  }

  /** The statement the next result belongs to: the first unfinished one of the target's cycle. */
  private current(): Pending | undefined {
    for (const q of this.pending) {
      if (q.cycle !== this.counts.server) return undefined;
      if (!q.done) return q;
    }
    return undefined;
  }

  private finish(q: Pending): void {
    q.done = true;
    q.finished = this.now();
  }

  private report(q: Pending, t: number): void {
    q.durationMs = (q.finished ?? t) - q.started;
    if (this.gone?.statements.has(q) === true) {
      const reported = q.status === 'error' ? (q.message ?? '') : `the target had completed it${q.commands.length > 0 ? ` (${q.commands.join(', ')})` : ''}`;
      q.message = `${this.gone.note}; ${reported}`;
      this.gone.statements.delete(q);
    }
    this.audit.onResult(q);
  }
}

/** Audit form of a Bind parameter: text as is, binary as PostgreSQL's bytea hex form. */
function paramText(p: BindParam): string | null {
  if (p === null || typeof p === 'string') return p;
  return `\\x${p.toString('hex')}`;
}
