// The `policy:` of an ssh connection: its zod schema (validated once, at configuration load), the
// compiled runtime form and the pure judgement of one request. Rules block or hold `exec` command
// lines matched by glob (`commands`), block the sftp subsystem (`sftp: true`), or allow what is
// refused by default: local and remote port forwarding, agent forwarding and X11 (docs/policy.md, "SSH rules").
// Fail closed: when a block or review rule applies to the caller and a command line cannot be
// split into simple commands with confidence, the command is refused.
import { z } from 'zod';
import { parseDuration } from '../../../src/duration.js';
import { checkUniqueRuleIds, compileRuleScope, nonEmpty, reviewFields, ruleApplies, ruleScopeFields, type RuleScope } from '../../policy/ruleScope.js';
import { splitCommandLine } from './commandLine.js';

const commands = z.array(nonEmpty).min(1, { message: 'expected at least one command pattern, e.g. "rm -rf /*"' });

const CONDITION_HINT = 'expected `commands: [patterns]` or `sftp: true`';

const block = z
  .strictObject({ commands: commands.optional(), sftp: z.boolean().optional() })
  .refine((b) => b.commands !== undefined || b.sftp === true, { message: CONDITION_HINT });

const review = z.strictObject({
  commands,
  ...reviewFields,
});

/** What a rule may allow that the engine refuses by default. */
export const FORWARDING_KINDS = ['local', 'remote', 'agent', 'x11'] as const;
export type ForwardingKind = (typeof FORWARDING_KINDS)[number];

const allow = z.strictObject({
  forwarding: z
    .array(z.enum(FORWARDING_KINDS, { error: () => 'expected local, remote, agent or x11' }))
    .min(1, { message: 'expected `forwarding: [local]`, `[remote]`, `[agent]`, `[x11]` or several' }),
});

const rule = z
  .strictObject({
    ...ruleScopeFields,
    block: block.optional(),
    review: review.optional(),
    allow: allow.optional(),
  })
  .superRefine((r, ctx) => {
    const actions = [r.block, r.review, r.allow].filter((a) => a !== undefined).length;
    if (actions !== 1) ctx.addIssue({ code: 'custom', message: 'an ssh rule needs exactly one of `block`, `review` or `allow`' });
  });

export const sshPolicySchema = z.strictObject({ rules: z.array(rule).default([]) }).superRefine((p, ctx) => checkUniqueRuleIds(p.rules, ctx));

export type SshPolicyConfig = z.output<typeof sshPolicySchema>;

// ---- runtime form ----

type RuleCommon = RuleScope;

export type SshRule =
  | (RuleCommon & { readonly action: 'block'; readonly commands: readonly RegExp[]; readonly sftp: boolean })
  | (RuleCommon & { readonly action: 'review'; readonly commands: readonly RegExp[]; readonly approvers: readonly string[]; readonly timeoutMs: number })
  | (RuleCommon & { readonly action: 'allow'; readonly forwarding: ReadonlySet<ForwardingKind> });

export interface SshPolicy {
  readonly rules: readonly SshRule[];
}

/**
 * A command glob as a regular expression over the whole (trimmed) command: `*` any characters
 * (spaces and slashes included), `?` one character, everything else literal.
 */
export function globToRegExp(glob: string): RegExp {
  let src = '';
  for (const ch of glob.trim()) src += ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${src}$`, 's');
}

export function compileSshPolicy(cfg: SshPolicyConfig): SshPolicy {
  const rules = cfg.rules.map((r): SshRule => {
    const common = compileRuleScope(r);
    if (r.block) return Object.freeze({ ...common, action: 'block', commands: (r.block.commands ?? []).map(globToRegExp), sftp: r.block.sftp === true });
    if (r.review) return Object.freeze({ ...common, action: 'review', commands: r.review.commands.map(globToRegExp), approvers: [...r.review.approvers], timeoutMs: parseDuration(r.review.timeout) as number });
    const a = r.allow as NonNullable<typeof r.allow>;
    return Object.freeze({ ...common, action: 'allow', forwarding: new Set(a.forwarding) });
  });
  return Object.freeze({ rules: Object.freeze(rules) });
}

export type SshVerdict =
  | { readonly verdict: 'allow' }
  | { readonly verdict: 'block'; readonly rule: string; readonly reason: string }
  | { readonly verdict: 'review'; readonly rule: string; readonly reason: string; readonly approvers: readonly string[]; readonly timeoutMs: number };

/** The rule id recorded when a command line cannot be judged while a rule applies. */
export const UNJUDGEABLE_RULE = 'ssh.unjudgeable-command';

/**
 * The server side of a file transfer run as a command: `scp -t`/`-f` (scp's legacy protocol,
 * `scp -O`), an sftp server (`sftp -s /usr/lib/openssh/sftp-server`) and `rsync --server`. With the
 * sftp subsystem blocked these would carry the same files over `exec`.
 */
function runsFileTransferServer(form: string): boolean {
  const words = form.split(' ');
  const first = words[0] ?? '';
  const base = first.slice(first.lastIndexOf('/') + 1);
  if (base === 'scp') return words.slice(1).some((w) => /^-[A-Za-z]*[tf][A-Za-z]*$/.test(w));
  if (base === 'rsync') return words.includes('--server');
  return base === 'sftp-server' || base === 'internal-sftp';
}

/**
 * Judges one `exec` command line. Every simple command in it (split at `;`, `&&`, `||`, `|`, `&`
 * and newlines outside quotes) is matched against each applicable rule: a block wins over a
 * review. Constructs that hide a command from that split (command substitution, `eval`, `sh -c`,
 * unbalanced quotes, control characters) are refused whenever any block or review rule applies,
 * a rule blocking sftp included: a file transfer's server side run as a command is refused by it.
 */
export function judgeCommand(policy: SshPolicy | undefined, groups: readonly string[], command: string): SshVerdict {
  const rules = (policy?.rules ?? []).filter((r) => r.action !== 'allow' && r.commands.length > 0 && ruleApplies(r, groups));
  const files = sftpBlocked(policy, groups);
  if (rules.length === 0 && files === undefined) return { verdict: 'allow' };
  const split = splitCommandLine(command);
  if ('unjudgeable' in split) return { verdict: 'block', rule: UNJUDGEABLE_RULE, reason: `the command cannot be checked against this connection's rules (${split.unjudgeable}); run the commands one by one` };
  const transfer = files === undefined ? undefined : split.commands.find(runsFileTransferServer);
  if (files !== undefined && transfer !== undefined) return { verdict: 'block', rule: files.rule, reason: `${files.reason}; "${transfer}" is a file transfer's server side` };
  let review: SshVerdict | undefined;
  for (const part of split.commands) {
    for (const r of rules) {
      if (r.action === 'allow' || !r.commands.some((re) => re.test(part))) continue;
      if (r.action === 'block') return { verdict: 'block', rule: r.id, reason: r.message ?? `the command "${part}" is blocked by rule ${r.id}` };
      review ??= { verdict: 'review', rule: r.id, reason: r.message ?? `the command "${part}" needs a review (rule ${r.id})`, approvers: r.approvers, timeoutMs: r.timeoutMs };
    }
  }
  return review ?? { verdict: 'allow' };
}

/** Whether a rule blocks the sftp subsystem (and so scp, which OpenSSH runs over sftp) for these groups. */
export function sftpBlocked(policy: SshPolicy | undefined, groups: readonly string[]): { rule: string; reason: string } | undefined {
  const r = policy?.rules.find((x) => x.action === 'block' && x.sftp && ruleApplies(x, groups));
  return r ? { rule: r.id, reason: r.message ?? `file transfer (sftp) is blocked by rule ${r.id}` } : undefined;
}

export type Allowance = { readonly kind: 'forwarding'; readonly direction: ForwardingKind };

/** The id of a rule that allows this (refused by default) request for these groups, if any. */
export function allowedBy(policy: SshPolicy | undefined, groups: readonly string[], what: Allowance): string | undefined {
  for (const r of policy?.rules ?? []) {
    if (r.action === 'allow' && ruleApplies(r, groups) && r.forwarding.has(what.direction)) return r.id;
  }
  return undefined;
}

/** A one-line summary for people (`GET /v1/connections`): rule ids by action; never a secret. */
export function describeSshPolicy(policy: SshPolicy | undefined): string {
  const rules = policy?.rules ?? [];
  if (rules.length === 0) return 'none (commands and terminal sessions are recorded; forwarding refused)';
  const parts: string[] = [];
  const blocks = rules.filter((r) => r.action === 'block').map((r) => r.id);
  const reviews = rules.flatMap((r) => (r.action === 'review' ? [`${r.id} (${r.approvers.join(', ')})`] : []));
  const allows = rules.filter((r) => r.action === 'allow').map((r) => r.id);
  if (blocks.length > 0) parts.push(`blocks: ${blocks.join(', ')}`);
  if (reviews.length > 0) parts.push(`reviews: ${reviews.join(', ')}`);
  if (allows.length > 0) parts.push(`allows: ${allows.join(', ')}`);
  return parts.join('; ');
}
