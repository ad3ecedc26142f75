// The policy side of one PostgreSQL session: which rules apply to the caller, the verdict for each
// statement text (analysed through the process-wide shape cache, so a statement repeated with
// other literals is parsed once), and what the session's prepared statements are. Prepared
// statements are learned only from what the target confirmed (ParseComplete, CloseComplete,
// CommandComplete of PREPARE/DEALLOCATE): a Parse or PREPARE the server refused must not replace
// a definition it still holds, or `EXECUTE` of a statement held for review could run unreviewed.
import {
  BUILTIN_RULES,
  createSqlAnalyzer,
  evaluate,
  maskPolicyFor,
  planCopyMask,
  PreparedStatements,
  routesMatter,
  ruleApplies,
  stripWriteRoutes,
  type ColumnNameResolver,
  type CompiledPolicy,
  type CopyMaskPlan,
  type Decision,
  type MaskPolicy,
  type OutputColumn,
  type PreparedStatement,
  type SqlAnalysis,
  type StatementAnalysis,
  type UserObjects,
} from '../../policy/index.js';
import { PARSE_STATE_RULE, readingProblem } from '../../policy/readingState.js';
import { APPLICATION_NAME_RULE, applicationNameRefusal } from '../../policy/applicationName.js';
import { CREDENTIALS_RULE, credentialRefusal } from '../../policy/credentials.js';
import type { Identity } from '../../model.js';
import { quoteIdent, quoteLiteral } from './catalog.js';
import { judgedAsSet, upstreamApplicationName } from './startupSettings.js';
import { SessionUserObjects, type UserObjectsSource } from './sessionUserObjects.js';
import { ExfiltrationGuard } from './exfiltrationGuard.js';
import { WriteRoutes, type CatalogRows } from './writeRouteCatalog.js';
import { copyPlanFromLineage, LineageGate, type LineageFacts } from './lineageGate.js';

/** Analyses depend only on the text, so one cache serves every session of the process. */
const analyzer = createSqlAnalyzer();

/** The process-wide analyzer's hit counters (for benchmarks and tests). */
export const analyzerStats = analyzer.stats;

/** A statement text the gateway judged: a Query's, a Parse's, or a prepared statement's. */
export interface StatementDef {
  readonly text: string;
  readonly analysis: SqlAnalysis;
  readonly decision: Decision;
  /** Per top-level statement, how a `COPY … TO STDOUT` in it is masked (mask policies only). */
  readonly copyPlans?: readonly (CopyMaskPlan | undefined)[];
  /** The write-route generation it was judged in (writeRouteCatalog.ts); older verdicts are judged again. */
  readonly routesGeneration?: number;
  /** Per top-level statement, its result columns' lineage when one needs masking (lineageGate.ts). */
  readonly lineage?: readonly (readonly OutputColumn[] | undefined)[];
  /** It computes values from masked columns (derived: redact): its errors' messages are withheld. */
  readonly withholdErrors?: true;
}

/** The lineage a StatementDef keeps (none when no result column needs masking). */
function keptLineage(results: readonly (readonly OutputColumn[] | undefined)[]): Pick<StatementDef, 'lineage' | 'withholdErrors'> {
  if (!results.some((r) => r !== undefined)) return {};
  return results.some((r) => r?.some((c) => c.lineage.kind === 'derived')) ? { lineage: results, withholdErrors: true } : { lineage: results };
}

const ALLOW: Decision = Object.freeze({ verdict: 'allow', hits: [] });
const NOT_ANALYSED: SqlAnalysis = Object.freeze({ ok: true, statements: [] });

/** Whether an analysis runs EXECUTE anywhere (its verdict depends on the prepared statements). */
function runsExecute(statements: readonly StatementAnalysis[]): boolean {
  return statements.some((s) => s.executes !== undefined || runsExecute(s.nested.map((n) => n.statement)));
}

/** COPY … TO STDOUT, whose rows the gateway must mask. */
const copiesOut = (s: StatementAnalysis) => s.copy?.direction === 'to' && s.copy.target === 'stdio';

/** Per-session policy state. */
export class PolicyGate {
  /** Some block or review rule applies to the caller: every statement is judged. */
  readonly enforce: boolean;
  /** The mask rules that apply to the caller, if any. */
  readonly mask: MaskPolicy | undefined;
  /** Statements the target confirmed by name (protocol Parse and SQL PREPARE share one namespace). */
  readonly prepared = new PreparedStatements();
  private readonly confirmed = new Map<string, StatementDef>();
  private readonly inFlight = new Map<string, number>();
  private readonly preparedDecisions = new WeakMap<PreparedStatement, StatementDef>();
  private readonly copyPlans = new Map<string, CopyMaskPlan>();
  /** What user-defined operators, aggregates, types and casts run (rules on functions only). */
  private readonly userObjects: SessionUserObjects;
  /** With column masks: refuses statements that would copy masked values (exfiltrationGuard.ts). */
  private readonly exfiltration: ExfiltrationGuard | undefined;

  /** Column masks apply: every statement (and FunctionCall) is judged, even without block rules. */
  get guardsCopies(): boolean {
    return this.exfiltration !== undefined;
  }
  /** Writes through views, rules, inheritance and keys (issue 13): present when a rule names tables. */
  private readonly routes: WriteRoutes | undefined;
  /** The write-route generation the prepared statements were last expanded in. */
  private preparedGeneration = 0;
  /** Masking by lineage, for sessions with column masks. */
  private readonly lineage: LineageGate | undefined;
  /** The name the gateway gives the session upstream (what an application_name change must not hide). */
  private readonly ownName: string;
  /**
   * evaluate()'s verdicts per statement shape, with the user-defined objects they were judged
   * with. The analyzer hands out one `relations` array per shape (shape.ts), and evaluate() reads
   * nothing of a statement that differs between texts of one shape, so a repeated statement is
   * judged once per session and catalog read. Kept only for what depends on nothing else: a
   * single statement that runs no EXECUTE (prepared statements change), no write routes (they
   * rewrite the analysis and change with the catalog), and no rule matching the text (`sql`).
   */
  private readonly evaluated = new WeakMap<object, { readonly objects: UserObjects | undefined; readonly decision: Decision }>();
  /** Some block or review rule that applies matches the request's text (`sql`): no verdict is reused. */
  private readonly textRules: boolean;

  constructor(
    private readonly identity: Identity,
    private readonly policy: CompiledPolicy,
    private readonly resolver: (ColumnNameResolver & LineageFacts) | undefined,
    objects?: UserObjectsSource,
  ) {
    this.enforce = policy.rules.some((r) => r.action !== 'mask' && ruleApplies(r, identity.groups));
    this.textRules = policy.rules.some((r) => r.action !== 'mask' && r.conditions.sql !== undefined && ruleApplies(r, identity.groups));
    this.ownName = upstreamApplicationName(identity.name, undefined);
    this.mask = maskPolicyFor(policy, identity.groups);
    this.userObjects = new SessionUserObjects(policy, identity.groups, objects);
    if (this.mask !== undefined && this.mask.columns.length > 0) this.exfiltration = new ExfiltrationGuard(this.mask, resolver);
    if (this.mask !== undefined && this.mask.columns.length > 0 && resolver !== undefined) this.lineage = new LineageGate(this.mask, resolver, (name) => this.prepared.get(name)?.statement.text);
    const rows = resolver as Partial<CatalogRows> | undefined;
    if (this.enforce && routesMatter(policy, identity.groups)) this.routes = new WriteRoutes(typeof rows?.rows === 'function' ? (rows as CatalogRows) : undefined);
  }

  /**
   * Judges a Query's or Parse's text. Returns 'wait' when the verdict depends on prepared
   * statements the target has not confirmed yet (pipelined PREPARE … ; EXECUTE …): ask again once
   * the target has answered everything sent before. COPY plans are a promise the first time a
   * COPY text is seen (the catalog is asked); ask again once it settles.
   */
  judge(text: string, pipelined: boolean): StatementDef | 'wait' | Promise<unknown> {
    const def = this.verdict(text, pipelined);
    if (this.routes === undefined || def === 'wait' || def instanceof Promise) return def;
    // Only the final verdict (after the copy guard and lineage, and never a pass that waits for
    // the catalog and is retried) may mark a definition as sent for review: one marked but then
    // refused would leave the session's writes failing closed, and its own retry refused.
    this.routes.judged(def.analysis, def.decision.verdict);
    return { ...def, routesGeneration: this.routes.generation };
  }

  /** The policy's verdict, then every session's rule on stored credentials (a configured refusal is what the client is told). */
  private verdict(text: string, pipelined: boolean): StatementDef | 'wait' | Promise<unknown> {
    const def = this.policyVerdict(text, pipelined);
    if (def === 'wait' || def instanceof Promise || def.decision.verdict === 'block') return def;
    const credential = credentialRefusal(text, def.analysis);
    return credential === undefined ? def : { text, analysis: def.analysis, decision: { verdict: 'block', rule: CREDENTIALS_RULE, reason: credential, hits: def.decision.hits } };
  }

  private policyVerdict(text: string, pipelined: boolean): StatementDef | 'wait' | Promise<unknown> {
    const appName = applicationNameRefusal(text, this.ownName);
    if (appName !== undefined) return { text, analysis: analyzer.analyze(text), decision: { verdict: 'block', rule: APPLICATION_NAME_RULE, reason: appName, hits: [] } };
    const maybeCopy = this.mask !== undefined && /copy/i.test(text);
    if (!this.enforce && !maybeCopy && this.exfiltration === undefined && this.lineage === undefined) return { text, analysis: NOT_ANALYSED, decision: ALLOW };
    const parsed = analyzer.analyze(text);
    if ((this.enforce || this.lineage !== undefined) && pipelined && parsed.ok && runsExecute(parsed.statements)) return 'wait';
    if (pipelined && this.routes?.waitsForCommit(parsed) === true) return 'wait';
    const refreshed = this.refreshPrepared();
    if (refreshed !== undefined) return refreshed;
    const userObjects = this.enforce ? this.userObjects.current() : undefined;
    if (userObjects instanceof Promise) return userObjects;
    const analysis = this.routes?.expand(parsed) ?? parsed;
    if (analysis instanceof Promise) return analysis;
    if (userObjects !== undefined && 'refused' in userObjects) return { text, analysis, decision: { verdict: 'block', rule: BUILTIN_RULES.catalogUnavailable, reason: userObjects.refused, hits: [] } };
    let decision = this.enforce ? (refuseReadingChange(analysis) ?? this.evaluate(analysis, text, userObjects)) : ALLOW;
    if (decision.verdict !== 'block' && this.exfiltration !== undefined) {
      const copy = this.exfiltration.judge(analysis, decision.hits);
      if (copy instanceof Promise) return copy;
      if (copy !== undefined) return { text, analysis, decision: copy };
    }
    // Masked sessions trace every statement's columns: what cannot be parsed cannot be traced.
    if (!analysis.ok && this.lineage !== undefined && decision.verdict !== 'block') decision = { verdict: 'block', rule: BUILTIN_RULES.unparseable, reason: `the gateway cannot parse this SQL (${analysis.error}), so its result columns cannot be traced for masking`, hits: [] };
    if (!analysis.ok || decision.verdict === 'block') return { text, analysis, decision };
    // Lineage (lineageGate.ts): refusals, and the result columns masked beyond their OIDs.
    const lineage = this.lineage?.judge(analysis.statements);
    if (lineage instanceof Promise) return lineage;
    if (lineage?.refusal !== undefined) return { text, analysis, decision: { verdict: 'block', rule: lineage.refusal.rule, reason: lineage.refusal.reason, hits: decision.hits } };
    const traced = lineage === undefined ? {} : keptLineage(lineage.results);
    if (!maybeCopy) return { text, analysis, decision, ...traced };
    const plans = this.planCopies(analysis.statements, lineage?.results);
    if (plans instanceof Promise) return plans;
    const refused = plans.find((p) => p?.action === 'refuse');
    if (refused?.action === 'refuse') decision = { verdict: 'block', rule: this.mask?.rules[0] ?? 'mask', reason: refused.reason, hits: decision.hits };
    return { text, analysis, decision, copyPlans: plans, ...traced };
  }

  /** evaluate(), answered from `evaluated` where only the statement's shape can decide. */
  private evaluate(analysis: SqlAnalysis, text: string, userObjects: UserObjects | undefined): Decision {
    const only = analysis.ok && analysis.statements.length === 1 ? analysis.statements[0] : undefined;
    const shape = only !== undefined && this.routes === undefined && !this.textRules && !runsExecute(analysis.ok ? analysis.statements : []) ? only.relations : undefined;
    const known = shape === undefined ? undefined : this.evaluated.get(shape);
    if (known !== undefined && known.objects === userObjects) return known.decision;
    const decision = evaluate(this.identity, this.policy, { kind: 'sql', analysis, text }, { prepared: this.prepared, ...(userObjects !== undefined ? { userObjects } : {}) });
    if (shape !== undefined) this.evaluated.set(shape, { objects: userObjects, decision });
    return decision;
  }

  /**
   * `def` as judged now: a verdict from before the session's DDL changed what relations reach
   * (a Parse, a confirmed statement) is judged again; its name keeps the new verdict.
   */
  fresh(name: string, def: StatementDef, pipelined: boolean): StatementDef | 'wait' | Promise<unknown> {
    if (this.routes === undefined || def.routesGeneration === undefined || def.routesGeneration === this.routes.generation) return def;
    const again = this.judge(def.text, pipelined);
    if (again !== 'wait' && !(again instanceof Promise) && this.confirmed.get(name) === def) this.confirmed.set(name, again);
    return again;
  }

  /** ReadyForQuery: idle outside a transaction, the client's definitions are visible to the catalog. */
  ready(status: 'I' | 'T' | 'E', idle: boolean): void {
    if (status === 'I' && idle) this.routes?.settled();
  }

  /** Expands the prepared statements again after the catalog changed (EXECUTE and Bind judge them). */
  private refreshPrepared(): Promise<unknown> | undefined {
    const routes = this.routes;
    if (routes === undefined || routes.generation === this.preparedGeneration) return undefined;
    const generation = routes.generation;
    for (const [name, p] of this.prepared.entries()) {
      const again = routes.expand({ ok: true, statements: [stripWriteRoutes(p.statement)] });
      if (again instanceof Promise) return again;
      const statement = again.ok ? again.statements[0] : undefined;
      if (statement !== undefined) this.prepared.define(name, statement, p.text);
    }
    this.preparedGeneration = generation;
    return undefined;
  }

  /**
   * The verdict for running prepared statement `name` (Bind), from the target-confirmed
   * definition; 'wait' while a Parse of that name is still unanswered.
   */
  judgeExecution(name: string): StatementDef | 'wait' | Promise<unknown> {
    if ((this.inFlight.get(name) ?? 0) > 0) return 'wait';
    const refreshed = this.refreshPrepared();
    if (refreshed !== undefined) return refreshed;
    const def = this.confirmed.get(name);
    if (def !== undefined) return def;
    const p = name === '' ? undefined : this.prepared.get(name);
    if (p !== undefined) {
      let d = this.preparedDecisions.get(p);
      if (d === undefined) {
        const analysis: SqlAnalysis = { ok: true, statements: [p.statement] };
        const objects = this.enforce ? this.userObjects.current() : undefined;
        if (objects instanceof Promise || (objects !== undefined && 'refused' in objects)) {
          // Rare (the objects were re-read after a definition): refuse rather than judge blind.
          return { text: p.text, analysis, decision: { verdict: 'block', rule: BUILTIN_RULES.catalogUnavailable, reason: 'the operators, aggregates, types and casts defined in the target are being read again; retry the statement', hits: [] } };
        }
        d = { text: p.text, analysis, decision: this.enforce ? evaluate(this.identity, this.policy, { kind: 'sql', analysis, text: p.text }, { prepared: this.prepared, ...(objects !== undefined ? { userObjects: objects } : {}) }) : ALLOW };
        const lineage = this.lineage !== undefined && d.decision.verdict !== 'block' ? this.lineage.judgePrepared(name) : undefined;
        if (lineage instanceof Promise) return lineage;
        if (lineage?.refusal !== undefined) d = { ...d, decision: { verdict: 'block', rule: lineage.refusal.rule, reason: lineage.refusal.reason, hits: d.decision.hits } };
        else if (lineage !== undefined) d = { ...d, ...keptLineage(lineage.results) };
        this.preparedDecisions.set(p, d);
      }
      return d;
    }
    // Nothing by that name was confirmed: the target will refuse it too, unless it holds a
    // statement the gateway never saw, which cannot be allowed.
    const text = `EXECUTE ${quoteIdent(name)}`;
    if (!this.enforce && this.lineage === undefined && this.exfiltration === undefined) return { text, analysis: NOT_ANALYSED, decision: ALLOW };
    return {
      text,
      analysis: NOT_ANALYSED,
      decision: { verdict: 'block', rule: BUILTIN_RULES.unknownPrepared, reason: `Bind of prepared statement "${name}", which the gateway has not seen prepared`, hits: [] },
    };
  }

  /** A Parse of `name` went to the target (the target drops its unnamed statement at once). */
  parseSent(name: string): void {
    this.inFlight.set(name, (this.inFlight.get(name) ?? 0) + 1);
    if (name === '') this.confirmed.delete('');
  }

  /** The target answered a Parse: with ParseComplete (`def` given) or an error (`def` undefined). */
  parseAnswered(name: string, def: StatementDef | undefined): void {
    const n = (this.inFlight.get(name) ?? 1) - 1;
    if (n > 0) this.inFlight.set(name, n);
    else this.inFlight.delete(name);
    if (def === undefined) return;
    if (def.analysis.ok && def.analysis.statements.length <= 1 && def.analysis !== NOT_ANALYSED) {
      this.confirmed.set(name, def);
      this.prepared.parsed(name, def.analysis, def.text);
    } else if (def.analysis === NOT_ANALYSED) {
      this.confirmed.set(name, def);
    } else {
      this.confirmed.delete(name);
      this.prepared.remove(name);
    }
  }

  /** A simple Query destroys the unnamed statement. */
  queryStarted(): void {
    this.confirmed.delete('');
  }

  /** CloseComplete for a statement. */
  closed(name: string): void {
    this.confirmed.delete(name);
    this.prepared.closed(name);
  }

  /** CommandComplete of a top-level statement (PREPARE, DEALLOCATE and DISCARD change the namespace). */
  completed(statement: StatementAnalysis | undefined, text: string): void {
    if (statement === undefined) return;
    this.userObjects.completed(statement);
    this.exfiltration?.completed(statement.kind);
    this.prepared.completed(statement, text);
    if (statement.deallocates !== undefined) {
      if (statement.deallocates.all) this.confirmed.clear();
      else this.confirmed.delete(statement.deallocates.name);
    }
    if (statement.prepares !== undefined) this.confirmed.delete(statement.prepares);
  }

  /**
   * Called with every ParameterStatus (and the target's startup parameters): why the session
   * must end because the target now reads text differently from the gateway, if it must.
   */
  /**
   * Why the policy refuses a setting the client gave at startup, judged as `SET name TO value`
   * would be (formatting settings aside: startupSettings.ts); undefined when every one is allowed. A review cannot be held before the session
   * exists, so a setting under review is refused with the way to ask for it.
   */
  startupSettingRefusal(settings: ReadonlyMap<string, string>): string | undefined {
    if (!this.enforce) return undefined;
    for (const [name, value] of settings) {
      if (!judgedAsSet(name)) continue;
      const text = `SET ${quoteIdent(name)} TO ${quoteLiteral(value)}`;
      const analysis = analyzer.analyze(text);
      const decision = refuseReadingChange(analysis) ?? evaluate(this.identity, this.policy, { kind: 'sql', analysis, text }, { prepared: this.prepared });
      if (decision.verdict === 'block') return `startup setting ${name}: ${decision.reason ?? `blocked by ${decision.rule ?? 'policy'}`}`;
      if (decision.verdict === 'review') return `startup setting ${name} needs a review (${decision.rule ?? 'policy'}); connect without it and run SET ${name} … so it can be reviewed`;
    }
    return undefined;
  }

  parameterStatus(name: string, value: string): string | undefined {
    return readingProblem(name, value);
  }

  private planCopies(statements: readonly StatementAnalysis[], lineage: readonly (readonly OutputColumn[] | undefined)[] | undefined): (CopyMaskPlan | undefined)[] | Promise<unknown> {
    const mask = this.mask;
    if (mask === undefined || !statements.some(copiesOut)) return statements.map(() => undefined);
    // COPY (query): its columns' lineage says what to mask (none of them: nothing but detectors).
    const traced = (s: StatementAnalysis, i: number) => (this.lineage !== undefined && s.copy !== undefined && s.copy.relation === undefined ? copyPlanFromLineage(mask, s.copy, lineage?.[i]) : undefined);
    const missing = statements.filter((s, i) => copiesOut(s) && traced(s, i) === undefined && !this.copyPlans.has(s.text));
    if (missing.length > 0) {
      if (this.resolver === undefined) return statements.map((s) => (copiesOut(s) ? { action: 'refuse', reason: 'the gateway cannot look up the columns to mask' } : undefined));
      const resolver = this.resolver;
      return Promise.all(
        missing.map(async (s) => {
          const plan = await planCopyMask(mask, s, resolver).catch((err: unknown): CopyMaskPlan => ({ action: 'refuse', reason: `the columns to mask could not be looked up (${(err as Error).message})` }));
          this.copyPlans.set(s.text, plan);
        }),
      );
    }
    return statements.map((s, i) => (copiesOut(s) ? (traced(s, i) ?? this.copyPlans.get(s.text)) : undefined));
  }
}

/**
 * A statement that would switch the target to reading text differently from the gateway (see
 * policy/readingState.ts) is refused before it is forwarded: checking the ParameterStatus that
 * follows is not enough on its own, because statements pipelined behind the change reach the
 * server before that answer reaches the gateway, and the server would read them in the new
 * setting.
 */
function refuseReadingChange(analysis: SqlAnalysis): Decision | undefined {
  if (!analysis.ok) return undefined;
  for (const s of analysis.statements) {
    if (s.reading?.effect === 'refuse') return { verdict: 'block', rule: PARSE_STATE_RULE, reason: s.reading.reason, hits: [] };
  }
  return undefined;
}
