// Which columns a statement can read, by name, from PostgreSQL's parse tree: every column
// reference anywhere in it (target lists, WHERE, joins, subqueries, CTEs, RETURNING, rule actions,
// SQL function bodies and SQL text given as a literal to query_to_xml/dblink), plus the forms that
// read columns without naming them (`*`, `t.*`, a whole-row reference `t`, NATURAL JOIN, a
// relation named by a string to table_to_xml, column aliases in FROM). StatementAnalysis keeps relations and functions
// but not columns; exfiltration.ts needs them only for statements that store something, so the
// text is parsed again here and the answer cached by statement shape.
import { parseSync } from 'libpg-query';
import { sqlShape } from '../shape.js';
import type { StatementAnalysis } from '../sql.js';
import { isObject, stringConstant, stringList, typedNode, type Json, type JsonObject } from '../sqlTree.js';

/** What a statement (with everything nested in it) reads, as names. */
export interface ColumnReads {
  /** Column names referenced (the last name of `a.b.c`, `(x).c`, `USING (c)`), lower-case as parsed. */
  readonly columns: ReadonlySet<string>;
  /** Single names that may be whole-row references (`SELECT c FROM customers c`). */
  readonly singles: ReadonlySet<string>;
  /** Relation names and aliases the statement declares, other than INSERT targets: a single name equal to one is a whole row. */
  readonly rangeNames: ReadonlySet<string>;
  /** CTE names defined anywhere in the statement. */
  readonly cteNames: ReadonlySet<string>;
  /** Some column is read without being named (`*`, NATURAL JOIN, table_to_xml) or under another name (`AS c(a, b)`). */
  readonly unnamed: boolean;
}

/** Functions whose string argument is SQL that runs (sql.ts treats them as nested statements). */
const DYNAMIC_SQL = new Set(['query_to_xml', 'query_to_xmlschema', 'query_to_xml_and_xmlschema', 'dblink', 'dblink_exec', 'dblink_open', 'dblink_send_query']);
const WHOLE_RELATION = new Set(['table_to_xml', 'table_to_xmlschema', 'table_to_xml_and_xmlschema']);
const MAX_DEPTH = 5000;

class ReadCollector {
  readonly columns = new Set<string>();
  readonly singles = new Set<string>();
  readonly rangeNames = new Set<string>();
  readonly cteNames = new Set<string>();
  unnamed = false;

  walk(v: Json, depth: number): void {
    if (depth > MAX_DEPTH) throw new RangeError('statement nested too deeply to analyse');
    if (Array.isArray(v)) {
      for (const item of v) this.walk(item, depth + 1);
      return;
    }
    if (!isObject(v)) return;
    const typed = typedNode(v);
    if (typed !== undefined) this.typed(typed[0], typed[1], depth);
    else {
      if (typeof v.relname === 'string') this.rangeVar(v);
      for (const k in v) this.walk(v[k] as Json, depth + 1);
    }
  }

  private typed(type: string, body: JsonObject, depth: number): void {
    switch (type) {
      case 'ColumnRef':
        this.columnRef(body);
        return;
      case 'A_Indirection':
        for (const i of Array.isArray(body.indirection) ? body.indirection : []) {
          if (isObject(i) && isObject(i.String) && typeof i.String.sval === 'string') this.columns.add(i.String.sval);
          if (isObject(i) && 'A_Star' in i) this.unnamed = true;
        }
        break;
      case 'RangeVar':
        this.rangeVar(body);
        break;
      case 'InsertStmt':
        // The target is written, not read (ON CONFLICT … DO UPDATE reads it through `excluded` and
        // its own name, which sql.ts reports as an UPDATE of it).
        for (const k in body) if (k !== 'relation') this.walk(body[k] as Json, depth + 1);
        return;
      case 'RangeSubselect':
      case 'RangeFunction':
        if (isObject(body.alias) && typeof body.alias.aliasname === 'string') this.rangeNames.add(body.alias.aliasname);
        break;
      case 'CommonTableExpr':
        if (typeof body.ctename === 'string') this.cteNames.add(body.ctename);
        break;
      case 'JoinExpr':
        if (body.isNatural === true) this.unnamed = true;
        this.renamesColumns(body);
        for (const n of stringList(body.usingClause ?? null) ?? []) this.columns.add(n);
        break;
      case 'FuncCall':
        this.funcCall(body);
        break;
      case 'CreateFunctionStmt':
        this.functionBody(body);
        break;
    }
    for (const k in body) this.walk(body[k] as Json, depth + 1);
  }

  private columnRef(body: JsonObject): void {
    const fields = Array.isArray(body.fields) ? body.fields : [];
    const names: string[] = [];
    for (const f of fields) {
      if (isObject(f) && isObject(f.String) && typeof f.String.sval === 'string') names.push(f.String.sval);
      else this.unnamed = true; // A_Star
    }
    const last = names[names.length - 1];
    if (last !== undefined && names.length === fields.length) this.columns.add(last);
    if (names.length === 1 && fields.length === 1) this.singles.add(names[0] as string);
  }

  private rangeVar(body: JsonObject): void {
    if (typeof body.relname === 'string') this.rangeNames.add(body.relname);
    if (isObject(body.alias) && typeof body.alias.aliasname === 'string') this.rangeNames.add(body.alias.aliasname);
    this.renamesColumns(body);
  }

  /** `customers AS c(i, n, e)` and `(a JOIN b …) AS j(x, y)` read columns under names of the client's choosing. */
  private renamesColumns(body: JsonObject): void {
    if (isObject(body.alias) && Array.isArray(body.alias.colnames) && body.alias.colnames.length > 0) this.unnamed = true;
  }

  private funcCall(body: JsonObject): void {
    const parts = stringList(body.funcname ?? null);
    const name = parts?.[parts.length - 1];
    if (name === undefined) return;
    if (WHOLE_RELATION.has(name)) this.unnamed = true;
    if (!DYNAMIC_SQL.has(name)) return;
    for (const arg of Array.isArray(body.args) ? body.args : []) {
      const sql = stringConstant(arg);
      if (sql !== undefined) this.parsed(sql);
    }
  }

  private functionBody(body: JsonObject): void {
    for (const o of Array.isArray(body.options) ? body.options : []) {
      const d = isObject(o) && isObject(o.DefElem) ? o.DefElem : undefined;
      if (d?.defname !== 'as' || !isObject(d.arg) || !isObject(d.arg.List)) continue;
      for (const piece of stringList(d.arg.List.items ?? null) ?? []) this.parsed(piece);
    }
  }

  /** SQL held in a literal: read like the statement around it; text that does not parse adds nothing (sql.ts marks it opaque). */
  private parsed(sql: string): void {
    let tree: Json;
    try {
      tree = parseSync(sql) as unknown as Json;
    } catch {
      return;
    }
    this.walk(tree, 0);
  }
}

/** Reads of one top-level statement text; throws RangeError when it cannot be analysed. */
export function columnReadsOf(text: string): ColumnReads {
  const c = new ReadCollector();
  const tree = parseSync(text) as unknown as { stmts?: { stmt?: Json }[] };
  for (const raw of tree.stmts ?? []) c.walk(withoutOwnReturning(raw.stmt ?? null), 0);
  return { columns: c.columns, singles: c.singles, rangeNames: c.rangeNames, cteNames: c.cteNames, unnamed: c.unnamed };
}

const WRITES = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/**
 * A top-level write's RETURNING list goes to the client, whose result is masked like any other
 * (RowDescription names the source columns); it is not a copy. RETURNING inside a CTE or rule
 * feeds another statement and stays counted.
 */
function withoutOwnReturning(stmt: Json): Json {
  const typed = isObject(stmt) ? typedNode(stmt) : undefined;
  if (typed === undefined || !WRITES.has(typed[0])) return stmt;
  // PostgreSQL 18's grammar (RETURNING OLD/NEW) holds the list in `returningClause`.
  const { returningClause: _clause, returningList: _list, ...rest } = typed[1];
  return { [typed[0]]: rest };
}

const CAPACITY = 2000;
const cache = new Map<string, ColumnReads>();

/**
 * columnReadsOf for a statement, cached by shape: names and the presence of `*` do not depend on
 * literal values, except in statements whose analysis read a literal (function bodies, SQL given
 * to query_to_xml), which are parsed every time.
 */
export function columnReads(statement: StatementAnalysis): ColumnReads {
  const shape = statement.literalSensitive === true ? undefined : sqlShape(statement.text);
  if (shape === undefined) return columnReadsOf(statement.text);
  const hit = cache.get(shape);
  if (hit !== undefined) return hit;
  const reads = columnReadsOf(statement.text);
  cache.set(shape, reads);
  if (cache.size > CAPACITY) cache.delete(cache.keys().next().value as string);
  return reads;
}
