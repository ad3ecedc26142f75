// The tree walk behind lineage.ts: scopes of FROM items, name resolution, SELECT and the
// RETURNING of writes. Expressions and predicates are in lineageExpr.ts.
import { parseSync } from 'libpg-query';
import { isObject, typedNode, type Json, type JsonObject } from '../sqlTree.js';
import type { MaskPolicy } from './plan.js';
import { CLEAN, columnLabel, columnMask, derive, derived, mergeBranches, worst, type Lineage, type LineageCatalog, type OutputColumn, type QualifiedRef, type RelationFacts } from './lineageModel.js';
import { ExpressionTracer, type Env, type Entry } from './lineageExpr.js';

/** Views over views are followed this deep; deeper counts as unknown (derived). */
const MAX_VIEW_DEPTH = 8;

/** Set-returning built-ins that return one column (so `*` over them has a known width). */
const SCALAR_SRFS = new Set(['generate_series', 'unnest', 'generate_subscripts', 'regexp_split_to_table', 'string_to_table', 'json_array_elements_text', 'jsonb_array_elements_text', 'json_array_elements', 'jsonb_array_elements', 'jsonb_object_keys', 'json_object_keys']);

const strs = (list: Json | undefined): string[] => (Array.isArray(list) ? list.flatMap((i) => (isObject(i) && isObject(i.String) && typeof i.String.sval === 'string' ? [i.String.sval] : [])) : []);
const aliasOf = (a: Json | undefined): { name?: string; colnames: string[] } => (isObject(a) ? { ...(typeof a.aliasname === 'string' ? { name: a.aliasname } : {}), colnames: strs(a.colnames) } : { colnames: [] });

function rename(cols: readonly OutputColumn[], names: readonly string[]): OutputColumn[] {
  return cols.map((c, i) => (i < names.length && c.spread !== true ? { name: names[i], lineage: c.lineage } : c));
}

const known = (cols: readonly OutputColumn[] | undefined): cols is readonly OutputColumn[] => cols !== undefined && !cols.some((c) => c.spread === true);

function worstOf(cols: readonly OutputColumn[] | undefined, fallback: Lineage): Lineage {
  return cols === undefined ? fallback : cols.reduce((l, c) => worst(l, c.lineage), CLEAN as Lineage);
}

/** FROM items in scope, and what `*` expands to (undefined: the FROM clause is empty). */
interface FromList {
  readonly entries: Entry[];
  readonly star: OutputColumn[];
}

export class SelectTracer extends ExpressionTracer {
  readonly needs: { relations: QualifiedRef[]; functions: QualifiedRef[] } = { relations: [], functions: [] };
  private depth = 0;

  constructor(
    readonly mask: MaskPolicy,
    readonly catalog: LineageCatalog,
    private readonly views: WeakMap<object, readonly OutputColumn[]>,
  ) {
    super();
  }

  needRelation(ref: QualifiedRef): void {
    this.needs.relations.push(ref);
  }

  needFunction(ref: QualifiedRef): void {
    this.needs.functions.push(ref);
  }

  /** The output columns of a SELECT (set operations and VALUES included). */
  select(sel: JsonObject, outer: readonly (readonly Entry[])[], outerCtes: ReadonlyMap<string, readonly OutputColumn[]>): OutputColumn[] {
    const ctes = this.withClause(sel.withClause, outer, outerCtes);
    const env: Env = { scopes: outer, ctes };
    let outputs: OutputColumn[];
    let from: FromList = { entries: [], star: [] };
    if (sel.op !== undefined && sel.op !== 'SETOP_NONE') {
      const l = isObject(sel.larg) ? this.select(sel.larg, outer, ctes) : [];
      const r = isObject(sel.rarg) ? this.select(sel.rarg, outer, ctes) : [];
      if (!known(l) || !known(r) || l.length !== r.length) {
        outputs = [{ name: undefined, lineage: worst(worstOf(l, CLEAN), worstOf(r, CLEAN)), spread: true }];
      } else outputs = l.map((c, i) => ({ name: c.name, lineage: mergeBranches(c.lineage, (r[i] as OutputColumn).lineage) }));
      // Removing duplicates sorts or hashes by value: the order rows come back in can rank them.
      if (sel.all !== true) this.unordered(outputs, `${String(sel.op).replace('SETOP_', '')} (without ALL)`);
    } else if (Array.isArray(sel.valuesLists)) {
      const rows = sel.valuesLists.map((row) => (isObject(row) && isObject(row.List) && Array.isArray(row.List.items) ? row.List.items : []));
      const width = Math.max(0, ...rows.map((r) => r.length));
      outputs = Array.from({ length: width }, (_, i) => ({ name: `column${i + 1}`, lineage: rows.map((r) => this.expr(r[i] ?? null, env)).reduce(mergeBranches) }));
    } else {
      from = this.fromList(sel.fromClause, env);
      const inner: Env = { scopes: [from.entries, ...outer], ctes };
      outputs = this.targets(sel.targetList, from, inner);
      this.predicate(sel.whereClause, inner, 'WHERE');
      for (const g of Array.isArray(sel.groupClause) ? sel.groupClause : []) this.ordering(g, outputs, inner, 'GROUP BY');
      this.predicate(sel.havingClause, inner, 'HAVING');
      for (const w of Array.isArray(sel.windowClause) ? sel.windowClause : []) this.window(isObject(w) && isObject(w.WindowDef) ? w.WindowDef : undefined, inner);
      const distinct = Array.isArray(sel.distinctClause) ? sel.distinctClause : [];
      if (distinct.length > 0 && distinct.every((d) => isObject(d) && Object.keys(d).length === 0)) this.unordered(outputs, 'DISTINCT');
      else for (const d of distinct) this.ordering(d, outputs, inner, 'DISTINCT ON');
    }
    const inner: Env = { scopes: [from.entries, ...outer], ctes };
    for (const s of Array.isArray(sel.sortClause) ? sel.sortClause : []) this.ordering(isObject(s) && isObject(s.SortBy) ? (s.SortBy.node ?? null) : s, outputs, inner, 'ORDER BY');
    for (const k of ['limitCount', 'limitOffset'] as const) this.refuseIfMasked(this.expr(sel[k] ?? null, inner), k === 'limitCount' ? 'LIMIT' : 'OFFSET');
    return outputs;
  }

  /** RETURNING columns of INSERT/UPDATE/DELETE/MERGE (undefined without RETURNING). */
  write(type: string, body: JsonObject): OutputColumn[] | undefined {
    const env: Env = { scopes: [], ctes: this.withClause(body.withClause, [], new Map()) };
    const target = isObject(body.relation) ? this.relationEntry(body.relation, env) : { alias: undefined, columns: undefined, any: derived('the written relation') };
    const entries: Entry[] = [target];
    let written = CLEAN as Lineage;
    if (type === 'InsertStmt' && isObject(body.selectStmt) && isObject(body.selectStmt.SelectStmt)) {
      written = worstOf(this.select(body.selectStmt.SelectStmt, [], env.ctes), CLEAN);
    }
    for (const k of ['fromClause', 'usingClause'] as const) entries.push(...this.fromList(body[k], env).entries);
    // ON CONFLICT … DO UPDATE reads the row proposed for insertion as `excluded`.
    if (isObject(body.onConflictClause)) entries.push({ alias: 'excluded', columns: target.columns?.map((c) => ({ name: c.name, lineage: written })), any: written });
    if (isObject(body.sourceRelation)) entries.push(...this.fromList([body.sourceRelation], env).entries);
    const inner: Env = { scopes: [entries], ctes: env.ctes };
    this.predicate(body.whereClause, inner, 'WHERE');
    this.predicate(body.joinCondition, inner, 'MERGE … ON');
    const assigned = new Map<string, Lineage>();
    const sets = [...(Array.isArray(body.targetList) ? body.targetList : []), ...(isObject(body.onConflictClause) && Array.isArray(body.onConflictClause.targetList) ? body.onConflictClause.targetList : [])];
    for (const t of sets) {
      if (isObject(t) && isObject(t.ResTarget) && typeof t.ResTarget.name === 'string') assigned.set(t.ResTarget.name, worst(assigned.get(t.ResTarget.name) ?? CLEAN, this.expr(t.ResTarget.val ?? null, inner)));
    }
    if (isObject(body.onConflictClause)) this.predicate(body.onConflictClause.whereClause, inner, 'ON CONFLICT … WHERE');
    for (const w of Array.isArray(body.mergeWhenClauses) ? body.mergeWhenClauses : []) {
      if (!isObject(w) || !isObject(w.MergeWhenClause)) continue;
      this.predicate(w.MergeWhenClause.condition, inner, 'MERGE … WHEN');
      written = worst(written, this.expr(w.MergeWhenClause.values ?? null, inner));
      for (const t of Array.isArray(w.MergeWhenClause.targetList) ? w.MergeWhenClause.targetList : []) if (isObject(t) && isObject(t.ResTarget)) written = worst(written, this.expr(t.ResTarget.val ?? null, inner));
    }
    // A masked value written where it is not masked can be read back in the clear.
    const label = `${target.schema !== undefined ? `${target.schema}.` : ''}${isObject(body.relation) ? String(body.relation.relname) : 'the target'}`;
    if (written.kind !== 'clean') this.copies ??= `writes a value from ${written.source} into ${label}`;
    for (const [name, l] of assigned) {
      const col = target.columns?.find((c) => c.name === name)?.lineage ?? target.any;
      if (l.kind !== 'clean' && col.kind === 'clean') this.copies ??= `writes a value from ${l.source} into ${label}.${name}, which is not masked`;
    }
    const returning = isObject(body.returningClause) ? body.returningClause.exprs : body.returningList;
    if (!Array.isArray(returning) || returning.length === 0) return undefined;
    // A returned column holds what was written into it: the target's own value or the new one.
    const after: Entry = {
      ...target,
      columns: target.columns?.map((c) => ({ name: c.name, lineage: worst(worst(c.lineage, written), (c.name !== undefined ? assigned.get(c.name) : undefined) ?? CLEAN) })),
      any: worst(worst(target.any, written), [...assigned.values()].reduce(worst, CLEAN as Lineage)),
    };
    const scope: Entry[] = [after, ...entries.slice(1)];
    return this.targets(returning, { entries: scope, star: after.columns ?? [{ name: undefined, lineage: after.any, spread: true }] }, { scopes: [scope], ctes: env.ctes });
  }

  private withClause(w: Json | undefined, outer: readonly (readonly Entry[])[], outerCtes: ReadonlyMap<string, readonly OutputColumn[]>): ReadonlyMap<string, readonly OutputColumn[]> {
    if (!isObject(w) || !Array.isArray(w.ctes)) return outerCtes;
    const ctes = new Map(outerCtes);
    for (const c of w.ctes) {
      if (!isObject(c) || !isObject(c.CommonTableExpr)) continue;
      const cte = c.CommonTableExpr;
      const name = String(cte.ctename);
      const q = isObject(cte.ctequery) ? typedNode(cte.ctequery) : undefined;
      const colnames = strs(cte.aliascolnames);
      const run = (): OutputColumn[] => {
        if (q === undefined) return [{ name: undefined, lineage: derived(`WITH ${name}`), spread: true }];
        if (q[0] === 'SelectStmt') return rename(this.select(q[1], outer, ctes), colnames);
        return rename(this.write(q[0], q[1]) ?? [], colnames);
      };
      if (w.recursive === true && q?.[0] === 'SelectStmt') {
        // The recursive term reads the CTE itself: start from the non-recursive term and widen
        // until nothing changes (a lineage only moves clean → pass → derived).
        const base = q[1].op !== undefined && q[1].op !== 'SETOP_NONE' && isObject(q[1].larg) ? q[1].larg : q[1];
        ctes.set(name, rename(this.select(base, outer, ctes), colnames));
        for (let i = 0; i < 4; i++) {
          const next = run();
          const prev = ctes.get(name) ?? [];
          ctes.set(name, next);
          if (next.length === prev.length && next.every((n, j) => n.lineage.kind === prev[j]?.lineage.kind)) break;
        }
      } else ctes.set(name, run());
    }
    return ctes;
  }

  private fromList(items: Json | undefined, env: Env): FromList {
    const entries: Entry[] = [];
    const star: OutputColumn[] = [];
    for (const item of Array.isArray(items) ? items : []) {
      // LATERAL items may read the items before them; seeing them always over-approximates.
      const r = this.fromItem(item, { scopes: [entries, ...env.scopes], ctes: env.ctes });
      entries.push(...r.entries);
      star.push(...r.star);
    }
    return { entries, star };
  }

  private fromItem(item: Json, env: Env): FromList {
    const typed = isObject(item) ? typedNode(item) : undefined;
    if (typed === undefined) return { entries: [], star: [] };
    const [type, body] = typed;
    if (type === 'RangeVar') {
      const e = this.relationEntry(body, env);
      return { entries: [e], star: e.columns !== undefined ? [...e.columns] : [{ name: undefined, lineage: e.any, spread: true }] };
    }
    if (type === 'RangeSubselect') {
      const sub = isObject(body.subquery) && isObject(body.subquery.SelectStmt) ? body.subquery.SelectStmt : undefined;
      const a = aliasOf(body.alias);
      const cols = sub === undefined ? [{ name: undefined, lineage: derived('a subquery'), spread: true as const }] : rename(this.select(sub, env.scopes, env.ctes), a.colnames);
      const e: Entry = { alias: a.name, columns: known(cols) ? cols : undefined, any: worstOf(cols, CLEAN) };
      return { entries: [e], star: cols };
    }
    if (type === 'JoinExpr') return this.join(body, env);
    if (type === 'RangeFunction') return this.rangeFunction(body, env);
    if (type === 'RangeTableSample' && isObject(body.relation)) {
      this.expr(body.args ?? null, env);
      return this.fromItem(body.relation, env);
    }
    // XMLTABLE, JSON_TABLE and anything newer: columns of unknown provenance from its inputs.
    const l = derive(this.expr(body, env));
    const a = aliasOf(body.alias);
    return { entries: [{ alias: a.name, columns: undefined, any: l }], star: [{ name: undefined, lineage: l, spread: true }] };
  }

  private relationEntry(rv: JsonObject, env: Env): Entry {
    const name = String(rv.relname);
    const schema = typeof rv.schemaname === 'string' ? rv.schemaname : undefined;
    const a = aliasOf(rv.alias);
    const alias = a.name ?? name;
    const cte = schema === undefined ? env.ctes.get(name) : undefined;
    let cols: readonly OutputColumn[] | undefined;
    let any: Lineage;
    if (cte !== undefined) {
      cols = cte;
      any = worstOf(cte, CLEAN);
    } else {
      const ref: QualifiedRef = schema === undefined ? { name } : { schema, name };
      const facts = this.catalog.relations(ref);
      if (facts === undefined) {
        this.needRelation(ref);
        return { alias, schema, columns: undefined, any: derived(name) };
      }
      if (facts.length === 0) return { alias, schema, columns: undefined, any: derived(`${name}, a relation the gateway cannot look up`) };
      // An unqualified name may resolve through search_path to any of them: assume the worst.
      const each = facts.map((f) => this.relationColumns(f));
      const first = each[0] as readonly OutputColumn[];
      const sameShape = each.every((c) => c.length === first.length && c.every((x, i) => x.name === first[i]?.name));
      any = each.flat().reduce((l, c) => worst(l, c.lineage), CLEAN as Lineage);
      cols = sameShape ? first.map((c, i) => ({ name: c.name, lineage: each.reduce((l, e) => worst(l, (e[i] as OutputColumn).lineage), CLEAN as Lineage) })) : undefined;
    }
    if (cols !== undefined && a.colnames.length > 0) cols = rename(cols, a.colnames);
    return { alias, schema, columns: cols, any };
  }

  /** A relation's columns: a table's as they are masked, a view's as its definition computes them. */
  private relationColumns(f: RelationFacts): readonly OutputColumn[] {
    if (f.kind === 'table') {
      return f.columns.map((name) => {
        const strategy = columnMask(this.mask, { schema: f.schema, table: f.name, column: name });
        return { name, lineage: strategy === undefined ? CLEAN : { kind: 'pass', strategy, source: columnLabel(f.schema, f.name, name) } };
      });
    }
    const memo = this.views.get(f);
    if (memo !== undefined) return memo;
    const unknown = (why: string) => f.columns.map((name) => ({ name, lineage: derived(`${columnLabel(f.schema, f.name, name)} (${why})`) }));
    if (f.definition === undefined || this.depth >= MAX_VIEW_DEPTH) return unknown('a view the gateway cannot follow');
    const before = this.needs.relations.length + this.needs.functions.length;
    const savedRefusal = this.refusal;
    this.refusal = undefined;
    this.depth++;
    let cols: readonly OutputColumn[];
    try {
      const tree = parseSync(f.definition) as unknown as { stmts?: { stmt?: Json }[] };
      const stmt = tree.stmts?.[0]?.stmt;
      const sel = isObject(stmt) && isObject(stmt.SelectStmt) && tree.stmts?.length === 1 ? stmt.SelectStmt : undefined;
      const traced = sel === undefined ? undefined : this.select(sel, [], new Map());
      if (traced === undefined || !known(traced) || traced.length !== f.columns.length) cols = unknown('a view the gateway cannot follow');
      // A view that filters or orders by a masked value answers the same question as the query would.
      else if (this.refusal !== undefined) cols = f.columns.map((name) => ({ name, lineage: derived(`view ${columnLabel(f.schema, f.name, name)}, whose definition ${this.refusal ?? ''}`) }));
      else cols = traced.map((c, i) => ({ name: f.columns[i], lineage: c.lineage }));
    } catch {
      cols = unknown('a view definition that does not parse');
    } finally {
      this.depth--;
      this.refusal = savedRefusal;
    }
    if (this.needs.relations.length + this.needs.functions.length === before) this.views.set(f, cols);
    return cols;
  }

  private join(j: JsonObject, env: Env): FromList {
    const l = this.fromItem(j.larg ?? null, env);
    const r = this.fromItem(j.rarg ?? null, env);
    const entries = [...l.entries, ...r.entries];
    const knownL = known(l.star) ? l.star : undefined;
    const knownR = known(r.star) ? r.star : undefined;
    let using = strs(j.usingClause);
    if (j.isNatural === true) {
      if (knownL === undefined || knownR === undefined) {
        const any = worst(worstOf(l.star, CLEAN), worstOf(r.star, CLEAN));
        return { entries: [...entries, { alias: aliasOf(j.alias).name, columns: undefined, any }], star: [{ name: undefined, lineage: any, spread: true }] };
      }
      using = knownL.filter((c) => c.name !== undefined && knownR.some((x) => x.name === c.name)).map((c) => c.name as string);
    }
    const merged: OutputColumn[] = using.map((name) => {
      const a = this.findIn(l.entries, name);
      const b = this.findIn(r.entries, name);
      this.equality(a, b, `JOIN … USING (${name})`);
      const lineage = j.jointype === 'JOIN_FULL' ? mergeBranches(a, b) : j.jointype === 'JOIN_RIGHT' ? b : a;
      return { name, lineage };
    });
    const rest = (s: OutputColumn[]) => s.filter((c) => c.name === undefined || !using.includes(c.name));
    const star = [...merged, ...rest(l.star), ...rest(r.star)];
    if (merged.length > 0) entries.unshift({ alias: undefined, columns: merged, any: worstOf(merged, CLEAN), merged: true });
    const a = aliasOf(j.alias);
    if (a.name !== undefined) entries.push({ alias: a.name, columns: known(star) ? rename(star, a.colnames) : undefined, any: worstOf(star, CLEAN) });
    this.predicate(j.quals, { scopes: [entries, ...env.scopes], ctes: env.ctes }, 'JOIN … ON');
    return { entries, star };
  }

  private findIn(entries: readonly Entry[], name: string): Lineage {
    let l: Lineage | undefined;
    for (const e of entries) {
      if (e.columns === undefined) l = worst(l ?? CLEAN, e.any);
      else for (const c of e.columns) if (c.name === name) l = worst(l ?? CLEAN, c.lineage);
    }
    return l ?? derived(`column ${name}, which the gateway cannot resolve`);
  }

  private rangeFunction(rf: JsonObject, env: Env): FromList {
    const a = aliasOf(rf.alias);
    const star: OutputColumn[] = [];
    for (const f of Array.isArray(rf.functions) ? rf.functions : []) {
      const items = isObject(f) && isObject(f.List) && Array.isArray(f.List.items) ? f.List.items : [];
      const call = items[0];
      const l = this.expr(call ?? null, env);
      const defs = Array.isArray(items[1]) ? items[1] : Array.isArray(rf.coldeflist) ? rf.coldeflist : undefined;
      const fname = isObject(call) && isObject(call.FuncCall) ? strs(call.FuncCall.funcname).pop() : undefined;
      if (defs !== undefined && defs.length > 0) for (const d of defs) star.push({ name: isObject(d) && isObject(d.ColumnDef) ? String(d.ColumnDef.colname) : undefined, lineage: l });
      else if (fname !== undefined && SCALAR_SRFS.has(fname)) star.push({ name: fname, lineage: l });
      else star.push({ name: undefined, lineage: l, spread: true });
    }
    if (rf.ordinality === true) star.push({ name: 'ordinality', lineage: CLEAN });
    let cols = rename(star, a.colnames);
    // A single scalar function named by its alias alone: `FROM generate_series(1, 3) g` has column g.
    if (a.name !== undefined && a.colnames.length === 0 && cols.length === 1 && known(cols)) cols = rename(cols, [a.name]);
    return { entries: [{ alias: a.name ?? cols[0]?.name, columns: known(cols) ? cols : undefined, any: worstOf(cols, CLEAN) }], star: cols };
  }
}
