// Whether an UPDATE's or DELETE's WHERE (or a MERGE's ON and WHEN … AND) restricts the write to
// some rows of its target, read fail-closed: the condition must refer to a column of the target
// row in a way that provably resolves to the target. A constant (`true`, `1 = 1`), a parameter,
// a subquery that does not correlate with the target, `EXISTS (SELECT 1)`, or a column of another
// relation of UPDATE … FROM / DELETE … USING / MERGE … USING counts as no condition at all.
//
// Syntactic, not semantic: `WHERE id > 0` refers to the row and counts, although it may match
// every row. What it does catch beyond a bare constant: an OR with an unbounded branch
// (`id = 1 OR true`), `x = x`, and references that only look like the target's.
import { isObject, stringList, typedNode, type Json, type JsonObject } from './sqlTree.js';

interface Target {
  /** The names a column of the target row is qualified by: the alias, else the table name. */
  readonly qualifier: string;
  /** The schema a `schema.table.column` reference must name (no alias only). */
  readonly schema?: string;
  readonly aliased: boolean;
  /** Other relations are in scope (FROM, USING), so an unqualified column may be theirs. */
  readonly others: boolean;
}

function targetOf(relation: Json | undefined, others: boolean): Target | undefined {
  if (!isObject(relation) || typeof relation.relname !== 'string') return undefined;
  const alias = isObject(relation.alias) && typeof relation.alias.aliasname === 'string' ? relation.alias.aliasname : undefined;
  const t: { qualifier: string; schema?: string; aliased: boolean; others: boolean } = { qualifier: alias ?? relation.relname, aliased: alias !== undefined, others };
  if (alias === undefined && typeof relation.schemaname === 'string') t.schema = relation.schemaname;
  return t;
}

/** Names a subquery binds (relations, aliases, CTEs): a qualifier among them may not be the target. */
function boundNames(v: Json, out: Set<string>): Set<string> {
  if (Array.isArray(v)) for (const x of v) boundNames(x, out);
  else if (isObject(v)) {
    if (typeof v.relname === 'string') out.add(v.relname);
    if (typeof v.aliasname === 'string') out.add(v.aliasname);
    if (typeof v.ctename === 'string') out.add(v.ctename);
    for (const k in v) boundNames(v[k] as Json, out);
  }
  return out;
}

/** Whether `v` contains a column reference that resolves to the target row. */
function refersToTarget(v: Json, t: Target, shadowed: ReadonlySet<string> | undefined): boolean {
  if (Array.isArray(v)) return v.some((x) => refersToTarget(x, t, shadowed));
  if (!isObject(v)) return false;
  const typed = typedNode(v);
  if (typed === undefined) return Object.keys(v).some((k) => refersToTarget(v[k] as Json, t, shadowed));
  const [type, body] = typed;
  if (type === 'CurrentOfExpr') return true;
  if (type === 'ColumnRef') return columnIsTarget(body, t, shadowed);
  if (type === 'SubLink') {
    // Inside a subquery an unqualified column is the subquery's own first, and any name the
    // subquery binds hides the target's.
    const inner = new Set(shadowed);
    boundNames(body.subselect as Json, inner);
    return refersToTarget(body.testexpr as Json, t, shadowed) || refersToTarget(body.subselect as Json, t, inner);
  }
  return Object.keys(body).some((k) => refersToTarget(body[k] as Json, t, shadowed));
}

function columnIsTarget(ref: JsonObject, t: Target, shadowed: ReadonlySet<string> | undefined): boolean {
  const fields = Array.isArray(ref.fields) ? ref.fields : [];
  const names = stringList(fields.filter((f) => !(isObject(f) && 'A_Star' in f)));
  if (names === undefined || names.length === 0) return false;
  const hasStar = names.length < fields.length;
  const columnParts = hasStar ? names.length : names.length - 1;
  if (columnParts === 0) return shadowed === undefined && !t.others;
  const qualifier = names[columnParts - 1] as string;
  if (qualifier !== t.qualifier || shadowed?.has(qualifier) === true) return false;
  if (columnParts === 1) return true;
  // schema.table.column: only without an alias, and the schema must be the target's (unknown
  // schema on the target: the server resolves it through search_path, so any schema is refused).
  return !t.aliased && columnParts === 2 && t.schema !== undefined && names[0] === t.schema;
}

/**
 * The expression's structure without positions and constant values: `id + 1 = id + 2` counts as
 * `x = x` too, because the analysis is cached by shape (shape.ts) and the two texts share one.
 */
const structure = (v: Json): string => JSON.stringify(v, (k, x: unknown) => (k === 'location' ? undefined : k === 'A_Const' ? '?' : x));

/** `negated`: under an odd number of NOTs, where AND and OR trade places (De Morgan). */
function bounds(expr: Json | undefined, t: Target, negated: boolean): boolean {
  if (!isObject(expr)) return false;
  if (isObject(expr.BoolExpr)) {
    const args = Array.isArray(expr.BoolExpr.args) ? expr.BoolExpr.args : [];
    const op = expr.BoolExpr.boolop;
    if (op === 'NOT_EXPR') return bounds(args[0], t, !negated);
    const conjunction = (op === 'AND_EXPR') !== negated;
    return conjunction ? args.some((a) => bounds(a, t, negated)) : args.length > 0 && args.every((a) => bounds(a, t, negated));
  }
  // `x = x` holds for every row where x is not null.
  if (isObject(expr.A_Expr) && expr.A_Expr.kind === 'AEXPR_OP' && structure(expr.A_Expr.lexpr ?? null) === structure(expr.A_Expr.rexpr ?? null)) return false;
  return refersToTarget(expr, t, undefined);
}

/** UPDATE / DELETE: whether the WHERE restricts the rows of the target. */
export function writeBounded(type: 'UpdateStmt' | 'DeleteStmt', body: JsonObject): boolean {
  const others = type === 'UpdateStmt' ? body.fromClause : body.usingClause;
  const t = targetOf(body.relation, Array.isArray(others) && others.length > 0);
  return t !== undefined && bounds(body.whereClause, t, false);
}

/** MERGE: whether a WHEN clause's action is restricted to some target rows by ON or its own AND. */
export function mergeActionBounded(merge: JsonObject, when: JsonObject): boolean {
  const t = targetOf(merge.relation, true);
  return t !== undefined && (bounds(merge.joinCondition, t, false) || bounds(when.condition, t, false));
}
