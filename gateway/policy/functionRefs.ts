// Every way a statement names a function without calling it by name: operators (which the server
// runs through the functions behind them), definitions that attach a function to an operator,
// aggregate, type, cast, operator class, transform, conversion, language, foreign-data wrapper,
// access method or text-search parser/template, and built-ins that run SQL text given to them.
// sql.ts calls in here from its tree walk; what an operator, aggregate, type or cast already in
// the target database runs is resolved per session (userObjects.ts).
import { defElems, isObject, stringConstant, stringList, isConstant, type Json, type JsonObject } from './sqlTree.js';

/** DefElem names whose value is a function, per definition (PostgreSQL 15's define commands). */
const FUNCTION_OPTIONS: Readonly<Record<string, ReadonlySet<string>>> = {
  OBJECT_OPERATOR: new Set(['function', 'procedure', 'restrict', 'join']),
  OBJECT_AGGREGATE: new Set(['sfunc', 'sfunc1', 'finalfunc', 'finalfunc1', 'combinefunc', 'serialfunc', 'deserialfunc', 'msfunc', 'minvfunc', 'mfinalfunc']),
  OBJECT_TYPE: new Set(['input', 'output', 'receive', 'send', 'typmod_in', 'typmod_out', 'analyze', 'subscript']),
  OBJECT_TSPARSER: new Set(['start', 'gettoken', 'end', 'headline', 'lextypes']),
  OBJECT_TSTEMPLATE: new Set(['init', 'lexize']),
  range: new Set(['subtype_diff', 'canonical']),
  support: new Set(['support']),
  fdw: new Set(['handler', 'validator']),
};

/** DefElem names whose value is an operator (an aggregate's sort operator). */
const OPERATOR_OPTIONS = new Set(['sortop']);

/** A function or operator name as written: the last part is the name, the one before it the schema. */
export type NameParts = readonly string[];

export interface DefinitionRefs {
  readonly functions: NameParts[];
  readonly operators: NameParts[];
}

/** The name in a DefElem value: `f`, `s.f` (a TypeName or a List of Strings) or `'f'` (a String). */
function defElemName(arg: Json | undefined): NameParts | undefined {
  if (!isObject(arg)) return undefined;
  if (isObject(arg.TypeName)) return stringList(arg.TypeName.names ?? null);
  if (isObject(arg.List)) return stringList(arg.List.items ?? null);
  if (isObject(arg.String) && typeof arg.String.sval === 'string') return [arg.String.sval];
  return undefined;
}

function fromOptions(list: Json | undefined, names: ReadonlySet<string>, out: DefinitionRefs): void {
  // PostgreSQL compares most option names exactly; comparing without case only over-matches.
  for (const [name, arg] of defElems(list)) {
    const key = name.toLowerCase();
    const parts = names.has(key) || OPERATOR_OPTIONS.has(key) ? defElemName(arg) : undefined;
    if (parts === undefined || parts.length === 0) continue;
    (OPERATOR_OPTIONS.has(key) ? out.operators : out.functions).push(parts);
  }
}

/** `f(args)` in CREATE CAST, operator classes, transforms: an ObjectWithArgs. */
function objectName(v: Json | undefined): NameParts | undefined {
  return isObject(v) ? stringList(v.objname ?? null) : undefined;
}

/**
 * The functions (and operators) a definition statement attaches to something it creates or
 * alters, so that `CREATE OPERATOR ### (FUNCTION = pg_read_file, …)` meets a rule on
 * `pg_read_file` although nothing calls it yet.
 */
export function definitionRefs(type: string, body: JsonObject): DefinitionRefs {
  const out: DefinitionRefs = { functions: [], operators: [] };
  const push = (parts: NameParts | undefined) => {
    if (parts !== undefined && parts.length > 0) out.functions.push(parts);
  };
  switch (type) {
    case 'DefineStmt': {
      const names = FUNCTION_OPTIONS[String(body.kind)];
      if (names !== undefined) fromOptions(body.definition, names, out);
      break;
    }
    case 'AlterOperatorStmt':
      fromOptions(body.options, FUNCTION_OPTIONS.OBJECT_OPERATOR as ReadonlySet<string>, out);
      break;
    case 'AlterTypeStmt':
      fromOptions(body.options, FUNCTION_OPTIONS.OBJECT_TYPE as ReadonlySet<string>, out);
      break;
    case 'CreateRangeStmt':
      fromOptions(body.params, FUNCTION_OPTIONS.range as ReadonlySet<string>, out);
      break;
    case 'CreateFunctionStmt':
      fromOptions(body.options, FUNCTION_OPTIONS.support as ReadonlySet<string>, out);
      break;
    case 'AlterFunctionStmt':
      fromOptions(body.actions, FUNCTION_OPTIONS.support as ReadonlySet<string>, out);
      break;
    case 'CreateFdwStmt':
    case 'AlterFdwStmt':
      fromOptions(body.func_options, FUNCTION_OPTIONS.fdw as ReadonlySet<string>, out);
      break;
    case 'CreateCastStmt':
      push(objectName(body.func));
      break;
    case 'CreateTransformStmt':
      push(objectName(body.fromsql));
      push(objectName(body.tosql));
      break;
    case 'CreateOpClassStmt':
    case 'AlterOpFamilyStmt':
      for (const item of Array.isArray(body.items) ? body.items : []) {
        const it = isObject(item) && isObject(item.CreateOpClassItem) ? item.CreateOpClassItem : undefined;
        if (it === undefined) continue;
        const parts = objectName(it.name);
        // itemtype 1 = OPERATOR, 2 = FUNCTION (OPCLASS_ITEM_*); STORAGE names a type.
        if (it.itemtype === 1 && parts !== undefined) out.operators.push(parts);
        if (it.itemtype === 2) push(parts);
      }
      break;
    case 'CreateConversionStmt':
      push(stringList(body.func_name ?? null));
      break;
    case 'CreatePLangStmt':
      for (const k of ['plhandler', 'plinline', 'plvalidator']) push(stringList(body[k] ?? null));
      break;
    case 'CreateAmStmt':
      push(stringList(body.handler_name ?? null));
      break;
  }
  return out;
}

/** The operator names an expression node uses; BETWEEN and its relatives are spelled as keywords. */
export function expressionOperators(type: string, body: JsonObject): NameParts[] {
  if (type === 'A_Expr') {
    const kind = String(body.kind);
    if (kind.startsWith('AEXPR_BETWEEN') || kind.startsWith('AEXPR_NOT_BETWEEN')) return [['<'], ['<='], ['>'], ['>=']];
    const name = stringList(body.name ?? null);
    return name === undefined || name.length === 0 ? [] : [name];
  }
  if (type === 'SubLink') {
    const name = stringList(body.operName ?? null);
    // `x IN (SELECT …)` has no operName but compares with `=`.
    return name !== undefined && name.length > 0 ? [name] : body.subLinkType === 'ANY_SUBLINK' ? [['=']] : [];
  }
  if (type === 'SortBy') {
    const name = stringList(body.useOp ?? null);
    return name === undefined || name.length === 0 ? [] : [name];
  }
  // JOIN … USING, NATURAL JOIN and CASE x WHEN y compare with an `=` they do not spell.
  if (type === 'JoinExpr') return body.isNatural === true || Array.isArray(body.usingClause) ? [['=']] : [];
  if (type === 'CaseExpr') return body.arg !== undefined ? [['=']] : [];
  if (type === 'Constraint' && Array.isArray(body.exclusions)) {
    // EXCLUDE (col WITH op, …): each pair is [IndexElem, [op name]].
    const out: NameParts[] = [];
    for (const pair of body.exclusions) {
      const items = isObject(pair) && isObject(pair.List) && Array.isArray(pair.List.items) ? pair.List.items : [];
      const op = items[1];
      const name = isObject(op) && isObject(op.List) ? stringList(op.List.items ?? null) : undefined;
      if (name !== undefined && name.length > 0) out.push(name);
    }
    return out;
  }
  return [];
}

/**
 * Built-ins that run SQL text given as an argument: which argument positions hold it (undefined:
 * every text argument, as dblink's connection and query strings cannot be told apart by position).
 */
type SqlPositions = (argCount: number) => readonly number[] | undefined;
const SQL_TEXT_FUNCTIONS: ReadonlyMap<string, SqlPositions> = new Map<string, SqlPositions>([
  ['query_to_xml', () => [0]],
  ['query_to_xmlschema', () => [0]],
  ['query_to_xml_and_xmlschema', () => [0]],
  ['ts_stat', () => [0]],
  // ts_rewrite(query tsquery, select text); the three-argument form takes no SQL.
  ['ts_rewrite', (n: number) => (n === 2 ? [1] : [])],
  // tablefunc: crosstab(source_sql [, category_sql]), crosstab2/3/4(source_sql), crosstab_hash.
  ['crosstab', () => undefined],
  ['crosstab2', () => [0]],
  ['crosstab3', () => [0]],
  ['crosstab4', () => [0]],
  ['crosstab_hash', () => undefined],
  ['dblink', () => undefined],
  ['dblink_exec', () => undefined],
  ['dblink_open', () => undefined],
  ['dblink_send_query', () => undefined],
]);

/** Whether a function of this name (in any schema) runs SQL text it is given. */
export const runsSqlText = (name: string): boolean => SQL_TEXT_FUNCTIONS.has(name.toLowerCase());

export interface SqlTextArguments {
  /** String literals that may be SQL (those that do not parse are names or connection strings). */
  readonly literals: readonly string[];
  /** An argument that may hold SQL is computed at run time. */
  readonly computed: boolean;
}

/** The arguments of a call to a SQL-running built-in that may carry SQL. */
export function sqlTextArguments(name: string, args: readonly Json[]): SqlTextArguments | undefined {
  const positions = SQL_TEXT_FUNCTIONS.get(name.toLowerCase());
  if (positions === undefined) return undefined;
  const at = positions(args.length);
  if (at !== undefined && at.length === 0 && !args.some((a) => isObject(a) && isObject(a.NamedArgExpr))) return undefined;
  const literals: string[] = [];
  let computed = false;
  args.forEach((raw, i) => {
    // A named argument (`query => …`) may be the SQL whatever its position.
    const named = isObject(raw) && isObject(raw.NamedArgExpr);
    const arg = named && isObject(raw.NamedArgExpr) ? (raw.NamedArgExpr.arg as Json) : raw;
    const candidate = named || at === undefined || at.includes(i);
    if (!candidate) return;
    const s = stringConstant(arg);
    if (s !== undefined) literals.push(s);
    else if (!isConstant(arg)) computed = true;
  });
  return { literals, computed };
}

/** Built-ins that read every table of a schema named by their first argument. */
export const SCHEMA_READING_FUNCTIONS: ReadonlySet<string> = new Set(['schema_to_xml', 'schema_to_xmlschema', 'schema_to_xml_and_xmlschema']);

/** Built-ins that read every table of the database. */
export const DATABASE_READING_FUNCTIONS: ReadonlySet<string> = new Set(['database_to_xml', 'database_to_xmlschema', 'database_to_xml_and_xmlschema']);

/**
 * A name that PostgreSQL may read as a call in column notation: `(x).f` is `f(x)` for any value
 * x when no field f exists (`SELECT (v).pg_read_file FROM …` reads the file named by v), and
 * `t.f` (or `s.t.f`) is `f(t)` when t has no column f. `ofRow`: the latter, where f would take
 * t's whole row, so only a function that accepts a row can be called that way.
 */
export interface NotationRef {
  readonly name: string;
  readonly ofRow?: true;
}

/** The candidate in a qualified ColumnRef (`t.c`, `s.t.c`): its last name. */
export function columnNotation(fields: readonly string[]): NotationRef[] {
  return fields.length < 2 ? [] : [{ name: fields[fields.length - 1] as string, ofRow: true }];
}

/**
 * Built-in functions that accept a whole row as their one argument (record, anyelement, "any",
 * …), from PostgreSQL 15's pg_proc: `t.to_json` is `to_json(t)`.
 */
export const ROW_FUNCTIONS: ReadonlySet<string> = new Set(
  'any_out anycompatible_out anycompatiblenonarray_out anyelement_out anynonarray_out concat hash_record json_build_array json_build_object jsonb_build_array jsonb_build_object num_nonnulls num_nulls pg_collation_for pg_column_compression pg_column_size pg_typeof quote_literal quote_nullable record_out record_send row_to_json to_json to_jsonb'.split(' '),
);
