// Statement analysis with PostgreSQL's own parser (libpg-query, the server's grammar compiled to
// WebAssembly): what each statement in a query string is, which relations it reads and writes,
// which functions it calls, and which statements it carries inside it (CTEs, EXPLAIN ANALYZE,
// PREPARE, CREATE … AS, COPY (query), cursors, views, rules, SQL function bodies). The JSON parse
// tree is walked generically — every object and array is visited — so an expression nested in a
// subquery, a CTE, a default or a window clause is seen like one at the top.
//
// Facts are what the text says, not what the catalog would resolve: `customers` may be
// `billing.customers` through search_path; evaluate.ts therefore compares names conservatively.
import { loadModule, parseSync } from 'libpg-query';
import { truncateIdentifier, splitQualifiedName } from './names.js';
import { nameStatement } from './statementKinds.js';
import { defElems, isObject, optionString, optionTrue, stringConstant, stringList, typedNode, type Json, type JsonObject } from './sqlTree.js';
import { columnNotation, DATABASE_READING_FUNCTIONS, definitionRefs, expressionOperators, runsSqlText, SCHEMA_READING_FUNCTIONS, sqlTextArguments, type NameParts, type NotationRef } from './functionRefs.js';
import { mergeActionBounded, writeBounded } from './writeBounds.js';
import { readingChangeOf, type ReadingChange } from './readingState.js';

// The WASM module is compiled once per process (~100 ms); parseSync needs it loaded.
await loadModule();

export type RelationAccess = 'read' | 'write';

/** A relation as written in the statement: names lower-cased by the parser unless quoted. */
export interface RelationRef {
  readonly catalog?: string;
  readonly schema?: string;
  readonly name: string;
  /** `write` for the target of INSERT/UPDATE/DELETE/MERGE/COPY FROM and any relation a DDL or utility statement names. */
  readonly access: RelationAccess;
}

export interface FunctionRef {
  readonly schema?: string;
  readonly name: string;
}

/** How a nested statement is reached from its parent. */
export type NestedVia =
  | 'cte'
  | 'explain'
  | 'explain-analyze'
  | 'prepare'
  | 'create-as'
  | 'copy'
  | 'cursor'
  | 'view'
  | 'rule'
  | 'function-body'
  | 'schema-element'
  | 'dynamic-sql'
  /** A MERGE's WHEN … THEN DELETE/UPDATE/INSERT, judged as that statement on the target. */
  | 'merge-action'
  /** INSERT … ON CONFLICT DO UPDATE, judged as an UPDATE of the target too. */
  | 'on-conflict'
  /** A write the statement makes through a view, rule, inheritance or key it does not name (writeRoutes.ts). */
  | 'write-route'
  /**
   * What a DROP … CASCADE, DROP OWNED or DROP EXTENSION drops besides what it names (any table,
   * through pg_depend), or a table attached under another (ATTACH PARTITION, INHERIT) that is
   * dropped with it from now on: judged as a `drop table` and a `delete` of it.
   */
  | 'drop-dependents'
  /** pg_surgery's heap_force_kill/heap_force_freeze: a delete and an update of the relation named. */
  | 'row-surgery';

export interface NestedStatement {
  readonly via: NestedVia;
  /**
   * Whether the nested statement runs when its parent runs (a CTE, EXPLAIN ANALYZE, CREATE TABLE
   * AS, COPY (query)) or only defines something that may run later (PREPARE, plain EXPLAIN, a
   * view, a rule, a function body).
   */
  readonly executes: boolean;
  readonly statement: StatementAnalysis;
}

export interface CopyInfo {
  readonly direction: 'from' | 'to';
  /** STDIN/STDOUT, a server-side file, or a server-side program. */
  readonly target: 'stdio' | 'file' | 'program';
  readonly format: 'text' | 'csv' | 'binary';
  /** The relation copied (absent for `COPY (query) TO …`). */
  readonly relation?: RelationRef;
  /** The column list, when one is given. */
  readonly columns?: readonly string[];
  readonly delimiter?: string;
  readonly null?: string;
  readonly quote?: string;
  readonly escape?: string;
  readonly header: boolean;
}

export interface StatementAnalysis {
  readonly kind: string;
  readonly command: string;
  /** Source text of the top-level statement this one belongs to (nested statements share it). */
  readonly text: string;
  /** Relations named by this statement itself (not by its nested statements). */
  readonly relations: readonly RelationRef[];
  /** Schemas created, altered or dropped as a whole (DROP SCHEMA s CASCADE touches every table in s). */
  readonly schemas: readonly string[];
  /**
   * Functions called by this statement itself, or named by it as what something runs: trigger
   * and event-trigger functions, the functions of an operator, aggregate, type, cast, operator
   * class, transform, conversion, language, foreign-data wrapper or access method it defines.
   */
  readonly functions: readonly FunctionRef[];
  /** Operators used (`=`, `OPERATOR(s.###)`, `ORDER BY … USING <`, `= ANY`): each runs a function. */
  readonly operators?: readonly FunctionRef[];
  /** Types named (casts, column types, definitions): their I/O and cast functions may run. */
  readonly types?: readonly FunctionRef[];
  /** Names that may be calls in column notation (`x.f`, `(x).f`): a rule on functions counts them. */
  readonly columnNotation?: readonly NotationRef[];
  /** Reads every table of the database (database_to_xml): matches every `tables:` pattern. */
  readonly everyTable?: true;
  /** UPDATE or DELETE with no WHERE, or a WHERE without any column reference (`WHERE true`). */
  readonly unboundedWrite: boolean;
  readonly copy?: CopyInfo;
  /** Set when part of the statement is code the gateway cannot see into, with the reason. */
  readonly opaque?: string;
  /** PREPARE name AS …: the name (the prepared statement is `nested[0]`). */
  readonly prepares?: string;
  /** EXECUTE name. */
  readonly executes?: string;
  /** DEALLOCATE name / DEALLOCATE ALL / DISCARD ALL: which prepared statements it removes. */
  readonly deallocates?: { readonly all: true } | { readonly all: false; readonly name: string };
  /** DECLARE name / CLOSE name / CLOSE ALL / DISCARD ALL: the portal (cursor) it makes or drops, or all of them. */
  readonly portals?: { readonly all: true } | { readonly all: false; readonly name: string };
  readonly nested: readonly NestedStatement[];
  /**
   * Set when a fact above was read from a literal's value (EXPLAIN options, COPY options, a
   * function body, SQL passed to query_to_xml/dblink): another text that differs only in its
   * literals may analyse differently, so the analysis must not be reused for it (shape.ts).
   */
  readonly literalSensitive?: true;
  /**
   * ALTER … RENAME or SET SCHEMA of a relation, or ALTER SCHEMA … RENAME: afterwards its rows
   * answer to a name no rule names, so rules on tables judge it as every statement on them.
   */
  readonly renamesRelation?: true;
  /** INSERT/UPDATE/DELETE/MERGE … RETURNING: the rows it writes are read back too. */
  readonly returnsRows?: true;
  /** Whether it may change how the server reads the next statement's text (readingState.ts). */
  readonly reading?: ReadingChange;
}

export type SqlAnalysis =
  | { readonly ok: true; readonly statements: readonly StatementAnalysis[] }
  | { readonly ok: false; readonly error: string; readonly position?: number };

const DML = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** Objects whose new name or schema is a new name for rows (a schema: for every relation in it). */
const RENAMED_RELATIONS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE', 'OBJECT_SEQUENCE', 'OBJECT_SCHEMA']);
const RENAMED_ROUTINES = new Set(['OBJECT_FUNCTION', 'OBJECT_PROCEDURE', 'OBJECT_ROUTINE', 'OBJECT_AGGREGATE']);

/** Functions that read a whole relation named by a string argument. */
const RELATION_NAME_FUNCTIONS = new Set([
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  // tablefunc's connectby walks a table named by its first argument; pageinspect's
  // get_raw_page returns a relation's pages, rows and all.
  'connectby',
  'get_raw_page',
]);

/** pg_surgery's functions: they remove or rewrite a relation's rows by tuple id. */
const ROW_SURGERY_FUNCTIONS = new Set(['heap_force_kill', 'heap_force_freeze']);

/** Far beyond real queries; a deeper tree is refused (fail closed) rather than risking the stack. */
const MAX_DEPTH = 5000;

class Collector {
  readonly relations: RelationRef[] = [];
  readonly functions: FunctionRef[] = [];
  readonly operators: FunctionRef[] = [];
  readonly types: FunctionRef[] = [];
  /** Names that may be calls in column notation (`t.f`, `(x).f`). */
  readonly notation: NotationRef[] = [];
  everyTable = false;
  readonly schemas: string[] = [];
  readonly nested: NestedStatement[] = [];
  opaque: string | undefined;
  literalSensitive = false;

  constructor(
    readonly text: string,
    readonly depth: number,
  ) {}

  markOpaque(reason: string): void {
    this.opaque ??= reason;
  }

  addNested(via: NestedVia, executes: boolean, node: Json): void {
    if (!isObject(node)) return;
    const typed = typedNode(node);
    if (typed === undefined) return;
    this.nested.push({ via, executes, statement: analyzeNode(typed[0], typed[1], this.text, this.depth + 1) });
  }

  relation(rv: JsonObject, access: RelationAccess): void {
    if (typeof rv.relname !== 'string') return;
    const ref: { catalog?: string; schema?: string; name: string; access: RelationAccess } = { name: rv.relname, access };
    if (typeof rv.schemaname === 'string') ref.schema = rv.schemaname;
    if (typeof rv.catalogname === 'string') ref.catalog = rv.catalogname;
    this.relations.push(ref);
  }

  functionName(list: Json): FunctionRef | undefined {
    const parts = stringList(list);
    if (parts === undefined || parts.length === 0) return undefined;
    return this.named(this.functions, parts);
  }

  /** Adds `a.b.name` to `into` as `{ schema: b, name }`. */
  named(into: FunctionRef[], parts: NameParts): FunctionRef {
    const name = parts[parts.length - 1] as string;
    const ref: { schema?: string; name: string } = { name };
    if (parts.length >= 2) ref.schema = parts[parts.length - 2] as string;
    into.push(ref);
    return ref;
  }

  /** Functions and operators a definition attaches; one that runs SQL text hides what it will run. */
  definition(type: string, body: JsonObject): void {
    const refs = definitionRefs(type, body);
    // `FUNCTION = 'pg_read_file'` names the function in a literal: another text of the same
    // shape may name another function.
    if (refs.functions.length > 0 || refs.operators.length > 0) this.literalSensitive = true;
    for (const parts of refs.functions) {
      const ref = this.named(this.functions, parts);
      if (runsSqlText(ref.name)) this.markOpaque(`${ref.name}() attached by a definition runs SQL text the gateway cannot see`);
    }
    for (const parts of refs.operators) this.named(this.operators, parts);
  }

  /** Visits every node under `v`; RangeVars get `access`, nested statements are split off. */
  walk(v: Json, access: RelationAccess, depth = 0): void {
    if (depth > MAX_DEPTH) throw new RangeError('statement nested too deeply to analyse');
    if (Array.isArray(v)) {
      for (const item of v) this.walk(item, access, depth + 1);
      return;
    }
    if (!isObject(v)) return;
    const typed = typedNode(v);
    if (typed !== undefined) {
      this.visitTyped(typed[0], typed[1], access, depth);
      return;
    }
    // Untyped structs: inline RangeVars (`relation: { relname }`) and inline FuncCalls (CALL).
    if (typeof v.relname === 'string') {
      this.relation(v, access);
      return;
    }
    if (Array.isArray(v.funcname) && 'funcformat' in v) this.funcCall(v, access, depth);
    else {
      // An inline TypeName (`x::t`, a column's type): its I/O and cast functions may run.
      if (Array.isArray(v.names) && 'typemod' in v) this.typeName(v.names);
      for (const k in v) this.walk(v[k] as Json, access, depth + 1);
    }
  }

  private visitTyped(type: string, body: JsonObject, access: RelationAccess, depth: number): void {
    switch (type) {
      case 'RangeVar':
        this.relation(body, access);
        return;
      case 'FuncCall':
        this.funcCall(body, access, depth);
        return;
      case 'TypeName':
        this.typeName(body.names ?? null);
        break;
      case 'ColumnRef': {
        const fields = stringList((Array.isArray(body.fields) ? body.fields : []).filter((f) => !(isObject(f) && 'A_Star' in f)));
        if (fields !== undefined) this.notation.push(...columnNotation(fields));
        return;
      }
      case 'A_Indirection':
        for (const i of Array.isArray(body.indirection) ? body.indirection : []) if (isObject(i) && isObject(i.String) && typeof i.String.sval === 'string') this.notation.push({ name: i.String.sval });
        break;
      case 'CommonTableExpr':
        this.addNested('cte', true, body.ctequery as Json);
        for (const k in body) if (k !== 'ctequery') this.walk(body[k] as Json, access, depth + 1);
        return;
      case 'A_Expr':
      case 'SubLink':
      case 'SortBy':
      case 'JoinExpr':
      case 'CaseExpr':
      case 'Constraint':
        for (const op of expressionOperators(type, body)) this.named(this.operators, op);
        break;
      case 'SelectStmt':
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        // A subquery (sublink, FROM (SELECT …), INSERT … SELECT) is part of its statement. A
        // data-modifying statement anywhere else than the places analyzeNode splits off (CTEs,
        // EXPLAIN, PREPARE, COPY, rules) is not valid SQL today; should a later grammar allow one,
        // it is still judged as a statement that runs.
        if (type === 'SelectStmt') for (const k in body) this.walk(body[k] as Json, 'read', depth + 1);
        else this.addNested('cte', true, { [type]: body });
        return;
    }
    for (const k in body) this.walk(body[k] as Json, access, depth + 1);
  }

  private typeName(names: Json): void {
    const parts = stringList(names);
    if (parts !== undefined && parts.length > 0) this.named(this.types, parts);
  }

  private funcCall(body: JsonObject, access: RelationAccess, depth: number): void {
    const ref = this.functionName(body.funcname as Json);
    const args = Array.isArray(body.args) ? body.args : [];
    // Whatever schema they are called through: a look-alike in another schema is treated the same.
    const sqlArgs = ref === undefined ? undefined : sqlTextArguments(ref.name, args);
    if (ref !== undefined && sqlArgs !== undefined) this.dynamicSql(ref.name, sqlArgs.literals, sqlArgs.computed);
    else if (ref !== undefined && RELATION_NAME_FUNCTIONS.has(ref.name)) this.relationByName(ref.name, args[0]);
    else if (ref !== undefined && SCHEMA_READING_FUNCTIONS.has(ref.name)) this.schemaByName(ref.name, args[0]);
    else if (ref !== undefined && DATABASE_READING_FUNCTIONS.has(ref.name)) this.everyTable = true;
    else if (ref !== undefined && ROW_SURGERY_FUNCTIONS.has(ref.name)) this.rowSurgery(args[0]);
    for (const k in body) if (k !== 'funcname') this.walk(body[k] as Json, access, depth + 1);
  }

  private dynamicSql(fn: string, literals: readonly string[], computed: boolean): void {
    this.literalSensitive = true;
    if (computed) this.markOpaque(`${fn}() runs SQL computed at run time`);
    let parsed = 0;
    for (const s of literals) {
      const inner = tryParse(s);
      if (inner === undefined) continue; // a connection or cursor name, not SQL
      for (const stmt of inner) {
        const typed = isObject(stmt.stmt) ? typedNode(stmt.stmt) : undefined;
        if (typed !== undefined) {
          this.nested.push({ via: 'dynamic-sql', executes: true, statement: analyzeNode(typed[0], typed[1], this.text, this.depth + 1) });
          parsed++;
        }
      }
    }
    if (parsed === 0) this.markOpaque(`${fn}() runs SQL the gateway cannot see`);
  }

  /** schema_to_xml('s', …) reads every table of `s`, like DROP SCHEMA s touches them. */
  private schemaByName(fn: string, arg: Json | undefined): void {
    this.literalSensitive = true;
    const s = arg === undefined ? undefined : stringConstant(arg);
    // The argument is of type name: taken verbatim, not folded or split.
    if (s === undefined) this.everyTable = true;
    else this.schemas.push(truncateIdentifier(s));
  }

  /**
   * heap_force_kill(rel, tids) removes rows and heap_force_freeze(rel, tids) rewrites them, with
   * no DELETE or UPDATE: judged as both, of the relation the first argument names (of every table
   * when it is computed or an OID).
   */
  private rowSurgery(arg: Json | undefined): void {
    this.literalSensitive = true;
    const s = arg === undefined ? undefined : stringConstant(arg);
    const parts = s === undefined ? undefined : splitQualifiedName(s);
    let ref: RelationRef | undefined;
    if (parts !== undefined && parts.length > 0 && parts.length <= 3) {
      const r: { schema?: string; name: string; access: RelationAccess } = { name: truncateIdentifier(parts[parts.length - 1] as string), access: 'write' };
      if (parts.length >= 2) r.schema = parts[parts.length - 2] as string;
      ref = r;
    }
    for (const command of ['delete', 'update']) this.nested.push({ via: 'row-surgery', executes: true, statement: impliedStatement(command, command, this.text, ref) });
  }

  private relationByName(fn: string, arg: Json | undefined): void {
    this.literalSensitive = true;
    const s = arg === undefined ? undefined : stringConstant(arg);
    const parts = s === undefined ? undefined : splitQualifiedName(s);
    if (parts === undefined || parts.length === 0 || parts.length > 3) {
      this.markOpaque(`${fn}() reads a relation named at run time`);
      return;
    }
    const name = parts[parts.length - 1] as string;
    const ref: { schema?: string; name: string; access: RelationAccess } = { name: truncateIdentifier(name), access: 'read' };
    if (parts.length >= 2) ref.schema = parts[parts.length - 2] as string;
    this.relations.push(ref);
  }
}

interface RawStmt {
  stmt?: Json;
  stmt_location?: number;
  stmt_len?: number;
}

function tryParse(sql: string): RawStmt[] | undefined {
  if (sql.trim() === '') return undefined;
  try {
    return (parseSync(sql) as unknown as { stmts?: RawStmt[] }).stmts ?? [];
  } catch {
    return undefined;
  }
}

export function analyzeNode(type: string, body: JsonObject, text: string, depth: number): StatementAnalysis {
  if (depth > 32) throw new RangeError('statements nested too deeply to analyse');
  const { kind, command } = nameStatement(type, body);
  const c = new Collector(text, depth);
  const skip = new Set<string>();
  let unboundedWrite = false;
  let copy: CopyInfo | undefined;
  let prepares: string | undefined;
  let renamesRelation = false;
  let executes: string | undefined;
  let deallocates: StatementAnalysis['deallocates'];
  let portals: StatementAnalysis['portals'];
  const nestedAt = (key: string, via: NestedVia, executesNow: boolean) => {
    skip.add(key);
    c.addNested(via, executesNow, body[key] as Json);
  };

  c.definition(type, body);
  switch (type) {
    case 'SelectStmt':
      if (body.intoClause !== undefined) {
        // SELECT … INTO t is CREATE TABLE t AS SELECT …: the select runs and t is written.
        skip.add('intoClause');
        c.walk((body.intoClause as JsonObject).rel ?? null, 'write');
        const { intoClause: _into, ...select } = body;
        skip.add('*');
        c.nested.push({ via: 'create-as', executes: true, statement: analyzeNode('SelectStmt', select, text, depth + 1) });
      }
      break;
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      skip.add('relation');
      c.walk(body.relation ?? null, 'write');
      systemCatalogWrite(body.relation ?? null, c);
      if ((type === 'UpdateStmt' || type === 'DeleteStmt') && !writeBounded(type, body)) unboundedWrite = true;
      writeActions(type, body, c, text);
      break;
    case 'ExplainStmt': {
      const opts = defElems(body.options);
      if (opts.size > 0) c.literalSensitive = true; // EXPLAIN (ANALYZE 0) vs (ANALYZE 1)
      const analyze = opts.has('analyze') && optionTrue(opts.get('analyze'));
      nestedAt('query', analyze ? 'explain-analyze' : 'explain', analyze);
      break;
    }
    case 'PrepareStmt':
      prepares = String(body.name ?? '');
      nestedAt('query', 'prepare', false);
      break;
    case 'ExecuteStmt':
      executes = String(body.name ?? '');
      break;
    case 'DeallocateStmt':
      deallocates = body.isall === true || body.name === undefined ? { all: true } : { all: false, name: String(body.name) };
      break;
    case 'DiscardStmt':
      if (body.target === 'DISCARD_ALL') deallocates = portals = { all: true };
      break;
    case 'ClosePortalStmt':
      portals = typeof body.portalname === 'string' ? { all: false, name: body.portalname } : { all: true };
      break;
    case 'CreateTableAsStmt':
      nestedAt('query', 'create-as', true);
      break;
    case 'DeclareCursorStmt':
      portals = { all: false, name: String(body.portalname ?? '') };
      nestedAt('query', 'cursor', true);
      break;
    case 'ViewStmt':
      nestedAt('query', 'view', false);
      break;
    case 'RuleStmt':
      skip.add('actions');
      for (const a of Array.isArray(body.actions) ? body.actions : []) c.addNested('rule', false, a);
      break;
    case 'CreateSchemaStmt':
      skip.add('schemaElts');
      if (typeof body.schemaname === 'string') c.schemas.push(body.schemaname);
      for (const e of Array.isArray(body.schemaElts) ? body.schemaElts : []) c.addNested('schema-element', true, e);
      break;
    case 'CopyStmt':
      c.literalSensitive = true; // DELIMITER, NULL, QUOTE … are literals
      copy = copyInfo(body, c);
      skip.add('relation');
      skip.add('options');
      nestedAt('query', 'copy', true);
      break;
    case 'DoStmt':
      c.markOpaque('a DO block runs procedural code the gateway cannot see into');
      skip.add('args');
      break;
    case 'CreateFunctionStmt':
      c.literalSensitive = true; // the body is a literal
      skip.add('funcname');
      functionBody(body, c, skip);
      break;
    case 'DropStmt':
      dropObjects(body, c);
      skip.add('objects');
      // CASCADE follows pg_depend to tables the statement does not name (a typed table, a table
      // partitioned by a function's result, one using an access method or collation); an
      // extension takes its member tables with it, and ALTER EXTENSION … ADD TABLE makes any
      // table a member. The gateway does not follow pg_depend: any table may go.
      if (body.behavior === 'DROP_CASCADE' || body.removeType === 'OBJECT_EXTENSION') dropsDependents(c, text, undefined);
      break;
    case 'DropOwnedStmt':
      dropsDependents(c, text, undefined);
      break;
    case 'AlterTableStmt':
      attachedTables(body, c, text);
      break;
    case 'RenameStmt':
      if (body.renameType === 'OBJECT_SCHEMA' && typeof body.subname === 'string') c.schemas.push(body.subname);
      if (RENAMED_RELATIONS.has(String(body.renameType))) renamesRelation = true;
      // A routine renamed is still the same code under a name no rule lists: it counts as named here.
      if (RENAMED_ROUTINES.has(String(body.renameType)) && isObject(body.object) && isObject(body.object.ObjectWithArgs)) c.functionName(body.object.ObjectWithArgs.objname as Json);
      break;
    case 'AlterObjectSchemaStmt':
      if (RENAMED_RELATIONS.has(String(body.objectType))) renamesRelation = true;
      break;
    case 'CreateTrigStmt':
    case 'CreateEventTrigStmt':
      skip.add('funcname');
      c.functionName(body.funcname as Json);
      break;
  }

  if (!skip.has('*')) {
    const access: RelationAccess = DML.has(type) ? 'read' : 'write';
    for (const k in body) if (!skip.has(k)) c.walk(body[k] as Json, access);
  }

  const out: { -readonly [K in keyof StatementAnalysis]: StatementAnalysis[K] } = {
    kind,
    command,
    text,
    relations: dedupeRelations(c.relations),
    schemas: [...new Set(c.schemas)],
    functions: dedupeFunctions(c.functions),
    unboundedWrite,
    nested: c.nested,
  };
  if (c.operators.length > 0) out.operators = dedupeFunctions(c.operators);
  if (c.types.length > 0) out.types = dedupeFunctions(c.types);
  if (c.everyTable) out.everyTable = true;
  if (c.notation.length > 0) out.columnNotation = [...new Map(c.notation.map((n) => [`${n.name}\u0000${n.ofRow === true}`, n])).values()];
  if (copy !== undefined) out.copy = copy;
  if (renamesRelation) out.renamesRelation = true;
  if (type !== 'SelectStmt' && DML.has(type) && isObject(body.returningClause)) out.returnsRows = true;
  if (c.opaque !== undefined) out.opaque = c.opaque;
  if (prepares !== undefined) out.prepares = prepares;
  if (executes !== undefined) out.executes = executes;
  if (deallocates !== undefined) out.deallocates = deallocates;
  if (portals !== undefined) out.portals = portals;
  const reading = readingChangeOf(type, body, c.nested.map((n) => ({ executes: n.executes, via: n.via, change: n.statement.reading })));
  if (reading.change !== undefined) out.reading = reading.change;
  if (reading.literalSensitive || c.literalSensitive || c.nested.some((n) => n.statement.literalSensitive === true)) out.literalSensitive = true;
  return out;
}

const MERGE_COMMANDS: Record<string, string> = { CMD_DELETE: 'delete', CMD_UPDATE: 'update', CMD_INSERT: 'insert' };

/**
 * What MERGE and INSERT … ON CONFLICT DO UPDATE also do, as statements of their own, so a rule
 * on `delete` or `update` sees `MERGE … THEN DELETE` and an upsert.
 */
function writeActions(type: string, body: JsonObject, c: Collector, text: string): void {
  const target = c.relations.find((r) => r.access === 'write');
  const action = (command: string, via: NestedVia, unboundedWrite = false): void => {
    c.nested.push({ via, executes: true, statement: { kind: command, command, text, relations: target === undefined ? [] : [target], schemas: [], functions: [], unboundedWrite, nested: [] } });
  };
  if (type === 'MergeStmt') {
    // One action per command; it is unbounded when any WHEN clause of that command is.
    const unbounded = new Map<string, boolean>();
    for (const w of Array.isArray(body.mergeWhenClauses) ? body.mergeWhenClauses : []) {
      const when = isObject(w) && isObject(w.MergeWhenClause) ? w.MergeWhenClause : undefined;
      const cmd = when === undefined ? undefined : MERGE_COMMANDS[String(when.commandType)];
      if (when === undefined || cmd === undefined) continue;
      const free = cmd !== 'insert' && !mergeActionBounded(body, when);
      unbounded.set(cmd, (unbounded.get(cmd) ?? false) || free);
    }
    for (const [cmd, free] of unbounded) action(cmd, 'merge-action', free);
  }
  if (type === 'InsertStmt' && isObject(body.onConflictClause) && body.onConflictClause.action === 'ONCONFLICT_UPDATE') action('update', 'on-conflict');
}

function copyInfo(body: JsonObject, c: Collector): CopyInfo {
  const opts = defElems(body.options);
  const format = (optionString(opts.get('format')) ?? 'text').toLowerCase();
  const direction = body.is_from === true ? 'from' : 'to';
  const target = body.is_program === true ? 'program' : typeof body.filename === 'string' ? 'file' : 'stdio';
  const info: { -readonly [K in keyof CopyInfo]: CopyInfo[K] } = {
    direction,
    target,
    format: format === 'csv' ? 'csv' : format === 'binary' ? 'binary' : 'text',
    header: opts.has('header') && (optionString(opts.get('header'))?.toLowerCase() === 'match' || optionTrue(opts.get('header') ?? null)),
  };
  if (isObject(body.relation)) {
    if (direction === 'from') systemCatalogWrite(body.relation, c);
    const before = c.relations.length;
    c.relation(body.relation, direction === 'from' ? 'write' : 'read');
    info.relation = c.relations[before];
  }
  const cols = stringList(body.attlist ?? null);
  if (cols !== undefined && cols.length > 0) info.columns = cols;
  for (const key of ['delimiter', 'null', 'quote', 'escape'] as const) {
    const v = optionString(opts.get(key));
    if (v !== undefined) info[key] = v;
  }
  // `COPY t TO STDOUT CSV` (the pre-9.0 syntax) arrives as option `csv`.
  if (opts.has('csv')) info.format = 'csv';
  if (opts.has('binary')) info.format = 'binary';
  return info;
}

/**
 * A row written into a system catalog (a superuser's `DELETE FROM pg_class`, `UPDATE pg_trigger`)
 * drops, renames or rewires any object without a DDL statement any rule names: code the gateway
 * cannot judge. Unqualified `pg_*` names count, since pg_catalog comes first in search_path.
 */
function systemCatalogWrite(rv: Json, c: Collector): void {
  if (!isObject(rv) || typeof rv.relname !== 'string') return;
  const schema = typeof rv.schemaname === 'string' ? rv.schemaname : undefined;
  if (schema === 'pg_catalog' || (schema === undefined && rv.relname.startsWith('pg_'))) {
    c.markOpaque(`a write to the system catalog ${rv.relname} changes objects without a statement the policy can judge`);
  }
}

/**
 * Adds what a drop takes with it: `drop table` and `delete` statements of `relation`, or of every
 * table (matching every `tables:` pattern) when it is undefined. A drop empties a table as TRUNCATE
 * does, so a rule on deletes from a table holds for it too.
 */
function dropsDependents(c: Collector, text: string, relation: RelationRef | undefined): void {
  if (relation === undefined) c.everyTable = true;
  for (const command of ['drop table', 'delete']) {
    c.nested.push({ via: 'drop-dependents', executes: true, statement: impliedStatement(command === 'delete' ? 'delete' : 'drop', command, text, relation) });
  }
}

/** A statement the analysed one performs without spelling it: on `relation`, or on every table when it is not known. */
function impliedStatement(kind: string, command: string, text: string, relation: RelationRef | undefined): StatementAnalysis {
  const statement: { -readonly [K in keyof StatementAnalysis]: StatementAnalysis[K] } = {
    kind,
    command,
    text,
    relations: relation === undefined ? [] : [relation],
    schemas: [],
    functions: [],
    unboundedWrite: false,
    nested: [],
  };
  if (relation === undefined) statement.everyTable = true;
  return statement;
}

/**
 * ALTER TABLE p ATTACH PARTITION t, ALTER TABLE t INHERIT p: from then on DROP TABLE p (… CASCADE)
 * drops t too. Judged now as a drop of t, so a rule protecting t from drops refuses the attachment
 * (the later DROP TABLE p, perhaps in the same request, is judged before the catalog shows it).
 */
function attachedTables(body: JsonObject, c: Collector, text: string): void {
  for (const cmd of Array.isArray(body.cmds) ? body.cmds : []) {
    const at = isObject(cmd) && isObject(cmd.AlterTableCmd) ? cmd.AlterTableCmd : undefined;
    if (at === undefined) continue;
    let rv: JsonObject | undefined;
    if (at.subtype === 'AT_AttachPartition' && isObject(at.def) && isObject(at.def.PartitionCmd) && isObject(at.def.PartitionCmd.name)) rv = at.def.PartitionCmd.name;
    else if (at.subtype === 'AT_AddInherit' && isObject(body.relation)) rv = body.relation;
    if (rv === undefined || typeof rv.relname !== 'string') continue;
    const ref: { catalog?: string; schema?: string; name: string; access: RelationAccess } = { name: rv.relname, access: 'write' };
    if (typeof rv.schemaname === 'string') ref.schema = rv.schemaname;
    if (typeof rv.catalogname === 'string') ref.catalog = rv.catalogname;
    dropsDependents(c, text, ref);
  }
}

function dropObjects(body: JsonObject, c: Collector): void {
  const objects = Array.isArray(body.objects) ? body.objects : [];
  const type = body.removeType;
  for (const o of objects) {
    if (type === 'OBJECT_SCHEMA') {
      const s = isObject(o) && isObject(o.String) ? o.String.sval : undefined;
      if (typeof s === 'string') c.schemas.push(s);
      continue;
    }
    const parts = isObject(o) && isObject(o.List) ? stringList(o.List.items ?? null) : undefined;
    if (parts === undefined || parts.length === 0) {
      c.walk(o, 'write'); // functions, operators, casts: walked for anything they contain
      continue;
    }
    if (['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_INDEX', 'OBJECT_SEQUENCE', 'OBJECT_FOREIGN_TABLE'].includes(String(type))) {
      const ref: { catalog?: string; schema?: string; name: string; access: RelationAccess } = { name: parts[parts.length - 1] as string, access: 'write' };
      if (parts.length >= 2) ref.schema = parts[parts.length - 2] as string;
      if (parts.length >= 3) ref.catalog = parts[parts.length - 3] as string;
      c.relations.push(ref);
    } else if (parts.length >= 2 && ['OBJECT_TRIGGER', 'OBJECT_RULE', 'OBJECT_POLICY', 'OBJECT_TABCONSTRAINT'].includes(String(type))) {
      // DROP TRIGGER t ON [schema.]table: the last name is the object, the rest the table.
      const table = parts.slice(0, -1);
      const ref: { schema?: string; name: string; access: RelationAccess } = { name: table[table.length - 1] as string, access: 'write' };
      if (table.length >= 2) ref.schema = table[table.length - 2] as string;
      c.relations.push(ref);
    }
  }
}

/**
 * CREATE FUNCTION/PROCEDURE: a body in SQL is parsed and kept as nested statements (they run when
 * the function is called, so block rules apply now); a body in any other language is opaque.
 */
function functionBody(body: JsonObject, c: Collector, skip: Set<string>): void {
  if (body.sql_body !== undefined) {
    skip.add('sql_body');
    const visit = (v: Json): void => {
      if (Array.isArray(v)) v.forEach(visit);
      else if (isObject(v)) {
        if (isObject(v.List)) visit(v.List.items ?? null);
        else c.addNested('function-body', false, v);
      }
    };
    visit(body.sql_body);
    return;
  }
  const opts = defElems(body.options);
  const language = (optionString(opts.get('language')) ?? 'sql').toLowerCase();
  const as = opts.get('as');
  const pieces = isObject(as) && isObject(as.List) && Array.isArray(as.List.items) ? as.List.items : [];
  skip.add('options');
  if (language !== 'sql') {
    c.markOpaque(`a function body in language ${language} is code the gateway cannot see into`);
    return;
  }
  const first = pieces[0];
  const sval = isObject(first) && isObject(first.String) ? first.String.sval : undefined;
  const stmts = typeof sval === 'string' ? tryParse(sval) : undefined;
  if (stmts === undefined) {
    c.markOpaque('a SQL function body that does not parse');
    return;
  }
  for (const s of stmts) c.addNested('function-body', false, s.stmt ?? null);
}

function dedupeRelations(list: RelationRef[]): RelationRef[] {
  const seen = new Map<string, RelationRef>();
  for (const r of list) {
    const key = `${r.catalog ?? ''}\u0000${r.schema ?? ''}\u0000${r.name}`;
    const prev = seen.get(key);
    if (prev === undefined || (prev.access === 'read' && r.access === 'write')) seen.set(key, r);
  }
  return [...seen.values()];
}

function dedupeFunctions(list: FunctionRef[]): FunctionRef[] {
  const seen = new Map<string, FunctionRef>();
  for (const f of list) seen.set(`${f.schema ?? ''}\u0000${f.name}`, f);
  return [...seen.values()];
}

/**
 * Parses `text` (one Query message: any number of statements) and analyses each statement.
 * Never throws for bad SQL: a parse error (or a tree too deep to walk) yields `ok: false` with
 * PostgreSQL's message, which callers treat as fail-closed.
 */
export function analyzeSql(text: string): SqlAnalysis {
  if (text.trim() === '') return { ok: true, statements: [] };
  let stmts: RawStmt[];
  try {
    stmts = (parseSync(text) as unknown as { stmts?: RawStmt[] }).stmts ?? [];
  } catch (err) {
    const e = err as Error & { sqlDetails?: { cursorPosition?: number } };
    const out: { ok: false; error: string; position?: number } = { ok: false, error: e.message };
    if (typeof e.sqlDetails?.cursorPosition === 'number') out.position = e.sqlDetails.cursorPosition;
    return out;
  }
  const ascii = Buffer.byteLength(text) === text.length;
  const bytes = ascii ? undefined : Buffer.from(text, 'utf8');
  const statements: StatementAnalysis[] = [];
  try {
    for (const raw of stmts) {
      const typed = isObject(raw.stmt) ? typedNode(raw.stmt) : undefined;
      if (typed === undefined) continue;
      // Locations are byte offsets into the UTF-8 text; a length of 0 means "to the end".
      const start = raw.stmt_location ?? 0;
      const len = raw.stmt_len ?? 0;
      const stmtText = bytes === undefined
        ? (len > 0 ? text.slice(start, start + len) : text.slice(start)).trim()
        : (len > 0 ? bytes.subarray(start, start + len) : bytes.subarray(start)).toString('utf8').trim();
      statements.push(analyzeNode(typed[0], typed[1], stmtText, 0));
    }
  } catch (err) {
    if (err instanceof RangeError) return { ok: false, error: `cannot analyse the statement: ${err.message}` };
    throw err;
  }
  return { ok: true, statements };
}
