// Side doors for masked values: a statement that copies a masked value somewhere the client can
// read it back unmasked (a table, a view, a function, a session setting, a notification, a
// sequence, a server file) and catalog objects that hand stored values out without a column the
// masking could trace. Masking rewrites results by their source column; a copy has none, so the
// gateway refuses the statement before it is forwarded.
//
// The rule is deliberately coarse (fail closed): a statement that stores anything — any statement
// in it that is not a plain read, or a call of a function that keeps a value — and can read a
// masked column — by name, through `*`, a whole-row reference, a NATURAL JOIN, a view whose
// column is computed from a masked one, or a relation the gateway cannot name — is refused, and so
// is code the gateway cannot see into or code written in the database (a SQL or procedural
// function can read and store anything). Pure: relations and functions are looked up through the
// caller, which asks the target's catalog once per name and session and answers `undefined`
// until it has.
import type { RelationRef, StatementAnalysis } from '../sql.js';
import { columnMatches, globMatches } from '../names.js';
import type { MaskPolicy, NamedRelation } from './plan.js';
import { columnReads, type ColumnReads } from './columnReads.js';
import { EXPOSING_COMMANDS, EXPOSING_FUNCTIONS, EXPOSING_RELATIONS } from './exposingCatalog.js';

export const MASKED_COPY_RULE = 'sluice:masked-copy';
export const MASKED_CATALOG_RULE = 'sluice:masked-catalog';

/** A relation as SQL names it. */
export interface RelationName {
  readonly schema?: string;
  readonly name: string;
}

/** What the caller has learned from the target's catalog; undefined for what it has not looked up yet. */
export interface CatalogLookup {
  /** Every relation a name could refer to (empty when there is none). */
  relation(relation: RelationName): readonly NamedRelation[] | undefined;
  /**
   * Whether a function of this name (any schema, any overload) is code written in the database —
   * SQL or a procedural language, not a built-in or C function — or does not exist yet.
   */
  userCode(name: string): boolean | undefined;
}

export type ExfiltrationVerdict =
  | { readonly action: 'allow' }
  | { readonly action: 'refuse'; readonly rule: string; readonly reason: string }
  /** Ask the catalog about these relations and functions, then judge again. */
  | { readonly action: 'lookup'; readonly relations: readonly RelationName[]; readonly functions: readonly string[] };

const ALLOW: ExfiltrationVerdict = Object.freeze({ action: 'allow' });

/** Kinds that neither write nor keep anything a later statement could read back. */
const READ_KINDS = new Set(['select', 'show', 'explain', 'declare', 'fetch', 'move', 'close', 'begin', 'commit', 'rollback', 'savepoint', 'release', 'listen', 'unlisten', 'notify', 'set', 'reset', 'discard', 'deallocate', 'execute', 'prepare', 'prepare transaction', 'commit prepared', 'rollback prepared', 'checkpoint', 'lock', 'vacuum', 'analyze']);

/** Functions that keep a value where a later statement (or another session) can read it back. */
const STORING_FUNCTIONS = new Set([
  'set_config', 'pg_notify', 'setval', 'pg_logical_emit_message', 'lo_from_bytea', 'lo_put', 'lowrite', 'lo_import', 'lo_export',
  // A large object's OID, chosen by the caller, is listed in pg_largeobject_metadata.
  'lo_create', 'lo_creat',
  'pg_file_write', 'pg_create_restore_point', 'pg_create_logical_replication_slot', 'pg_create_physical_replication_slot',
  'pg_replication_origin_create', 'pg_backup_start', 'pg_start_backup',
  'pg_advisory_lock', 'pg_advisory_lock_shared', 'pg_try_advisory_lock', 'pg_try_advisory_lock_shared',
  'pg_advisory_xact_lock', 'pg_advisory_xact_lock_shared', 'pg_try_advisory_xact_lock', 'pg_try_advisory_xact_lock_shared',
]);

/**
 * Triggers and rules hand the rows of the relation they are attached to to other code; ALTER can
 * rename a masked table or column (masks match names), change a column's type with a USING
 * expression, or attach it where another name reads it. Refused on relations with masked columns.
 */
const attachesOrReshapes = (s: StatementAnalysis) => s.command === 'create trigger' || s.command === 'create rule' || s.kind === 'alter';

/** Commands whose written relation is the one they create (it cannot be looked up yet, and holds nothing). */
const CREATES_RELATION = new Set(['create table', 'create view', 'create materialized view', 'create sequence']);

/** `COPY t [(columns)] TO …` names its columns in a list, not as column references. */
function withCopiedColumns(reads: ColumnReads, s: StatementAnalysis): ColumnReads {
  const copy = s.copy;
  if (copy?.relation === undefined || copy.direction !== 'to') return reads;
  if (copy.columns === undefined) return { ...reads, unnamed: true };
  return { ...reads, columns: new Set([...reads.columns, ...copy.columns]) };
}

/**
 * The statement and what it nests, less the writes writeRoutes.ts adds for block and review rules:
 * those name what a write reaches (a table a CREATE makes, which cannot be looked up yet, among
 * them), not what the statement reads, and they exist only when a rule names tables, so the
 * verdict here, cached by shape, must not depend on them.
 */
function* tree(s: StatementAnalysis): Generator<StatementAnalysis> {
  yield s;
  for (const n of s.nested) if (n.via !== 'write-route') yield* tree(n.statement);
}

const qualified = (r: RelationName) => (r.schema !== undefined ? `${r.schema}.${r.name}` : r.name);

/** Why this statement stores something, or undefined when it only reads. */
function storesBecause(s: StatementAnalysis): string | undefined {
  for (const t of tree(s)) {
    if (t.kind === 'copy') {
      if (t.copy?.direction === 'to' && t.copy.target !== 'stdio') return `COPY … TO ${t.copy.target === 'file' ? 'a server file' : 'a program'}`;
    } else if (!READ_KINDS.has(t.kind)) return t.command.toUpperCase();
    const f = t.functions.find((fn) => STORING_FUNCTIONS.has(fn.name.toLowerCase()));
    if (f !== undefined) return `${f.name}()`;
  }
  return undefined;
}

/** Catalog objects that expose stored values, for someone with column masks. */
function exposingCatalog(s: StatementAnalysis): string | undefined {
  for (const t of tree(s)) {
    const command = EXPOSING_COMMANDS.get(t.command);
    if (command !== undefined) return `${t.command.toUpperCase()}: ${command}`;
    for (const r of t.relations) {
      const why = EXPOSING_RELATIONS.get(r.name.toLowerCase());
      if (why !== undefined) return `${qualified(r)}: ${why}`;
    }
    for (const f of t.functions) {
      const why = EXPOSING_FUNCTIONS.get(f.name.toLowerCase());
      if (why !== undefined) return `${f.name}(): ${why}`;
    }
  }
  return undefined;
}

/** Column patterns that name this relation (a pattern with a schema also matches an unqualified name). */
function patternsFor(mask: MaskPolicy, r: RelationName): MaskPolicy['columns'] {
  return mask.columns.filter((m) => globMatches(m.pattern.table, r.name) && (m.pattern.schema === undefined || r.schema === undefined || globMatches(m.pattern.schema, r.schema)));
}

/**
 * Names of a looked-up relation's columns that are masked: directly, computed from masked ones
 * (views), or inherited from a masked table (a partition or child holds the parent's rows).
 */
function maskedColumnsOf(mask: MaskPolicy, rel: NamedRelation): string[] {
  const inherited = rel.ancestors.flatMap((a) => patternsFor(mask, { schema: a.schema, name: a.table }));
  const out: string[] = [];
  for (const [attnum, column] of rel.columns) {
    const direct = mask.columns.some((m) => columnMatches(m.pattern, { schema: rel.schema, table: rel.table, column }));
    const viaParent = inherited.some((m) => globMatches(m.pattern.column, column));
    const viaSource = (rel.sources?.get(attnum) ?? []).some((src) =>
      mask.columns.some((m) => (src.column === '*' ? patternsFor({ ...mask, columns: [m] }, { name: src.table, ...(src.schema !== undefined ? { schema: src.schema } : {}) }).length > 0 : columnMatches(m.pattern, src))),
    );
    if (direct || viaParent || viaSource) out.push(column);
  }
  return out;
}

/** Per mask policy (one per session) and catalog answer (cached per session): its masked columns. */
const maskedColumnsCache = new WeakMap<MaskPolicy, WeakMap<NamedRelation, readonly string[]>>();

function maskedColumnsCached(mask: MaskPolicy, rel: NamedRelation): readonly string[] {
  let byRelation = maskedColumnsCache.get(mask);
  if (byRelation === undefined) maskedColumnsCache.set(mask, (byRelation = new WeakMap()));
  let columns = byRelation.get(rel);
  if (columns === undefined) byRelation.set(rel, (columns = maskedColumnsOf(mask, rel)));
  return columns;
}

/** The masked column this statement can read from `r`, described for the client; undefined if none. */
function readsMasked(reads: ColumnReads, r: RelationName, masked: (column: string) => boolean, example: string): string | undefined {
  const table = qualified(r);
  if (reads.unnamed) return `${table}.${example} (read through *, a NATURAL JOIN or a whole-table function)`;
  for (const single of reads.singles) if (reads.rangeNames.has(single)) return `${table}.${example} (read through the whole-row reference ${single})`;
  for (const c of reads.columns) if (masked(c)) return `${table}.${c}`;
  return undefined;
}

/** What judging a statement needs from its analysis alone (no policy, no catalog). */
interface StatementFacts {
  readonly exposing: string | undefined;
  readonly stores: string | undefined;
  readonly opaque: string | undefined;
  readonly functions: readonly string[];
  /** Every relation named, less the ones a CREATE makes (they cannot be looked up yet). */
  readonly relations: readonly RelationRef[];
  /**
   * Relations only inserted into: nothing is read from them, so one the catalog connection cannot
   * see yet (created in the client's open transaction) is no reason to refuse.
   */
  readonly insertedOnly: ReadonlySet<string>;
  readonly attaching: boolean;
  /** Parsed on first need: the columns read, or why they cannot be known. */
  reads?: ColumnReads | string;
}

/**
 * Facts by analysis. The shape cache (shape.ts) hands out a shallow copy of one analysis for
 * every text of a shape, so its `relations` array identifies the shape: a statement repeated with
 * other literals is judged from these facts without walking or parsing it again.
 */
const factsCache = new WeakMap<object, StatementFacts>();

function factsOf(statement: StatementAnalysis): StatementFacts {
  let f = factsCache.get(statement.relations);
  if (f === undefined) {
    const all = [...tree(statement)];
    f = {
      exposing: exposingCatalog(statement),
      stores: storesBecause(statement),
      opaque: all.find((t) => t.opaque !== undefined)?.opaque,
      functions: [...new Set(all.flatMap((t) => t.functions.map((fn) => fn.name.toLowerCase())))],
      relations: all.flatMap((t) => (CREATES_RELATION.has(t.command) ? t.relations.filter((r) => r.access === 'read') : t.relations)),
      insertedOnly: insertedOnly(all),
      attaching: all.some(attachesOrReshapes),
    };
    factsCache.set(statement.relations, f);
  }
  return f;
}

const relationKey = (r: RelationName) => `${r.schema ?? ''}\u0000${r.name}`;

function insertedOnly(all: readonly StatementAnalysis[]): Set<string> {
  const inserted = new Set(all.filter((t) => t.command === 'insert').flatMap((t) => t.relations.filter((r) => r.access === 'write').map(relationKey)));
  for (const t of all) for (const r of t.relations) if (t.command !== 'insert' || r.access !== 'write') inserted.delete(relationKey(r));
  return inserted;
}

function readsOf(f: StatementFacts, statement: StatementAnalysis): ColumnReads | string {
  if (f.reads === undefined) {
    try {
      f.reads = withCopiedColumns(columnReads(statement), statement);
    } catch (err) {
      f.reads = `the columns this statement reads cannot be analysed (${(err as Error).message})`;
    }
  }
  return f.reads;
}

/** How a relation's masked columns are recognised, or what to do instead. */
function maskedColumnsIn(mask: MaskPolicy, r: RelationRef, reads: ColumnReads, lookup: CatalogLookup): { masked: (column: string) => boolean; example: string } | 'none' | 'pending' | 'unknown' {
  // A rule that names the table decides by name; one whose table is a glob (`*.email`) would
  // make every relation look masked, so the catalog says which columns it really matches.
  const patterns = patternsFor(mask, r).filter((m) => 'exact' in m.pattern.table);
  if (patterns.length > 0) return { masked: (column) => patterns.some((m) => globMatches(m.pattern.column, column)), example: patterns[0]?.pattern.text.split('.').pop() ?? '*' };
  const candidates = lookup.relation(r);
  if (candidates === undefined) return 'pending';
  if (candidates.length === 0) return r.schema === undefined && reads.cteNames.has(r.name) ? 'none' : 'unknown';
  const columns = new Set(candidates.flatMap((rel) => maskedColumnsCached(mask, rel)));
  if (columns.size === 0) return 'none';
  return { masked: (column) => columns.has(column), example: columns.values().next().value as string };
}

/**
 * Judges one top-level statement for someone `mask` applies to. Only column masks make copies
 * dangerous (detectors follow values wherever they are returned), so a mask policy without
 * columns allows everything here.
 */
export function judgeExfiltration(mask: MaskPolicy, statement: StatementAnalysis, lookup: CatalogLookup): ExfiltrationVerdict {
  if (mask.columns.length === 0) return ALLOW;
  const f = factsOf(statement);
  if (f.exposing !== undefined) return { action: 'refuse', rule: MASKED_CATALOG_RULE, reason: `${f.exposing}; refused because column masks apply` };
  const stores = f.stores;
  if (stores === undefined) return f.functions.length === 0 ? ALLOW : judgeCalls(mask, statement, f, lookup);
  if (f.opaque !== undefined) return { action: 'refuse', rule: MASKED_COPY_RULE, reason: `${f.opaque}; it could copy masked values where they are read back unmasked` };
  const unknownFunctions = f.functions.filter((fn) => lookup.userCode(fn) === undefined);
  const userFunction = f.functions.find((fn) => lookup.userCode(fn) === true);
  if (userFunction !== undefined) return { action: 'refuse', rule: MASKED_COPY_RULE, reason: `${stores} calls ${userFunction}(), code written in the database that can read masked columns the gateway does not see` };
  const reads = readsOf(f, statement);
  if (typeof reads === 'string') return { action: 'refuse', rule: MASKED_COPY_RULE, reason: reads };
  const readsAnything = reads.unnamed || reads.columns.size > 0 || reads.singles.size > 0;
  if (!readsAnything && !f.attaching) return unknownFunctions.length === 0 ? ALLOW : { action: 'lookup', relations: [], functions: unknownFunctions };
  const pending: RelationName[] = [];
  for (const r of f.relations) {
    const m = maskedColumnsIn(mask, r, reads, lookup);
    if (m === 'none') continue;
    if (m === 'pending') {
      pending.push(r);
      continue;
    }
    if (m === 'unknown' && f.insertedOnly.has(relationKey(r)) && !reads.rangeNames.has(r.name)) continue;
    if (m === 'unknown') return { action: 'refuse', rule: MASKED_COPY_RULE, reason: `${stores} reads ${qualified(r)}, which the gateway cannot find in the catalog, so it cannot tell whether it holds masked columns` };
    if (f.attaching) return { action: 'refuse', rule: MASKED_COPY_RULE, reason: `${stores} on ${qualified(r)}, which has masked columns, could hand its rows to code that stores them, or unmask them by renaming` };
    const hit = readsMasked(reads, r, m.masked, m.example);
    if (hit !== undefined) return { action: 'refuse', rule: MASKED_COPY_RULE, reason: `${stores} can read the masked column ${hit} and keep it where it is read back unmasked` };
  }
  return pending.length > 0 || unknownFunctions.length > 0 ? { action: 'lookup', relations: pending, functions: unknownFunctions } : ALLOW;
}

/**
 * A statement that only reads, but hands a masked column (named in it, or a whole row of a table
 * a column rule names) to functions: refused when one of them is code written in the database,
 * which could store what it is given.
 */
function judgeCalls(mask: MaskPolicy, statement: StatementAnalysis, f: StatementFacts, lookup: CatalogLookup): ExfiltrationVerdict {
  const reads = readsOf(f, statement);
  if (typeof reads === 'string') return { action: 'refuse', rule: MASKED_COPY_RULE, reason: reads };
  let hit: string | undefined;
  for (const r of f.relations) {
    const patterns = patternsFor(mask, r);
    if (patterns.length > 0) hit ??= readsMasked(reads, r, (c) => patterns.some((m) => globMatches(m.pattern.column, c)), patterns[0]?.pattern.text.split('.').pop() ?? '*');
  }
  if (hit === undefined) return ALLOW;
  const unknown = f.functions.filter((fn) => lookup.userCode(fn) === undefined);
  if (unknown.length > 0) return { action: 'lookup', relations: [], functions: unknown };
  const user = f.functions.find((fn) => lookup.userCode(fn) === true);
  return user === undefined ? ALLOW : { action: 'refuse', rule: MASKED_COPY_RULE, reason: `${user}() is code written in the database and this statement can hand it the masked column ${hit}, which it could store` };
}
