// The per-connection `policy:` key: a zod schema (validated once, at configuration load) and
// `compilePolicy`, which turns the validated value into the runtime form evaluate.ts and the mask
// planner use (regexes compiled, durations in milliseconds, names lower-cased and pre-split).
// docs/policy.md documents every key.
import { z } from 'zod';
import { DETECTOR_NAMES, type DetectorName } from './mask/detectors.js';
import type { MaskStrategy } from './mask/strategies.js';
import { compileColumnPattern, compileNamePattern, type ColumnPattern, type NamePattern } from './names.js';
import { KNOWN_STATEMENT_NAMES } from './statementKinds.js';
import { parseDuration } from '../../src/duration.js';
import { backstopSchema, checkUniqueRuleIds, compileRuleScope, nonEmpty, reviewFields, ruleScopeFields, type RuleScope } from './ruleScope.js';


const statementName = z
  .string()
  .transform((s) => s.trim().toLowerCase().replace(/\s+/g, ' '))
  .refine((s) => KNOWN_STATEMENT_NAMES.has(s), {
    error: (iss) => `unknown statement "${String(iss.input)}" (expected a kind such as select, insert, update, delete, merge, drop, truncate, alter, create, grant, copy, do, call, or a command such as "drop table", "create function")`,
  });

const tablePattern = nonEmpty.refine((s) => compileNamePattern(s) !== undefined, {
  error: (iss) => `invalid table "${String(iss.input)}" (expected "table" or "schema.table"; * matches any characters)`,
});

const functionPattern = nonEmpty.refine((s) => compileNamePattern(s) !== undefined, {
  error: (iss) => `invalid function "${String(iss.input)}" (expected "name" or "schema.name"; * matches any characters)`,
});

const functionList = z.array(functionPattern).min(1, { message: 'expected at least one function' });

/**
 * `functions: [...]` blocks (or holds) a statement that references one of these functions;
 * `functions: { allow: [...] }` one that references any function not among these.
 */
const functionsCondition = z.union([functionList, z.strictObject({ allow: functionList })], {
  error: () => 'expected a list of functions, or { allow: [...] } listing the only functions allowed',
});

const columnPattern = nonEmpty.refine((s) => compileColumnPattern(s) !== undefined, {
  error: (iss) => `invalid column "${String(iss.input)}" (expected "table.column" or "schema.table.column")`,
});

const SQL_REGEX_FLAGS = 'is';

const sqlRegex = nonEmpty.refine(
  (s) => {
    try {
      new RegExp(s, SQL_REGEX_FLAGS);
      return true;
    } catch {
      return false;
    }
  },
  { error: (iss) => `invalid regular expression ${JSON.stringify(iss.input)}` },
);

/** The product's one duration syntax (src/duration.ts), re-exported for the policy's callers. */
export { parseDuration };

/** The conditions block and review rules share. */
const conditions = {
  statements: z.array(statementName).min(1).optional(),
  tables: z.array(tablePattern).min(1).optional(),
  functions: functionsCondition.optional(),
  unboundedWrites: z.boolean().optional(),
  copyProgram: z.boolean().optional(),
  copyFile: z.boolean().optional(),
  sql: z.union([sqlRegex, z.array(sqlRegex).min(1)]).optional(),
  /** `any` (default): the rule matches when one condition does; `all`: when every one does. */
  match: z.enum(['any', 'all']).default('any'),
};

type ConditionInput = { statements?: unknown; tables?: unknown; functions?: unknown; unboundedWrites?: boolean; copyProgram?: boolean; copyFile?: boolean; sql?: unknown };

function hasCondition(c: ConditionInput): boolean {
  return c.statements !== undefined || c.tables !== undefined || c.functions !== undefined || c.unboundedWrites === true || c.copyProgram === true || c.copyFile === true || c.sql !== undefined;
}

const CONDITION_HINT = 'expected at least one condition: statements, tables, functions, unboundedWrites: true, copyProgram: true, copyFile: true or sql';

const block = z.strictObject(conditions).refine(hasCondition, { message: CONDITION_HINT });

const review = z
  .strictObject({
    ...conditions,
    ...reviewFields,
  })
  .refine(hasCondition, { message: CONDITION_HINT });

const mask = z
  .strictObject({
    columns: z.array(columnPattern).min(1).optional(),
    detect: z.array(z.enum(DETECTOR_NAMES, { error: () => `expected one of ${DETECTOR_NAMES.join(', ')}` })).min(1).optional(),
    with: z.enum(['redact', 'partial', 'hash'], { error: () => 'expected redact, partial or hash' }).default('redact'),
  })
  .refine((m) => m.columns !== undefined || m.detect !== undefined, { message: 'expected `columns`, `detect` or both' });

const rule = z
  .strictObject({
    ...ruleScopeFields,
    block: block.optional(),
    review: review.optional(),
    mask: mask.optional(),
  })
  .superRefine((r, ctx) => {
    const actions = [r.block, r.review, r.mask].filter((a) => a !== undefined).length;
    if (actions !== 1) ctx.addIssue({ code: 'custom', message: 'a rule needs exactly one of `block`, `review` or `mask`' });
  });

export const policySchema = z
  .strictObject({
    rules: z.array(rule).default([]),
    /**
     * The value detectors run on everything returned to someone any mask rule applies to, on top
     * of what the rules list (with `redact`): `true` (default) for all of them, a list, or `false`.
     */
    backstop: backstopSchema,
    /** What happens to a result column computed from a masked column (docs/policy.md, "Masking by lineage"). */
    derived: z.enum(['refuse', 'redact'], { error: () => 'expected refuse or redact' }).default('refuse'),
  })
  .superRefine((p, ctx) => checkUniqueRuleIds(p.rules, ctx));

export type PolicyInput = z.input<typeof policySchema>;
/** The validated `policy:` value, as the configuration loader holds it. */
export type PolicyConfig = z.output<typeof policySchema>;

// ---- runtime form ----

export interface CompiledConditions {
  readonly match: 'any' | 'all';
  readonly statements?: ReadonlySet<string>;
  readonly tables?: readonly NamePattern[];
  readonly functions?: readonly NamePattern[];
  /** `functions: { allow }`: a statement referencing any function outside these matches. */
  readonly functionsAllowed?: readonly NamePattern[];
  readonly unboundedWrites: boolean;
  readonly copyProgram: boolean;
  readonly copyFile: boolean;
  readonly sql?: readonly RegExp[];
}

type RuleCommon = RuleScope;

export interface CompiledBlockRule extends RuleCommon {
  readonly action: 'block';
  readonly conditions: CompiledConditions;
}

export interface CompiledReviewRule extends RuleCommon {
  readonly action: 'review';
  readonly conditions: CompiledConditions;
  readonly approvers: readonly string[];
  readonly timeoutMs: number;
}

export interface CompiledMaskRule extends RuleCommon {
  readonly action: 'mask';
  readonly columns: readonly ColumnPattern[];
  readonly detect: readonly DetectorName[];
  readonly strategy: MaskStrategy;
}

export type CompiledRule = CompiledBlockRule | CompiledReviewRule | CompiledMaskRule;

export interface CompiledPolicy {
  /** In configuration order. */
  readonly rules: readonly CompiledRule[];
  /** The key for the `hash` strategy (HMAC-SHA256); required when any rule uses `with: hash`. */
  readonly hashKey?: Buffer;
  /**
   * Detectors run with `redact` on every value returned to someone any mask rule applies to, as a
   * backstop for copies and computations the column rules cannot follow; absent means all of them.
   */
  readonly backstop?: readonly DetectorName[];
  /** Result columns computed from masked columns: redacted whole, or (absent) the statement refused. */
  readonly derived?: 'redact';
}

export class PolicyCompileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyCompileError';
  }
}

function compileConditions(c: z.output<typeof block>): CompiledConditions {
  const out: { -readonly [K in keyof CompiledConditions]: CompiledConditions[K] } = {
    match: c.match,
    unboundedWrites: c.unboundedWrites === true,
    copyProgram: c.copyProgram === true,
    copyFile: c.copyFile === true,
  };
  if (c.statements !== undefined) out.statements = new Set(c.statements);
  if (c.tables !== undefined) out.tables = c.tables.map((t) => compileNamePattern(t) as NamePattern);
  if (Array.isArray(c.functions)) out.functions = c.functions.map((f) => compileNamePattern(f) as NamePattern);
  else if (c.functions !== undefined) out.functionsAllowed = c.functions.allow.map((f) => compileNamePattern(f) as NamePattern);
  if (c.sql !== undefined) out.sql = (Array.isArray(c.sql) ? c.sql : [c.sql]).map((s) => new RegExp(s, SQL_REGEX_FLAGS));
  return out;
}

/**
 * Turns a validated policy into its runtime form. `hashKey` is the gateway's masking key; a
 * policy with a `hash` rule and no key is a configuration error (a random key would make hashes
 * differ across restarts and replicas, which breaks the joins `hash` exists for).
 */
export function compilePolicy(cfg: PolicyConfig, opts: { hashKey?: Buffer } = {}): CompiledPolicy {
  const rules: CompiledRule[] = cfg.rules.map((r) => {
    const common = compileRuleScope(r);
    if (r.block !== undefined) return { ...common, action: 'block', conditions: compileConditions(r.block) };
    if (r.review !== undefined) {
      const { approvers, timeout, ...cond } = r.review;
      return { ...common, action: 'review', conditions: compileConditions(cond), approvers: [...approvers], timeoutMs: parseDuration(timeout) as number };
    }
    const m = r.mask as NonNullable<typeof r.mask>;
    return {
      ...common,
      action: 'mask',
      columns: (m.columns ?? []).map((c) => compileColumnPattern(c) as ColumnPattern),
      detect: [...new Set(m.detect ?? [])],
      strategy: m.with,
    };
  });
  const usesHash = rules.some((r) => r.action === 'mask' && r.strategy === 'hash');
  if (usesHash && (opts.hashKey === undefined || opts.hashKey.length < 16)) {
    throw new PolicyCompileError('a mask rule uses `with: hash`, which needs the gateway masking key (at least 16 bytes)');
  }
  const policy: { rules: CompiledRule[]; hashKey?: Buffer; backstop: readonly DetectorName[]; derived?: 'redact' } = {
    rules,
    backstop: cfg.backstop === true ? DETECTOR_NAMES : cfg.backstop === false ? [] : [...new Set(cfg.backstop)],
  };
  if (opts.hashKey !== undefined) policy.hashKey = opts.hashKey;
  if (cfg.derived === 'redact') policy.derived = 'redact';
  return Object.freeze(policy);
}

/** A connection without a `policy:` key: everything allowed, nothing masked. */
export const EMPTY_POLICY: CompiledPolicy = Object.freeze({ rules: [] });

/** Whether a rule applies to someone in `groups` (lower-case comparison). */
export { ruleApplies } from './ruleScope.js';
