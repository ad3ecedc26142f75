// The `policy:` of an http connection: its zod schema (validated once, at configuration load),
// the compiled runtime form and the pure judgement of one request. Rules match the request's
// method and its normalised path (path.ts) with globs: `*` one segment, `**` any number of them.
// `block` refuses, `review` holds for an approver, `mask` names JSON paths of response bodies to
// mask (jsonMask.ts), with the value detectors as a backstop (docs/http.md). Paths match without
// regard to case unless the policy says `caseSensitivePaths: true`: many services route
// `/ADMIN/x` like `/admin/x`, and a block that one spelling slips past is a hole, while blocking
// or masking a spelling the service would have told apart only refuses more.
import { z } from 'zod';
import { parseDuration } from '../../../src/duration.js';
import { backstopSchema, checkUniqueRuleIds, compileRuleScope, reviewFields, ruleApplies, ruleScopeFields, type RuleScope } from '../../policy/ruleScope.js';
import { DETECTOR_NAMES, type DetectorName } from '../../policy/mask/detectors.js';
import type { MaskStrategy } from '../../policy/mask/strategies.js';
import { compileJsonPath, type JsonPath } from './jsonPath.js';


const methods = z.array(z.string().regex(/^[A-Za-z]+$/, { message: 'expected an HTTP method, e.g. GET or DELETE' })).min(1, { message: 'expected at least one method' });
const pathGlob = z.string().refine((p) => pathGlobProblem(p) === undefined, { error: (iss) => pathGlobProblem(String(iss.input)) ?? 'invalid path pattern' });
const paths = z.array(pathGlob).min(1, { message: 'expected at least one path pattern, e.g. "/admin/**"' });
const jsonPath = z.string().refine((p) => !('problem' in compileJsonPath(p)), {
  error: (iss) => {
    const c = compileJsonPath(String(iss.input));
    return 'problem' in c ? c.problem : 'invalid JSON path';
  },
});

/** Why a path pattern is unusable, or undefined when it is well formed. */
export function pathGlobProblem(p: string): string | undefined {
  if (!p.startsWith('/')) return `expected a path pattern starting with "/", e.g. "/admin/**" (found ${JSON.stringify(p)})`;
  if (/[?#%\\\0]/.test(p)) return `a path pattern matches the decoded path: no "?", "#", "%" or "\\" (found ${JSON.stringify(p)})`;
  if (p.split('/').some((s) => s.includes('**') && s !== '**')) return `"**" must be a whole segment, e.g. "/admin/**" (found ${JSON.stringify(p)})`;
  if (p.split('/').some((s) => s === '.' || s === '..')) return `a path pattern cannot hold "." or ".." segments (found ${JSON.stringify(p)})`;
  return undefined;
}

const CONDITION_HINT = 'expected `methods`, `paths` or both';
const condition = z.strictObject({ methods: methods.optional(), paths: paths.optional() });
const block = condition.refine((b) => b.methods !== undefined || b.paths !== undefined, { message: CONDITION_HINT });
const review = z
  .strictObject({
    methods: methods.optional(),
    paths: paths.optional(),
    ...reviewFields,
  })
  .refine((b) => b.methods !== undefined || b.paths !== undefined, { message: CONDITION_HINT });
const mask = z.strictObject({
  json: z.array(jsonPath).min(1, { message: 'expected at least one JSON path, e.g. "$.customers[*].email"' }),
  strategy: z.enum(['redact', 'partial', 'hash'], { error: () => 'expected redact, partial or hash' }).default('redact'),
  /** Which requests' responses the rule masks (absent: all). */
  methods: methods.optional(),
  paths: paths.optional(),
});

const rule = z
  .strictObject({
    ...ruleScopeFields,
    block: block.optional(),
    review: review.optional(),
    mask: mask.optional(),
  })
  .superRefine((r, ctx) => {
    const actions = [r.block, r.review, r.mask].filter((a) => a !== undefined).length;
    if (actions !== 1) ctx.addIssue({ code: 'custom', message: 'an http rule needs exactly one of `block`, `review` or `mask`' });
  });

export const httpPolicySchema = z
  .strictObject({
    rules: z.array(rule).default([]),
    /** Detectors run (with `redact`) on every JSON value of a response a mask rule applies to: true (all), a list, or false. */
    backstop: backstopSchema,
    /** Whether `paths:` patterns tell `/Admin` from `/admin` (default false: they match every spelling). */
    caseSensitivePaths: z.boolean({ error: () => 'expected true or false' }).default(false),
  })
  .superRefine((p, ctx) => checkUniqueRuleIds(p.rules, ctx));

export type HttpPolicyConfig = z.output<typeof httpPolicySchema>;

// ---- runtime form ----

interface Matcher {
  readonly methods?: ReadonlySet<string>;
  readonly paths?: readonly RegExp[];
}

type RuleCommon = Matcher & RuleScope;

export type HttpRule =
  | (RuleCommon & { readonly action: 'block' })
  | (RuleCommon & { readonly action: 'review'; readonly approvers: readonly string[]; readonly timeoutMs: number })
  | (RuleCommon & { readonly action: 'mask'; readonly json: readonly JsonPath[]; readonly strategy: MaskStrategy });

export interface HttpPolicy {
  readonly rules: readonly HttpRule[];
  readonly backstop: readonly DetectorName[];
  /** The gateway's masking key, for `strategy: hash`. */
  readonly hashKey?: Buffer;
  /** `caseSensitivePaths`: false (the default) matches paths whatever their case. */
  readonly caseSensitivePaths: boolean;
}

/**
 * A path glob as a regular expression over the normalised, decoded path (a trailing "/" optional).
 * Case-insensitive by default, with Unicode case folding (`u`): a service that folds case may also
 * fold `ſ` to `s` or the Kelvin sign to `k`, so the pattern must match those spellings too.
 */
export function pathGlobToRegExp(glob: string, caseSensitive = false): RegExp {
  const segments = glob.split('/').slice(1);
  let src = '';
  for (const seg of segments) {
    if (seg === '**') src += '(?:/[^/]+)*';
    else if (seg === '*') src += '/[^/]+';
    else if (seg === '') src += '';
    else src += '/' + [...seg].map((ch) => (ch === '*' ? '[^/]*' : ch.replace(/[.+^${}()|[\]\\?]/g, '\\$&'))).join('');
  }
  return new RegExp(`^${src}/?$`, caseSensitive ? 'su' : 'siu');
}

export function compileHttpPolicy(cfg: HttpPolicyConfig, hashKey?: Buffer): HttpPolicy {
  const rules = cfg.rules.map((r): HttpRule => {
    const common: { -readonly [K in keyof RuleCommon]: RuleCommon[K] } = { ...compileRuleScope(r) };
    const cond = r.block ?? r.review ?? r.mask;
    if (cond?.methods) common.methods = new Set(cond.methods.map((m) => m.toUpperCase()));
    if (cond?.paths) common.paths = cond.paths.map((p) => pathGlobToRegExp(p, cfg.caseSensitivePaths));
    if (r.block) return Object.freeze({ ...common, action: 'block' });
    if (r.review) return Object.freeze({ ...common, action: 'review', approvers: [...r.review.approvers], timeoutMs: parseDuration(r.review.timeout) as number });
    const m = r.mask as NonNullable<typeof r.mask>;
    return Object.freeze({ ...common, action: 'mask', json: m.json.map((p) => compileJsonPath(p) as JsonPath), strategy: m.strategy });
  });
  const backstop = cfg.backstop === true ? [...DETECTOR_NAMES] : cfg.backstop === false ? [] : [...cfg.backstop];
  return Object.freeze({ rules: Object.freeze(rules), backstop: Object.freeze(backstop), caseSensitivePaths: cfg.caseSensitivePaths, ...(hashKey !== undefined ? { hashKey } : {}) });
}

function matches(rule: Matcher, method: string, path: string): boolean {
  if (rule.methods && !rule.methods.has(method.toUpperCase())) return false;
  if (rule.paths && !rule.paths.some((re) => re.test(path))) return false;
  return true;
}

/** The rules that apply to these groups (none: requests pass untouched, not even normalised). */
export function rulesFor(policy: HttpPolicy | undefined, groups: readonly string[]): readonly HttpRule[] {
  return (policy?.rules ?? []).filter((r) => ruleApplies(r, groups));
}

export interface MaskPlan {
  readonly paths: readonly { readonly path: JsonPath; readonly strategy: MaskStrategy; readonly rule: string }[];
  readonly backstop: readonly DetectorName[];
}

export type HttpVerdict =
  | { readonly verdict: 'allow'; readonly mask?: MaskPlan }
  | { readonly verdict: 'block'; readonly rule: string; readonly reason: string }
  | { readonly verdict: 'review'; readonly rule: string; readonly reason: string; readonly approvers: readonly string[]; readonly timeoutMs: number; readonly mask?: MaskPlan };

/**
 * The path as case-insensitive patterns are tested against it. Unicode case folding (the
 * patterns' `u` flag) already matches `ſ` and the Kelvin sign; the dotted and dotless Turkish i
 * fold to no ASCII letter there, yet Java's equalsIgnoreCase and .NET's OrdinalIgnoreCase read
 * both as `i`.
 */
const foldForMatch = (path: string): string => path.replace(/[\u0130\u0131]/g, 'i');

/**
 * Judges one request (its method and normalised path) against the rules that apply: block wins
 * over review. `also` holds the other methods and path spellings the service may read it as
 * (readings.ts): a rule matching any reading applies, and the reason names the reading it matched.
 */
export function judgeRequest(policy: HttpPolicy, rules: readonly HttpRule[], method: string, path: string, also: { readonly methods?: readonly string[]; readonly paths?: readonly string[] } = {}): HttpVerdict {
  let review: Extract<HttpVerdict, { verdict: 'review' }> | undefined;
  const masks: MaskPlan['paths'][number][] = [];
  const methods = [method, ...(also.methods ?? [])];
  const subjects = [path, ...(also.paths ?? [])].map((p) => ({ path: p, subject: policy.caseSensitivePaths ? p : foldForMatch(p) }));
  /** The first reading the rule matches, described for its reason ("" for the request line itself). */
  const reading = (r: HttpRule): string | undefined => {
    for (const m of methods) {
      for (const s of subjects) {
        if (matches(r, m, s.subject)) return m === method && s.path === path ? '' : ` (read as ${m} ${s.path}, as the service may)`;
      }
    }
    return undefined;
  };
  for (const r of rules) {
    const as = reading(r);
    if (as === undefined) continue;
    if (r.action === 'block') return { verdict: 'block', rule: r.id, reason: r.message ?? `${method} ${path}${as} is blocked by rule ${r.id}` };
    if (r.action === 'review') review ??= { verdict: 'review', rule: r.id, reason: r.message ?? `${method} ${path}${as} needs a review (rule ${r.id})`, approvers: r.approvers, timeoutMs: r.timeoutMs };
    else for (const p of r.json) masks.push({ path: p, strategy: r.strategy, rule: r.id });
  }
  const mask = masks.length > 0 ? { mask: { paths: masks, backstop: policy.backstop } } : {};
  return review ? { ...review, ...mask } : { verdict: 'allow', ...mask };
}

/** A one-line summary for people (`GET /v1/connections`): rule ids by action; never a secret. */
export function describeHttpPolicy(policy: HttpPolicy | undefined): string {
  const rules = policy?.rules ?? [];
  if (rules.length === 0) return 'none (every request is recorded)';
  const parts: string[] = [];
  const by = (a: HttpRule['action']) => rules.filter((r) => r.action === a).map((r) => (r.action === 'review' ? `${r.id} (${r.approvers.join(', ')})` : r.id));
  if (by('block').length > 0) parts.push(`blocks: ${by('block').join(', ')}`);
  if (by('review').length > 0) parts.push(`reviews: ${by('review').join(', ')}`);
  if (by('mask').length > 0) parts.push(`masks: ${by('mask').join(', ')}`);
  return parts.join('; ');
}
