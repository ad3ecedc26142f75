// Operators, aggregates, types and casts that already exist in the target database (created
// outside the gateway, oid >= 16384: by an administrator or an extension) run functions that
// the statement using them never names: `SELECT ### 'x'` may run pg_read_file. The engine reads
// them once per session (USER_OBJECTS_SQL) when a function rule applies, and `functionUses`
// counts using such an object as calling its functions. Built-in operators, casts, aggregates
// and types (oid < 16384) add nothing: their functions are part of the server.
import { analyzeSql, type FunctionRef, type SqlAnalysis, type StatementAnalysis } from './sql.js';
import { plpgsqlStatements } from './plpgsqlBody.js';
import { ROW_FUNCTIONS, runsSqlText } from './functionRefs.js';
import { attachedFunctions, type AttachedCode } from './attachedCode.js';

/**
 * One row per (object, function): kind, the object's schema and name, the function's schema and
 * name. `ambient` functions may run in any statement without it naming anything: implicit and
 * assignment casts, and the operators and support functions of default operator classes (ORDER
 * BY, DISTINCT, joins and indexes pick them). `row` functions take a whole row as their one
 * argument, so `t.f` may call them (column notation). Selectivity estimators that are built in are left
 * out: they only read planner statistics. An explicit cast runs only where its target type is
 * written (`CAST(x AS t)`, `x::t`), so it is found by that name; its source may be any value.
 */
export const USER_OBJECTS_SQL = `WITH fns(kind, schema, name, fid) AS (
  SELECT 'operator', n.nspname, o.oprname, u.fid FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace,
    LATERAL unnest(ARRAY[o.oprcode::oid, o.oprrest::oid, o.oprjoin::oid]) WITH ORDINALITY u(fid, i) WHERE o.oid >= 16384 AND (u.i = 1 OR u.fid >= 16384)
  UNION ALL
  SELECT 'aggregate', n.nspname, p.proname, u.fid FROM pg_catalog.pg_aggregate a JOIN pg_catalog.pg_proc p ON p.oid = a.aggfnoid JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace,
    LATERAL unnest(ARRAY[a.aggtransfn::oid, a.aggfinalfn::oid, a.aggcombinefn::oid, a.aggserialfn::oid, a.aggdeserialfn::oid, a.aggmtransfn::oid, a.aggminvtransfn::oid, a.aggmfinalfn::oid]) u(fid) WHERE a.aggfnoid >= 16384
  UNION ALL
  SELECT 'type', n.nspname, t.typname, u.fid FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace,
    LATERAL unnest(ARRAY[t.typinput::oid, t.typoutput::oid, t.typreceive::oid, t.typsend::oid, t.typmodin::oid, t.typmodout::oid, t.typanalyze::oid, t.typsubscript::oid]) u(fid) WHERE t.oid >= 16384 AND t.typtype = 'b'
  UNION ALL
  SELECT 'type', n.nspname, t.typname, u.fid FROM pg_catalog.pg_range r JOIN pg_catalog.pg_type t ON t.oid = r.rngtypid JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace,
    LATERAL unnest(ARRAY[r.rngcanonical::oid, r.rngsubdiff::oid]) u(fid) WHERE r.rngtypid >= 16384
  UNION ALL
  SELECT CASE WHEN c.castcontext = 'e' THEN 'type' ELSE 'ambient' END, n.nspname, t.typname, c.castfunc FROM pg_catalog.pg_cast c JOIN pg_catalog.pg_type t ON t.oid = c.casttarget JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
    WHERE c.oid >= 16384 AND c.castfunc <> 0
  UNION ALL
  SELECT 'ambient', '', '', ap.amproc::oid FROM pg_catalog.pg_amproc ap JOIN pg_catalog.pg_opclass oc ON oc.opcfamily = ap.amprocfamily WHERE oc.opcdefault AND oc.oid >= 16384
  UNION ALL
  SELECT 'ambient', '', '', o.oprcode::oid FROM pg_catalog.pg_amop ao JOIN pg_catalog.pg_opclass oc ON oc.opcfamily = ao.amopfamily JOIN pg_catalog.pg_operator o ON o.oid = ao.amopopr WHERE oc.opcdefault AND oc.oid >= 16384
  UNION ALL
  SELECT 'row', '', '', p.oid FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_type t ON t.oid = p.proargtypes[0]
    WHERE p.oid >= 16384 AND p.pronargs >= 1 AND p.pronargs - p.pronargdefaults <= 1 AND (t.typtype IN ('c', 'p'))
)
SELECT DISTINCT f.kind, f.schema, f.name, fn.nspname, p.proname FROM fns f JOIN pg_catalog.pg_proc p ON p.oid = f.fid JOIN pg_catalog.pg_namespace fn ON fn.oid = p.pronamespace`;

/**
 * The functions and procedures created outside the gateway whose code the gateway must account
 * for: the definitions of SQL and PL/pgSQL ones, whose bodies are read (what they call counts as
 * called by whoever calls them: `read_config()` that wraps pg_read_file is pg_read_file; a
 * PL/pgSQL body that runs SQL built at run time counts as running SQL text the gateway cannot
 * see); `internal` and C functions, which are another name for shipped code when their symbol
 * (and library) are a shipped function's (`LANGUAGE internal AS 'be_lo_import'` is lo_import);
 * and every other function in any language that is not shipped — PL/Python, PL/Perl, a C symbol
 * no shipped function has — whose code is not read, so calling one is code the gateway cannot
 * see into (`sluice:opaque-code`). Shipped code is what the server and its installed extensions
 * bring: OID below 16384 (created by initdb, never listed here) or a member of an installed
 * extension (pg_depend deptype 'e').
 * Columns: schema, name, the SQL definition (sql), the body (plpgsql), the names of the shipped
 * functions with the same symbol (internal, c; NULL when none), the language, the return type as
 * PL/pgSQL's parser needs it.
 */
const SHIPPED = (p: string) =>
  `(${p}.oid < 16384 OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND e.objid = ${p}.oid ` +
  "AND e.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND e.deptype = 'e'))";
export const USER_SQL_FUNCTIONS_SQL = `SELECT n.nspname, p.proname, CASE WHEN l.lanname = 'sql' THEN pg_catalog.pg_get_functiondef(p.oid) WHEN l.lanname = 'plpgsql' THEN p.prosrc
    WHEN l.lanname IN ('internal', 'c') THEN (SELECT pg_catalog.string_agg(DISTINCT b.proname::pg_catalog.text, ' ') FROM pg_catalog.pg_proc b
      WHERE b.prolang = p.prolang AND b.prosrc = p.prosrc AND b.probin IS NOT DISTINCT FROM p.probin AND b.oid <> p.oid AND ${SHIPPED('b')}) END,
  l.lanname,
  CASE WHEN p.prokind = 'p' THEN 'void' ELSE pg_catalog.concat(CASE WHEN p.proretset THEN 'SETOF ' END, pg_catalog.format_type(p.prorettype, NULL)) END
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace JOIN pg_catalog.pg_language l ON l.oid = p.prolang
  WHERE p.oid >= 16384 AND p.prokind IN ('f', 'p') AND (l.lanname IN ('sql', 'plpgsql') OR NOT ${SHIPPED('p')})`;

interface Implementation {
  /** The object's schema. */
  readonly schema: string;
  readonly fn: FunctionRef;
  /** Using it runs SQL text the gateway cannot see (FunctionUse.runsSql). */
  readonly runsSql?: true;
  /** Why it is opaque (`written in plpython3u`), for the reason a refusal gives. */
  readonly note?: string;
}

type ByName = ReadonlyMap<string, readonly Implementation[]>;

/** The session's user-defined operators, aggregates, types and casts, by lower-cased name. */
export interface UserObjects {
  readonly operators: ByName;
  readonly aggregates: ByName;
  readonly types: ByName;
  readonly ambient: readonly { readonly schema: string; readonly name: string }[];
  /** Lower-cased names of user-defined functions that take a whole row (`t.f` is `f(t)`). */
  readonly rowFunctions: ReadonlySet<string>;
  /** Functions created outside the gateway: everything their bodies use, transitively (opaque ones: themselves, runsSql). */
  readonly bodies?: ByName;
  /** Code attached to relations (attachedCode.ts): touching one counts as calling its functions. */
  readonly attached?: AttachedCode;
}

export const NO_USER_OBJECTS: UserObjects = Object.freeze({ operators: new Map(), aggregates: new Map(), types: new Map(), ambient: [], rowFunctions: new Set<string>() });

type Rows = readonly (readonly (string | null)[])[];

export function userObjectsFromRows(rows: Rows, sqlFunctions: Rows = [], attached?: AttachedCode): UserObjects {
  const maps = { operator: new Map<string, Implementation[]>(), aggregate: new Map<string, Implementation[]>(), type: new Map<string, Implementation[]>() };
  const ambient: { schema: string; name: string }[] = [];
  const rowFunctions = new Set<string>();
  for (const [kind, schema, name, fnSchema, fnName] of rows) {
    if (fnName === null || fnName === undefined) continue;
    const fn = { schema: fnSchema ?? '', name: fnName };
    if (kind === 'row') {
      rowFunctions.add(fnName.toLowerCase());
      continue;
    }
    if (kind === 'ambient') {
      ambient.push(fn);
      continue;
    }
    const map = maps[kind as keyof typeof maps] as Map<string, Implementation[]> | undefined;
    if (map === undefined || name === null || name === undefined) continue;
    const key = name.toLowerCase();
    const list = map.get(key) ?? [];
    list.push({ schema: schema ?? '', fn });
    map.set(key, list);
  }
  const objects: UserObjects = { operators: maps.operator, aggregates: maps.aggregate, types: maps.type, ambient, rowFunctions, ...(attached !== undefined ? { attached } : {}) };
  return sqlFunctions.length === 0 ? objects : { ...objects, bodies: bodyUses(sqlFunctions, objects) };
}

/** Every function a statement and the statements nested in it use (a body is judged whole). */
function usesWithin(s: StatementAnalysis, objects: UserObjects): FunctionUse[] {
  return [...functionUses(s, objects), ...s.nested.flatMap((n) => usesWithin(n.statement, objects))];
}

/**
 * name → what the bodies of the SQL functions of that name use, with calls of other such
 * functions followed to the end (a cycle stops where it closes). A definition that does not
 * parse counts as calling itself only.
 */
function bodyUses(sqlFunctions: Rows, objects: UserObjects): ByName {
  const direct = new Map<string, { schema: string; name: string; uses: FunctionUse[] }[]>();
  for (const [schema, name, def, lang, returns] of sqlFunctions) {
    if (name === null || name === undefined) continue;
    const language = lang ?? 'sql';
    let uses: FunctionUse[];
    if (language === 'internal' || language === 'c') {
      // Another name for shipped code runs what that code does; an unknown symbol is unseen code.
      const same = def === null || def === undefined ? [] : def.split(' ').filter((x) => x !== '');
      uses = same.length > 0 ? same.map((n) => ({ ref: { name: n }, via: `function ${name}, which is ${n}` })) : [{ ref: { schema: schema ?? '', name }, via: `written in ${language} with a symbol no shipped function has`, runsSql: true }];
    } else if (language !== 'sql' && language !== 'plpgsql') uses = [{ ref: { schema: schema ?? '', name }, via: `written in ${language}`, runsSql: true }];
    else if (def === null || def === undefined) continue;
    else uses = language === 'plpgsql' ? plpgsqlUses(schema ?? '', name, def, returns ?? 'void', objects) : usesOf(analyzeSql(def), objects);
    const key = name.toLowerCase();
    direct.set(key, [...(direct.get(key) ?? []), { schema: schema ?? '', name, uses }]);
  }
  const out = new Map<string, Implementation[]>();
  for (const [key, fns] of direct) {
    const impls: Implementation[] = [];
    for (const fn of fns) {
      const seen = new Set<string>([key]);
      const pending = [...fn.uses];
      while (pending.length > 0) {
        const u = pending.pop() as FunctionUse;
        impls.push({ schema: fn.schema, fn: u.ref, ...(u.runsSql === true ? { runsSql: true as const, ...(u.via !== undefined ? { note: u.via } : {}) } : {}) });
        const next = u.ref.name.toLowerCase();
        if (seen.has(next)) continue;
        seen.add(next);
        for (const inner of direct.get(next) ?? []) pending.push(...inner.uses);
      }
    }
    out.set(key, impls);
  }
  return out;
}

const usesOf = (a: SqlAnalysis, objects: UserObjects): FunctionUse[] => (a.ok ? a.statements.flatMap((st) => usesWithin(st, objects)) : []);

/**
 * What a PL/pgSQL body uses. One that runs SQL built at run time, or does not parse, runs code
 * the gateway cannot see: it is a use of the function itself marked `runsSql`.
 */
function plpgsqlUses(schema: string, name: string, prosrc: string, returns: string, objects: UserObjects): FunctionUse[] {
  const body = plpgsqlStatements(prosrc, returns);
  if (body === undefined || body.dynamic) return [{ ref: { schema, name }, via: `whose PL/pgSQL body ${body === undefined ? 'does not parse' : 'runs SQL built at run time (EXECUTE)'}`, runsSql: true }];
  return body.analyses.flatMap((a) => usesOf(a, objects));
}

/** A function a statement references, and how when it does not name it. */
export interface FunctionUse {
  readonly ref: FunctionRef;
  /** `operator ###`, `aggregate agg`, `type t`, `an implicit cast or default operator class`. */
  readonly via?: string;
  /** The use runs SQL text or code the gateway cannot see (dynamic SQL in a function body, a function in another language). */
  readonly runsSql?: true;
  /** A built-in (or extension) function an administrator attached to a relation: not the caller's choice, so an allow list does not need it. */
  readonly attachedBuiltin?: true;
}

function implementations(map: ByName, refs: readonly FunctionRef[] | undefined, what: string, out: FunctionUse[]): void {
  for (const r of refs ?? []) {
    for (const impl of map.get(r.name.toLowerCase()) ?? []) {
      // `OPERATOR(s.###)` names one schema; an unqualified name may resolve to any.
      if (r.schema !== undefined && r.schema.toLowerCase() !== impl.schema.toLowerCase()) continue;
      out.push({ ref: impl.fn, via: `${what} ${r.schema !== undefined ? `${r.schema}.` : ''}${r.name}${impl.note !== undefined ? `, ${impl.note}` : ''}`, ...(impl.runsSql === true ? { runsSql: true as const } : {}) });
    }
  }
}

/** Every function statement `s` references itself (not its nested statements), however it is reached. */
export function functionUses(s: StatementAnalysis, objects: UserObjects | undefined): FunctionUse[] {
  const out: FunctionUse[] = s.functions.map((ref) => ({ ref }));
  for (const n of s.columnNotation ?? []) {
    // `t.f` is f(t) only for a function that takes a whole row (record, anyelement, a composite
    // type: no implicit cast turns a row into anything else); otherwise f is t's column.
    const takesRow = ROW_FUNCTIONS.has(n.name.toLowerCase()) || objects?.rowFunctions.has(n.name.toLowerCase()) === true;
    if (n.ofRow !== true || takesRow) out.push({ ref: { name: n.name }, via: 'column notation' });
  }
  if (objects === undefined) return out;
  implementations(objects.aggregates, s.functions, 'aggregate', out);
  if (objects.bodies !== undefined) implementations(objects.bodies, s.functions, 'function', out);
  implementations(objects.operators, s.operators, 'operator', out);
  implementations(objects.types, s.types, 'type', out);
  for (const fn of objects.ambient) out.push({ ref: fn, via: 'an implicit cast or default operator class' });
  if (objects.attached !== undefined) {
    for (const a of attachedFunctions(objects.attached, s.relations)) {
      const via = `${a.what} on ${a.relation}`;
      if (a.opaque === true) out.push({ ref: a.fn, via: `${via}, whose definition does not parse`, runsSql: true });
      else out.push({ ref: a.fn, via, ...(a.shipped ? { attachedBuiltin: true as const } : {}) });
    }
  }
  // What is reached without being named (an operator's, a type's, attached code's function) is
  // followed into its body like a call by name.
  const bodies = objects.bodies;
  if (bodies !== undefined) {
    const reached = out.filter((u) => u.via !== undefined && u.attachedBuiltin !== true);
    for (const u of reached) {
      for (const impl of bodies.get(u.ref.name.toLowerCase()) ?? []) {
        if (u.ref.schema !== undefined && u.ref.schema !== '' && u.ref.schema.toLowerCase() !== impl.schema.toLowerCase()) continue;
        out.push({ ref: impl.fn, via: `${u.via ?? ''}, function ${u.ref.name}${impl.note !== undefined ? `, ${impl.note}` : ''}`, ...(impl.runsSql === true ? { runsSql: true as const } : {}) });
      }
    }
  }
  return out;
}

/** A use through an object (not a call by name) of a built-in that runs SQL text: what it runs is unseen. */
export function hiddenSqlText(uses: readonly FunctionUse[]): FunctionUse | undefined {
  return uses.find((u) => u.via !== undefined && (u.runsSql === true || runsSqlText(u.ref.name)));
}
