// What in the target's catalog could pass for the built-ins the parse-state gate trusts by name
// (policy/readingState.ts): a function outside pg_catalog named like one (`public.lower(int)`
// is what `lower(1)` calls), or an operator outside pg_catalog with a built-in operator's name
// that runs a function written in the database (`1 + 'SJIS'::text`). Created outside the gateway,
// such code may change client_encoding while the statement calling it looks like it changes
// nothing. A cast whose function was written in the database runs wherever a value is converted
// (implicitly on assignment, or by `::type`), with no call named either. Members of installed
// extensions count as shipped code, as they do for lineage.
import { quoteLiteral } from './catalog.js';
import { BUILTIN_OPERATORS, TRUSTED_BUILTINS } from '../../policy/readingState.js';

const list = (names: ReadonlySet<string>) => `ARRAY[${[...names].map(quoteLiteral).join(', ')}]::pg_catalog.text[]`;

/** Up to three such objects, named for a reason; none when the built-in names can be trusted. */
export const SHADOWS_SQL =
  'SELECT s.what FROM (' +
  "SELECT 'function ' || n.nspname || '.' || p.proname AS what, 'pg_catalog.pg_proc'::pg_catalog.regclass AS classid, p.oid AS objid " +
  'FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace ' +
  `WHERE n.nspname <> 'pg_catalog' AND p.proname::pg_catalog.text = ANY (${list(TRUSTED_BUILTINS)}) ` +
  'UNION ALL ' +
  "SELECT 'operator ' || n.nspname || '.' || o.oprname, 'pg_catalog.pg_operator'::pg_catalog.regclass, o.oid " +
  'FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace ' +
  `WHERE n.nspname <> 'pg_catalog' AND o.oprcode::pg_catalog.oid >= 16384 AND o.oprname::pg_catalog.text = ANY (${list(BUILTIN_OPERATORS)}) ` +
  'UNION ALL ' +
  "SELECT 'cast from ' || pg_catalog.format_type(c.castsource, NULL) || ' to ' || pg_catalog.format_type(c.casttarget, NULL), 'pg_catalog.pg_proc'::pg_catalog.regclass, c.castfunc " +
  'FROM pg_catalog.pg_cast c WHERE c.castfunc >= 16384' +
  ") s WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = s.classid AND d.objid = s.objid AND d.deptype = 'e') LIMIT 3";

/** Why built-in names cannot be trusted in this database, from SHADOWS_SQL's rows; undefined when they can. */
export function shadowsReason(rows: readonly (readonly (string | null)[])[]): string | undefined {
  if (rows.length === 0) return undefined;
  return `the database defines ${rows.map((r) => r[0] ?? '?').join(', ')}, which a statement may call by a built-in's name and which may change client_encoding`;
}
