// The `policy:` of a kubernetes connection: its zod schema (validated once, at configuration
// load), the compiled runtime form and the pure judgement of one classified request. Rules match
// the request's RBAC attributes (requestInfo.ts) with RBAC's own reading of a list: `*` matches
// anything, `pods` only the resource itself, `pods/exec` one subresource, `pods/*` every
// subresource of pods and `*/scale` one subresource of any resource; `""` in apiGroups is the
// core group. Every field a rule lists must match; a field it omits matches anything.
// Fail closed: a request that cannot be classified is refused when any block or review rule
// applies to the caller (docs/kubernetes.md).
import { z } from 'zod';
import { parseDuration } from '../../../src/duration.js';
import { checkUniqueRuleIds, compileRuleScope, nonEmpty, reviewFields, ruleApplies, ruleScopeFields, type RuleScope } from '../../policy/ruleScope.js';
import { resourceWithSubresource, type Classification, type RequestInfo } from './requestInfo.js';


/** The verbs the API server authorizes (plus RBAC's `*`); a typo here would silently match nothing. */
export const KUBERNETES_VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection', 'proxy', '*'] as const;

const matchFields = {
  verbs: z.array(z.enum(KUBERNETES_VERBS, { error: () => `expected one of ${KUBERNETES_VERBS.join(', ')}` })).min(1).optional(),
  resources: z
    .array(z.string().regex(/^(\*|[a-z0-9.-]+)(\/(\*|[a-z0-9.-]+))?$/, { message: 'expected a resource as RBAC names it: "pods", "pods/exec", "pods/*", "*/scale" or "*"' }))
    .min(1)
    .optional(),
  apiGroups: z.array(z.string()).min(1).optional(),
  namespaces: z.array(nonEmpty).min(1).optional(),
  names: z.array(nonEmpty).min(1).optional(),
};
const CONDITION_HINT = 'expected at least one of `verbs`, `resources`, `apiGroups`, `namespaces` or `names`';
const hasCondition = (m: Record<string, unknown>) => Object.values(m).some((v) => v !== undefined);

const block = z.strictObject(matchFields).refine(hasCondition, { message: CONDITION_HINT });
const review = z
  .strictObject({
    ...matchFields,
    ...reviewFields,
  })
  .refine(({ approvers: _a, timeout: _t, ...m }) => hasCondition(m), { message: CONDITION_HINT });

const rule = z
  .strictObject({
    ...ruleScopeFields,
    block: block.optional(),
    review: review.optional(),
  })
  .superRefine((r, ctx) => {
    if ((r.block === undefined) === (r.review === undefined)) ctx.addIssue({ code: 'custom', message: 'a kubernetes rule needs exactly one of `block` or `review`' });
  });

export const kubernetesPolicySchema = z.strictObject({ rules: z.array(rule).default([]) }).superRefine((p, ctx) => checkUniqueRuleIds(p.rules, ctx));

export type KubernetesPolicyConfig = z.output<typeof kubernetesPolicySchema>;

// ---- runtime form ----

interface Match {
  readonly verbs?: readonly string[];
  readonly resources?: readonly string[];
  readonly apiGroups?: readonly string[];
  readonly namespaces?: readonly string[];
  readonly names?: readonly string[];
}

export type KubernetesRule = Match & RuleScope & ({ readonly action: 'block' } | { readonly action: 'review'; readonly approvers: readonly string[]; readonly timeoutMs: number });

export interface KubernetesPolicy {
  readonly rules: readonly KubernetesRule[];
}

export function compileKubernetesPolicy(cfg: KubernetesPolicyConfig): KubernetesPolicy {
  const rules = cfg.rules.map((r): KubernetesRule => {
    const cond = (r.block ?? r.review) as Match;
    const match: { -readonly [K in keyof Match]: Match[K] } = {};
    for (const k of ['verbs', 'resources', 'apiGroups', 'namespaces', 'names'] as const) {
      const v = cond[k];
      if (v !== undefined) match[k] = Object.freeze([...v]);
    }
    const common = { ...compileRuleScope(r), ...match };
    if (r.review) return Object.freeze({ ...common, action: 'review', approvers: [...r.review.approvers], timeoutMs: parseDuration(r.review.timeout) as number });
    return Object.freeze({ ...common, action: 'block' });
  });
  return Object.freeze({ rules: Object.freeze(rules) });
}

/** RBAC's resource matching: `*`, `res`, `res/sub`, `res/*`, `*\/sub`. */
function resourceMatches(pattern: string, info: Extract<RequestInfo, { kind: 'resource' }>): boolean {
  if (pattern === '*') return true;
  const full = resourceWithSubresource(info);
  if (pattern === full) return true;
  const [res, sub] = pattern.split('/') as [string, string | undefined];
  if (sub === undefined || info.subresource === '') return false;
  return (res === '*' || res === info.resource) && (sub === '*' || sub === info.subresource);
}

const listMatches = (list: readonly string[] | undefined, value: string) => list === undefined || list.includes('*') || list.includes(value);

/**
 * The verbs a rule may name to match a request of this verb. RBAC grants each verb alone, but a
 * rule written to stop one would be walked past by its sibling that does the same to the same
 * objects: a list or watch returns every object a `get` rule keeps from being read (a watch
 * begins with the whole list), a deletecollection deletes what a `delete` rule protects, and a
 * patch can rewrite whatever an update can (and the reverse).
 * Writes answer with the objects they touch, so a rule that keeps objects from being read matches
 * them too: an update or patch answers with the whole object after it (an empty patch, or any
 * with `?dryRun=All`, changes nothing and reads it), a delete with the deleted object for many
 * resources, a deletecollection with every object it deleted (with `?dryRun=All`: every object,
 * none deleted). And an update creates the object where the resource allows create-on-update
 * (RBAC roles and bindings, leases, endpoints, …), so it is judged as `create` as well.
 */
const RULE_VERBS_FOR: Readonly<Record<string, readonly string[]>> = {
  list: ['list', 'get'],
  watch: ['watch', 'list', 'get'],
  deletecollection: ['deletecollection', 'delete', 'list', 'get'],
  delete: ['delete', 'get'],
  patch: ['patch', 'update', 'get'],
  update: ['update', 'patch', 'get', 'create'],
};
/** A server-side apply creates what does not exist yet: it is a create as much as a patch. */
const APPLY_VERBS: readonly string[] = [...(RULE_VERBS_FOR.patch as readonly string[]), 'create'];

function verbMatches(verbs: readonly string[] | undefined, info: Extract<RequestInfo, { kind: 'resource' }>): boolean {
  if (verbs === undefined || verbs.includes('*')) return true;
  const readings = info.applyPatch === true ? APPLY_VERBS : (RULE_VERBS_FOR[info.verb] ?? [info.verb]);
  return readings.some((v) => verbs.includes(v));
}

/** Collection requests: with no name, they read or delete every object of the resource in scope. */
const COLLECTION_VERBS = new Set(['list', 'watch', 'deletecollection']);

/**
 * A `namespaces` or `names` condition against a request: a collection request without a namespace
 * (`/api/v1/secrets`) spans every namespace, and one without a name (no exact
 * `fieldSelector=metadata.name=`) every object, so each matches whatever namespaces or names the
 * rule lists: the objects the rule protects are among those it returns or deletes.
 */
function scopeMatches(list: readonly string[] | undefined, value: string, info: Extract<RequestInfo, { kind: 'resource' }>): boolean {
  if (listMatches(list, value)) return true;
  return value === '' && COLLECTION_VERBS.has(info.verb);
}

/** The streams that run something in a pod, which the kubelet also serves under nodes/NAME/proxy. */
const POD_STREAMS = ['exec', 'attach', 'portforward'];

/**
 * A request to a node's kubelet through the API server (`nodes/NAME/proxy/…`, or the legacy
 * `/api/v1/proxy/nodes/NAME/…`), whose `/exec`, `/run`, `/attach` and `/portForward` endpoints
 * run commands in any pod on the node.
 */
const reachesKubelet = (info: Extract<RequestInfo, { kind: 'resource' }>) => info.apiGroup === '' && info.resource === 'nodes' && (info.subresource === 'proxy' || info.verb === 'proxy');

/**
 * A write to `pods/NAME/ephemeralcontainers` (what `kubectl debug` sends) starts a container of
 * the caller's choosing, with a command of its choosing, inside that pod (sharing the target
 * container's processes and files with `targetContainerName`): exec by another name. Only reads
 * of the subresource are not.
 */
const READ_VERBS = new Set(['get', 'list', 'watch']);
const addsContainer = (info: Extract<RequestInfo, { kind: 'resource' }>) => info.apiGroup === '' && info.resource === 'pods' && info.subresource === 'ephemeralcontainers' && !READ_VERBS.has(info.verb);

/**
 * Resources known to live outside namespaces (so deleting a namespace does not delete them); a
 * rule on anything else — an unknown or custom resource included — is taken to cover objects a
 * namespace holds.
 */
const CLUSTER_SCOPED = new Set([
  'namespaces', 'nodes', 'persistentvolumes', 'clusterroles', 'clusterrolebindings', 'storageclasses', 'customresourcedefinitions', 'apiservices', 'priorityclasses',
  'certificatesigningrequests', 'validatingwebhookconfigurations', 'mutatingwebhookconfigurations', 'validatingadmissionpolicies', 'validatingadmissionpolicybindings',
  'csidrivers', 'csinodes', 'volumeattachments', 'runtimeclasses', 'ingressclasses', 'componentstatuses',
]);
const DELETE_VERBS = ['delete', 'deletecollection'];

/**
 * A delete of a namespace (or of every namespace) deletes every object in it: it matches a rule
 * that keeps objects of that namespace from being deleted, whatever their resource, group or name.
 */
function deletesNamespaceContents(rule: Match, info: Extract<RequestInfo, { kind: 'resource' }>): boolean {
  if (!(info.apiGroup === '' && info.resource === 'namespaces' && info.subresource === '' && DELETE_VERBS.includes(info.verb))) return false;
  if (rule.verbs !== undefined && !rule.verbs.some((v) => v === '*' || DELETE_VERBS.includes(v))) return false;
  if (rule.resources !== undefined && !rule.resources.some((p) => p === '*' || (!p.includes('/') && !CLUSTER_SCOPED.has(p)))) return false;
  return rule.namespaces === undefined || info.name === '' || listMatches(rule.namespaces, info.name);
}

/**
 * Whether a rule's conditions all hold for this request; rules never match non-resource
 * requests. A kubelet proxy request also matches every rule on `pods/exec`, `pods/attach` or
 * `pods/portforward` (whatever namespaces or names it lists: the gateway cannot tell which pod the
 * kubelet will run in), so such a rule is not walked past through the node. A write adding an
 * ephemeral container matches the rules on `pods/exec` and `pods/attach` of that pod, and a
 * namespace's delete the rules keeping its objects from being deleted.
 */
export function ruleMatches(rule: Match, info: RequestInfo): boolean {
  if (info.kind !== 'resource') return false;
  if (reachesKubelet(info) && POD_STREAMS.some((sub) => matchesAsPodStream(rule, { ...info, verb: 'create', resource: 'pods', subresource: sub }))) return true;
  if (deletesNamespaceContents(rule, info)) return true;
  if (addsContainer(info) && ['exec', 'attach'].some((sub) => matchesRequest(rule, { ...info, verb: 'create', subresource: sub }))) return true;
  return matchesRequest(rule, info);
}

/** A kubelet request read as a pod stream: the rule's verbs, resources and groups decide, its namespaces and names cannot. */
function matchesAsPodStream(rule: Match, info: Extract<RequestInfo, { kind: 'resource' }>): boolean {
  return verbMatches(rule.verbs, info) && rule.resources !== undefined && rule.resources.some((p) => p !== '*' && resourceMatches(p, info)) && listMatches(rule.apiGroups, info.apiGroup);
}

function matchesRequest(rule: Match, info: Extract<RequestInfo, { kind: 'resource' }>): boolean {
  return (
    verbMatches(rule.verbs, info) &&
    (rule.resources === undefined || rule.resources.some((p) => resourceMatches(p, info))) &&
    listMatches(rule.apiGroups, info.apiGroup) &&
    scopeMatches(rule.namespaces, info.namespace, info) &&
    scopeMatches(rule.names, info.name, info)
  );
}

export type KubernetesVerdict =
  | { readonly verdict: 'allow' }
  | { readonly verdict: 'block'; readonly rule: string; readonly reason: string }
  | { readonly verdict: 'review'; readonly rule: string; readonly reason: string; readonly approvers: readonly string[]; readonly timeoutMs: number };

/** The rule id recorded when a request cannot be classified while a rule applies. */
export const UNCLASSIFIABLE_RULE = 'kubernetes.unclassifiable-request';

/** Judges one request: a block wins over a review; what cannot be read is refused while any rule applies. */
export function judgeRequest(policy: KubernetesPolicy | undefined, groups: readonly string[], request: Classification, describe: string): KubernetesVerdict {
  const rules = (policy?.rules ?? []).filter((r) => ruleApplies(r, groups));
  if (rules.length === 0) return { verdict: 'allow' };
  if (request.kind === 'unclassifiable') {
    return { verdict: 'block', rule: UNCLASSIFIABLE_RULE, reason: `the request cannot be checked against this connection's rules: ${request.reason}` };
  }
  let held: KubernetesVerdict | undefined;
  for (const r of rules) {
    if (!ruleMatches(r, request)) continue;
    if (r.action === 'block') return { verdict: 'block', rule: r.id, reason: r.message ?? `${describe} is blocked by rule ${r.id}` };
    held ??= { verdict: 'review', rule: r.id, reason: r.message ?? `${describe} needs a review (rule ${r.id})`, approvers: r.approvers, timeoutMs: r.timeoutMs };
  }
  return held ?? { verdict: 'allow' };
}

/** A one-line summary for people (`GET /v1/connections`): rule ids by action; never a secret. */
export function describeKubernetesPolicy(policy: KubernetesPolicy | undefined): string {
  const rules = policy?.rules ?? [];
  if (rules.length === 0) return 'none (every request is recorded)';
  const parts: string[] = [];
  const blocks = rules.filter((r) => r.action === 'block').map((r) => r.id);
  const reviews = rules.flatMap((r) => (r.action === 'review' ? [`${r.id} (${r.approvers.join(', ')})`] : []));
  if (blocks.length > 0) parts.push(`blocks: ${blocks.join(', ')}`);
  if (reviews.length > 0) parts.push(`reviews: ${reviews.join(', ')}`);
  return parts.join('; ');
}
