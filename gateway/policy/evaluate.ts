// The policy decision for one client request: a pure function of who asks (their groups), the
// connection's compiled policy, the analysed SQL and the session's prepared statements.
//
// Order (docs/policy.md, "Evaluation"): every applicable block and review rule is checked against
// every statement in the request and every statement nested in it; any block wins over any
// review, any review over allow. One blocked statement blocks the whole request, because the
// engine forwards a Query message whole or not at all.
//
// Nested statements that run with their parent (CTEs, EXPLAIN ANALYZE, CREATE TABLE AS, COPY
// (query), cursors, CREATE SCHEMA elements, dynamic SQL) meet every rule. Those that only define
// something to run later (PREPARE, plain EXPLAIN, views, rules, SQL function bodies) meet block
// rules only: blocking early is free, while a review is held for when the statement runs (EXECUTE).
import type { CompiledBlockRule, CompiledConditions, CompiledPolicy, CompiledReviewRule } from './schema.js';
import { ruleApplies } from './schema.js';
import { globMatches, nameMatches } from './names.js';
import type { PreparedStatement, PreparedStatements } from './prepared.js';
import type { SqlAnalysis, StatementAnalysis } from './sql.js';
import { maskPolicyFor, type MaskPolicy } from './mask/plan.js';
import { functionUses, hiddenSqlText, type FunctionUse, type UserObjects } from './userObjects.js';

export type Verdict = 'allow' | 'block' | 'review';

/** Built-in reasons that are not configured rules; they appear as `rule` in decisions. */
export const BUILTIN_RULES = {
  unparseable: 'sluice:unparseable',
  opaque: 'sluice:opaque-code',
  unknownPrepared: 'sluice:unknown-prepared-statement',
  /** A rule on functions applies and the target's user-defined operators, casts, … could not be read. */
  catalogUnavailable: 'sluice:catalog-unavailable',
} as const;

export interface RuleHit {
  readonly rule: string;
  readonly action: 'block' | 'review';
  /** The command that matched (`delete`, `drop table`), or the nested statement's. */
  readonly command: string;
  /** Why the rule matched, for the audit trail: `statement delete`, `function pg_read_file`, … */
  readonly because: string;
}

export interface ReviewRequirement {
  readonly rule: string;
  readonly approvers: readonly string[];
  readonly timeoutMs: number;
}

export interface Decision {
  readonly verdict: Verdict;
  /** The deciding rule: the first block hit in configuration order, else the first review hit. */
  readonly rule?: string;
  /** A sentence for the client and the audit trail (the rule's `message` when it has one). */
  readonly reason?: string;
  /** Review only: who may approve (the deciding rule's approvers) and how long to wait. */
  readonly approvers?: readonly string[];
  readonly timeoutMs?: number;
  /**
   * Review only: every review rule that matched. A careful review service asks for an approval
   * from each one's groups; the minimum timeout is in `timeoutMs`.
   */
  readonly reviews?: readonly ReviewRequirement[];
  /** Every rule that matched, in configuration order (block and review). */
  readonly hits: readonly RuleHit[];
  /** The mask rules that apply to this identity (for the engine's row masker), if any. */
  readonly mask?: MaskPolicy;
}

export interface SqlAction {
  readonly kind: 'sql';
  readonly analysis: SqlAnalysis;
  /** The text as the client sent it. */
  readonly text: string;
}

export interface EvaluationContext {
  /** The session's prepared statements (for EXECUTE); absent = none known. */
  readonly prepared?: PreparedStatements;
  /** The target's user-defined operators, aggregates, types and casts (absent: none known). */
  readonly userObjects?: UserObjects;
}

type Mode = 'full' | 'blockOnly';

interface Applicable {
  readonly block: readonly CompiledBlockRule[];
  readonly review: readonly CompiledReviewRule[];
}

const MAX_EXECUTE_DEPTH = 8;

/** `text` is what `sql` patterns match: the whole request, or the text that prepared an EXECUTEd statement. */
function conditionHits(c: CompiledConditions, s: StatementAnalysis, text: string, uses: () => readonly FunctionUse[]): string[] | undefined {
  const results: (string | undefined)[] = [];
  if (c.statements !== undefined) results.push(c.statements.has(s.command) ? `statement ${s.command}` : c.statements.has(s.kind) ? `statement ${s.kind}` : impliedStatement(c, s));
  if (c.tables !== undefined) {
    const tables = c.tables;
    const rel = s.relations.find((r) => tables.some((p) => nameMatches(p, r)));
    // A whole schema (DROP SCHEMA s CASCADE) touches every table a pattern could name in it.
    const schema = rel === undefined ? s.schemas.find((sc) => tables.some((p) => p.schema === undefined || globMatches(p.schema, sc))) : undefined;
    results.push(rel !== undefined ? `table ${rel.schema !== undefined ? `${rel.schema}.` : ''}${rel.name}` : schema !== undefined ? `schema ${schema}` : s.everyTable === true ? 'every table of the database' : undefined);
  }
  if (c.functions !== undefined) {
    const fns = c.functions;
    const use = uses().find((u) => fns.some((p) => nameMatches(p, u.ref)));
    results.push(use !== undefined ? describeUse(use) : undefined);
  }
  if (c.functionsAllowed !== undefined) {
    const allowed = c.functionsAllowed;
    const use = uses().find((u) => u.attachedBuiltin !== true && !allowed.some((p) => nameMatches(p, u.ref)));
    results.push(use !== undefined ? `${describeUse(use)}, which is not in the allow list` : undefined);
  }
  if (c.unboundedWrites) results.push(s.unboundedWrite ? `${s.command} without a WHERE clause` : undefined);
  if (c.copyProgram) results.push(s.copy?.target === 'program' ? 'COPY … PROGRAM' : undefined);
  if (c.copyFile) results.push(s.copy?.target === 'file' ? 'COPY to or from a server file' : undefined);
  if (c.sql !== undefined) {
    const re = c.sql.find((r) => r.test(text));
    results.push(re !== undefined ? `text matches /${re.source}/` : undefined);
  }
  const matched = results.filter((r): r is string => r !== undefined);
  if (c.match === 'all') return matched.length === results.length && results.length > 0 ? matched : undefined;
  return matched.length > 0 ? matched : undefined;
}

/**
 * Statements that do what a listed kind does under another name: `COPY table TO` reads the rows
 * as `SELECT` does; with a rule on tables, any statement that reads a listed table (`INSERT …
 * SELECT`, a subquery of an `UPDATE`, `RETURNING` of a write) is a `select` of it, and a rename
 * or move of a relation is judged as every statement on it, since afterwards its rows answer to a
 * name no rule lists.
 */
function impliedStatement(c: CompiledConditions, s: StatementAnalysis): string | undefined {
  const tables = c.tables;
  // TRUNCATE and DROP TABLE remove every row: a rule on deletes holds for them (with tables, write routes add the delete).
  if (c.statements?.has('delete') === true && (s.command === 'truncate' || s.command === 'drop table')) return `statement delete (${s.command} removes every row)`;
  if (c.statements?.has('select') === true) {
    if (s.copy?.direction === 'to' && s.copy.relation !== undefined) return 'statement copy … to (reads the table as select does)';
    const read = tables === undefined ? undefined : s.relations.find((r) => (r.access === 'read' || s.returnsRows === true) && tables.some((p) => nameMatches(p, r)));
    if (read !== undefined) return `statement select (the ${s.command} reads ${read.name})`;
  }
  if (s.renamesRelation === true && tables !== undefined) return `statement ${s.command} (a new name for the relation: judged as every statement on it)`;
  return undefined;
}

const describeUse = (u: FunctionUse): string => `function ${u.ref.schema !== undefined ? `${u.ref.schema}.` : ''}${u.ref.name}${u.via !== undefined ? ` (through ${u.via})` : ''}`;

class Judge {
  readonly hits: RuleHit[] = [];
  /** Review rules hit, with their requirements. */
  readonly reviewRules = new Map<string, CompiledReviewRule>();
  readonly blockRules = new Set<string>();
  readonly builtinBlocks: { rule: string; reason: string }[] = [];
  builtinReview: { rule: string; reason: string; via: CompiledReviewRule } | undefined;

  constructor(
    readonly applicable: Applicable,
    readonly lookup: (name: string) => PreparedStatement | undefined,
    readonly userObjects: UserObjects | undefined,
  ) {}

  /** Fail closed: block when a block rule applies; else hold for review when a review rule does. */
  failClosed(rule: string, reason: string, mode: Mode, allowReview: boolean): void {
    if (this.applicable.block.length > 0 || (!allowReview && this.applicable.review.length > 0)) this.builtinBlocks.push({ rule, reason });
    else if (mode === 'full' && this.applicable.review.length > 0) this.builtinReview ??= { rule, reason, via: this.applicable.review[0] as CompiledReviewRule };
  }

  statement(s: StatementAnalysis, text: string, mode: Mode, depth: number): void {
    let known: FunctionUse[] | undefined;
    const uses = () => (known ??= functionUses(s, this.userObjects));
    for (const r of this.applicable.block) {
      const why = conditionHits(r.conditions, s, text, uses);
      if (why !== undefined) {
        this.blockRules.add(r.id);
        this.hits.push({ rule: r.id, action: 'block', command: s.command, because: why.join(', ') });
      }
    }
    if (mode === 'full') {
      for (const r of this.applicable.review) {
        const why = conditionHits(r.conditions, s, text, uses);
        if (why !== undefined) {
          this.reviewRules.set(r.id, r);
          this.hits.push({ rule: r.id, action: 'review', command: s.command, because: why.join(', ') });
        }
      }
    }
    if (s.opaque !== undefined) this.failClosed(BUILTIN_RULES.opaque, `${s.opaque}; the policy cannot be checked against it`, mode, true);
    const hidden = this.userObjects === undefined && s.columnNotation === undefined ? undefined : hiddenSqlText(uses());
    if (hidden !== undefined) this.failClosed(BUILTIN_RULES.opaque, `${describeUse(hidden)} runs SQL text or code the gateway cannot see into; the policy cannot be checked against it`, mode, true);
    if (s.executes !== undefined) {
      const target = depth < MAX_EXECUTE_DEPTH ? this.lookup(s.executes) : undefined;
      if (target === undefined) this.failClosed(BUILTIN_RULES.unknownPrepared, `EXECUTE of prepared statement "${s.executes}", which the gateway has not seen prepared`, mode, false);
      else this.statement(target.statement, target.text, mode, depth + 1);
    }
    for (const n of s.nested) this.statement(n.statement, text, n.executes ? mode : 'blockOnly', depth);
  }
}

interface ForIdentity {
  readonly applicable: Applicable;
  readonly mask: MaskPolicy | undefined;
}

/** Per policy, per set of groups: the rules that apply (sessions of one person share it). */
const perIdentity = new WeakMap<CompiledPolicy, Map<string, ForIdentity>>();
const MAX_IDENTITIES_PER_POLICY = 1000;

/** The same by the groups array itself: a session passes its identity's (never changed) array every time, so no key is built. */
const perGroupsArray = new WeakMap<CompiledPolicy, WeakMap<readonly string[], ForIdentity>>();

function forIdentity(policy: CompiledPolicy, groups: readonly string[]): ForIdentity {
  let byArray = perGroupsArray.get(policy);
  const seen = byArray?.get(groups);
  if (seen !== undefined) return seen;
  if (byArray === undefined) perGroupsArray.set(policy, (byArray = new WeakMap()));
  const entry = forGroups(policy, groups);
  byArray.set(groups, entry);
  return entry;
}

function forGroups(policy: CompiledPolicy, groups: readonly string[]): ForIdentity {
  let byGroups = perIdentity.get(policy);
  if (byGroups === undefined) perIdentity.set(policy, (byGroups = new Map()));
  const key = groups.map((g) => g.toLowerCase()).sort().join('\u0000');
  const known = byGroups.get(key);
  if (known !== undefined) return known;
  const block: CompiledBlockRule[] = [];
  const review: CompiledReviewRule[] = [];
  for (const r of policy.rules) {
    if (r.action === 'mask' || !ruleApplies(r, groups)) continue;
    if (r.action === 'block') block.push(r);
    else review.push(r);
  }
  const entry: ForIdentity = { applicable: { block, review }, mask: maskPolicyFor(policy, groups) };
  if (byGroups.size >= MAX_IDENTITIES_PER_POLICY) byGroups.clear();
  byGroups.set(key, entry);
  return entry;
}

/**
 * Every caller passes a decision it has just built, so the mask is added in place: a spread copy
 * of decisions of several shapes went megamorphic and cost about 5 µs per statement in a profile.
 */
const withMask = <T extends object>(d: T, mask: MaskPolicy | undefined): T & { mask?: MaskPolicy } => {
  if (mask !== undefined) (d as T & { mask?: MaskPolicy }).mask = mask;
  return d;
};

/**
 * Decides whether a request runs. Pure: the same inputs give the same decision; nothing is
 * recorded here (the engine reports the decision to the audit trail).
 */
export function evaluate(identity: { readonly groups: readonly string[] }, policy: CompiledPolicy, action: SqlAction, ctx: EvaluationContext = {}): Decision {
  const { applicable, mask } = forIdentity(policy, identity.groups);
  if (applicable.block.length === 0 && applicable.review.length === 0) return withMask({ verdict: 'allow', hits: [] }, mask);

  const analysis = action.analysis;
  if (!analysis.ok) {
    // Fail closed: with any block or review rule in force, what cannot be read cannot run.
    return withMask({ verdict: 'block', rule: BUILTIN_RULES.unparseable, reason: `the gateway cannot parse this SQL (${analysis.error}), so the policy cannot be checked`, hits: [] }, mask);
  }

  // PREPAREs earlier in the same message are visible to later EXECUTEs in it; the server runs
  // the statements in order and stops at the first error, so this mirrors what will run.
  // `null` marks a name deallocated earlier in the message; after DEALLOCATE ALL, names prepared
  // before the message are gone as well.
  const local = new Map<string, PreparedStatement | null>();
  let cleared = false;
  const lookup = (name: string) => {
    if (local.has(name)) return local.get(name) ?? undefined;
    return cleared ? undefined : ctx.prepared?.get(name);
  };
  const judge = new Judge(applicable, lookup, ctx.userObjects);
  for (const s of analysis.statements) {
    judge.statement(s, action.text, 'full', 0);
    if (s.prepares !== undefined) {
      const inner = s.nested.find((n) => n.via === 'prepare')?.statement;
      local.set(s.prepares, inner === undefined ? null : { statement: inner, text: action.text });
    }
    if (s.deallocates !== undefined) {
      if (s.deallocates.all) {
        local.clear();
        cleared = true;
      } else local.set(s.deallocates.name, null);
    }
  }

  const hits = judge.hits;
  const firstBlock = applicable.block.find((r) => judge.blockRules.has(r.id));
  if (firstBlock !== undefined) {
    const hit = hits.find((h) => h.rule === firstBlock.id) as RuleHit;
    return withMask({ verdict: 'block', rule: firstBlock.id, reason: firstBlock.message ?? `blocked by rule ${firstBlock.id}: ${hit.because}`, hits }, mask);
  }
  const builtinBlock = judge.builtinBlocks[0];
  if (builtinBlock !== undefined) return withMask({ verdict: 'block', rule: builtinBlock.rule, reason: builtinBlock.reason, hits }, mask);

  const reviews: ReviewRequirement[] = applicable.review.filter((r) => judge.reviewRules.has(r.id)).map((r) => ({ rule: r.id, approvers: r.approvers, timeoutMs: r.timeoutMs }));
  const firstReview = applicable.review.find((r) => judge.reviewRules.has(r.id));
  if (firstReview !== undefined) {
    const hit = hits.find((h) => h.rule === firstReview.id) as RuleHit;
    return withMask(
      {
        verdict: 'review',
        rule: firstReview.id,
        reason: firstReview.message ?? `held for review by rule ${firstReview.id}: ${hit.because}`,
        approvers: firstReview.approvers,
        timeoutMs: Math.min(...reviews.map((r) => r.timeoutMs)),
        reviews,
        hits,
      },
      mask,
    );
  }
  const br = judge.builtinReview;
  if (br !== undefined) {
    return withMask(
      { verdict: 'review', rule: br.rule, reason: br.reason, approvers: br.via.approvers, timeoutMs: br.via.timeoutMs, reviews: [{ rule: br.rule, approvers: br.via.approvers, timeoutMs: br.via.timeoutMs }], hits },
      mask,
    );
  }
  return withMask({ verdict: 'allow', hits }, mask);
}
