// The vocabulary of result-column lineage (lineage.ts): what an output column's value can depend
// on, how lineages combine, and the catalog facts the analysis needs. Kept apart from the tree
// walk so the engine and the row masker can use it without the parser.
import { columnMatches } from '../names.js';
import { strongerStrategy, type MaskStrategy } from './strategies.js';
import type { MaskPolicy } from './plan.js';

/**
 * What one output column's value can depend on:
 * - `clean`: no masked column;
 * - `pass`: a masked column's value unchanged (renamed, cast to an unbounded text type, given a
 *   collation, passed through a view, a subquery or a set operation whose every branch passes a
 *   masked column): it gets that column's mask;
 * - `derived`: anything else computed from a masked column, or something the gateway cannot see
 *   into (a user-defined function, a relation it cannot look up): redacted whole or refused.
 * `source` names the masked column (or the unknown) for messages.
 */
export type Lineage =
  | { readonly kind: 'clean' }
  | { readonly kind: 'pass'; readonly strategy: MaskStrategy; readonly source: string }
  | { readonly kind: 'derived'; readonly source: string };

/** One output column; `spread` stands for an unknown number of columns with this lineage. */
export interface OutputColumn {
  readonly name: string | undefined;
  readonly lineage: Lineage;
  readonly spread?: true;
}

/** A relation as the target's catalog describes it. */
export interface RelationFacts {
  readonly schema: string;
  readonly name: string;
  readonly kind: 'table' | 'view';
  /** Live column names in attnum order. */
  readonly columns: readonly string[];
  /** `pg_get_viewdef` of a view or materialized view. */
  readonly definition?: string;
}

export interface QualifiedRef {
  readonly schema?: string;
  readonly name: string;
}

/**
 * Catalog facts, answered from what the engine has already looked up: `undefined` means "not
 * looked up yet" (the analysis then reports it as needed and the engine asks and runs it again).
 */
export interface LineageCatalog {
  /** Every relation the name could denote (an unqualified name: in any schema); empty if none. */
  relations(ref: QualifiedRef): readonly RelationFacts[] | undefined;
  /** What calling a function of that name can do (see FunctionKind). */
  functionKind(ref: QualifiedRef): FunctionKind | undefined;
}

/**
 * `stable`: shipped with the server or an installed extension, and none of that name can change
 * anything (immutable or stable); `volatile`: shipped, but one can have side effects (pg_notify,
 * set_config, lo_from_bytea, pg_sleep); `user`: code someone created (or no such function yet).
 */
export type FunctionKind = 'stable' | 'volatile' | 'user';

/**
 * Built-ins that read data the parse tree does not show: SQL or a relation named in a string,
 * an open cursor. Their results count as derived from something masked.
 */
const DATA_READING_FUNCTIONS =
  /^(query_to_xml|query_to_xmlschema|query_to_xml_and_xmlschema|table_to_xml.*|cursor_to_xml.*|schema_to_xml.*|database_to_xml.*|ts_stat|dblink.*|pg_read_file|pg_read_binary_file|pg_file_read|pg_logdir_ls|get_raw_page|heap_page_item.*|tuple_data_split|bt_page_items|brin_page_items|gist_page_items.*|hash_page_items|gin_leafpage_items|pg_get_wal_.*)$/;

export const readsUntracedData = (functionName: string): boolean => DATA_READING_FUNCTIONS.test(functionName);

/**
 * Settings that steer the planner: with them a client can make a plain read go through a masked
 * column's index (an index-only scan) and so return rows in that column's order.
 */
const PLANNER_SETTINGS = /^(enable_\w+|seq_page_cost|random_page_cost|cpu_\w+_cost|parallel_\w+_cost|effective_cache_size|min_parallel_\w+|geqo\w*|from_collapse_limit|join_collapse_limit|plan_cache_mode|cursor_tuple_fraction|constraint_exclusion|jit\w*|force_parallel_mode|debug_parallel_query)$/i;

export const steersPlanner = (setting: string): boolean => PLANNER_SETTINGS.test(setting);

export const CLEAN: Lineage = Object.freeze({ kind: 'clean' });

export const derived = (source: string): Lineage => ({ kind: 'derived', source });

/** A value computed from `l`: a pass-through stops being one. */
export function derive(l: Lineage): Lineage {
  return l.kind === 'pass' ? { kind: 'derived', source: l.source } : l;
}

/** An expression over several inputs: clean only when every input is. */
export function combine(list: readonly Lineage[]): Lineage {
  for (const l of list) if (l.kind === 'derived') return l;
  for (const l of list) if (l.kind === 'pass') return derive(l);
  return CLEAN;
}

/** Either of two values (an ambiguous name, one of several relations): the more revealing one. */
export function worst(a: Lineage, b: Lineage): Lineage {
  if (a.kind === 'derived') return a;
  if (b.kind === 'derived') return b;
  if (a.kind === 'pass' && b.kind === 'pass') return strongerStrategy(a.strategy, b.strategy) === a.strategy ? a : b;
  return a.kind === 'pass' ? a : b;
}

/**
 * Two branches of a set operation (or the two sides of a FULL JOIN … USING): a pass-through only
 * when both are, with the stronger mask; a masked branch beside a clean one is derived.
 */
export function mergeBranches(a: Lineage, b: Lineage): Lineage {
  if (a.kind === 'clean' && b.kind === 'clean') return CLEAN;
  if (a.kind === 'pass' && b.kind === 'pass') return worst(a, b);
  if (a.kind === 'derived') return a;
  if (b.kind === 'derived') return b;
  return derive(a.kind === 'pass' ? a : b);
}

/** The strategy of the mask rules covering a source column, if any. */
export function columnMask(mask: MaskPolicy, c: { schema?: string; table: string; column: string }): MaskStrategy | undefined {
  let s: MaskStrategy | undefined;
  for (const m of mask.columns) if (columnMatches(m.pattern, c)) s = strongerStrategy(s, m.strategy);
  return s;
}

/** `schema.table.column` for messages. */
export function columnLabel(schema: string | undefined, table: string, column: string): string {
  return `${schema === undefined || schema === '' ? '' : `${schema}.`}${table}.${column}`;
}
