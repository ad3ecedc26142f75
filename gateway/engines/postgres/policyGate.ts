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
  ruleApplies,
  type ColumnNameResolver,
  type CompiledPolicy,
  type CopyMaskPlan,
  type Decision,
  type MaskPolicy,
  type OutputColumn,
  type PreparedStatement,
  type SqlAnalysis,
  type StatementAnalysis,
} from '../../policy/index.js';
import type { Identity } from '../types.js';
import { quoteIdent } from './catalog.js';
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
  /** Why statements are refused while the session's settings make SQL ambiguous, if they do. */
  unsafe: string | undefined;
  private readonly confirmed = new Map<string, StatementDef>();
  private readonly inFlight = new Map<string, number>();
  private readonly preparedDecisions = new WeakMap<PreparedStatement, StatementDef>();
  private readonly copyPlans = new Map<string, CopyMaskPlan>();
  /** Masking by lineage, for sessions with column masks. */
  private readonly lineage: LineageGate | undefined;

  constructor(
    private readonly identity: Identity,
    private readonly policy: CompiledPolicy,
    private readonly resolver: (ColumnNameResolver & LineageFacts) | undefined,
  ) {
    this.enforce = policy.rules.some((r) => r.action !== 'mask' && ruleApplies(r, identity.groups));
    this.mask = maskPolicyFor(policy, identity.groups);
    if (this.mask !== undefined && this.mask.columns.length > 0 && resolver !== undefined) this.lineage = new LineageGate(this.mask, resolver, (name) => this.prepared.get(name)?.statement.text);
  }

  /**
   * Judges a Query's or Parse's text. Returns 'wait' when the verdict depends on prepared
   * statements the target has not confirmed yet (pipelined PREPARE … ; EXECUTE …): ask again once
   * the target has answered everything sent before. COPY plans are a promise the first time a
   * COPY text is seen (the catalog is asked); ask again once it settles.
   */
  judge(text: string, pipelined: boolean): StatementDef | 'wait' | Promise<unknown> {
    const maybeCopy = this.mask !== undefined && /copy/i.test(text);
    if (!this.enforce && !maybeCopy && this.lineage === undefined) return { text, analysis: NOT_ANALYSED, decision: ALLOW };
    const analysis = analyzer.analyze(text);
    if ((this.enforce || this.lineage !== undefined) && pipelined && analysis.ok && runsExecute(analysis.statements)) return 'wait';
    let decision = this.enforce ? (this.refuseUnsafe(text) ?? this.refuseSettingChange(analysis) ?? evaluate(this.identity, this.policy, { kind: 'sql', analysis, text }, { prepared: this.prepared })) : ALLOW;
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

  /**
   * The verdict for running prepared statement `name` (Bind), from the target-confirmed
   * definition; 'wait' while a Parse of that name is still unanswered.
   */
  judgeExecution(name: string): StatementDef | 'wait' | Promise<unknown> {
    if ((this.inFlight.get(name) ?? 0) > 0) return 'wait';
    const def = this.confirmed.get(name);
    if (def !== undefined) return def;
    const p = name === '' ? undefined : this.prepared.get(name);
    if (p !== undefined) {
      let d = this.preparedDecisions.get(p);
      if (d === undefined) {
        const analysis: SqlAnalysis = { ok: true, statements: [p.statement] };
        d = { text: p.text, analysis, decision: this.enforce ? evaluate(this.identity, this.policy, { kind: 'sql', analysis, text: p.text }, { prepared: this.prepared }) : ALLOW };
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
    if (!this.enforce) return { text, analysis: NOT_ANALYSED, decision: ALLOW };
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
    this.prepared.completed(statement, text);
    if (statement.deallocates !== undefined) {
      if (statement.deallocates.all) this.confirmed.clear();
      else this.confirmed.delete(statement.deallocates.name);
    }
    if (statement.prepares !== undefined) this.confirmed.delete(statement.prepares);
  }

  /** Called with every ParameterStatus: the parser reads SQL as the server does only in these settings. */
  parameterStatus(name: string, value: string): void {
    const problem = unsafeSetting(name, value);
    if (problem !== undefined) this.unsafe = problem;
    else if (this.unsafe?.startsWith(`${name} `)) this.unsafe = undefined;
  }

  private refuseSettingChange(analysis: SqlAnalysis): Decision | undefined {
    const problem = analysis.ok ? unsafeSettingChange(analysis.statements) : undefined;
    return problem === undefined ? undefined : { verdict: 'block', rule: 'sluice:unsafe-setting', reason: problem, hits: [] };
  }

  private refuseUnsafe(text: string): Decision | undefined {
    // Setting it back must stay possible: without a `;` the text is one statement, and the
    // server runs it as a SET of that parameter however the gateway would read its value.
    if (this.unsafe === undefined || /^\s*(set|reset)\s+(session\s+)?(standard_conforming_strings|client_encoding)\b[^;]*;?\s*$/i.test(text)) return undefined;
    return { verdict: 'block', rule: 'sluice:unsafe-setting', reason: `${this.unsafe}; statements are refused until it is changed back`, hits: [] };
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

const CLIENT_ENCODINGS_READ_AS_UTF8 = new Set(['utf8', 'unicode', 'sql_ascii']);

/**
 * The settings under which the gateway's parser could read a statement differently from the
 * server: backslashes in strings (standard_conforming_strings off) and client encodings that are
 * not UTF-8 (some, like SJIS or BIG5, put ASCII quote and backslash bytes inside characters).
 */
export function unsafeSetting(name: string, value: string): string | undefined {
  const n = name.toLowerCase();
  if (n === 'standard_conforming_strings' && value.toLowerCase() !== 'on') return 'standard_conforming_strings is off, so the gateway cannot read string literals as the server does';
  if (n === 'client_encoding' && !CLIENT_ENCODINGS_READ_AS_UTF8.has(value.toLowerCase().replace(/-/g, ''))) {
    return `client_encoding is ${value}, and the gateway reads statements as UTF-8`;
  }
  return undefined;
}

const SET_READING = /^\s*set\s+(?:session\s+|local\s+)?(client_encoding|names|standard_conforming_strings)\b\s*(?:to\b|=)?\s*(.*?)\s*;?\s*$/is;
const SET_CONFIG = /\bset_config\s*\(\s*('(?:[^']|'')*')?/gi;
const READING_SETTINGS = /^(client_encoding|standard_conforming_strings)$/i;

/**
 * A statement that would switch the server to reading SQL differently from the gateway (see
 * unsafeSetting): refused before it is forwarded. Checking the ParameterStatus the server sends
 * afterwards is not enough on its own: statements a client pipelines behind the change reach the
 * server before that answer reaches the gateway, and the server would read them in the new
 * setting. Covers SET [SESSION|LOCAL] client_encoding / NAMES / standard_conforming_strings and
 * set_config() (whose setting name must then be a literal); DEFAULT and RESET return to the
 * session's start value, which the gateway has checked already.
 */
export function unsafeSettingChange(statements: readonly StatementAnalysis[]): string | undefined {
  for (const s of statements) {
    if (s.kind === 'set') {
      const m = SET_READING.exec(s.text);
      if (m) {
        const raw = (m[2] as string).trim();
        if (/^default$/i.test(raw) || raw === '') continue;
        const value = raw.replace(/^'(.*)'$/s, '$1').replace(/''/g, "'");
        const name = (m[1] as string).toLowerCase() === 'names' ? 'client_encoding' : (m[1] as string).toLowerCase();
        const problem = unsafeSetting(name, name === 'standard_conforming_strings' && /^(true|yes|1|on)$/i.test(value) ? 'on' : value);
        if (problem !== undefined) return `${problem.replace(/ is /, ' would be ')}`;
      }
    }
    if (s.functions.some((f) => f.name.toLowerCase() === 'set_config')) {
      for (const call of s.text.matchAll(SET_CONFIG)) {
        const literal = call[1];
        if (literal === undefined) return 'set_config() with a setting name that is not a literal could change how the server reads statements';
        const name = literal.slice(1, -1).replace(/''/g, "'");
        if (READING_SETTINGS.test(name)) return `set_config('${name}', …) would change how the server reads statements; use SET ${name} with a value the gateway reads as the server does`;
      }
    }
  }
  return undefined;
}

