// Result-column lineage: for every output column of a statement that returns rows, whether its
// value can depend on a masked column (lineageModel.ts), read from PostgreSQL's own parse tree
// with names resolved the way the server resolves them — FROM items, joins with USING/NATURAL,
// subqueries, CTEs (recursive ones to a fixpoint), LATERAL, correlated references, `*` and `t.*`
// expanded with the relation's columns, views followed through their definitions.
//
// It also enforces the predicate rule: a masked value may decide which rows come back, or in
// which order, only by whole-value comparison with something the client already knows
// (lineagePredicates.ts); anything else is how a value is read a character at a time.
//
// What it cannot resolve it treats as derived (fail closed): an unknown relation, a function
// the server did not ship, an unresolvable name. The analysis reads no literal's value, so a
// result may be reused for every text of the same shape (shape.ts).
import { parseSync } from 'libpg-query';
import '../sql.js'; // loads the parser's WebAssembly module
import { isObject, typedNode, type Json, type JsonObject } from '../sqlTree.js';
import type { MaskPolicy } from './plan.js';
import { derived, steersPlanner, type LineageCatalog, type OutputColumn, type QualifiedRef } from './lineageModel.js';
import { SelectTracer } from './lineageSelect.js';

/** The lineage facts of one top-level statement. */
export interface StatementLineage {
  /** The columns of the rows it returns (SELECT, RETURNING, COPY (query), DECLARE's query). */
  readonly columns?: readonly OutputColumn[];
  /** Why the statement must be refused whatever the derived mode (predicate misuse). */
  readonly refusal?: string;
  /**
   * Code the gateway cannot see into runs (a user-defined function or procedure, a DO block, a
   * built-in that runs SQL text): it can read masked columns and say them in a notice, an error,
   * a write or its timing, so it is refused whatever the derived mode.
   */
  readonly opaque?: string;
  /** A masked value is written into a column that is not masked (it could be read back): refused. */
  readonly copies?: string;
  /** DECLARE name CURSOR: `columns` are what FETCH from it returns. */
  readonly declares?: string;
  /** FETCH from this cursor: its columns are the declaring statement's. */
  readonly fetches?: string;
  /** CLOSE of this cursor (or ALL). */
  readonly closes?: string | { readonly all: true };
  /** PREPARE name AS …: `columns` are what EXECUTE returns. */
  readonly prepares?: string;
  /** EXECUTE of this prepared statement. */
  readonly executes?: string;
  /** The rows go out as COPY data, not DataRows. */
  readonly copy?: true;
  /** A SET that can change what an unqualified name denotes (search_path). */
  readonly renames?: true;
}

export interface Needs {
  readonly relations: QualifiedRef[];
  readonly functions: QualifiedRef[];
}

export type LineageAnswer = { readonly ok: true; readonly statements: readonly StatementLineage[] } | { readonly ok: false; readonly needs: Needs };

/**
 * The lineage of every statement in `text` under `mask`, or the catalog facts still needed.
 * `views` memoises view definitions' lineage across calls (per session: it depends on the mask
 * and the catalog). A text that does not parse yields no statements (the server refuses it too).
 */
export function analyzeLineage(text: string, mask: MaskPolicy, catalog: LineageCatalog, views = new WeakMap<object, readonly OutputColumn[]>()): LineageAnswer {
  let stmts: { stmt?: Json }[];
  try {
    stmts = (parseSync(text) as unknown as { stmts?: { stmt?: Json }[] }).stmts ?? [];
  } catch {
    return { ok: true, statements: [] };
  }
  const tracer = new SelectTracer(mask, catalog, views);
  const out: StatementLineage[] = [];
  for (const raw of stmts) {
    const typed = isObject(raw.stmt) ? typedNode(raw.stmt) : undefined;
    if (typed === undefined) continue;
    tracer.refusal = undefined;
    tracer.opaque = typed[0] === 'DoStmt' ? 'a DO block' : undefined;
    tracer.copies = undefined;
    const s = statementLineage(tracer, typed[0], typed[1]);
    out.push({ ...s, ...(tracer.refusal !== undefined ? { refusal: tracer.refusal } : {}), ...(tracer.opaque !== undefined ? { opaque: tracer.opaque } : {}), ...(tracer.copies !== undefined ? { copies: tracer.copies } : {}) });
  }
  if (tracer.needs.relations.length > 0 || tracer.needs.functions.length > 0) return { ok: false, needs: tracer.needs };
  return { ok: true, statements: out };
}

function statementLineage(t: SelectTracer, type: string, body: JsonObject): StatementLineage {
  const query = isObject(body.query) ? typedNode(body.query) : undefined;
  switch (type) {
    case 'SelectStmt':
      return { columns: t.select(body, [], new Map()) };
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt': {
      const columns = t.write(type, body);
      return columns === undefined ? {} : { columns };
    }
    case 'ExplainStmt': {
      // The plan text shows no stored values, but EXPLAIN ANALYZE runs the statement and both
      // show row counts and estimates: the statement's predicates are judged as if it ran.
      if (query !== undefined) statementLineage(t, query[0], query[1]);
      return {};
    }
    case 'CopyStmt':
      if (query === undefined) return {};
      return { columns: statementLineage(t, query[0], query[1]).columns ?? [], copy: true };
    case 'DeclareCursorStmt':
      return { declares: String(body.portalname ?? ''), columns: query === undefined ? [] : (statementLineage(t, query[0], query[1]).columns ?? []) };
    case 'FetchStmt':
      return body.ismove === true ? {} : { fetches: String(body.portalname ?? '') };
    case 'ClosePortalStmt':
      return { closes: typeof body.portalname === 'string' ? body.portalname : { all: true } };
    case 'PrepareStmt':
      return { prepares: String(body.name ?? ''), columns: query === undefined ? [] : (statementLineage(t, query[0], query[1]).columns ?? []) };
    case 'ExecuteStmt':
      return { executes: String(body.name ?? '') };
    case 'CreateTableAsStmt':
    case 'ViewStmt':
      // What they copy or define is judged elsewhere; how their query filters is judged here.
      if (query !== undefined) statementLineage(t, query[0], query[1]);
      return {};
    case 'VariableSetStmt':
      // SET x TO DEFAULT, RESET and RESET ALL return to what the server started with.
      if (body.kind === 'VAR_SET_VALUE' && typeof body.name === 'string' && steersPlanner(body.name)) t.refusal ??= `SET ${body.name} can make a read go through a masked column's index and return rows in its order`;
      return body.name === 'search_path' || typeof body.name !== 'string' ? { renames: true } : {};
    case 'CallStmt': {
      // A procedure's OUT values come back as a row whose width the gateway cannot know.
      const call = isObject(body.funccall) ? body.funccall : undefined;
      const l = call === undefined ? derived('a procedure') : t.functionCall(call, { scopes: [], ctes: new Map() });
      return l.kind === 'clean' ? {} : { columns: [{ name: undefined, lineage: l, spread: true }] };
    }
    default:
      return {};
  }
}

/**
 * Aligns output columns with a result of `width` columns: a single spread takes up what the
 * others do not; anything else that does not fit is undefined (the caller redacts every column).
 */
export function alignColumns(columns: readonly OutputColumn[], width: number): readonly OutputColumn[] | undefined {
  const spreads = columns.filter((c) => c.spread === true).length;
  if (spreads === 0) return columns.length === width ? columns : undefined;
  if (spreads > 1 || columns.length - 1 > width) return undefined;
  const at = columns.findIndex((c) => c.spread === true);
  const fill = columns[at] as OutputColumn;
  return [...columns.slice(0, at), ...Array.from({ length: width - (columns.length - 1) }, () => ({ name: fill.name, lineage: fill.lineage })), ...columns.slice(at + 1)];
}

