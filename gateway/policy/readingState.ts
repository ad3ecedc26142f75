// Whether a statement can change how the server reads the next statement's text — its client
// encoding (which decides how bytes become characters) and standard_conforming_strings (which
// decides what a backslash in a string literal means) — judged on the parse tree, never on the
// text: every spelling (SET, SET SESSION/LOCAL, `=` or TO, quoted names, NAMES), DEFAULT, RESET,
// RESET ALL, DISCARD ALL, set_config() however it is named or nested, and the SET clauses of
// CREATE/ALTER FUNCTION, ALTER ROLE/DATABASE and ALTER SYSTEM.
//
// Three answers: nothing to fear; `refuse` (the statement would set a value under which the
// gateway's parser reads text differently from the server); or `uncertain` (the statement may
// change the setting and the gateway cannot tell to what: a reset to a default, a value computed
// at run time, a function the client could have written). Statements pipelined behind an
// uncertain one wait until the server has answered it, and the server's ParameterStatus then
// decides (the session ends if it contradicts the gateway).
//
// Other settings do not move token boundaries while standard_conforming_strings is on:
// backslash_quote only decides whether `\'` in an E'' string is accepted or an error, and
// escape_string_warning only warns.
import { isObject, stringConstant, stringList, typedNode, type Json, type JsonObject } from './sqlTree.js';

export type ReadingChange =
  | { readonly effect: 'refuse'; readonly reason: string }
  /** `settings`: the statement sets client_encoding or standard_conforming_strings itself (rather than calling code that might). */
  | { readonly effect: 'uncertain'; readonly reason: string; readonly settings: boolean };

/** The rule name refusals and session ends carry. */
export const PARSE_STATE_RULE = 'sluice:parse-state';

const READING_SETTINGS = new Set(['client_encoding', 'standard_conforming_strings']);

/** After PostgreSQL's clean_encoding_name(): only these encoding names are read as the gateway reads. */
const ENCODINGS_READ_AS_UTF8 = new Set(['utf8', 'unicode', 'sqlascii']);

/**
 * Why the gateway could not read statements as the server does with `name` set to `value`, or
 * undefined when it can (or the setting does not matter). Names are compared as PostgreSQL
 * compares GUC names (case-insensitively); values as it reads them.
 */
export function readingProblem(name: string, value: string): string | undefined {
  const n = name.toLowerCase();
  if (n === 'standard_conforming_strings' && !boolTrue(value)) return `standard_conforming_strings is ${value}, so the gateway cannot read string literals as the server does`;
  if (n === 'client_encoding' && !ENCODINGS_READ_AS_UTF8.has(value.replace(/[^A-Za-z0-9]/g, '').toLowerCase())) {
    return `client_encoding is ${value}, and the gateway reads statements as UTF-8`;
  }
  return undefined;
}

/** PostgreSQL's parse_bool(): a prefix of true/yes, exactly on, or 1 (no trimming). */
function boolTrue(value: string): boolean {
  const v = value.toLowerCase();
  return (v.length > 0 && ('true'.startsWith(v) || 'yes'.startsWith(v))) || v === 'on' || v === '1';
}

/**
 * Built-in functions (pg_catalog) that read or compute and never change a setting. A call of one
 * of these by its unqualified name is trusted; any other call — a function the client or an
 * administrator could have written, a procedure — is uncertain. A function created through the
 * gateway may not take one of these names (see `definesTrustedName`), so overloading cannot
 * redirect such a call to code that changes settings.
 */
export const TRUSTED_BUILTINS: ReadonlySet<string> = new Set(
  `abs array_agg array_append array_length array_position array_to_string avg bit_length bool_and bool_or btrim ceil ceiling char_length
  character_length chr clock_timestamp coalesce concat concat_ws count cume_dist current_database current_schema current_schemas
  current_setting current_user date_part date_trunc dense_rank div encode decode every exp first_value floor format gen_random_uuid
  generate_series greatest has_table_privilege initcap isfinite json_agg json_build_array json_build_object jsonb_agg jsonb_build_array
  jsonb_build_object jsonb_set jsonb_typeof json_typeof jsonb_array_length jsonb_object_agg json_object_agg justify_days lag last_value
  lead least left length ln localtime localtimestamp log lower lpad ltrim make_date make_interval make_timestamp max md5 min mod now
  nth_value ntile nullif octet_length overlay percent_rank percentile_cont percentile_disc pg_backend_pid pg_typeof position power random
  rank regexp_match regexp_matches regexp_replace regexp_split_to_array regexp_split_to_table repeat replace reverse right round
  row_number row_to_json rpad rtrim sign split_part sqrt starts_with statement_timestamp stddev string_agg string_to_array strpos substr
  substring sum timeofday timezone to_char to_date to_hex to_json to_jsonb to_number to_timestamp transaction_timestamp translate trim
  trunc unnest upper variance version nextval currval setval lastval uuid_generate_v4 to_tsvector to_tsquery plainto_tsquery
  websearch_to_tsquery ts_rank array_remove array_cat array_prepend array_upper array_lower cardinality age date_bin txid_current
  pg_current_xact_id quote_ident quote_literal quote_nullable format_type has_schema_privilege has_column_privilege pg_has_role pg_sleep
  pg_advisory_lock pg_advisory_unlock pg_try_advisory_lock pg_advisory_xact_lock json_extract_path json_extract_path_text
  jsonb_extract_path jsonb_extract_path_text json_array_elements jsonb_array_elements json_each jsonb_each jsonb_object_keys
  jsonb_strip_nulls jsonb_pretty jsonb_insert width_bucket sha256 convert_to convert_from ascii bit_and bit_or pi degrees radians
  isempty lower_inc upper_inc daterange tstzrange tsrange numrange int4range int8range generate_subscripts textcat`.split(/\s+/),
);

/**
 * Operator names of the built-in operators (and the keywords BETWEEN is named by). Another
 * operator runs a function the client or an administrator wrote; one created through the gateway
 * over such a function is refused (see `implicitCall`), so these names reach built-in code.
 */
export const BUILTIN_OPERATORS: ReadonlySet<string> = new Set(
  [
    ...'= <> != < > <= >= + - * / % ^ | & # ~ << >> || ~~ !~~ ~~* !~~* ~* !~ !~* @> <@ && -> ->> #> #>> ? ?| ?& @@ @@@ @? @ @-@ ## <-> <<| |>> &< &> <^ >^ ?# ?- ?|| ?-| |/ ||/ #- -|- <<= >>= !!'.split(' '),
    'BETWEEN', 'NOT BETWEEN', 'BETWEEN SYMMETRIC', 'NOT BETWEEN SYMMETRIC',
  ],
);

/** Built-ins that change settings however they are reached (set_config is judged by its arguments). */
const SETTING_CHANGERS = new Set(['set_config', 'pg_reload_conf']);

/** Statements that run code the gateway does not see, or reset settings to values it did not check. */
const UNCERTAIN_STATEMENTS: Record<string, string> = {
  CallStmt: 'CALL runs a procedure, which may change client_encoding',
  ExecuteStmt: 'EXECUTE runs a prepared statement, which may change client_encoding',
  FetchStmt: "FETCH and MOVE run a cursor's query, which may change client_encoding",
  DoStmt: 'a DO block may change client_encoding',
  LoadStmt: 'LOAD runs library code, which may change client_encoding',
  CreateExtensionStmt: "an extension's script may change client_encoding",
  AlterExtensionStmt: "an extension's script may change client_encoding",
  RefreshMatViewStmt: "REFRESH runs the materialized view's query, which may change client_encoding",
};

/**
 * Options of CREATE OPERATOR / AGGREGATE / TYPE (and their ALTERs) that name a function the
 * server then calls without a statement naming it.
 */
const FUNCTION_SLOTS = new Set(
  'function procedure sfunc finalfunc combinefunc serialfunc deserialfunc msfunc minvfunc mfinalfunc restrict join input output receive send typmod_in typmod_out analyze subscript subtype_diff canonical'.split(' '),
);

/** Statements whose expressions run when the statement runs; in any other, they are definitions run later. */
const RUNS_NOW = new Set(
  ('SelectStmt InsertStmt UpdateStmt DeleteStmt MergeStmt VariableSetStmt DiscardStmt CallStmt ExecuteStmt ExplainStmt CreateTableAsStmt CopyStmt DoStmt ' +
    'DeclareCursorStmt PrepareStmt FetchStmt LoadStmt CreateExtensionStmt AlterExtensionStmt RefreshMatViewStmt').split(' '),
);

class ReadingWalk {
  refuse: string | undefined;
  /** Something may change a reading setting to a value the gateway cannot check. */
  settingUncertain: string | undefined;
  /** Something runs code that may change one. */
  uncertain: string | undefined;
  /** A decision depended on a literal's value: the analysis must not be reused by shape. */
  literalSensitive = false;

  visit(v: Json, topLevel: boolean): void {
    if (Array.isArray(v)) {
      for (const item of v) this.visit(item, false);
      return;
    }
    if (!isObject(v)) return;
    const typed = typedNode(v);
    if (typed !== undefined) {
      this.typed(typed[0], typed[1], topLevel);
      return;
    }
    // Inline structs: ALTER ROLE/DATABASE/SYSTEM's `setstmt`, CALL's `funccall`.
    if (typeof v.kind === 'string' && v.kind.startsWith('VAR_')) this.variableSet(v, false);
    else if (Array.isArray(v.funcname) && 'funcformat' in v) this.funcCall(v);
    else for (const k in v) this.visit(v[k] as Json, false);
  }

  private typed(type: string, body: JsonObject, topLevel: boolean): void {
    const why = UNCERTAIN_STATEMENTS[type];
    if (why !== undefined) this.uncertain ??= why;
    switch (type) {
      case 'VariableSetStmt':
        this.variableSet(body, topLevel);
        return;
      case 'DiscardStmt':
        if (body.target === 'DISCARD_ALL') this.settingUncertain ??= 'DISCARD ALL resets client_encoding and standard_conforming_strings to their session defaults';
        return;
      case 'FuncCall':
        this.funcCall(body);
        return;
      case 'A_Expr': {
        const parts = stringList(body.name ?? null) ?? [];
        const op = parts[parts.length - 1] ?? '';
        const schema = parts.length >= 2 ? parts[parts.length - 2] : undefined;
        if (!(schema === 'pg_catalog' || (schema === undefined && BUILTIN_OPERATORS.has(op)))) this.uncertain ??= `operator ${parts.join('.')} is not a built-in known to leave client_encoding alone`;
        break;
      }
      case 'CreateFunctionStmt':
        this.definesFunction(stringList(body.funcname ?? null));
        break;
      case 'RenameStmt':
        if (body.renameType === 'OBJECT_FUNCTION' || body.renameType === 'OBJECT_PROCEDURE' || body.renameType === 'OBJECT_ROUTINE') {
          if (typeof body.newname === 'string') this.definesFunction([body.newname]);
        }
        break;
      case 'AlterObjectSchemaStmt':
        if (body.newschema === 'pg_catalog') this.refuse ??= 'moving an object into pg_catalog would let it pass for a built-in';
        break;
      case 'DefineStmt':
        if (body.kind === 'OBJECT_AGGREGATE') this.definesFunction(stringList(body.defnames ?? null));
        break;
      case 'DefElem':
        if (FUNCTION_SLOTS.has(String(body.defname)) && isObject(body.arg) && isObject(body.arg.TypeName)) {
          // CREATE OPERATOR names its function FUNCTION (or PROCEDURE); every other slot is named after its role.
          const slot = body.defname === 'function' || body.defname === 'procedure' ? 'function of an operator' : `${String(body.defname)} function`;
          this.implicitCall(stringList(body.arg.TypeName.names ?? null), slot);
        }
        break;
      case 'CreateCastStmt':
        if (isObject(body.func)) this.implicitCall(stringList(body.func.objname ?? null), 'cast function');
        break;
      case 'CreateTrigStmt':
      case 'CreateEventTrigStmt':
        this.implicitCall(stringList(body.funcname ?? null), type === 'CreateTrigStmt' ? 'trigger function' : 'event trigger function');
        break;
      case 'CreateOpClassItem':
        if (body.itemtype === 2 && isObject(body.name)) this.implicitCall(stringList(body.name.objname ?? null), 'operator class support function');
        break;
      case 'CreateConversionStmt':
        this.refuse ??= 'a conversion changes how the server converts client text';
        break;
    }
    for (const k in body) this.visit(body[k] as Json, false);
  }

  /** SET/RESET in every form; nested ones (function SET clauses, ALTER ROLE … SET) only refuse. */
  private variableSet(body: JsonObject, topLevel: boolean): void {
    const kind = body.kind;
    if (kind === 'VAR_RESET_ALL') {
      if (topLevel) this.settingUncertain ??= 'RESET ALL resets client_encoding and standard_conforming_strings to their session defaults';
      return;
    }
    const name = typeof body.name === 'string' ? body.name.toLowerCase() : '';
    if (!READING_SETTINGS.has(name)) return;
    if (kind !== 'VAR_SET_VALUE') {
      if (topLevel) this.settingUncertain ??= `${kind === 'VAR_RESET' ? 'RESET' : 'SET … TO DEFAULT'} returns ${name} to a session default`;
      return;
    }
    this.literalSensitive = true;
    const args = Array.isArray(body.args) ? body.args : [];
    const value = args.length === 1 ? constantText(args[0] as Json) : undefined;
    const problem = value === undefined ? `${name} would be set to a value the gateway cannot read` : readingProblem(name, value);
    if (problem !== undefined) this.refuse ??= problem.replace(' is ', ' would be ');
  }

  private funcCall(body: JsonObject): void {
    const parts = stringList(body.funcname ?? null) ?? [];
    const name = parts[parts.length - 1] ?? '';
    const schema = parts.length >= 2 ? parts[parts.length - 2] : undefined;
    if (name === 'set_config') this.setConfig(Array.isArray(body.args) ? body.args : []);
    else if (SETTING_CHANGERS.has(name)) this.uncertain ??= `${name}() may change client_encoding`;
    else if (!(schema === 'pg_catalog' || (schema === undefined && TRUSTED_BUILTINS.has(name)))) {
      this.uncertain ??= `${parts.join('.')}() is not a built-in known to leave client_encoding alone`;
    }
    for (const k in body) if (k !== 'funcname') this.visit(body[k] as Json, false);
  }

  /** set_config(name, value, is_local): judged like SET when both are literals. */
  private setConfig(args: Json[]): void {
    this.literalSensitive = true;
    const name = args.length === 3 ? stringConstant(args[0] as Json) : undefined;
    if (name === undefined) {
      this.settingUncertain ??= 'set_config() with a setting name that is not a literal may change client_encoding';
      return;
    }
    const setting = name.toLowerCase();
    if (!READING_SETTINGS.has(setting)) return;
    const value = stringConstant(args[1] as Json);
    if (value === undefined) {
      this.settingUncertain ??= `set_config('${setting}', …) with a value that is not a literal`;
      return;
    }
    const problem = readingProblem(setting, value);
    if (problem !== undefined) this.refuse ??= problem.replace(' is ', ' would be ');
  }

  /**
   * A function the server will call without a statement naming it (an operator's, an aggregate's
   * or a cast's): refused unless it is a trusted built-in, since no statement that later runs it
   * would be seen to call code that may change client_encoding.
   */
  private implicitCall(parts: string[] | undefined, slot: string): void {
    if (parts === undefined || parts.length === 0) return;
    const name = parts[parts.length - 1] as string;
    const schema = parts.length >= 2 ? parts[parts.length - 2] : undefined;
    if (SETTING_CHANGERS.has(name) || !(schema === 'pg_catalog' || (schema === undefined && TRUSTED_BUILTINS.has(name)))) {
      this.refuse ??= `${parts.join('.')}() as a ${slot} would run where no statement names it, so the gateway would not see a call of code that may change client_encoding`;
    }
  }

  /** A function created (or renamed) through the gateway may not pass for a trusted built-in. */
  private definesFunction(parts: string[] | undefined): void {
    if (parts === undefined || parts.length === 0) return;
    const name = parts[parts.length - 1] as string;
    const schema = parts.length >= 2 ? parts[parts.length - 2] : undefined;
    if (schema === 'pg_catalog') this.refuse ??= 'a function created in pg_catalog would pass for a built-in';
    else if (TRUSTED_BUILTINS.has(name) || SETTING_CHANGERS.has(name)) this.refuse ??= `a function named ${name} would shadow the built-in the gateway trusts not to change client_encoding`;
  }
}

/** A constant's text as the server passes it to the setting (strings as they are, numbers in decimal). */
function constantText(v: Json): string | undefined {
  const s = stringConstant(v);
  if (s !== undefined) return s;
  const c = isObject(v) && isObject(v.A_Const) ? v.A_Const : undefined;
  if (c === undefined) return undefined;
  if (isObject(c.ival)) return String(typeof c.ival.ival === 'number' ? c.ival.ival : 0);
  if (isObject(c.fval) && typeof c.fval.fval === 'string') return c.fval.fval;
  if (isObject(c.boolval)) return c.boolval.boolval === true ? 'true' : 'false';
  return undefined;
}

/** A statement the analysis split off, with whether it runs when its parent does. */
export interface NestedReading {
  readonly executes: boolean;
  /** How it is reached (sql.ts NestedVia): a view's or a rule's query runs without being named. */
  readonly via: string;
  readonly change: ReadingChange | undefined;
}

/**
 * The reading change of one statement (`type`/`body` from the parse tree; `nested`, the
 * statements the analysis split off, including SQL passed to functions that run it). A setting
 * changed to a value the gateway cannot check is refused where it runs later (a function body,
 * a view, a rule, a prepared statement, a column default): whatever statement then runs it would
 * not be seen to change anything.
 */
export function readingChangeOf(type: string, body: JsonObject, nested: readonly NestedReading[]): { change: ReadingChange | undefined; literalSensitive: boolean } {
  const w = new ReadingWalk();
  w.visit({ [type]: body }, true);
  const definition = (why: string) => `${why}, in a definition that runs later, where the gateway would not see it coming`;
  if (w.settingUncertain !== undefined && !RUNS_NOW.has(type)) w.refuse ??= definition(w.settingUncertain);
  // A call in a view, rule, default, policy, index or trigger condition runs whenever the object
  // is used, by statements that name no function; a function body only when the function is called.
  if (w.uncertain !== undefined && !RUNS_NOW.has(type) && type !== 'CreateFunctionStmt') w.refuse ??= definition(w.uncertain);
  for (const n of nested) {
    const c = n.change;
    if (c?.effect === 'refuse') w.refuse ??= c.reason;
    else if (c?.effect === 'uncertain' && !n.executes && (c.settings || n.via === 'view' || n.via === 'rule')) w.refuse ??= definition(c.reason);
    else if (c?.effect === 'uncertain' && c.settings) w.settingUncertain ??= c.reason;
    else if (c?.effect === 'uncertain') w.uncertain ??= c.reason;
  }
  let change: ReadingChange | undefined;
  if (w.refuse !== undefined) change = { effect: 'refuse', reason: w.refuse };
  else if (w.settingUncertain !== undefined) change = { effect: 'uncertain', reason: w.settingUncertain, settings: true };
  else if (w.uncertain !== undefined) change = { effect: 'uncertain', reason: w.uncertain, settings: false };
  return { change, literalSensitive: w.literalSensitive };
}
