// Which base-table columns each column of a view is computed from, read from the view's
// definition (`pg_get_viewdef(oid)`) with PostgreSQL's parser. RowDescription names a view
// column by the view's OID, not the table behind it, so without this a mask on
// customers.email would not cover `CREATE VIEW contacts AS SELECT email AS contact FROM
// customers`. The engine's ColumnNameResolver puts the result in ResolvedRelation.sources.
//
// The answer over-approximates: a column counts as computed from every column its expression
// mentions (through aliases, joins, subqueries, CTEs, set operations and whole-row references),
// and a name that could belong to several relations is attributed to all of them. Column `*`
// means "some column of that table" (a whole-row reference). When the definition cannot be
// followed (a `*` over a table, which pg_get_viewdef never emits), the result is undefined and
// the caller must treat every column of the view as computed from every relation it reads.
import { parseSync } from 'libpg-query';
import type { ColumnSource } from './plan.js';
import '../sql.js'; // loads the parser's WebAssembly module
import { isObject, type Json, type JsonObject } from '../sqlTree.js';

type Obj = JsonObject;
const isObj = isObject;

interface Output {
  readonly name: string | undefined;
  readonly sources: readonly ColumnSource[];
}

type Entry =
  | { readonly alias: string; readonly kind: 'table'; readonly schema?: string; readonly table: string }
  | { readonly alias: string | undefined; readonly kind: 'derived'; readonly outputs: readonly Output[] };

/** Scopes from innermost to outermost (correlated subqueries see the outer ones). */
type Scopes = readonly (readonly Entry[])[];

class Untraceable extends Error {}

function names(list: Json | undefined): string[] {
  return Array.isArray(list) ? list.flatMap((i) => (isObj(i) && isObj(i.String) && typeof i.String.sval === 'string' ? [i.String.sval] : [])) : [];
}

const src = (schema: string | undefined, table: string, column: string): ColumnSource => (schema === undefined ? { table, column } : { schema, table, column });

function entrySources(e: Entry, column: string): ColumnSource[] {
  if (e.kind === 'table') return [src(e.schema, e.table, column)];
  const named = e.outputs.filter((o) => o.name === column);
  return (named.length > 0 ? named : e.outputs).flatMap((o) => o.sources);
}

function allSources(e: Entry): ColumnSource[] {
  return e.kind === 'table' ? [src(e.schema, e.table, '*')] : e.outputs.flatMap((o) => o.sources);
}

function resolveColumnRef(fields: Json | undefined, scopes: Scopes): ColumnSource[] {
  const parts = names(fields);
  const star = Array.isArray(fields) && fields.some((f) => isObj(f) && 'A_Star' in f);
  for (const scope of scopes) {
    if (star && parts.length === 0) return scope.flatMap(allSources);
    if (parts.length === 1 && !star) {
      const [col] = parts as [string];
      const hits = scope.flatMap((e) => (e.kind === 'table' || e.outputs.some((o) => o.name === col) ? entrySources(e, col) : []));
      // A bare relation alias is a whole-row reference (`SELECT c FROM customers c`).
      const rows = scope.filter((e) => e.alias === col).flatMap(allSources);
      if (hits.length > 0 || rows.length > 0) return [...hits, ...rows];
      continue;
    }
    const qualifier = parts[parts.length - (star ? 1 : 2)];
    const schema = star ? parts[parts.length - 2] : parts[parts.length - 3];
    const col = star ? undefined : (parts[parts.length - 1] as string);
    const entries = scope.filter((e) => e.alias === qualifier && (schema === undefined || e.kind !== 'table' || e.schema === undefined || e.schema === schema));
    if (entries.length > 0) return entries.flatMap((e) => (col === undefined ? allSources(e) : entrySources(e, col)));
  }
  // Not found anywhere: attribute it to everything in reach.
  return scopes.flatMap((s) => s.flatMap((e) => (parts.length > 0 ? entrySources(e, parts[parts.length - 1] as string) : allSources(e))));
}

/** Sources of an expression: every column it mentions, including inside subqueries. */
function expressionSources(v: Json | undefined, scopes: Scopes, ctes: ReadonlyMap<string, readonly Output[]>): ColumnSource[] {
  const out: ColumnSource[] = [];
  const visit = (x: Json | undefined): void => {
    if (Array.isArray(x)) x.forEach(visit);
    else if (isObj(x)) {
      if (isObj(x.ColumnRef)) out.push(...resolveColumnRef(x.ColumnRef.fields, scopes));
      else if (isObj(x.SubLink)) {
        visit(x.SubLink.testexpr);
        if (isObj(x.SubLink.subselect) && isObj(x.SubLink.subselect.SelectStmt)) {
          for (const o of selectOutputs(x.SubLink.subselect.SelectStmt, scopes, ctes)) out.push(...o.sources);
        }
      } else for (const k in x) visit(x[k]);
    }
  };
  visit(v);
  return out;
}

function fromEntries(items: Json | undefined, scopes: Scopes, ctes: ReadonlyMap<string, readonly Output[]>, into: Entry[]): void {
  for (const item of Array.isArray(items) ? items : []) {
    if (!isObj(item)) continue;
    if (isObj(item.RangeVar)) {
      const rv = item.RangeVar;
      const relname = String(rv.relname);
      const alias = isObj(rv.alias) && typeof rv.alias.aliasname === 'string' ? rv.alias.aliasname : relname;
      const cte = rv.schemaname === undefined ? ctes.get(relname) : undefined;
      if (cte !== undefined) into.push({ alias, kind: 'derived', outputs: cte });
      else into.push(typeof rv.schemaname === 'string' ? { alias, kind: 'table', schema: rv.schemaname, table: relname } : { alias, kind: 'table', table: relname });
    } else if (isObj(item.RangeSubselect)) {
      const rs = item.RangeSubselect;
      const sub = isObj(rs.subquery) && isObj(rs.subquery.SelectStmt) ? rs.subquery.SelectStmt : undefined;
      if (sub === undefined) throw new Untraceable();
      const outputs = selectOutputs(sub, [into, ...scopes], ctes); // LATERAL may see earlier items
      const alias = isObj(rs.alias) && typeof rs.alias.aliasname === 'string' ? rs.alias.aliasname : undefined;
      const colnames = isObj(rs.alias) ? names(rs.alias.colnames) : [];
      into.push({ alias, kind: 'derived', outputs: outputs.map((o, i) => ({ name: colnames[i] ?? o.name, sources: o.sources })) });
    } else if (isObj(item.JoinExpr)) {
      const j = item.JoinExpr;
      const inner: Entry[] = [];
      fromEntries([j.larg ?? null, j.rarg ?? null], scopes, ctes, inner);
      into.push(...inner);
      if (isObj(j.alias) && typeof j.alias.aliasname === 'string') into.push({ alias: j.alias.aliasname, kind: 'derived', outputs: inner.flatMap((e) => (e.kind === 'derived' ? e.outputs : [{ name: undefined, sources: allSources(e) }])) });
    } else {
      // A function in FROM (or anything else): its columns come from whatever its arguments mention.
      const sources = expressionSources(item, [into, ...scopes], ctes);
      const fn = Object.values(item)[0];
      const alias = isObj(fn) && isObj(fn.alias) && typeof fn.alias.aliasname === 'string' ? fn.alias.aliasname : undefined;
      into.push({ alias, kind: 'derived', outputs: [{ name: undefined, sources }] });
    }
  }
}

function outputName(target: Obj): string | undefined {
  if (typeof target.name === 'string') return target.name;
  const v = target.val;
  if (isObj(v) && isObj(v.ColumnRef)) return names(v.ColumnRef.fields).pop();
  if (isObj(v) && isObj(v.FuncCall)) return names(v.FuncCall.funcname).pop();
  return undefined;
}

function selectOutputs(sel: Obj, outer: Scopes, outerCtes: ReadonlyMap<string, readonly Output[]>): Output[] {
  const ctes = new Map(outerCtes);
  const withClause = sel.withClause;
  if (isObj(withClause) && Array.isArray(withClause.ctes)) {
    for (const c of withClause.ctes) {
      if (!isObj(c) || !isObj(c.CommonTableExpr)) continue;
      const cte = c.CommonTableExpr;
      const q = isObj(cte.ctequery) ? cte.ctequery : undefined;
      const name = String(cte.ctename);
      if (q === undefined || !isObj(q.SelectStmt)) throw new Untraceable(); // a data-modifying CTE in a view
      // A recursive CTE may read itself: first pass without it, second with the first's answer.
      const first = withClause.recursive === true ? selectOutputs(q.SelectStmt, outer, new Map([...ctes, [name, []]])) : undefined;
      const outputs = selectOutputs(q.SelectStmt, outer, first === undefined ? ctes : new Map([...ctes, [name, first.map((o) => ({ name: o.name, sources: first.flatMap((f) => f.sources) }))]]));
      const colnames = names(cte.aliascolnames);
      ctes.set(name, outputs.map((o, i) => ({ name: colnames[i] ?? o.name, sources: o.sources })));
    }
  }
  if (sel.op !== undefined && sel.op !== 'SETOP_NONE') {
    const l = isObj(sel.larg) ? selectOutputs(sel.larg, outer, ctes) : [];
    const r = isObj(sel.rarg) ? selectOutputs(sel.rarg, outer, ctes) : [];
    return l.map((o, i) => ({ name: o.name, sources: [...o.sources, ...(r[i]?.sources ?? [])] }));
  }
  if (Array.isArray(sel.valuesLists)) {
    const rows = sel.valuesLists.map((row) => (isObj(row) && isObj(row.List) && Array.isArray(row.List.items) ? row.List.items : []));
    const width = Math.max(0, ...rows.map((r) => r.length));
    return Array.from({ length: width }, (_, i) => ({ name: undefined, sources: rows.flatMap((r) => expressionSources(r[i], outer, ctes)) }));
  }
  const scope: Entry[] = [];
  fromEntries(sel.fromClause, outer, ctes, scope);
  const scopes: Scopes = [scope, ...outer];
  const outputs: Output[] = [];
  for (const t of Array.isArray(sel.targetList) ? sel.targetList : []) {
    if (!isObj(t) || !isObj(t.ResTarget)) continue;
    const v = t.ResTarget.val;
    if (isObj(v) && isObj(v.ColumnRef) && Array.isArray(v.ColumnRef.fields) && v.ColumnRef.fields.some((f) => isObj(f) && 'A_Star' in f)) {
      // `*` / `alias.*`: only derived relations say how many columns they have.
      const q = names(v.ColumnRef.fields).pop();
      const entries = q === undefined ? scope : scope.filter((e) => e.alias === q);
      for (const e of entries) {
        if (e.kind === 'table') throw new Untraceable();
        outputs.push(...e.outputs);
      }
      continue;
    }
    outputs.push({ name: outputName(t.ResTarget), sources: expressionSources(v, scopes, ctes) });
  }
  return outputs;
}

function dedupe(list: readonly ColumnSource[]): ColumnSource[] {
  const seen = new Map<string, ColumnSource>();
  for (const s of list) seen.set(`${s.schema ?? ''}\u0000${s.table}\u0000${s.column}`, s);
  return [...seen.values()];
}

/**
 * For each output column of the view (in order: attnum 1, 2, …) the base columns it may be
 * computed from; undefined when the definition cannot be followed (see the module comment).
 * Sources may name other views: the resolver applies this again to those (bounded depth).
 */
export function viewColumnSources(viewDefinition: string): ColumnSource[][] | undefined {
  try {
    const tree = parseSync(viewDefinition) as unknown as { stmts?: { stmt?: Json }[] };
    const stmt = tree.stmts?.[0]?.stmt;
    if (tree.stmts?.length !== 1 || !isObj(stmt) || !isObj(stmt.SelectStmt)) return undefined;
    return selectOutputs(stmt.SelectStmt, [], new Map()).map((o) => dedupe(o.sources));
  } catch {
    return undefined;
  }
}
