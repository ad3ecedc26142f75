// What a PL/pgSQL (or SQL) function body writes, read with PostgreSQL's own parsers (libpg-query),
// so that a trigger whose function writes only `audit_log` does not count as a route to
// `payments`, while one that writes `payments` does. Every embedded SQL statement is analysed like
// a client's; dynamic SQL (EXECUTE, FOR … IN EXECUTE, OPEN … FOR EXECUTE), a statement that does not
// parse, and a body that defines objects make the body opaque. The functions it calls are listed
// for the caller (writeRouteCatalog.ts) to read in turn.
import { parsePlPgSQLSync } from 'libpg-query';
import { analyzeSql, type FunctionRef, type SqlAnalysis, type StatementAnalysis } from './sql.js';
import { isObject, type Json } from './sqlTree.js';
import { writeSites, type WriteSite } from './writeRoutes.js';

/** What a function body writes itself, and which functions it calls; or why that cannot be known. */
export type BodyWrites = { readonly writes: readonly WriteSite[]; readonly calls: readonly FunctionRef[] } | { readonly opaque: string };

function callsOf(statements: readonly StatementAnalysis[], out: Map<string, FunctionRef>): void {
  for (const s of statements) {
    for (const f of s.functions) out.set(`${f.schema ?? ''}\u0000${f.name}`, f);
    callsOf(s.nested.map((n) => n.statement), out);
  }
}

/**
 * Adds the writes and calls of analysed body statements to `writes` and `calls`; returns why the
 * body is opaque, if it is.
 */
export function bodyStatements(name: string, a: SqlAnalysis, writes: Map<string, WriteSite>, calls: Map<string, FunctionRef>): string | undefined {
  if (!a.ok) return `a statement in function ${name} does not parse`;
  for (const site of writeSites(a)) {
    if (site.class === 'define') return `function ${name} defines objects`;
    if (site.class !== 'call' && site.class !== 'trigger') writes.set(`${site.class}\u0000${site.schema ?? ''}\u0000${site.name}`, site);
  }
  const opaque = a.statements.find((s) => s.opaque !== undefined);
  if (opaque !== undefined) return `function ${name} runs code the gateway cannot see into`;
  callsOf(a.statements, calls);
  return undefined;
}

/** A PL/pgSQL expression (`x > 1`) or assignment (`x := f()`) as a SELECT, for the calls in it. */
function expression(query: string): SqlAnalysis {
  const a = analyzeSql(`SELECT ${query}`);
  const assign = query.indexOf(':=');
  return a.ok || assign < 0 ? a : analyzeSql(`SELECT ${query.slice(assign + 2)}`);
}

const DYNAMIC = new Set(['PLpgSQL_stmt_dynexecute', 'PLpgSQL_stmt_dynfors']);

/** A dollar-quote tag that does not occur in `body`. */
function dollarQuoted(body: string): string {
  let tag = 'body';
  while (body.includes(`$${tag}$`)) tag += 'x';
  return `$${tag}$${body}$${tag}$`;
}

/**
 * The embedded SQL of a PL/pgSQL body, each statement and expression analysed like a client's, and
 * whether it runs SQL built at run time (EXECUTE, FOR … IN EXECUTE, OPEN … FOR EXECUTE); undefined
 * when the body does not parse. `returns` is the function's return type (the parser needs it).
 */
export function plpgsqlStatements(prosrc: string, returns = 'trigger'): { readonly analyses: readonly SqlAnalysis[]; readonly dynamic: boolean } | undefined {
  let tree: Json;
  try {
    tree = parsePlPgSQLSync(`CREATE FUNCTION f() RETURNS ${returns} LANGUAGE plpgsql AS ${dollarQuoted(prosrc)}`) as unknown as Json;
  } catch {
    return undefined;
  }
  const analyses: SqlAnalysis[] = [];
  let dynamic = false;
  const visit = (v: Json): void => {
    if (Array.isArray(v)) return v.forEach(visit);
    if (!isObject(v)) return;
    for (const [k, child] of Object.entries(v)) {
      if (DYNAMIC.has(k) || (k === 'PLpgSQL_stmt_open' && isObject(child) && child.dynquery !== undefined)) dynamic = true;
      if (k === 'PLpgSQL_expr' && isObject(child) && typeof child.query === 'string') analyses.push((child.parseMode ?? 0) === 0 ? analyzeSql(child.query) : expression(child.query));
      else visit(child as Json);
    }
  };
  visit(tree);
  return { analyses, dynamic };
}

/** `name` is for messages; `prosrc` is pg_proc.prosrc of a plpgsql function. */
export function plpgsqlWrites(name: string, prosrc: string, returns = 'trigger'): BodyWrites {
  const body = plpgsqlStatements(prosrc, returns);
  if (body === undefined) return { opaque: `the body of function ${name} does not parse` };
  if (body.dynamic) return { opaque: `function ${name} runs SQL built at run time (EXECUTE)` };
  const writes = new Map<string, WriteSite>();
  const calls = new Map<string, FunctionRef>();
  for (const a of body.analyses) {
    const opaque = bodyStatements(name, a, writes, calls);
    if (opaque !== undefined) return { opaque };
  }
  return { writes: [...writes.values()], calls: [...calls.values()] };
}

/** What a SQL function writes and calls, from its definition (pg_get_functiondef: BEGIN ATOMIC too). */
export function sqlFunctionWrites(name: string, definition: string): BodyWrites {
  const a = analyzeSql(definition);
  const create = a.ok ? a.statements[0] : undefined;
  if (create === undefined) return { opaque: `the definition of function ${name} does not parse` };
  const writes = new Map<string, WriteSite>();
  const calls = new Map<string, FunctionRef>();
  const body = create.nested.filter((n) => n.via === 'function-body').map((n) => n.statement);
  const opaque = create.opaque ?? bodyStatements(name, { ok: true, statements: body }, writes, calls);
  return opaque !== undefined ? { opaque } : { writes: [...writes.values()], calls: [...calls.values()] };
}
