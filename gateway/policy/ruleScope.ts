// What every engine's policy rules share, whatever they match: an id, an optional message, the
// groups a rule is `for` or applies `except`, a review's approvers and timeout, unique ids in a
// rule list, and the masking backstop's detectors. One schema and one reading of them, so a rule
// for `ops` means the same on a database, a host, an HTTP service and a cluster. The protocol's
// conditions (statements, commands, paths, verbs) stay in each engine's own policy module.
import { z } from 'zod';
import { parseDuration } from '../../src/duration.js';
import { DETECTOR_NAMES } from './mask/detectors.js';

export const nonEmpty = z.string().min(1, { message: 'expected a non-empty string' });

const groups = z.strictObject({ groups: z.array(nonEmpty).min(1, { message: 'expected at least one group' }) });

const MAX_REVIEW_TIMEOUT_MS = 7 * 86_400_000;

/** A review's timeout in the product's one duration syntax, between 1 s and 7 days. */
export const reviewTimeout = z.string().refine(
  (s) => {
    const ms = parseDuration(s);
    return ms !== undefined && ms >= 1000 && ms <= MAX_REVIEW_TIMEOUT_MS;
  },
  { error: (iss) => `invalid duration ${JSON.stringify(iss.input)} (expected e.g. "30s", "10m", "2h" or "1h30m", between 1s and 7d)` },
);

/** A review rule's own keys, beside its conditions. */
export const reviewFields = {
  approvers: z.array(nonEmpty).min(1, { message: 'expected at least one approver group' }),
  timeout: reviewTimeout.default('10m'),
};

/** The keys of a rule besides its action: spread into each engine's `z.strictObject`. */
export const ruleScopeFields = {
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { message: 'expected a rule id of letters, digits, ".", "_" or "-"' }),
  /** Shown to the client and recorded when the rule blocks or holds an action. */
  message: z.string().max(500).optional(),
  for: groups.optional(),
  except: groups.optional(),
};

/** A policy's `backstop:` key: the value detectors run where a mask rule applies — true (all, the default), a list, or false. */
export const backstopSchema = z.union([z.boolean(), z.array(z.enum(DETECTOR_NAMES, { error: () => `expected one of ${DETECTOR_NAMES.join(', ')}` })).min(1)], { error: () => 'expected true, false or a list of detectors' }).default(true);

/** For a policy's `superRefine`: each rule id once. */
export function checkUniqueRuleIds(rules: readonly { readonly id: string }[], ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  rules.forEach((r, i) => {
    if (seen.has(r.id)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'id'], message: `duplicate rule id "${r.id}"` });
    seen.add(r.id);
  });
}

/** A compiled rule's scope: group names lower-cased, as identities' groups are compared. */
export interface RuleScope {
  readonly id: string;
  readonly message?: string;
  readonly for?: ReadonlySet<string>;
  readonly except?: ReadonlySet<string>;
}

const lowerSet = (list: readonly string[] | undefined): ReadonlySet<string> | undefined => (list === undefined ? undefined : new Set(list.map((g) => g.toLowerCase())));

export function compileRuleScope(r: { readonly id: string; readonly message?: string | undefined; readonly for?: { readonly groups: readonly string[] } | undefined; readonly except?: { readonly groups: readonly string[] } | undefined }): RuleScope {
  const f = lowerSet(r.for?.groups);
  const e = lowerSet(r.except?.groups);
  return { id: r.id, ...(r.message !== undefined ? { message: r.message } : {}), ...(f ? { for: f } : {}), ...(e ? { except: e } : {}) };
}

/** Whether a rule applies to someone in these groups: none of `except`, and one of `for` when it names any. */
export function ruleApplies(rule: RuleScope, groups: readonly string[]): boolean {
  // The common case, a rule for everyone, costs nothing on the statement path.
  if (rule.for === undefined && rule.except === undefined) return true;
  const mine = groups.map((g) => g.toLowerCase());
  if (rule.except && mine.some((g) => rule.except?.has(g))) return false;
  if (rule.for && !mine.some((g) => rule.for?.has(g))) return false;
  return true;
}
