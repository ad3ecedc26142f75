// Masking by lineage for one session (policy/mask/lineage.ts): which result columns of a
// statement carry a masked value unchanged (they get its mask even when RowDescription says
// OID 0), which are derived from one (redacted whole, or the statement refused, per the
// connection's `derived:`), and which statements use a masked value to filter or order rows
// (refused). Catalog facts are looked up once per relation or function name per session on the
// catalog connection and kept until the session's own DDL or SET could change what a name means.
//
// The hot path: a statement whose relations are all tables without masked columns and whose
// functions are all built in costs a few map look-ups; lineage proper runs once per statement
// shape per session.
import {
  analyzeLineage,
  columnMask,
  copyMaskPlan,
  readsUntracedData,
  sqlShape,
  type LineageCatalog,
  type MaskPolicy,
  type OutputColumn,
  type QualifiedRef,
  type RelationFacts,
  type StatementAnalysis,
  type StatementLineage,
  type CopyInfo,
  type FunctionKind,
  type CopyMaskPlan,
  type MaskStrategy,
} from '../../policy/index.js';
import { lineageKey } from './catalog.js';
import { decodeErrorFields, encodeErrorResponse } from './codec/backend.js';

export const RULE_DERIVED = 'sluice:masked-derivation';
export const RULE_PREDICATE = 'sluice:masked-predicate';
export const RULE_COPY = 'sluice:masked-copy';

/** The catalog look-ups lineage needs (TargetCatalog implements them). */
export interface LineageFacts {
  lineageRelations(refs: readonly QualifiedRef[]): Promise<Map<string, RelationFacts[]>>;
  functionKinds(refs: readonly QualifiedRef[]): Promise<Map<string, FunctionKind>>;
  /** `user` for an operator name any of whose operators runs a function written in the database. */
  operatorKinds(refs: readonly QualifiedRef[]): Promise<Map<string, FunctionKind>>;
}

/** What lineage says about the statements of one Query or Parse. */
export interface LineageVerdict {
  readonly refusal?: { readonly rule: string; readonly reason: string };
  /** Per top-level statement: its result columns when one of them needs masking. */
  readonly results: readonly (readonly OutputColumn[] | undefined)[];
}

/** Statement kinds after which what a name denotes is still what the catalog said. */
const KEEPS_FACTS = new Set(['select', 'insert', 'update', 'delete', 'merge', 'explain', 'fetch', 'move', 'declare', 'close', 'prepare', 'execute', 'deallocate', 'copy', 'begin', 'commit', 'rollback', 'savepoint', 'release', 'show', 'listen', 'unlisten', 'notify', 'vacuum', 'analyze', 'checkpoint', 'lock']);

/** Definitions of code that can later run without a call the gateway sees. */
const CODE_DEFINITIONS = new Set(['create function', 'create procedure', 'create trigger', 'create event trigger', 'create rule', 'create operator', 'create cast', 'create aggregate', 'create conversion', 'create transform', 'create language']);

/** The lineage of a statement too deep to trace: refused like code the gateway cannot see into. */
const UNTRACEABLE: StatementLineage = Object.freeze({ opaque: 'a statement nested too deeply to trace its columns' });

/** byAnalysis's answer for a statement nothing masked can reach. */
const CLEAN_STATEMENT = Symbol('clean');

/** The command of a definition of code in the statement or a statement it carries, if any. */
function codeDefinition(s: StatementAnalysis): string | undefined {
  if (CODE_DEFINITIONS.has(s.command)) return s.command;
  for (const n of s.nested) {
    const c = codeDefinition(n.statement);
    if (c !== undefined) return c;
  }
  return undefined;
}

/** Statements whose lineage is not in the relations and functions they name. */
const LINEAGE_KINDS = new Set(['fetch', 'execute', 'call', 'declare', 'close', 'do', 'set']);

/** Distinct statement shapes remembered per session; beyond it, oldest first out. */
const MAX_RESULTS = 2048;

const NOTHING: LineageVerdict = Object.freeze({ results: [] });

interface Missing {
  readonly relations: QualifiedRef[];
  readonly functions: QualifiedRef[];
  readonly operators: QualifiedRef[];
}

const nothingMissing = (): Missing => ({ relations: [], functions: [], operators: [] });
const missingCount = (m: Missing): number => m.relations.length + m.functions.length + m.operators.length;

export class LineageGate {
  private readonly relations = new Map<string, readonly RelationFacts[]>();
  private readonly cleanRelations = new Map<string, boolean>();
  private readonly functions = new Map<string, FunctionKind>();
  /** Operator names: whether one of that name runs code written in the database (any overload: types are not known here). */
  private readonly operators = new Map<string, FunctionKind>();
  private readonly results = new Map<string, StatementLineage>();
  private views = new WeakMap<object, readonly OutputColumn[]>();
  private byAnalysis = new WeakMap<object, StatementLineage | typeof CLEAN_STATEMENT>();
  private changedInTransaction = false;
  /** Cursors declared in this session: their columns, or null when two declarations differed. */
  private readonly cursors = new Map<string, readonly OutputColumn[] | null>();
  private readonly catalog: LineageCatalog = {
    relations: (ref) => this.relations.get(lineageKey(ref)),
    functionKind: (ref) => this.functions.get(lineageKey(ref)),
  };

  constructor(
    private readonly mask: MaskPolicy,
    private readonly facts: LineageFacts,
    /** The text a prepared statement was defined with, as the target confirmed it. */
    private readonly preparedText: (name: string) => string | undefined,
  ) {}

  /**
   * The verdict for a Query's or Parse's statements, or a promise that settles once the catalog
   * facts it needs are known (judge again then). Session state (cursors) changes only when a
   * verdict is returned.
   */
  judge(statements: readonly StatementAnalysis[]): LineageVerdict | Promise<unknown> {
    // A repeated statement nothing masked can reach, which changes no fact: what the loop below
    // would answer, without its allocations (every statement of a pgbench -S session).
    const only = statements.length === 1 ? statements[0] : undefined;
    if (only !== undefined && only.kind !== 'commit' && KEEPS_FACTS.has(only.kind) && this.byAnalysis.get(only.relations) === CLEAN_STATEMENT) return NOTHING;
    const missing = nothingMissing();
    const lineages: (StatementLineage | undefined)[] = [];
    for (const s of statements) {
      // The analyzer hands out one `relations` array per statement shape (shape.ts): a statement
      // repeated with other literals is answered here without lexing or walking it again.
      const hit = this.byAnalysis.get(s.relations);
      if (hit !== undefined) {
        lineages.push(hit === CLEAN_STATEMENT ? undefined : hit);
        continue;
      }
      const defined = codeDefinition(s);
      if (defined !== undefined) return { refusal: { rule: RULE_DERIVED, reason: `${defined.toUpperCase()} defines code the gateway cannot see into, which runs without being named (a trigger, an operator, a default) and could read masked columns` }, results: [] };
      // An operator is a call of its function: one written in the database is code the gateway
      // cannot see into, like a call of that function by name.
      const operatorsBefore = missing.operators.length;
      const operator = this.userOperator(s, missing);
      if (operator !== undefined) return { refusal: { rule: RULE_DERIVED, reason: `operator ${operator} runs a function written in the database, code the gateway cannot see into, which could read masked columns` }, results: [] };
      if (missing.operators.length > operatorsBefore) {
        this.obviouslyClean(s, missing); // what else is unknown comes in the same look-up
        lineages.push(undefined);
        continue;
      }
      const before = missing.relations.length + missing.functions.length;
      if (this.obviouslyClean(s, missing)) {
        this.byAnalysis.set(s.relations, CLEAN_STATEMENT);
        lineages.push(undefined);
        continue;
      }
      const l = missing.relations.length + missing.functions.length > before ? undefined : this.lineageOf(s.text, missing);
      if (l !== undefined) this.byAnalysis.set(s.relations, l);
      lineages.push(l);
    }
    // EXECUTE of a name PREPAREd earlier in the same message runs that (if the PREPARE fails, so does the rest).
    const local = new Map<string, StatementLineage>();
    const executed = lineages.map((l, i) => {
      const prepares = statements[i]?.prepares;
      if (prepares !== undefined) local.set(prepares, l ?? {});
      return l?.executes === undefined ? undefined : (local.get(l.executes) ?? this.lineageOfPrepared(l.executes, missing));
    });
    if (missingCount(missing) > 0) return this.load(missing);
    const verdict = this.verdict(lineages, executed);
    if (verdict.refusal === undefined) {
      for (const l of lineages) this.track(l);
      // The catalog connection sees DDL only once it commits: forget at the DDL and at its commit.
      // A SET other than search_path changes nothing a name denotes (sessions that SET per transaction stay cheap).
      if (statements.some((s, i) => !KEEPS_FACTS.has(s.kind) && !(s.kind === 'set' && lineages[i] !== undefined && lineages[i]?.renames !== true))) {
        this.forget();
        this.changedInTransaction = true;
      } else if (this.changedInTransaction && statements.some((s) => s.kind === 'commit')) {
        this.forget();
        this.changedInTransaction = false;
      }
    }
    return verdict;
  }

  /** The verdict for running a prepared statement by name (a protocol Bind of a SQL-PREPAREd one). */
  judgePrepared(name: string): LineageVerdict | Promise<unknown> {
    const missing = nothingMissing();
    const l = this.lineageOfPrepared(name, missing);
    if (missingCount(missing) > 0) return this.load(missing);
    return this.verdict([{ executes: name }], [l]);
  }

  private verdict(lineages: readonly (StatementLineage | undefined)[], executed: readonly (StatementLineage | undefined)[]): LineageVerdict {
    if (lineages.every((l) => l === undefined)) return NOTHING;
    const results: (readonly OutputColumn[] | undefined)[] = [];
    const cursors = new Map(this.cursors);
    for (const [i, l] of lineages.entries()) {
      const refusal = l?.refusal ?? executed[i]?.refusal;
      if (refusal !== undefined) return { refusal: { rule: RULE_PREDICATE, reason: refusal }, results: [] };
      const copies = l?.copies ?? executed[i]?.copies;
      if (copies !== undefined) return { refusal: { rule: RULE_COPY, reason: `the statement ${copies}` }, results: [] };
      const opaque = l?.opaque ?? executed[i]?.opaque;
      if (opaque !== undefined) return { refusal: { rule: RULE_DERIVED, reason: `the statement runs ${opaque}, code the gateway cannot see into, which could read masked columns and reveal them outside the result` }, results: [] };
      const ran = executed[i];
      let columns = l?.executes === undefined ? l?.columns : ran !== undefined ? ran.columns : unknownColumns(`prepared statement ${l.executes}, which the gateway cannot trace`);
      if (l?.fetches !== undefined) columns = cursors.get(l.fetches) ?? unknownColumns(`cursor ${l.fetches}, which the gateway did not see declared`);
      if (l?.declares !== undefined) cursors.set(l.declares, columns ?? []);
      const derived = columns?.find((c) => c.lineage.kind === 'derived');
      if (derived !== undefined && this.mask.derived !== 'redact') {
        const name = derived.name === undefined ? 'an output column' : `output column "${derived.name}"`;
        const source = derived.lineage.kind === 'derived' ? derived.lineage.source : 'a masked column';
        return { refusal: { rule: RULE_DERIVED, reason: `${name} is computed from ${source}; only a masked column passed through unchanged can be masked (select the column itself, or ask for derived: redact)` }, results: [] };
      }
      // DECLARE and PREPARE return no rows themselves; FETCH and EXECUTE return theirs.
      results.push(l?.declares !== undefined || l?.prepares !== undefined || columns === undefined || !columns.some((c) => c.lineage.kind !== 'clean') ? undefined : columns);
    }
    return { results };
  }

  private track(l: StatementLineage | undefined): void {
    if (l?.declares !== undefined) {
      const before = this.cursors.get(l.declares);
      const columns = l.columns ?? [];
      // A DECLARE the server refused (the name is taken) leaves the old cursor: if they differ, assume neither.
      this.cursors.set(l.declares, before === undefined || (before !== null && sameLineage(before, columns)) ? columns : null);
    }
    if (l?.closes !== undefined) {
      if (typeof l.closes === 'string') this.cursors.delete(l.closes);
      else this.cursors.clear();
    }
  }

  /** An operator of the statement (or of one it carries) that runs code written in the database; unknown names go to `missing`. */
  private userOperator(s: StatementAnalysis, missing: Missing): string | undefined {
    for (const o of s.operators ?? []) {
      const ref: QualifiedRef = o.schema === undefined ? { name: o.name } : { schema: o.schema, name: o.name };
      const kind = this.operators.get(lineageKey(ref));
      if (kind === undefined) missing.operators.push(ref);
      else if (kind === 'user') return o.schema === undefined ? o.name : `${o.schema}.${o.name}`;
    }
    for (const n of s.nested) {
      const found = this.userOperator(n.statement, missing);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  /** True when nothing the statement reads can carry a masked value; unknown names go to `missing`. */
  private obviouslyClean(s: StatementAnalysis, missing: Missing): boolean {
    if (LINEAGE_KINDS.has(s.kind)) return false;
    let clean = true;
    for (const r of s.relations) {
      const ref: QualifiedRef = r.schema === undefined ? { name: r.name } : { schema: r.schema, name: r.name };
      const c = this.relationClean(ref);
      if (c === undefined) missing.relations.push(ref);
      if (c !== true) clean = false;
    }
    for (const f of s.functions) {
      // Nothing masked is in reach, so side effects do not matter here; code someone wrote does.
      // set_config() may steer the planner (lineage.ts looks at the setting it names).
      const k = readsUntracedData(f.name) || f.name === 'set_config' ? 'user' : this.functions.get(lineageKey(f));
      if (k === undefined) missing.functions.push(f);
      if (k !== 'stable' && k !== 'volatile') clean = false;
    }
    for (const n of s.nested) if (!this.obviouslyClean(n.statement, missing)) clean = false;
    return clean;
  }

  private relationClean(ref: QualifiedRef): boolean | undefined {
    const key = lineageKey(ref);
    const known = this.cleanRelations.get(key);
    if (known !== undefined) return known;
    const facts = this.relations.get(key);
    if (facts === undefined) return undefined;
    const clean = facts.length > 0 && facts.every((f) => f.kind === 'table' && f.columns.every((c) => columnMask(this.mask, { schema: f.schema, table: f.name, column: c }) === undefined));
    this.cleanRelations.set(key, clean);
    return clean;
  }

  /** One statement's lineage, by shape (lineage reads no literal's value), or undefined when facts are missing. */
  private lineageOf(text: string, missing: Missing): StatementLineage | undefined {
    const shape = sqlShape(text);
    const key = shape === undefined ? `t:${text}` : `s:${shape}`;
    const hit = this.results.get(key);
    if (hit !== undefined) return hit;
    let a: ReturnType<typeof analyzeLineage>;
    try {
      a = analyzeLineage(text, this.mask, this.catalog, this.views);
    } catch (err) {
      // A tree deep enough to exhaust the stack: what cannot be traced cannot run.
      if (!(err instanceof RangeError)) throw err;
      return UNTRACEABLE;
    }
    if (!a.ok) {
      missing.relations.push(...a.needs.relations);
      missing.functions.push(...a.needs.functions);
      return undefined;
    }
    const l = a.statements[0] ?? {};
    if (this.results.size >= MAX_RESULTS) this.results.delete(this.results.keys().next().value as string);
    this.results.set(key, l);
    return l;
  }

  private lineageOfPrepared(name: string, missing: Missing): StatementLineage | undefined {
    const text = this.preparedText(name);
    if (text === undefined) return undefined;
    const l = this.lineageOf(text, missing);
    return l === undefined ? undefined : { ...(l.refusal !== undefined ? { refusal: l.refusal } : {}), ...(l.opaque !== undefined ? { opaque: l.opaque } : {}), ...(l.copies !== undefined ? { copies: l.copies } : {}), ...(l.columns !== undefined ? { columns: l.columns } : {}) };
  }

  private async load(missing: Missing): Promise<void> {
    const rels = dedupe(missing.relations.filter((r) => !this.relations.has(lineageKey(r))));
    const fns = dedupe(missing.functions.filter((f) => !this.functions.has(lineageKey(f))));
    const ops = dedupe(missing.operators.filter((o) => !this.operators.has(lineageKey(o))));
    // A look-up that fails leaves the names unknown: their lineage stays derived (fail closed).
    const [r, f, o] = await Promise.all([
      rels.length === 0 ? new Map<string, RelationFacts[]>() : this.facts.lineageRelations(rels).catch(() => new Map(rels.map((x) => [lineageKey(x), [] as RelationFacts[]]))),
      fns.length === 0 ? new Map<string, FunctionKind>() : this.facts.functionKinds(fns).catch(() => new Map(fns.map((x): [string, FunctionKind] => [lineageKey(x), 'user']))),
      ops.length === 0 ? new Map<string, FunctionKind>() : this.facts.operatorKinds(ops).catch(() => new Map(ops.map((x): [string, FunctionKind] => [lineageKey(x), 'user']))),
    ]);
    for (const x of ops) this.operators.set(lineageKey(x), o.get(lineageKey(x)) ?? 'user');
    for (const x of rels) this.relations.set(lineageKey(x), r.get(lineageKey(x)) ?? []);
    for (const x of fns) this.functions.set(lineageKey(x), f.get(lineageKey(x)) ?? 'user');
  }

  private forget(): void {
    this.relations.clear();
    this.cleanRelations.clear();
    this.functions.clear();
    this.operators.clear();
    this.results.clear();
    this.views = new WeakMap();
    this.byAnalysis = new WeakMap();
  }
}

/**
 * How `COPY (query) TO STDOUT` is masked from its columns' lineage (undefined: none needs it):
 * pass-throughs get their mask, derived columns `redact` (in refuse mode the statement was
 * refused before). COPY carries no column count to align an unknown width with: refused.
 */
export function copyPlanFromLineage(mask: MaskPolicy, copy: CopyInfo, columns: readonly OutputColumn[] | undefined): CopyMaskPlan {
  if (copy.direction !== 'to' || copy.target !== 'stdio') return { action: 'none' };
  const masked = new Map<number, MaskStrategy>();
  for (const [i, c] of (columns ?? []).entries()) {
    if (c.spread === true) return { action: 'refuse', reason: 'COPY (query) with columns the gateway cannot count reads masked data; use SELECT (its result is masked)' };
    if (c.lineage.kind === 'pass') masked.set(i, c.lineage.strategy);
    else if (c.lineage.kind === 'derived') masked.set(i, 'redact');
  }
  return copyMaskPlan(mask, copy, masked);
}

/**
 * An ErrorResponse of a statement that computes values from masked columns (derived: redact),
 * with only its severity and SQLSTATE kept: the server's message may quote the value it failed
 * on (`invalid input syntax for type integer: "ann@example.com"`).
 */
export function withheldError(frame: Buffer): Buffer {
  let severity: 'ERROR' | 'FATAL' | 'PANIC' = 'ERROR';
  let sqlstate = 'XX000';
  try {
    const e = decodeErrorFields(frame.subarray(5));
    if (e.severity === 'FATAL' || e.severity === 'PANIC') severity = e.severity;
    if (/^[0-9A-Z]{5}$/.test(e.code)) sqlstate = e.code;
  } catch {
    // undecodable: the generic error stands
  }
  return encodeErrorResponse({ severity, sqlstate, message: 'error withheld: the statement computes values from masked columns, and the message could quote one' });
}

function unknownColumns(source: string): OutputColumn[] {
  return [{ name: undefined, lineage: { kind: 'derived', source }, spread: true }];
}

function sameLineage(a: readonly OutputColumn[], b: readonly OutputColumn[]): boolean {
  return a.length === b.length && a.every((c, i) => c.lineage.kind === b[i]?.lineage.kind && c.spread === b[i]?.spread);
}

function dedupe(refs: readonly QualifiedRef[]): QualifiedRef[] {
  return [...new Map(refs.map((r) => [lineageKey(r), r])).values()];
}
