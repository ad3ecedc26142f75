// Code an administrator attached to relations outside the gateway, which the server runs without
// any statement naming it: triggers, column defaults and generated columns, check and domain
// constraints, index expressions and predicates, row-level security policies, rules and view
// definitions. A statement that touches such a relation runs that code: for rules on `functions`
// its functions count as called by the statement (and are followed like any other call:
// userObjects.ts), and for the parsing state (readingState.ts) a statement that runs code the
// gateway does not trust to leave client_encoding alone is a barrier for what is pipelined
// behind it (engines/postgres/readingGuard.ts).
//
// What runs is found through pg_depend, which records every function and operator an attached
// expression uses, so no expression text has to be parsed. A relation also reaches others: a
// write to a parent reaches its partitions and inheritance children, a delete or update of a
// referenced row reaches the tables whose foreign keys cascade to it, and a view or rule reaches
// the relations its query names. These edges are followed by name, in any schema, like the rest
// of the policy (over-matching is the safe side).
import { analyzeSql, type FunctionRef, type RelationRef, type StatementAnalysis } from './sql.js';
import { runsSqlText } from './functionRefs.js';

/**
 * What runs, two ways. pg_depend records every function and operator an attached expression uses
 * except the built-ins (pinned objects are not recorded), so it names exactly the functions
 * written in the database or shipped by an extension; the built-ins are read from the
 * definitions themselves (pg_get_expr, pg_get_constraintdef, pg_get_triggerdef,
 * pg_get_ruledef, pg_get_indexdef), parsed by PostgreSQL's own parser.
 * Rows: the relation's schema and name, whether the object runs only on writes ('w') or on any
 * access ('a'), what it is, then either the function's schema, name and whether it is shipped
 * ('t': a member of an installed extension; 'f' written in the database), or its definition.
 * Internal triggers (foreign-key checks) run built-in code only and are left out, and so are
 * relations initdb created (OID below 16384), whose attached code is the server's own.
 */
export const ATTACHED_CODE_SQL = `WITH RECURSIVE coltype(relid, typid) AS (
    SELECT a.attrelid, a.atttypid FROM pg_catalog.pg_attribute a WHERE a.attnum > 0 AND NOT a.attisdropped AND a.atttypid >= 16384 AND a.attrelid >= 16384
    UNION SELECT ct.relid, t.typbasetype FROM coltype ct JOIN pg_catalog.pg_type t ON t.oid = ct.typid WHERE t.typtype = 'd'
  ),
  obj(relid, mode, what, classid, objid, def) AS (
    SELECT t.tgrelid, 'w', 'trigger ' || t.tgname, 'pg_catalog.pg_trigger'::pg_catalog.regclass, t.oid, pg_catalog.pg_get_triggerdef(t.oid) FROM pg_catalog.pg_trigger t WHERE NOT t.tgisinternal
    UNION ALL SELECT d.adrelid, 'w', 'default of column ' || a.attname, 'pg_catalog.pg_attrdef'::pg_catalog.regclass, d.oid, 'SELECT ' || pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d
      JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
    UNION ALL SELECT c.conrelid, 'w', 'constraint ' || c.conname, 'pg_catalog.pg_constraint'::pg_catalog.regclass, c.oid, 'ALTER TABLE t ADD ' || pg_catalog.pg_get_constraintdef(c.oid)
      FROM pg_catalog.pg_constraint c WHERE c.conrelid <> 0 AND c.contype IN ('c', 'x')
    UNION ALL SELECT ct.relid, 'w', 'domain constraint ' || c.conname, 'pg_catalog.pg_constraint'::pg_catalog.regclass, c.oid, 'ALTER DOMAIN d ADD ' || pg_catalog.pg_get_constraintdef(c.oid)
      FROM coltype ct JOIN pg_catalog.pg_constraint c ON c.contypid = ct.typid
    UNION ALL SELECT ct.relid, 'w', 'default of domain ' || t.typname, 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid, 'SELECT ' || t.typdefault FROM coltype ct JOIN pg_catalog.pg_type t ON t.oid = ct.typid WHERE t.typtype = 'd'
    UNION ALL SELECT i.indrelid, 'w', 'index ' || c.relname, 'pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid, CASE WHEN i.indexprs IS NOT NULL OR i.indpred IS NOT NULL THEN pg_catalog.pg_get_indexdef(i.indexrelid) END
      FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
    UNION ALL SELECT p.polrelid, 'a', 'row security policy ' || p.polname, 'pg_catalog.pg_policy'::pg_catalog.regclass, p.oid,
      'SELECT ' || pg_catalog.concat_ws(', ', pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)) FROM pg_catalog.pg_policy p
    UNION ALL SELECT r.ev_class, 'a', CASE WHEN r.rulename = '_RETURN' THEN 'view definition' ELSE 'rule ' || r.rulename END, 'pg_catalog.pg_rewrite'::pg_catalog.regclass, r.oid, pg_catalog.pg_get_ruledef(r.oid)
      FROM pg_catalog.pg_rewrite r
  ),
  fn(relid, mode, what, fid) AS (
    SELECT o.relid, o.mode, o.what, d.refobjid FROM obj o JOIN pg_catalog.pg_depend d ON d.classid = o.classid AND d.objid = o.objid AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
    UNION ALL SELECT o.relid, o.mode, o.what, op.oprcode::pg_catalog.oid FROM obj o JOIN pg_catalog.pg_depend d ON d.classid = o.classid AND d.objid = o.objid AND d.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass
      JOIN pg_catalog.pg_operator op ON op.oid = d.refobjid
  ),
  found(relid, mode, what, fn_schema, fn_name, shipped, def) AS (
    SELECT DISTINCT f.relid, f.mode, f.what, pn.nspname, p.proname,
      CASE WHEN p.oid < 16384 OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND e.objid = p.oid
        AND e.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND e.deptype = 'e') THEN 't' ELSE 'f' END, NULL::pg_catalog.text
    FROM fn f JOIN pg_catalog.pg_proc p ON p.oid = f.fid JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
    UNION ALL SELECT o.relid, o.mode, o.what, NULL, NULL, NULL, o.def FROM obj o WHERE o.def IS NOT NULL
  )
  SELECT rn.nspname, rc.relname, f.mode, f.what, f.fn_schema, f.fn_name, f.shipped, f.def
  FROM found f JOIN pg_catalog.pg_class rc ON rc.oid = f.relid JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
  WHERE rc.relkind IN ('r', 'p', 'v', 'm', 'f') AND rc.oid >= 16384`;

/**
 * One row per edge (relation, relation it reaches, 'w' when only writes follow it, 'a' for any
 * access): partitions and inheritance children, tables whose foreign keys cascade from a
 * referenced table, and what views and rules name.
 */
export const ATTACHED_REACH_SQL = `SELECT pn.nspname, pc.relname, e.mode, cn.nspname, cc.relname FROM (
    SELECT i.inhparent AS src, i.inhrelid AS dst, 'a' AS mode FROM pg_catalog.pg_inherits i
    UNION SELECT c.confrelid, c.conrelid, 'w' FROM pg_catalog.pg_constraint c WHERE c.contype = 'f' AND (c.confdeltype IN ('c', 'n', 'd') OR c.confupdtype IN ('c', 'n', 'd'))
    UNION SELECT r.ev_class, d.refobjid, 'a' FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> r.ev_class
  ) e JOIN pg_catalog.pg_class pc ON pc.oid = e.src JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
  JOIN pg_catalog.pg_class cc ON cc.oid = e.dst JOIN pg_catalog.pg_namespace cn ON cn.oid = cc.relnamespace WHERE e.src >= 16384`;

/** A function attached to a relation. */
export interface AttachedFunction {
  /** The relation it is attached to (the one the statement names, or one reached from it). */
  readonly relation: string;
  /** What runs it: `trigger audit_row`, `default of column id`, `row security policy p`. */
  readonly what: string;
  /** Its schema is absent when it was read from a definition by name (a built-in). */
  readonly fn: FunctionRef;
  /** Runs only when the relation is written (a trigger, a default, a check), not when it is read. */
  readonly writesOnly: boolean;
  /** Created by initdb or an installed extension (code written in the database is found through pg_depend). */
  readonly shipped: boolean;
  /** The definition did not parse: what it runs is unknown. */
  readonly opaque?: true;
}

interface Attachment {
  readonly schema: string;
  readonly fns: AttachedFunction[];
  readonly reaches: { readonly schema: string; readonly name: string; readonly writesOnly: boolean }[];
}

/** The database's attached code, by lower-cased relation name (every schema: search_path is the client's). */
export interface AttachedCode {
  readonly byName: ReadonlyMap<string, readonly Attachment[]>;
}

export const NO_ATTACHED_CODE: AttachedCode = Object.freeze({ byName: new Map() });

type Rows = readonly (readonly (string | null)[])[];

export function attachedCodeFromRows(fnRows: Rows, reachRows: Rows): AttachedCode {
  const byName = new Map<string, Attachment[]>();
  const entry = (schema: string, name: string): Attachment => {
    const key = name.toLowerCase();
    const list = byName.get(key) ?? [];
    let a = list.find((x) => x.schema === schema);
    if (a === undefined) {
      a = { schema, fns: [], reaches: [] };
      list.push(a);
      byName.set(key, list);
    }
    return a;
  };
  for (const [schema, name, mode, what, fnSchema, fnName, shipped, def] of fnRows) {
    if (name === null || name === undefined) continue;
    const base = { relation: `${schema ?? ''}.${name}`, what: what ?? 'attached code', writesOnly: mode === 'w' };
    const fns = entry(schema ?? '', name).fns;
    if (fnName !== null && fnName !== undefined) fns.push({ ...base, fn: { schema: fnSchema ?? '', name: fnName }, shipped: shipped === 't' });
    else if (def !== null && def !== undefined) fns.push(...definitionCalls(def, base));
  }
  for (const [schema, name, mode, toSchema, toName] of reachRows) {
    if (name === null || name === undefined || toName === null || toName === undefined) continue;
    entry(schema ?? '', name).reaches.push({ schema: toSchema ?? '', name: toName, writesOnly: mode === 'w' });
  }
  return { byName };
}

/**
 * The functions a definition calls by name. What it calls that was written in the database also
 * has a pg_depend row (with its schema and whether it is shipped); what only parsing finds is a
 * built-in. A definition that does not parse runs unknown code.
 */
function definitionCalls(def: string, base: Pick<AttachedFunction, 'relation' | 'what' | 'writesOnly'>): AttachedFunction[] {
  const a = analyzeSql(def);
  if (!a.ok) return [{ ...base, fn: { name: base.what }, shipped: false, opaque: true }];
  const out: AttachedFunction[] = [];
  const visit = (list: readonly StatementAnalysis[]) => {
    for (const st of list) {
      for (const fn of st.functions) out.push({ ...base, fn, shipped: true });
      if (st.opaque !== undefined) out.push({ ...base, fn: { name: base.what }, shipped: false, opaque: true });
      visit(st.nested.map((n) => n.statement));
    }
  };
  visit(a.statements);
  return out;
}

/** Bounds the walk over reached relations (cycles stop where they close; this caps fan-out). */
const MAX_REACHED = 1000;

/**
 * Every function that touching `relations` runs through attached code: a relation read runs its
 * policies, rules and view definition; one written also its triggers, defaults and checks, and the
 * relations a write reaches. Names match in any schema unless the reference names one.
 */
export function attachedFunctions(code: AttachedCode, relations: readonly RelationRef[]): AttachedFunction[] {
  if (code.byName.size === 0 || relations.length === 0) return [];
  const out: AttachedFunction[] = [];
  const seen = new Set<string>();
  const pending: { schema: string | undefined; name: string; write: boolean }[] = relations.map((r) => ({ schema: r.schema, name: r.name, write: r.access === 'write' }));
  while (pending.length > 0 && seen.size < MAX_REACHED) {
    const r = pending.pop() as (typeof pending)[number];
    for (const a of code.byName.get(r.name.toLowerCase()) ?? []) {
      if (r.schema !== undefined && r.schema.toLowerCase() !== a.schema.toLowerCase()) continue;
      const key = `${r.write ? 'w' : 'r'}\u0000${a.schema}\u0000${r.name.toLowerCase()}`;
      if (seen.has(key)) continue;
      seen.add(key);
      for (const f of a.fns) if (r.write || !f.writesOnly) out.push(f);
      for (const e of a.reaches) if (r.write || !e.writesOnly) pending.push({ schema: e.schema, name: e.name, write: r.write });
    }
  }
  return out;
}

/** Built-ins that change settings or run SQL text: shipped, but not trusted to leave client_encoding alone. */
const SETTING_CHANGERS = new Set(['set_config', 'pg_reload_conf']);

/**
 * Whether attached function `f` may change how the server reads text: anything not shipped (its
 * body is code the gateway did not judge), and shipped code that changes settings or runs SQL text.
 */
export function mayChangeReading(f: AttachedFunction): boolean {
  return !f.shipped || SETTING_CHANGERS.has(f.fn.name.toLowerCase()) || runsSqlText(f.fn.name);
}
