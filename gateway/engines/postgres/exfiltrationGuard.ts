// The session side of policy/mask/exfiltration.ts: the catalog answers it needs (one lookup per
// relation per session, through the engine's catalog connection) and the refusal it turns into.
// Lookups are forgotten after any statement that may change what a name refers to, so a table
// dropped and recreated as a view over masked columns is looked up again.
import { BUILTIN_RULES, judgeExfiltration, type ColumnNameResolver, type Decision, type MaskPolicy, type RelationName, type NamedRelation, type SqlAnalysis } from '../../policy/index.js';

const key = (r: RelationName) => `${r.schema ?? ''}\u0000${r.name}`;

/** Kinds after which a relation name may refer to something else. */
const RENAMING_KINDS = new Set(['create', 'alter', 'drop', 'set', 'reset', 'discard', 'import foreign schema']);

async function candidates(resolver: ColumnNameResolver, r: RelationName): Promise<readonly NamedRelation[]> {
  if (resolver.relationsNamed !== undefined) return resolver.relationsNamed(r);
  const rel = await resolver.relationColumns(r);
  return rel === undefined ? [] : [{ ...rel, ancestors: [] }];
}

export class ExfiltrationGuard {
  private readonly relations = new Map<string, readonly NamedRelation[]>();
  private readonly functions = new Map<string, boolean>();
  private readonly lookup = {
    relation: (r: RelationName) => this.relations.get(key(r)),
    userCode: (name: string) => this.functions.get(name),
  };

  constructor(
    private readonly mask: MaskPolicy,
    private readonly resolver: ColumnNameResolver | undefined,
  ) {}

  /**
   * A refusal for the first statement that would copy masked values or read an exposing catalog
   * object; undefined to allow; a promise while relations are being looked up (judge again once
   * it settles).
   */
  judge(analysis: SqlAnalysis, hits: Decision['hits']): Decision | undefined | Promise<unknown> {
    // What the gateway cannot read it cannot judge for copies (block rules refuse it the same way).
    if (!analysis.ok) return { verdict: 'block', rule: BUILTIN_RULES.unparseable, reason: `the statement does not parse, so it cannot be checked for copies of masked values: ${analysis.error}`, hits };
    for (const s of analysis.statements) {
      const v = judgeExfiltration(this.mask, s, this.lookup);
      if (v.action === 'refuse') return { verdict: 'block', rule: v.rule, reason: v.reason, hits };
      if (v.action === 'lookup') return this.look(v.relations, v.functions);
    }
    return undefined;
  }

  /** A statement completed: forget lookups when it may have renamed, created or dropped something. */
  completed(kind: string | undefined): void {
    if (kind === undefined || !RENAMING_KINDS.has(kind)) return;
    this.relations.clear();
    this.functions.clear();
  }

  private look(relations: readonly RelationName[], functions: readonly string[]): Promise<unknown> {
    const resolver = this.resolver;
    // No catalog, or a failed lookup: the relation counts as one the gateway cannot name, the
    // function as code it cannot see (both refused).
    return Promise.all([
      ...relations.map(async (r) => {
        this.relations.set(key(r), resolver === undefined ? [] : await candidates(resolver, r).catch(() => []));
      }),
      ...functions.map(async (f) => {
        this.functions.set(f, resolver?.functionIsUserCode === undefined ? true : await resolver.functionIsUserCode(f).catch(() => true));
      }),
    ]);
  }
}
