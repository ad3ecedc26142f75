// Expressions and predicates for the lineage walk (lineage.ts): the lineage of an expression,
// name resolution through scopes, and the rule for masked values that decide which rows come
// back or in which order.
//
// The predicate rule: in WHERE, JOIN … ON/USING, HAVING, FILTER and MERGE conditions a masked
// value may only be compared whole, for equality, with something the client already knows — a
// constant, a parameter, an unmasked column or expression: `email = $1`, `= 'x'`, `IN (…)`,
// `= ANY($1)`, `IS NOT DISTINCT FROM`, `IS NULL`. That answers "is it this value?", which the
// client could ask anyway, and nothing more. Everything else is refused — `LIKE`, `<`, `substr(…)
// = 'a'`, `NOT (…)` (the planner turns `NOT (email IS NULL)` into an index scan that returns rows
// in email order), `IS NOT NULL`, comparing two masked columns (a merge join returns rows in
// their order) — and so is a masked value anywhere in ORDER BY, GROUP BY, DISTINCT [ON], a
// set operation without ALL, a window's PARTITION BY/ORDER BY, LIMIT or OFFSET: sorting and
// deduplicating return rows in value order, and with rows the client inserts itself an order is
// a binary search.
import { isObject, stringConstant, typedNode, type Json, type JsonObject } from '../sqlTree.js';
import type { MaskPolicy } from './plan.js';
import { CLEAN, combine, derive, derived, readsUntracedData, steersPlanner, worst, type FunctionKind, type Lineage, type LineageCatalog, type OutputColumn, type QualifiedRef } from './lineageModel.js';

/** A FROM item in scope: its name, its columns (undefined: unknown), the worst of them. */
export interface Entry {
  readonly alias: string | undefined;
  readonly schema?: string | undefined;
  readonly columns: readonly OutputColumn[] | undefined;
  readonly any: Lineage;
  /** The merged columns of JOIN … USING / NATURAL: an unqualified name finds these first. */
  readonly merged?: true;
}

/** Scopes from the innermost out (correlated subqueries see outer ones) and the CTEs in reach. */
export interface Env {
  readonly scopes: readonly (readonly Entry[])[];
  readonly ctes: ReadonlyMap<string, readonly OutputColumn[]>;
}

const SYSTEM_COLUMNS = new Set(['ctid', 'xmin', 'xmax', 'cmin', 'cmax', 'tableoid']);

/** Casting to these (without a length) keeps the value as it is: still a pass-through. */
const TEXT_TYPES = new Set(['text', 'varchar', 'bpchar', 'citext']);


const strs = (list: Json | undefined): string[] => (Array.isArray(list) ? list.flatMap((i) => (isObject(i) && isObject(i.String) && typeof i.String.sval === 'string' ? [i.String.sval] : [])) : []);
const hasStar = (fields: Json | undefined) => Array.isArray(fields) && fields.some((f) => isObject(f) && 'A_Star' in f);

/** `=` as written, or schema-qualified to pg_catalog; any other operator name is not equality. */
function isEquality(name: Json | undefined): boolean {
  const parts = strs(name);
  return parts.length === 1 ? parts[0] === '=' : parts.length === 2 && parts[0] === 'pg_catalog' && parts[1] === '=';
}

function outputName(t: JsonObject): string | undefined {
  if (typeof t.name === 'string') return t.name;
  let v = t.val;
  while (isObject(v) && (isObject(v.TypeCast) || isObject(v.CollateClause))) v = (isObject(v.TypeCast) ? v.TypeCast.arg : (v.CollateClause as JsonObject).arg) ?? null;
  if (isObject(v) && isObject(v.ColumnRef)) return strs(v.ColumnRef.fields).pop();
  if (isObject(v) && isObject(v.FuncCall)) return strs(v.FuncCall.funcname).pop();
  return undefined;
}

/** Functions that fold case and keep everything else of a value. */
const CASE_FOLDING = new Set(['lower', 'upper']);

/** Collations whose equality is byte equality (deterministic by construction). */
const BYTE_COLLATIONS = new Set(['C', 'POSIX', 'default', 'ucs_basic']);

/** The first COLLATE in `node` naming another collation (a nondeterministic one can be made to ignore characters). */
function unsafeCollation(node: Json): string | undefined {
  if (Array.isArray(node)) {
    for (const n of node) {
      const c = unsafeCollation(n);
      if (c !== undefined) return c;
    }
    return undefined;
  }
  if (!isObject(node)) return undefined;
  if (isObject(node.CollateClause)) {
    const name = strs(node.CollateClause.collname);
    const last = name[name.length - 1] ?? '';
    if (!BYTE_COLLATIONS.has(last) || (name.length > 1 && name[0] !== 'pg_catalog')) return name.join('.');
  }
  for (const k in node) {
    const c = unsafeCollation(node[k] ?? null);
    if (c !== undefined) return c;
  }
  return undefined;
}

export abstract class ExpressionTracer {
  /** The first reason the statement must be refused, if any. */
  refusal: string | undefined;
  /** Code the gateway cannot see into runs (a user-defined function): it can read anything. */
  opaque: string | undefined;
  /** A masked value is written somewhere it would not be masked. */
  copies: string | undefined;
  abstract readonly mask: MaskPolicy;
  abstract readonly catalog: LineageCatalog;
  abstract select(sel: JsonObject, outer: readonly (readonly Entry[])[], ctes: ReadonlyMap<string, readonly OutputColumn[]>): OutputColumn[];
  abstract needFunction(ref: QualifiedRef): void;

  /** The output columns of a target list (or RETURNING list), `*` expanded. */
  targets(list: Json | undefined, from: { entries: readonly Entry[]; star: readonly OutputColumn[] }, env: Env): OutputColumn[] {
    const out: OutputColumn[] = [];
    for (const t of Array.isArray(list) ? list : []) {
      if (!isObject(t) || !isObject(t.ResTarget)) continue;
      const v = t.ResTarget.val;
      if (isObject(v) && isObject(v.ColumnRef) && hasStar(v.ColumnRef.fields)) {
        const q = strs(v.ColumnRef.fields);
        if (q.length === 0) out.push(...from.star);
        else {
          const entries = from.entries.filter((e) => e.alias === q[q.length - 1]);
          if (entries.length === 0) out.push({ name: undefined, lineage: this.resolve(v.ColumnRef.fields, env), spread: true });
          for (const e of entries) out.push(...(e.columns ?? [{ name: undefined, lineage: e.any, spread: true as const }]));
        }
        continue;
      }
      out.push({ name: outputName(t.ResTarget), lineage: this.expr(v ?? null, env) });
    }
    return out;
  }

  /** The lineage of an expression's value. */
  expr(node: Json, env: Env): Lineage {
    if (Array.isArray(node)) return combine(node.map((n) => this.expr(n, env)));
    if (!isObject(node)) return CLEAN;
    const typed = typedNode(node);
    if (typed === undefined) return combine(Object.values(node).map((v) => this.expr(v, env)));
    const [type, body] = typed;
    switch (type) {
      case 'ColumnRef':
        return this.resolve(body.fields, env);
      case 'A_Const':
      case 'ParamRef':
      case 'SQLValueFunction':
      case 'String':
      case 'Integer':
      case 'Float':
      case 'Boolean':
      case 'BitString':
      case 'TypeName':
      case 'SetToDefault':
      case 'CurrentOfExpr':
        return CLEAN;
      case 'TypeCast': {
        const a = this.expr(body.arg ?? null, env);
        const tn = isObject(body.typeName) ? body.typeName : {};
        const names = strs(tn.names);
        const qualifiedOk = names.length === 1 || (names.length === 2 && names[0] === 'pg_catalog');
        const textual = qualifiedOk && TEXT_TYPES.has(names[names.length - 1] ?? '') && !(Array.isArray(tn.typmods) && tn.typmods.length > 0) && !(Array.isArray(tn.arrayBounds) && tn.arrayBounds.length > 0);
        return a.kind === 'pass' && textual ? a : derive(a);
      }
      case 'CollateClause':
        return this.expr(body.arg ?? null, env);
      case 'SubLink':
        return this.sublink(body, env);
      case 'FuncCall':
        return this.functionCall(body, env);
      case 'WindowDef':
        this.window(body, env);
        return CLEAN;
      default:
        return combine(Object.values(body).map((v) => this.expr(v, env)));
    }
  }

  functionCall(f: JsonObject, env: Env): Lineage {
    const parts = strs(f.funcname);
    const name = parts[parts.length - 1] ?? '';
    const ref: QualifiedRef = parts.length >= 2 ? { schema: parts[parts.length - 2] as string, name } : { name };
    let own: Lineage = CLEAN;
    let kind: FunctionKind | undefined = 'user';
    if (readsUntracedData(name)) own = derived(`${name}(), which reads data the gateway cannot trace`);
    else {
      kind = this.catalog.functionKind(ref);
      if (kind === undefined) this.needFunction(ref);
      if (kind !== 'stable' && kind !== 'volatile') own = derived(`${name}(), a function the gateway cannot see into`);
    }
    if (own.kind === 'derived') this.opaque ??= own.source;
    if (name === 'set_config') {
      const setting = Array.isArray(f.args) ? stringConstant(f.args[0] ?? null) : undefined;
      if (setting === undefined || steersPlanner(setting)) this.refuse(`set_config(${setting === undefined ? 'a name computed at run time' : `'${setting}'`}, …) can make a read go through a masked column's index and return rows in its order`);
    }
    this.predicate(f.agg_filter, env, 'FILTER (WHERE …)');
    if (isObject(f.over)) this.window(f.over, env);
    const order = Array.isArray(f.agg_order) ? f.agg_order.map((s) => (isObject(s) && isObject(s.SortBy) ? (s.SortBy.node ?? null) : s)) : [];
    const args = combine([this.expr(f.args ?? null, env), this.expr(order, env)]);
    // A masked value handed to something with side effects (a notification, a setting, a large
    // object, a sleep) can be read back or timed even when the result itself is redacted.
    if (kind === 'volatile' && args.kind !== 'clean') this.copies ??= `passes a value from ${args.source} to ${name}(), which has side effects`;
    return combine([own, args]);
  }

  private sublink(b: JsonObject, env: Env): Lineage {
    const sub = isObject(b.subselect) && isObject(b.subselect.SelectStmt) ? b.subselect.SelectStmt : undefined;
    const outs = sub === undefined ? [{ name: undefined, lineage: derived('a subquery') }] : this.select(sub, env.scopes, env.ctes);
    const test = this.expr(b.testexpr ?? null, env);
    if (b.subLinkType === 'EXISTS_SUBLINK') return CLEAN;
    return combine([test, ...outs.map((o) => o.lineage)]);
  }

  /**
   * A column reference: the innermost scope that has the name decides; a name only an entry of
   * unknown columns could have takes that entry's worst; a relation's own name is a whole-row
   * reference (`SELECT c FROM customers c`), derived from every column.
   */
  resolve(fields: Json | undefined, env: Env, unresolved: Lineage | undefined = undefined): Lineage {
    const parts = strs(fields);
    const fallback = unresolved ?? derived(`${parts.join('.') || '*'}, which the gateway cannot resolve`);
    if (hasStar(fields)) {
      const q = parts[parts.length - 1];
      for (const scope of env.scopes) {
        const entries = q === undefined ? scope : scope.filter((e) => e.alias === q);
        if (entries.length > 0) return derive(entries.reduce((l, e) => worst(l, e.any), CLEAN as Lineage));
      }
      return fallback;
    }
    if (parts.length === 1) {
      const name = parts[0] as string;
      let acc: Lineage | undefined;
      for (const scope of env.scopes) {
        const merged = scope.flatMap((e) => (e.merged === true ? (e.columns ?? []).filter((c) => c.name === name) : []));
        if (merged.length > 0) return merged.reduce((l, c) => worst(l, c.lineage), acc ?? CLEAN);
        let hit = false;
        for (const e of scope) {
          if (e.merged === true) continue;
          if (e.columns === undefined) acc = worst(acc ?? CLEAN, e.any);
          else
            for (const c of e.columns) {
              if (c.name !== name) continue;
              hit = true;
              acc = worst(acc ?? CLEAN, c.lineage);
            }
        }
        if (hit) return acc as Lineage;
        const rows = scope.filter((e) => e.alias === name);
        if (rows.length > 0) return rows.reduce((l, e) => worst(l, derive(e.any)), acc ?? CLEAN);
      }
      if (acc !== undefined) return acc;
      return SYSTEM_COLUMNS.has(name) ? CLEAN : fallback;
    }
    const col = parts[parts.length - 1] as string;
    const qualifier = parts[parts.length - 2];
    const schema = parts[parts.length - 3];
    for (const scope of env.scopes) {
      const entries = scope.filter((e) => e.alias === qualifier && (schema === undefined || e.schema === undefined || e.schema === schema));
      if (entries.length === 0) continue;
      return entries.reduce((l, e) => {
        if (e.columns === undefined) return worst(l, e.any);
        const c = e.columns.filter((x) => x.name === col);
        return c.length > 0 ? c.reduce((m, x) => worst(m, x.lineage), l) : worst(l, SYSTEM_COLUMNS.has(col) ? CLEAN : fallback);
      }, CLEAN as Lineage);
    }
    // `c.email` where c is a composite column, or a name the server will not find: unknown.
    return fallback;
  }

  /** A condition deciding which rows come back (see the module comment). */
  predicate(node: Json | undefined, env: Env, clause: string): void {
    if (node === undefined || node === null) return;
    const typed = isObject(node) ? typedNode(node) : undefined;
    if (typed === undefined) return this.refuseIfMasked(this.expr(node, env), clause);
    const [type, b] = typed;
    if (type === 'BoolExpr' && (b.boolop === 'AND_EXPR' || b.boolop === 'OR_EXPR')) {
      for (const a of Array.isArray(b.args) ? b.args : []) this.predicate(a, env, clause);
      return;
    }
    // Equality under a collation the client chose may not be equality of the whole value.
    const collation = (type === 'A_Expr' || type === 'SubLink') ? unsafeCollation(node) : undefined;
    if (collation !== undefined) {
      const l = this.expr(node, env);
      if (l.kind !== 'clean') return this.refuse(`${clause} compares ${l.source} under collation "${collation}", which need not compare whole values`);
    }
    if (type === 'A_Expr' && isEquality(b.name) && (b.kind === 'AEXPR_OP' || b.kind === 'AEXPR_NOT_DISTINCT' || b.kind === 'AEXPR_OP_ANY')) {
      return this.equality(this.compared(b.lexpr ?? null, env), this.compared(b.rexpr ?? null, env), clause);
    }
    if (type === 'A_Expr' && b.kind === 'AEXPR_IN' && isEquality(b.name)) {
      const lhs = this.compared(b.lexpr ?? null, env);
      const items = isObject(b.rexpr) && isObject(b.rexpr.List) && Array.isArray(b.rexpr.List.items) ? b.rexpr.List.items : [b.rexpr ?? null];
      for (const i of items) this.equality(lhs, this.expr(i, env), clause);
      return;
    }
    if (type === 'NullTest' && b.nulltesttype === 'IS_NULL') {
      const l = this.expr(b.arg ?? null, env);
      if (l.kind === 'derived') this.refuseIfMasked(l, clause);
      return;
    }
    if (type === 'SubLink' && b.subLinkType === 'ANY_SUBLINK' && (b.operName === undefined || isEquality(b.operName))) {
      const sub = isObject(b.subselect) && isObject(b.subselect.SelectStmt) ? b.subselect.SelectStmt : undefined;
      const outs = sub === undefined ? [] : this.select(sub, env.scopes, env.ctes);
      return this.equality(this.expr(b.testexpr ?? null, env), outs.reduce((l, o) => worst(l, o.lineage), CLEAN as Lineage), clause);
    }
    this.refuseIfMasked(this.expr(node, env), clause);
  }

  /**
   * One side of an equality: `lower(email) = lower($1)` still compares the whole value (ignoring
   * case), so case folding keeps a pass-through a pass-through here, and only here.
   */
  private compared(node: Json, env: Env): Lineage {
    if (isObject(node) && isObject(node.FuncCall) && Array.isArray(node.FuncCall.args) && node.FuncCall.args.length === 1 && node.FuncCall.agg_star !== true && node.FuncCall.over === undefined) {
      const parts = strs(node.FuncCall.funcname);
      const folds = CASE_FOLDING.has(parts[parts.length - 1] ?? '') && (parts.length === 1 || (parts.length === 2 && parts[0] === 'pg_catalog'));
      if (folds && this.catalog.functionKind({ name: parts[parts.length - 1] as string }) === 'stable') {
        const arg = this.expr(node.FuncCall.args[0] ?? null, env);
        if (arg.kind !== 'derived') return arg;
      }
    }
    return this.expr(node, env);
  }

  /** Whole-value equality: with a known value it is a guess the client may make; nothing else is. */
  equality(a: Lineage, b: Lineage, clause: string): void {
    if (a.kind === 'derived' || b.kind === 'derived') return this.refuseIfMasked(a.kind === 'derived' ? a : b, clause);
    if (a.kind === 'pass' && b.kind === 'pass') this.refuse(`${clause} compares masked columns ${a.source} and ${b.source} with each other, which can return rows in the order of their values`);
  }

  /** ORDER BY / GROUP BY / DISTINCT ON item: a position or a bare name may mean an output column. */
  ordering(node: Json, outputs: readonly OutputColumn[], env: Env, clause: string): void {
    let l: Lineage;
    if (isObject(node) && isObject(node.A_Const) && isObject(node.A_Const.ival)) {
      // Any output column: the answer must not depend on the literal's value (shape cache).
      l = outputs.reduce((m, o) => worst(m, o.lineage), CLEAN as Lineage);
    } else if (isObject(node) && isObject(node.ColumnRef) && strs(node.ColumnRef.fields).length === 1 && !hasStar(node.ColumnRef.fields)) {
      const name = strs(node.ColumnRef.fields)[0];
      const named = outputs.filter((o) => o.name === name);
      l = named.reduce((m, o) => worst(m, o.lineage), this.resolve(node.ColumnRef.fields, env, named.length > 0 ? CLEAN : undefined));
    } else l = this.expr(node, env);
    this.refuseIfMasked(l, clause);
  }

  window(w: JsonObject | undefined, env: Env): void {
    if (w === undefined) return;
    for (const p of Array.isArray(w.partitionClause) ? w.partitionClause : []) this.refuseIfMasked(this.expr(p, env), 'PARTITION BY');
    for (const s of Array.isArray(w.orderClause) ? w.orderClause : []) this.refuseIfMasked(this.expr(isObject(s) && isObject(s.SortBy) ? (s.SortBy.node ?? null) : s, env), 'window ORDER BY');
    this.refuseIfMasked(this.expr([w.startOffset ?? null, w.endOffset ?? null], env), 'window frame');
  }

  /** DISTINCT and set operations without ALL over the output columns. */
  unordered(outputs: readonly OutputColumn[], clause: string): void {
    const masked = outputs.find((o) => o.lineage.kind !== 'clean');
    if (masked !== undefined) this.refuseIfMasked(masked.lineage, clause);
  }

  refuseIfMasked(l: Lineage, clause: string): void {
    if (l.kind === 'clean') return;
    this.refuse(`${clause} uses ${l.source}, which is masked: a masked value may only be compared whole for equality with a constant or parameter (=, IN, = ANY, IS NOT DISTINCT FROM, IS NULL)`);
  }

  refuse(reason: string): void {
    this.refusal ??= reason;
  }
}
