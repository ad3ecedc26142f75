// The identity prefix of a session's application_name. The gateway starts every target session as
// `sluice:<identity>[:<program>]` (engines/postgres/startupSettings.ts) so that operators reading
// pg_stat_activity and the server log see who is behind it; application_name is a user-settable
// setting, so a statement could replace it. This module says which statements would drop the
// prefix (refused with 42501 before they run, rule `sluice:application-name`), and whether a value
// the target reports keeps it (the engine ends a session whose target reports one that does not:
// the backstop for what no statement text shows, such as a function written outside the gateway).
import { loadModule, parseSync } from 'libpg-query';
import { isObject, stringConstant, stringList, typedNode, type Json } from './sqlTree.js';

await loadModule();

export const APPLICATION_NAME_RULE = 'sluice:application-name';

/** PostgreSQL's NAMEDATALEN - 1: the target keeps this many bytes of application_name. */
const MAX_BYTES = 63;

/** Texts that cannot touch application_name are not parsed again: they name neither it nor set_config, and spell no identifier in Unicode escapes. */
const MAY_TOUCH = /application_name|set_config|u&/i;

/**
 * Whether `value` (as the target reports it, or as a statement sets it) keeps `own`, the session's
 * `sluice:<identity>` prefix: it is `own` (cut to the target's 63 bytes) or `own:` and more. The
 * target replaces characters outside printable ASCII (PostgreSQL 15: each byte by `?`, 16 and
 * later by `\xNN`), so an identity with such characters is compared up to the first of them.
 */
export function keepsIdentity(value: string, own: string): boolean {
  const ascii = /[^\x20-\x7e]/.exec(own);
  if (ascii !== null) return value.startsWith(own.slice(0, ascii.index));
  if (value === own || value.startsWith(`${own}:`)) return true;
  return Buffer.byteLength(own) > MAX_BYTES && value === Buffer.from(own).subarray(0, MAX_BYTES).toString('latin1');
}

/**
 * Why running `text` would give the session an application_name without `own`, its identity
 * prefix; undefined when it cannot. Refused: `SET [SESSION|LOCAL] application_name` (also in a
 * function's `SET` clause, `ALTER ROLE/DATABASE/SYSTEM … SET`) to a value without the prefix;
 * `set_config('application_name', v, …)` with such a value or a computed one; and a `DO` block or
 * function body that names application_name (code the gateway does not read here). A set_config
 * whose setting name is computed is left to the target's report (ServerFlow ends the session). `RESET`, `SET … TO DEFAULT` and `RESET ALL`
 * go back to the name the gateway gave at startup and are allowed. Text that does not parse is
 * left to the policy's own handling of unparseable SQL.
 */
export function applicationNameRefusal(text: string, own: string): string | undefined {
  if (!MAY_TOUCH.test(text)) return undefined;
  let tree: Json;
  try {
    tree = parseSync(text) as Json;
  } catch {
    return undefined;
  }
  return walk(tree, own);
}

function walk(node: Json, own: string): string | undefined {
  if (Array.isArray(node)) {
    for (const item of node) {
      const found = walk(item, own);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (!isObject(node)) return undefined;
  const typed = typedNode(node);
  if (typed !== undefined) {
    const found = judgeNode(typed[0], typed[1], own);
    if (found !== undefined) return found;
  }
  // ALTER ROLE/DATABASE … SET hold their VariableSetStmt inline, untyped.
  if (isObject(node.setstmt)) {
    const found = judgeNode('VariableSetStmt', node.setstmt, own);
    if (found !== undefined) return found;
  }
  for (const v of Object.values(node)) {
    const found = walk(v, own);
    if (found !== undefined) return found;
  }
  return undefined;
}

const must = (own: string) => `application_name must keep the gateway's "${own}" prefix, which names who is behind this session in pg_stat_activity and the server log; set "${own}:NAME" or RESET it`;

function judgeNode(type: string, n: Record<string, Json>, own: string): string | undefined {
  switch (type) {
    case 'VariableSetStmt': {
      if (typeof n.name !== 'string' || n.name.toLowerCase() !== 'application_name' || n.kind !== 'VAR_SET_VALUE') return undefined;
      const args = Array.isArray(n.args) ? n.args : [];
      const value = args.length === 1 ? stringConstant(args[0] as Json) : undefined;
      return value !== undefined && keepsIdentity(value, own) ? undefined : `SET application_name: ${must(own)}`;
    }
    case 'FuncCall': {
      const name = stringList(n.funcname as Json);
      if (name === undefined || (name[name.length - 1] as string).toLowerCase() !== 'set_config') return undefined;
      if (name.length > 1 && (name[0] as string).toLowerCase() !== 'pg_catalog') return undefined;
      const args = Array.isArray(n.args) ? n.args : [];
      const setting = stringConstant(args[0] as Json);
      // A computed name is left to the target's report (the session ends if it renamed itself):
      // refusing every computed set_config here would also refuse what the parse-state gate allows.
      if (setting === undefined || setting.toLowerCase() !== 'application_name') return undefined;
      const value = stringConstant(args[1] as Json);
      return value !== undefined && keepsIdentity(value, own) ? undefined : `set_config('application_name', …): ${must(own)}`;
    }
    case 'DoStmt':
    case 'CreateFunctionStmt': {
      // The body is a string here; what it runs is not read by this check.
      const body = JSON.stringify(type === 'DoStmt' ? n.args : (n.options ?? null)) + JSON.stringify(n.sql_body ?? null);
      return /application_name/i.test(body) ? `code that names application_name (a DO block or function body) could change it; ${must(own)}` : undefined;
    }
  }
  return undefined;
}

/** pg_catalog.set_config's OID: fixed in every PostgreSQL release (pg_proc.dat). */
export const SET_CONFIG_OID = 2078;

/**
 * Why a FunctionCall (the protocol's fast path, which names a function by OID and carries its
 * arguments as values) would give the session an application_name without `own`; undefined when
 * it cannot. Only a direct call of set_config is visible here; a function of the target's own
 * that calls it is left to the target's report, as for statements.
 */
export function functionCallRefusal(functionOid: number, args: readonly (string | Buffer | null)[], own: string): string | undefined {
  if (functionOid !== SET_CONFIG_OID || args.length < 2) return undefined;
  const text = (a: string | Buffer | null | undefined) => (a === null || a === undefined ? undefined : typeof a === 'string' ? a : a.toString('utf8'));
  if (text(args[0])?.toLowerCase() !== 'application_name') return undefined;
  const value = text(args[1]);
  return value !== undefined && keepsIdentity(value, own) ? undefined : `set_config('application_name', …): ${must(own)}`;
}
