// What a PL/pgSQL function body writes, read with PostgreSQL's own PL/pgSQL parser (libpg-query),
// so that a trigger whose function writes only `audit_log` does not count as a route to
// `payments`, while one that writes `payments` does. Every embedded SQL statement is analysed like
// a client's; dynamic SQL (EXECUTE, FOR … IN EXECUTE, OPEN … FOR EXECUTE), a statement that does not
// parse, and a body that defines objects make the body opaque. Calls of other functions are not
// followed, as for a client's statements (the database's own functions are called, not read).
import { parsePlPgSQLSync } from 'libpg-query';
import { analyzeSql } from './sql.js';
import { isObject, type Json } from './sqlTree.js';
import { writeSites, type WriteSite } from './writeRoutes.js';

export type BodyWrites = { readonly writes: readonly WriteSite[] } | { readonly opaque: string };

const DYNAMIC = new Set(['PLpgSQL_stmt_dynexecute', 'PLpgSQL_stmt_dynfors']);

/** A dollar-quote tag that does not occur in `body`. */
function dollarQuoted(body: string): string {
  let tag = 'body';
  while (body.includes(`$${tag}$`)) tag += 'x';
  return `$${tag}$${body}$${tag}$`;
}

/** `name` is for messages; `prosrc` is pg_proc.prosrc of a plpgsql function returning trigger. */
export function plpgsqlWrites(name: string, prosrc: string): BodyWrites {
  let tree: Json;
  try {
    tree = parsePlPgSQLSync(`CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS ${dollarQuoted(prosrc)}`) as unknown as Json;
  } catch {
    return { opaque: `the body of function ${name} does not parse` };
  }
  const writes = new Map<string, WriteSite>();
  let opaque: string | undefined;
  const visit = (v: Json): void => {
    if (opaque !== undefined) return;
    if (Array.isArray(v)) return v.forEach(visit);
    if (!isObject(v)) return;
    for (const [k, child] of Object.entries(v)) {
      if (DYNAMIC.has(k) || (k === 'PLpgSQL_stmt_open' && isObject(child) && child.dynquery !== undefined)) {
        opaque = `function ${name} runs SQL built at run time (EXECUTE)`;
        return;
      }
      if (k === 'PLpgSQL_expr' && isObject(child) && typeof child.query === 'string' && (child.parseMode ?? 0) === 0) statement(child.query);
      else visit(child as Json);
    }
  };
  const statement = (sql: string): void => {
    const a = analyzeSql(sql);
    if (!a.ok) {
      opaque = `a statement in function ${name} does not parse`;
      return;
    }
    for (const site of writeSites(a)) {
      if (site.class === 'define') opaque ??= `function ${name} defines objects`;
      else writes.set(`${site.class}\u0000${site.schema ?? ''}\u0000${site.name}`, site);
    }
    if (a.statements.some((s) => s.opaque !== undefined)) opaque ??= `function ${name} runs code the gateway cannot see into`;
  };
  visit(tree);
  return opaque !== undefined ? { opaque } : { writes: [...writes.values()] };
}
