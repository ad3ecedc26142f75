// Client → target: every message the client sends, in order, decided before anything of it is
// forwarded. Statements are recorded (write-ahead: the batch is written to the target only after
// `audit.flush()`), judged by the policy when one applies, and then forwarded, refused (the target
// is sent a refusal marker instead, see refusals.ts) or held: for a review, for a catalog look-up,
// or until the target has answered what was pipelined before (when a verdict depends on it).
// While something is held nothing after it is read, so the target sees the client's messages in
// the client's order. Frames that are forwarded unchanged go out as runs of the received bytes.
import type { PgFramer } from './codec/framer.js';
import { type BindParam, decodeBind, decodeClose, decodeDescribe, decodeExecute, decodeFunctionCall, decodeParse, decodeQueryText, encodeDescribePortal } from './codec/frontend.js';
import { BUILTIN_RULES, type Decision } from '../../policy/index.js';
import { AuditUnavailableError } from '../../audit/contract.js';
import type { PgSessionContext } from './context.js';
import { quoteIdent, type TargetCatalog } from './catalog.js';
import type { PolicyGate, StatementDef } from './policyGate.js';
import type { QueryTracker } from './queryTracker.js';
import type { Refusal, Refusals } from './refusals.js';
import { HeldReviews, type Hold } from './heldReviews.js';
import { ReadingGuard } from './readingGuard.js';
import type { ServerFlow } from './serverFlow.js';
import { APPLICATION_NAME_RULE, applicationNameRefusal, functionCallRefusal } from '../../policy/applicationName.js';
import { CREDENTIALS_RULE, credentialRefusal } from '../../policy/credentials.js';
import { upstreamApplicationName } from './startupSettings.js';


interface Frame {
  readonly type: number;
  readonly buf: Buffer;
  readonly start: number;
  readonly end: number;
}

/** What the trail says of a statement whose audit commit failed. */
export const NOT_FORWARDED = 'not forwarded: the audit store could not record it';

/** Bytes a client may send while its statements wait for the audit before reading it is paused. */
const AUDIT_WAIT_BUFFER = 1 << 20;

const Q = 0x51, P = 0x50, B = 0x42, E = 0x45, D = 0x44, C = 0x43, S = 0x53, F = 0x46, X = 0x58;

export interface ClientFlowOptions {
  readonly ctx: PgSessionContext;
  readonly framer: PgFramer;
  readonly tracker: QueryTracker;
  readonly refusals: Refusals;
  readonly server: ServerFlow;
  /** Present when a policy applies to the caller (block/review rules or masks). */
  readonly gate?: PolicyGate;
  readonly catalog?: TargetCatalog;
  /** Writes bytes to the target. */
  readonly write: (bytes: Buffer) => void;
  /** Stop and restart reading the client while something is held. */
  readonly pause: () => void;
  readonly resume: () => void;
  /** The client's Terminate went to the target. */
  readonly terminated: () => void;
  readonly fail: (err: unknown) => void;
}

function blockRefusal(d: Decision): Refusal {
  const reason = d.reason ?? 'blocked by policy';
  // Text the gateway's parser (PostgreSQL's own) rejects is a syntax error, as the server would
  // call it: drivers and tests branch on 42601. It is still refused, never forwarded.
  const sqlstate = d.rule === BUILTIN_RULES.unparseable ? '42601' : '42501';
  return { sqlstate, message: reason.startsWith('blocked by rule ') || d.rule === undefined ? reason : `blocked by rule ${d.rule}: ${reason}` };
}

const nameRefusal = (reason: string, rule = APPLICATION_NAME_RULE): Refusal => ({ sqlstate: '42501', message: `blocked by rule ${rule}: ${reason}` });

/** The rules every session keeps, policy or not: the application_name prefix and stored credentials. */
function alwaysOnRefusal(sql: string, ownName: string): { readonly rule: string; readonly reason: string } | undefined {
  const name = applicationNameRefusal(sql, ownName);
  if (name !== undefined) return { rule: APPLICATION_NAME_RULE, reason: name };
  const credential = credentialRefusal(sql);
  return credential === undefined ? undefined : { rule: CREDENTIALS_RULE, reason: credential };
}

const kindsOf = (def: StatementDef) => (def.analysis.ok && def.analysis.statements.length > 0 ? def.analysis.statements.map((s) => s.command.toUpperCase()) : undefined);

export class ClientFlow {
  private readonly out: Buffer[] = [];
  private run: Buffer | undefined;
  private runStart = 0;
  private runEnd = 0;
  /** Audit events were staged since the last flush. */
  private dirty = false;
  /** tracker.recorded when the current batch began. */
  private batchMark = 0;
  private blocked = false;
  /** Reading from the client is paused (a hold, or too much arrived during an audit wait). */
  private paused = false;
  private closed = false;
  private terminating = false;
  private replay: Frame | undefined;
  /** After a refused extended-protocol message the target skips to Sync; so does the gateway. */
  private skip = false;
  /** Parses sent since the last Sync, by statement name: Binds in the same cycle run them. */
  private readonly cycleParses = new Map<string, StatementDef>();
  /** Portals described since their Bind (masking needs every Execute's columns). */
  private readonly described = new Set<string>();
  private readonly functionNames = new Map<number, string | null>();
  private readonly reviews: HeldReviews;
  /** What went to the target that may have changed how it reads the next statement's text. */
  private readonly reading: ReadingGuard;
  /** `sluice:<identity>`, the prefix the session's application_name keeps. */
  private readonly ownName: string;
  private heldQueryId: number | undefined;
  /** The batch waiting for its audit commit: its bytes, what it holds for next, and its tracker mark. */
  private waitBytes: Buffer | undefined;
  private waitHold: Hold | undefined;
  private waitMark = 0;

  constructor(private readonly o: ClientFlowOptions) {
    this.ownName = upstreamApplicationName(o.ctx.identity.name, undefined);
    // Every session with a gate needs the barrier: block and review rules judge the text, and
    // column masks trace its result columns, so a pipelined statement the target reads in
    // settings the gateway has not seen would be judged or masked as something it is not.
    this.reading = new ReadingGuard(o.gate !== undefined ? o.catalog : undefined, () => o.server.outstanding);
    this.reviews = new HeldReviews(o.ctx, (notice) => o.server.relay.inject(notice), () => void (this.dirty = true));
  }

  /** Takes every complete message the framer holds, unless something is held. */
  pump(): void {
    if (this.blocked || this.closed) {
      // An audit wait does not pause reading (it lasts one turn of the event loop: pausing and
      // resuming the socket cost more than the wait); a client that sends this much meanwhile is paused.
      if (this.blocked && !this.paused && this.o.framer.buffered > AUDIT_WAIT_BUFFER) this.pause();
      return;
    }
    let hold: Hold | undefined;
    try {
      const f = this.o.framer;
      while (!this.terminating) {
        if (this.replay !== undefined) {
          const r = this.replay;
          this.replay = undefined;
          hold = this.handle(r.type, r.buf, r.start, r.end);
        } else if (f.next()) {
          hold = this.handle(f.type, f.buffer, f.start, f.end);
        } else break;
        if (hold !== undefined) break;
      }
    } catch (err) {
      if (err instanceof AuditUnavailableError) this.o.tracker.notForwarded(this.batchMark, '58030', NOT_FORWARDED);
      return this.o.fail(err);
    }
    this.send(hold, false);
  }

  /** The session is over: drop what is held and cancel pending reviews. */
  close(): void {
    this.closed = true;
    this.reviews.close();
  }

  /** The audit id of the statement held for review, which the target has not been sent. */
  get held(): number | undefined {
    return this.heldQueryId;
  }

  /** The client asked to cancel (CancelRequest): a statement held for review fails with 57014. */
  cancelHeld(): boolean {
    return this.reviews.cancel();
  }

  /** Writes the decided batch once the audit has it, then waits for `hold` if there is one. */
  private send(hold: Hold | undefined, again: boolean): void {
    const bytes = this.batch();
    const audit = this.o.ctx.audit;
    // afterFlush where the audit has it: no promise per statement (it never calls back before it returns).
    const waits = this.dirty && (audit.afterFlush !== undefined ? audit.afterFlush(this.onFlushed, this.onFlushFailed) : this.awaitFlush(audit.flush?.()));
    this.dirty = false;
    const mark = this.batchMark;
    this.batchMark = this.o.tracker.recorded;
    if (!waits) return this.sent(bytes, hold, again);
    // Blocked without block(): reading goes on during an audit wait (see pump). Nothing else is
    // sent until it ends, so the batch waits in fields and the handlers are bound once per session.
    this.blocked = true;
    this.waitBytes = bytes;
    this.waitHold = hold;
    this.waitMark = mark;
  }

  private awaitFlush(flushed: Promise<void> | undefined): boolean {
    flushed?.then(this.onFlushed, this.onFlushFailed);
    return flushed !== undefined;
  }

  private readonly onFlushed = (): void => {
    const bytes = this.waitBytes;
    const hold = this.waitHold;
    this.waitBytes = undefined;
    this.waitHold = undefined;
    this.unblock();
    this.sent(bytes, hold, true);
  };

  private readonly onFlushFailed = (err: unknown): void => {
    // Nothing of the batch went out: its statements are on record as not forwarded.
    this.waitBytes = undefined;
    this.waitHold = undefined;
    this.o.tracker.notForwarded(this.waitMark, '58030', NOT_FORWARDED);
    this.o.fail(err);
  };

  /** What was decided since the last batch, as one buffer (a single run is the received bytes themselves). */
  private batch(): Buffer | undefined {
    const out = this.out;
    const r = this.run;
    if (out.length === 0) {
      if (r === undefined) return undefined;
      this.run = undefined;
      return this.runStart === 0 && this.runEnd === r.length ? r : r.subarray(this.runStart, this.runEnd);
    }
    this.closeRun();
    const bytes = out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
    out.length = 0;
    return bytes;
  }

  private sent(bytes: Buffer | undefined, hold: Hold | undefined, again: boolean): void {
    if (this.closed) return;
    if (bytes !== undefined) this.o.write(bytes);
    if (this.terminating) {
      this.closed = true;
      return this.o.terminated();
    }
    if (hold !== undefined) return this.wait(hold);
    // Messages may have arrived while the batch waited for the audit.
    if (again) this.pump();
  }

  private wait(hold: Hold): void {
    this.block();
    hold().then(
      (then) => {
        this.heldQueryId = undefined;
        if (this.closed) return;
        this.unblock();
        then?.();
        if (this.run !== undefined || this.out.length > 0) this.send(undefined, true);
        else this.pump();
      },
      (err: unknown) => this.o.fail(err),
    );
  }

  private block(): void {
    this.blocked = true;
    this.pause();
  }

  private unblock(): void {
    this.blocked = false;
    if (this.paused) {
      this.paused = false;
      this.o.resume();
    }
  }

  private pause(): void {
    this.paused = true;
    this.o.pause();
  }

  private forward(buf: Buffer, start: number, end: number): void {
    if (buf === this.run && start === this.runEnd) {
      this.runEnd = end;
      return;
    }
    this.closeRun();
    this.run = buf;
    this.runStart = start;
    this.runEnd = end;
  }

  /** Bytes of the gateway's own (a refusal marker, an injected Describe). */
  private say(bytes: Buffer): void {
    this.closeRun();
    this.out.push(bytes);
  }

  private closeRun(): void {
    const r = this.run;
    if (r === undefined) return;
    this.out.push(this.runStart === 0 && this.runEnd === r.length ? r : r.subarray(this.runStart, this.runEnd));
    this.run = undefined;
  }

  private handle(type: number, buf: Buffer, start: number, end: number): Hold | undefined {
    if (type === X) {
      this.terminating = true;
      this.forward(buf, start, end);
      return undefined;
    }
    const gate = this.o.gate;
    if (gate === undefined) return this.open(type, buf, start, end);
    if (this.skip && type !== S && type !== 0x48 /* Flush */) return undefined;
    const frame: Frame = { type, buf, start, end };
    const body = buf.subarray(start + 5, end);
    switch (type) {
      case Q:
        return this.query(gate, frame, decodeQueryText(buf, start + 5, end));
      case P:
        return this.parse(gate, frame, body);
      case B:
        return this.bind(gate, frame, body);
      case E: {
        const { portal } = decodeExecute(body);
        if (gate.mask !== undefined && !this.described.has(portal)) {
          // The rows of an Execute follow a RowDescription only if the client asked for one.
          this.say(encodeDescribePortal(portal));
          this.o.server.expect({ k: 'describe', portal, injected: true });
          this.described.add(portal);
        }
        if (this.o.tracker.execute(portal) !== undefined) this.dirty = true;
        this.forward(buf, start, end);
        this.reading.execute(portal);
        this.o.server.expect({ k: 'execute', portal });
        return undefined;
      }
      case D: {
        const d = decodeDescribe(body);
        if (d.kind === 'portal') this.described.add(d.name);
        this.forward(buf, start, end);
        this.o.server.expect(d.kind === 'portal' ? { k: 'describe', portal: d.name, injected: false } : { k: 'describe', injected: false });
        return undefined;
      }
      case C: {
        const c = decodeClose(body);
        if (c.kind === 'statement') this.o.tracker.closeStatement(c.name);
        else this.o.tracker.closePortal(c.name);
        this.forward(buf, start, end);
        this.o.server.expect(c.kind === 'statement' ? { k: 'close', statement: c.name } : { k: 'close' });
        return undefined;
      }
      case S:
        this.skip = false;
        this.cycleParses.clear();
        this.o.tracker.sync();
        this.reading.sync();
        this.forward(buf, start, end);
        this.o.server.expect({ k: 'sync' });
        return undefined;
      case F:
        return this.functionCall(gate, frame, body);
    }
    this.forward(buf, start, end);
    return undefined;
  }

  /**
   * No policy for this caller: record and forward. The one check every session keeps is the
   * application_name identity prefix: a text that names application_name or set_config (a regular
   * expression decides; nothing else is parsed) is read, and one that would drop the prefix is
   * refused as a policy would refuse it, so the session goes on rather than ending at the target's
   * report of the new name.
   */
  private open(type: number, buf: Buffer, start: number, end: number): undefined {
    if (this.skip && type !== S && type !== 0x48 /* Flush */) return undefined;
    const t = this.o.tracker;
    switch (type) {
      case Q: {
        const sql = decodeQueryText(buf, start + 5, end);
        const refusal = alwaysOnRefusal(sql, this.ownName);
        this.dirty = true;
        if (refusal === undefined) {
          t.query(sql);
          break;
        }
        const cycle = t.cycles.client;
        this.refusedName(t.query(sql), refusal.reason, refusal.rule);
        this.say(this.o.refusals.query(nameRefusal(refusal.reason, refusal.rule), cycle));
        return undefined;
      }
      case P: {
        const p = decodeParse(buf.subarray(start + 5, end));
        const refusal = alwaysOnRefusal(p.sql, this.ownName);
        if (refusal === undefined) {
          t.parse(p.statement, p.sql);
          break;
        }
        // As with a policy: recorded as a statement of its own, and the target skips to Sync.
        this.dirty = true;
        const cycle = t.cycles.client;
        this.refusedName(t.refusedParse(p.sql), refusal.reason, refusal.rule);
        this.say(this.o.refusals.parse(p.statement, nameRefusal(refusal.reason, refusal.rule), cycle));
        this.skip = true;
        return undefined;
      }
      case F: {
        const call = decodeFunctionCall(buf.subarray(start + 5, end));
        const refusal = functionCallRefusal(call.functionOid, call.args, this.ownName);
        this.dirty = true;
        const cycle = t.cycles.client;
        const id = t.functionCall(call.functionOid, call.args, refusal === undefined ? undefined : 'pg_catalog.set_config');
        if (refusal === undefined) break;
        this.refusedName(id, refusal);
        this.say(this.o.refusals.query(nameRefusal(refusal), cycle));
        return undefined;
      }
      case S:
        this.skip = false;
        t.sync();
        break;
      default:
        t.clientMessage(type, buf, start + 5, end);
        if (type === B || type === E) this.dirty = true;
    }
    this.forward(buf, start, end);
    return undefined;
  }

  private refusedName(queryId: number, reason: string, rule = APPLICATION_NAME_RULE): void {
    this.o.ctx.audit.onDecision?.({ queryId, verdict: 'block', rule, reason, deferCommit: true });
  }

  private query(gate: PolicyGate, frame: Frame, text: string): Hold | undefined {
    const reading = this.reading.beforeText(this.o.server.outstanding);
    if (reading === 'wait') return this.retry(() => this.o.server.whenIdle(), frame);
    if (reading instanceof Promise) return this.retry(() => reading, frame);
    const j = gate.judge(text, this.o.server.outstanding > 0);
    if (j === 'wait') return this.retry(() => this.o.server.whenIdle(), frame);
    if (j instanceof Promise) return this.retry(() => j, frame);
    const judged = reading === undefined ? j : { ...j, decision: reading };
    gate.queryStarted();
    const cycle = this.o.tracker.cycles.client;
    const id = this.o.tracker.query(text, kindsOf(judged));
    this.decided(gate, id, judged.decision);
    const expect = () => this.o.server.expect({ k: 'query', def: judged, done: 0 });
    return this.act(judged.decision, id, text, {
      forward: () => {
        this.forward(frame.buf, frame.start, frame.end);
        this.reading.query(judged);
        expect();
      },
      refuse: (r) => {
        this.say(this.o.refusals.query(r, cycle));
        expect();
      },
    });
  }

  private parse(gate: PolicyGate, frame: Frame, body: Buffer): Hold | undefined {
    const p = decodeParse(body);
    const reading = this.reading.beforeText(this.o.server.outstanding);
    if (reading === 'wait') return this.retry(() => this.o.server.whenIdle(), frame);
    if (reading instanceof Promise) return this.retry(() => reading, frame);
    const j = gate.judge(p.sql, this.o.server.outstanding > 0);
    if (j === 'wait') return this.retry(() => this.o.server.whenIdle(), frame);
    if (j instanceof Promise) return this.retry(() => j, frame);
    const judged = reading === undefined ? j : { ...j, decision: reading };
    gate.parseSent(p.statement);
    if (judged.decision.verdict === 'block') {
      // Recorded as a statement of its own: no Bind of it will reach the target.
      const cycle = this.o.tracker.cycles.client;
      const id = this.o.tracker.refusedParse(p.sql, kindsOf(judged));
      this.decided(gate, id, judged.decision);
      this.say(this.o.refusals.parse(p.statement, blockRefusal(judged.decision), cycle));
      this.o.server.expect({ k: 'parse', name: p.statement, def: undefined });
      this.skip = true;
      return undefined;
    }
    // A review is held at the Bind that runs the statement, with its parameters.
    this.o.tracker.parse(p.statement, p.sql);
    this.cycleParses.set(p.statement, judged);
    this.forward(frame.buf, frame.start, frame.end);
    this.o.server.expect({ k: 'parse', name: p.statement, def: judged });
    return undefined;
  }

  private bind(gate: PolicyGate, frame: Frame, body: Buffer): Hold | undefined {
    const b = decodeBind(body);
    let def = this.cycleParses.get(b.statement);
    if (def === undefined) {
      const j = gate.judgeExecution(b.statement);
      if (j === 'wait') return this.retry(() => this.o.server.whenIdle(), frame);
      if (j instanceof Promise) return this.retry(() => j, frame);
      def = j;
    }
    // A verdict from before the session's DDL changed where writes go is judged again.
    const now = gate.fresh(b.statement, def, this.o.server.outstanding > 0);
    if (now === 'wait') return this.retry(() => this.o.server.whenIdle(), frame);
    if (now instanceof Promise) return this.retry(() => now, frame);
    if (now !== def && this.cycleParses.get(b.statement) === def) this.cycleParses.set(b.statement, now);
    def = now;
    const known = def;
    const cycle = this.o.tracker.cycles.client;
    const id = this.o.tracker.bind(b.statement, b.params, kindsOf(def), b.portal);
    this.decided(gate, id, def.decision);
    const expect = () => this.o.server.expect({ k: 'bind', portal: b.portal, def: known });
    return this.act(def.decision, id, def.text, {
      params: b.params,
      forward: () => {
        this.described.delete(b.portal);
        this.forward(frame.buf, frame.start, frame.end);
        this.reading.bind(b.portal, known);
        expect();
      },
      refuse: (r) => {
        this.say(this.o.refusals.bind(r, cycle));
        expect();
        this.skip = true;
      },
    });
  }

  /** FunctionCall names a function by OID only: it is judged as a call of that function by name. */
  private functionCall(gate: PolicyGate, frame: Frame, body: Buffer): Hold | undefined {
    const call = decodeFunctionCall(body);
    let decision: Decision = { verdict: 'allow', hits: [] };
    let name: string | undefined;
    let def: StatementDef | undefined;
    if (gate.enforce || gate.guardsCopies) {
      const known = this.functionNames.get(call.functionOid);
      if (known === undefined) {
        const catalog = this.o.catalog;
        return this.retry(async () => {
          const fn = await catalog?.functionName(call.functionOid).catch(() => undefined);
          this.functionNames.set(call.functionOid, fn ? `${quoteIdent(fn.schema)}.${quoteIdent(fn.name)}` : null);
        }, frame);
      }
      const judged = known === null ? undefined : gate.judge(`SELECT ${known}()`, false);
      if (judged instanceof Promise) return this.retry(() => judged, frame); // the session's user-defined objects are being read
      if (judged !== undefined && judged !== 'wait' && !(judged instanceof Promise)) {
        name = known ?? undefined;
        decision = judged.decision;
        def = judged;
      } else {
        decision = { verdict: 'block', rule: 'sluice:unknown-function', reason: `FunctionCall of the function with OID ${call.functionOid}, which the gateway cannot name`, hits: [] };
      }
    }
    // A direct set_config call is read by its arguments, which a name alone does not show.
    const appName = functionCallRefusal(call.functionOid, call.args, this.ownName);
    if (appName !== undefined) decision = { verdict: 'block', rule: APPLICATION_NAME_RULE, reason: appName, hits: [] };
    const cycle = this.o.tracker.cycles.client;
    const id = this.o.tracker.functionCall(call.functionOid, call.args, name);
    this.decided(gate, id, decision);
    return this.act(decision, id, name === undefined ? `/* FunctionCall of the function with OID ${call.functionOid} */` : `SELECT ${name}(…)`, {
      forward: () => {
        this.forward(frame.buf, frame.start, frame.end);
        if (gate.enforce) this.reading.call(def);
        this.o.server.expect({ k: 'call' });
      },
      refuse: (r) => {
        // A Query fails and ends its cycle exactly as a FunctionCall does.
        this.say(this.o.refusals.query(r, cycle));
        this.o.server.expect({ k: 'call' });
      },
    });
  }

  private decided(gate: PolicyGate, queryId: number, d: Decision): void {
    this.dirty = true;
    if (!gate.enforce && d.verdict === 'allow') return;
    this.o.ctx.audit.onDecision?.({ queryId, verdict: d.verdict, ...(d.rule !== undefined ? { rule: d.rule } : {}), ...(d.reason !== undefined ? { reason: d.reason } : {}), deferCommit: true });
  }

  /** Waits for `until`, then takes `frame` again. */
  private retry(until: () => Promise<unknown>, frame: Frame): Hold {
    return async () => {
      await until();
      return () => void (this.replay = frame);
    };
  }

  private act(d: Decision, queryId: number, sql: string, how: { forward: () => void; refuse: (r: Refusal) => void; params?: readonly BindParam[] }): Hold | undefined {
    if (d.verdict === 'allow') how.forward();
    else if (d.verdict === 'block') how.refuse(blockRefusal(d));
    else {
      this.heldQueryId = queryId;
      return this.reviews.hold(d, queryId, sql, how, how.params);
    }
    return undefined;
  }
}
