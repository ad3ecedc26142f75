// From a compiled policy and a result's shape to a masker: which mask rules apply to this
// identity, which result columns come from masked source columns (RowDescription names a
// column's table OID and attribute number, so `SELECT email AS e FROM customers` is still
// customers.email), and what a COPY TO STDOUT may send. OIDs are turned into names by a resolver
// the engine provides (it asks the target's catalog once per OID and caches the answer).
import type { CompiledPolicy } from '../schema.js';
import { ruleApplies } from '../schema.js';
import { columnMatches, globMatches, type ColumnPattern } from '../names.js';
import type { CopyInfo, StatementAnalysis } from '../sql.js';
import { DETECTOR_NAMES, type DetectorName } from './detectors.js';
import { strongerStrategy, type DetectPlan, type MaskStrategy } from './strategies.js';
import { createRowMasker, type RowColumn, type RowMasker } from './dataRow.js';
import type { CopyMaskOptions } from './copy.js';

/** The mask rules that apply to one identity, merged. */
export interface MaskPolicy {
  readonly columns: readonly { readonly pattern: ColumnPattern; readonly strategy: MaskStrategy; readonly rule: string }[];
  /** Per detector, the strongest strategy any applicable rule asks for. */
  readonly detect?: DetectPlan;
  readonly hashKey?: Buffer;
  /** Ids of the applicable mask rules, for the audit trail. */
  readonly rules: readonly string[];
  /** Result columns computed from masked columns are redacted whole (absent: the statement is refused). */
  readonly derived?: 'redact';
}

/** The mask rules for someone in `groups`; undefined when nothing is masked for them. */
export function maskPolicyFor(policy: CompiledPolicy, groups: readonly string[]): MaskPolicy | undefined {
  const columns: { pattern: ColumnPattern; strategy: MaskStrategy; rule: string }[] = [];
  const detect = new Map<DetectorName, MaskStrategy>();
  const rules: string[] = [];
  for (const r of policy.rules) {
    if (r.action !== 'mask' || !ruleApplies(r, groups)) continue;
    rules.push(r.id);
    for (const pattern of r.columns) columns.push({ pattern, strategy: r.strategy, rule: r.id });
    for (const d of r.detect) detect.set(d, strongerStrategy(detect.get(d), r.strategy));
  }
  if (rules.length === 0) return undefined;
  // The backstop: masked values copied or computed where no column rule can follow them are
  // still caught when they look like what the detectors find.
  for (const d of policy.backstop ?? DETECTOR_NAMES) if (!detect.has(d)) detect.set(d, 'redact');
  const out: { -readonly [K in keyof MaskPolicy]: MaskPolicy[K] } = { columns, rules };
  if (detect.size > 0) out.detect = detect;
  if (policy.hashKey !== undefined) out.hashKey = policy.hashKey;
  if (policy.derived === 'redact') out.derived = 'redact';
  return out;
}

/**
 * A source column a view column is computed from (see ResolvedRelation.sources and
 * viewLineage.ts). `column: '*'` means "some column of that table" (a whole-row reference);
 * an absent schema means "whichever schema search_path finds".
 */
export interface ColumnSource {
  readonly schema?: string;
  readonly table: string;
  readonly column: string;
}

/** A relation as the target's catalog names it. */
export interface ResolvedRelation {
  readonly schema: string;
  readonly table: string;
  /** attnum → column name, for the relation's live (not dropped) columns, in attnum order. */
  readonly columns: ReadonlyMap<number, string>;
  /**
   * For views and materialized views: attnum → the base-table columns the view column is
   * computed from (any of them masked → the view column is masked). Absent for tables.
   */
  readonly sources?: ReadonlyMap<number, readonly ColumnSource[]>;
}

/**
 * Implemented by the engine over its own connection to the target, e.g.
 * `SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname FROM pg_class c JOIN pg_namespace n …
 * JOIN pg_attribute a ON a.attrelid = c.oid WHERE c.oid = ANY($1) AND a.attnum > 0 AND NOT
 * a.attisdropped`, cached per session (OIDs are stable; a table renamed mid-session keeps its old
 * name in the cache, which only matters if the policy names the new one).
 */
export interface ColumnNameResolver {
  /** Names for these table OIDs; an OID missing from the answer is treated as unknown (masked). */
  resolve(tableOids: readonly number[]): Promise<ReadonlyMap<number, ResolvedRelation>>;
  /** The columns of a relation named in SQL (search_path applies when `schema` is absent). */
  relationColumns(relation: { readonly schema?: string; readonly name: string }): Promise<ResolvedRelation | undefined>;
  /**
   * Every relation a name in SQL could refer to: the one in `schema`, or, without a schema, the
   * relations of that name in every schema (the client's search_path is not the gateway's), each
   * with the tables it inherits from or is a partition of. Optional: without it, callers fall
   * back to relationColumns.
   */
  relationsNamed?(relation: { readonly schema?: string; readonly name: string }): Promise<readonly NamedRelation[]>;
  /**
   * Whether a function of this name (any schema, any overload) is code written in the database
   * (SQL or a procedural language, not built in and not C), or does not exist. Optional: without
   * it, every function counts as such.
   */
  functionIsUserCode?(name: string): Promise<boolean>;
}

/** A relation found by name, with its ancestors (inheritance parents and partitioned tables above it). */
export interface NamedRelation extends ResolvedRelation {
  readonly ancestors: readonly { readonly schema: string; readonly table: string }[];
}

/** Wraps a resolver with a per-session cache of OID answers. */
export function cachingResolver(inner: ColumnNameResolver): ColumnNameResolver {
  const cache = new Map<number, ResolvedRelation>();
  return {
    async resolve(oids) {
      const missing = [...new Set(oids)].filter((o) => !cache.has(o));
      if (missing.length > 0) for (const [oid, rel] of await inner.resolve(missing)) cache.set(oid, rel);
      const out = new Map<number, ResolvedRelation>();
      for (const o of oids) {
        const rel = cache.get(o);
        if (rel !== undefined) out.set(o, rel);
      }
      return out;
    },
    relationColumns: (relation) => inner.relationColumns(relation),
    ...(inner.relationsNamed !== undefined ? { relationsNamed: inner.relationsNamed.bind(inner) } : {}),
  };
}

/** The table OIDs a result's masking depends on (empty when only detectors apply). */
export function tableOidsToResolve(mask: MaskPolicy, columns: readonly RowColumn[]): number[] {
  if (mask.columns.length === 0) return [];
  return [...new Set(columns.filter((c) => c.tableOid !== 0 && c.attnum > 0).map((c) => c.tableOid))];
}

function columnStrategy(mask: MaskPolicy, c: { schema?: string; table: string; column: string }): MaskStrategy | undefined {
  let s: MaskStrategy | undefined;
  for (const m of mask.columns) {
    const hit = c.column === '*' ? relationHasMaskedColumns({ columns: [m], rules: [] }, { name: c.table, ...(c.schema !== undefined ? { schema: c.schema } : {}) }) : columnMatches(m.pattern, c);
    if (hit) s = strongerStrategy(s, m.strategy);
  }
  return s;
}

/**
 * Builds the masker for one result set, or undefined when nothing in it needs masking (the
 * engine then relays DataRows untouched). `relations` answers tableOidsToResolve(); a column
 * whose table OID is missing from it is masked with `redact` (fail closed).
 */
export function planRowMask(mask: MaskPolicy | undefined, columns: readonly RowColumn[], relations: ReadonlyMap<number, ResolvedRelation>): RowMasker | undefined {
  if (mask === undefined) return undefined;
  const masked = new Map<number, MaskStrategy>();
  if (mask.columns.length > 0) {
    columns.forEach((c, i) => {
      if (c.tableOid === 0 || c.attnum <= 0) return;
      const rel = relations.get(c.tableOid);
      if (rel === undefined) {
        masked.set(i, 'redact');
        return;
      }
      const name = rel.columns.get(c.attnum);
      let s = name === undefined ? 'redact' : columnStrategy(mask, { schema: rel.schema, table: rel.table, column: name });
      for (const src of rel.sources?.get(c.attnum) ?? []) {
        const t = columnStrategy(mask, src);
        if (t !== undefined) s = strongerStrategy(s, t);
      }
      if (s !== undefined) masked.set(i, s);
    });
  }
  if (masked.size === 0 && mask.detect === undefined) return undefined;
  return createRowMasker({
    columns,
    maskedColumns: masked,
    ...(mask.detect !== undefined ? { detect: mask.detect } : {}),
    ...(mask.hashKey !== undefined ? { hashKey: mask.hashKey } : {}),
  });
}

/** planRowMask with the resolver call folded in. */
export async function planRowMaskWith(mask: MaskPolicy | undefined, columns: readonly RowColumn[], resolver: ColumnNameResolver): Promise<RowMasker | undefined> {
  if (mask === undefined) return undefined;
  const oids = tableOidsToResolve(mask, columns);
  const relations = oids.length === 0 ? new Map<number, ResolvedRelation>() : await resolver.resolve(oids);
  return planRowMask(mask, columns, relations);
}

export type CopyMaskPlan =
  | { readonly action: 'none' }
  | { readonly action: 'mask'; readonly options: CopyMaskOptions & { readonly header: boolean } }
  | { readonly action: 'refuse'; readonly reason: string };

function* statementTree(s: StatementAnalysis): Generator<StatementAnalysis> {
  yield s;
  for (const n of s.nested) yield* statementTree(n.statement);
}

/** Whether any column pattern could name a column of this relation. */
function relationHasMaskedColumns(mask: MaskPolicy, rel: { schema?: string; name: string }): boolean {
  return mask.columns.some((m) => globMatches(m.pattern.table, rel.name) && (m.pattern.schema === undefined || rel.schema === undefined || globMatches(m.pattern.schema, rel.schema)));
}

/**
 * The relations `COPY name` may read. An unqualified name is resolved by the server through the
 * session's search_path, which the client sets (at startup, with SET, in a function's SET clause)
 * and the gateway does not follow: every schema's relation of that name counts, so no path can
 * make the server read a masked table the gateway took for an unmasked one.
 */
async function copyCandidates(resolver: ColumnNameResolver, relation: { readonly schema?: string; readonly name: string }): Promise<readonly ResolvedRelation[]> {
  if (relation.schema === undefined && resolver.relationsNamed !== undefined) return resolver.relationsNamed(relation);
  const one = await resolver.relationColumns(relation);
  return one === undefined ? [] : [one];
}

/**
 * Decides how a `COPY … TO STDOUT` is masked. COPY carries no RowDescription, so columns are
 * known only for `COPY table [(columns)]`; `COPY (query)` reading a relation with masked columns,
 * and binary COPY of anything that needs masking, are refused with a reason for the client.
 */
export async function planCopyMask(mask: MaskPolicy | undefined, statement: StatementAnalysis, resolver: ColumnNameResolver): Promise<CopyMaskPlan> {
  const copy = statement.copy;
  if (mask === undefined || copy === undefined || copy.direction !== 'to' || copy.target !== 'stdio') return { action: 'none' };
  const columns = new Map<number, MaskStrategy>();
  if (copy.relation === undefined) {
    for (const s of statementTree(statement)) {
      for (const rel of s.relations) {
        if (relationHasMaskedColumns(mask, rel)) {
          return { action: 'refuse', reason: `COPY (query) reads ${rel.schema !== undefined ? `${rel.schema}.` : ''}${rel.name}, which has masked columns; use SELECT (its result is masked) or COPY the table itself` };
        }
      }
    }
  } else if (relationHasMaskedColumns(mask, copy.relation)) {
    const candidates = await copyCandidates(resolver, copy.relation);
    if (candidates.length === 0) return { action: 'refuse', reason: `cannot resolve the columns of ${copy.relation.name} to apply masking` };
    // Each position gets the strongest mask of any relation the name may denote.
    for (const resolved of candidates) {
      const names = copy.columns ?? [...[...resolved.columns.entries()].sort((a, b) => a[0] - b[0]).map(([, n]) => n)];
      const byName = new Map([...resolved.columns.entries()].map(([attnum, n]) => [n, attnum] as const));
      names.forEach((name, i) => {
        let s = columnStrategy(mask, { schema: resolved.schema, table: resolved.table, column: name });
        const attnum = byName.get(name);
        for (const src of attnum === undefined ? [] : (resolved.sources?.get(attnum) ?? [])) {
          const t = columnStrategy(mask, src);
          if (t !== undefined) s = strongerStrategy(s, t);
        }
        if (s !== undefined) columns.set(i, strongerStrategy(columns.get(i), s));
      });
    }
  }
  return copyMaskPlan(mask, copy, columns);
}

/**
 * The plan for a `COPY … TO STDOUT` once its masked columns (position → strategy) are known: none
 * when nothing is masked and no detector runs, refused for binary COPY, else the options for the
 * row masker in the statement's own format.
 */
export function copyMaskPlan(mask: MaskPolicy, copy: CopyInfo, columns: ReadonlyMap<number, MaskStrategy>): CopyMaskPlan {
  if (columns.size === 0 && mask.detect === undefined) return { action: 'none' };
  if (copy.format === 'binary') return { action: 'refuse', reason: 'binary COPY cannot be masked; use COPY … (FORMAT text) or (FORMAT csv)' };
  const options: { -readonly [K in keyof CopyMaskOptions]: CopyMaskOptions[K] } & { header: boolean } = { format: copy.format, columns: new Map(columns), header: copy.header };
  if (mask.detect !== undefined) options.detect = mask.detect;
  if (mask.hashKey !== undefined) options.hashKey = mask.hashKey;
  if (copy.delimiter !== undefined) options.delimiter = copy.delimiter;
  if (copy.null !== undefined) options.null = copy.null;
  if (copy.quote !== undefined) options.quote = copy.quote;
  if (copy.escape !== undefined) options.escape = copy.escape;
  return { action: 'mask', options };
}
