// Writes that reach a table by a route the statement does not name. `insert into payments_view`
// writes `payments` when the view is auto-updatable or has an INSTEAD rule or trigger; `insert
// into payments_2024` writes rows that `select … from payments` returns; `delete from orders`
// deletes payments rows through an ON DELETE CASCADE key; `COPY payments FROM STDIN` is an insert
// and `TRUNCATE payments` a delete in all but name. This module finds, in an analysed statement,
// every relation written and every definition that could make a new route (views, rules,
// triggers, SQL function bodies, inheritance), asks a caller-supplied catalog answer what each one
// reaches, and returns the analysis with the reached writes added as nested statements that run
// with their parent (`via: 'write-route'`). evaluate() then judges them like any other statement,
// so a rule `review: { statements: [insert], tables: [payments] }` holds the write through the
// view exactly as it holds the direct one. Reads are routes too: a relation read may be a view (or
// a table with row-level security) whose definition calls functions that write, and whose rows are
// another relation's; a function called may read a table. What a read reaches is added as nested
// statements as well (writes as writes, reads as `select`s of the relation whose rows they return),
// so a rule blocking `select` on `secrets` holds for a view over it in another schema, a
// materialized view, or a function returning its rows. Pure: the catalog is the engine's
// (writeRouteCatalog).
import type { CompiledPolicy } from './schema.js';
import { ruleApplies } from './schema.js';
import type { NestedStatement, RelationRef, SqlAnalysis, StatementAnalysis } from './sql.js';

/**
 * How a relation is written, which decides the routes that carry the write on: an insert reaches
 * inheritance parents and children, rules and triggers; an update or delete also reaches the
 * tables whose foreign keys cascade from it; TRUNCATE (… CASCADE) every referencing table; a
 * definition every route at all (a view, rule or function may later do any of these). `trigger`
 * names the function of CREATE TRIGGER, `call` a function a statement calls: what its body writes
 * is written in every way. `drop` is DROP TABLE: it takes the table's partitions with it (and, with
 * CASCADE, which sql.ts already counts as every table, its inheritance children).
 */
export type WriteClass = 'insert' | 'modify' | 'truncate' | 'define' | 'trigger' | 'call' | 'read' | 'drop';

/** A relation written by a statement, or named by a definition that could become a route. */
export interface WriteSite {
  readonly schema?: string;
  readonly name: string;
  readonly class: WriteClass;
}

/** A relation a write reaches, as the catalog names it. */
export interface ReachedRelation {
  readonly schema: string;
  readonly name: string;
  /** Reached through a rule's action (whose command may differ from the write's). */
  readonly viaRule: boolean;
  /** Reached only by being read (its rows returned through a view or a function): judged as a `select` of it. */
  readonly read?: true;
}

/** What the catalog answered for one site. */
export type RouteAnswer =
  /** `reached` excludes the site's own relation; `found` says whether the catalog knows it. */
  | { readonly found: boolean; readonly reached: readonly ReachedRelation[] }
  /** The write may go where the gateway cannot see (a trigger function, a failed look-up). */
  | { readonly opaque: string };

export const siteKey = (s: WriteSite): string => `${s.class}\u0000${s.schema ?? ''}\u0000${s.name}`;

const ALL_WRITES = ['insert', 'update', 'delete', 'merge'] as const;
/** A partition dropped with its parent: dropped, and its rows deleted. */
const DROP_COMMANDS = ['drop table', 'delete'] as const;
const DML = new Set(['insert', 'update', 'delete', 'merge']);
/** Definitions whose own relations (the table a rule is on, an inheritance parent) become routes. */
const DEFINES_ON_RELATIONS = new Set(['create table', 'create foreign table', 'alter table', 'alter foreign table', 'alter view', 'create rule', 'create trigger']);
/** Definitions whose nested statements (a view's query, a rule's actions, a SQL function's body) become routes. */
const DEFINES_BY_BODY = new Set(['create view', 'create rule', 'create function', 'create procedure']);

/** Drops whose relations may have partitions, which go with them. */
const DROPS_TABLES = new Set(['drop table', 'drop foreign table']);

/** Whether any applicable block or review rule names tables: only then are routes looked for. */
export function routesMatter(policy: CompiledPolicy, groups: readonly string[]): boolean {
  return policy.rules.some((r) => r.action !== 'mask' && r.conditions.tables !== undefined && ruleApplies(r, groups));
}

const bare = (r: RelationRef): { schema?: string; name: string } => (r.schema === undefined ? { name: r.name } : { schema: r.schema, name: r.name });

function allRelations(s: StatementAnalysis, out: { schema?: string; name: string }[], calls: { schema?: string; name: string }[]): void {
  for (const r of s.relations) out.push(bare(r));
  calls.push(...s.functions);
  for (const n of s.nested) if (n.via !== 'write-route') allRelations(n.statement, out, calls);
}

/** Functions whose bodies the catalog is not asked about: the built-ins write no table. */
const builtin = (f: { schema?: string }) => f.schema !== undefined && ['pg_catalog', 'information_schema'].includes(f.schema.toLowerCase());

interface OwnSites {
  readonly sites: readonly WriteSite[];
  readonly keys: readonly string[];
  readonly also: readonly { command: string; relation: { schema?: string; name: string } }[];
}

/**
 * By the statement's `relations` array: the shape cache (shape.ts) hands out copies of one cached
 * analysis that differ only in `text` and share that array, so a statement repeated with other
 * literals is looked at once.
 */
const ownSitesMemo = new WeakMap<readonly RelationRef[], OwnSites>();

function ownSites(s: StatementAnalysis): OwnSites {
  const known = ownSitesMemo.get(s.relations);
  if (known !== undefined) return known;
  const out = collectOwnSites(s);
  ownSitesMemo.set(s.relations, out);
  return out;
}

/** The writes of one statement itself (not its nested statements), and what it is in all but name. */
function collectOwnSites(s: StatementAnalysis): OwnSites {
  const sites: WriteSite[] = [];
  const also: { command: string; relation: { schema?: string; name: string } }[] = [];
  const writes = s.relations.filter((r) => r.access === 'write');
  if (DML.has(s.command)) for (const r of writes) sites.push({ ...bare(r), class: s.command === 'insert' ? 'insert' : 'modify' });
  else if (s.command === 'copy' && s.copy?.direction === 'from' && s.copy.relation !== undefined) {
    sites.push({ ...bare(s.copy.relation), class: 'insert' });
    also.push({ command: 'insert', relation: bare(s.copy.relation) });
  } else if (DROPS_TABLES.has(s.command)) {
    for (const r of writes) {
      sites.push({ ...bare(r), class: 'drop' });
      also.push({ command: 'delete', relation: bare(r) });
    }
  } else if (s.command === 'truncate') {
    for (const r of writes) {
      sites.push({ ...bare(r), class: 'truncate' });
      also.push({ command: 'delete', relation: bare(r) });
    }
  }
  // Every relation read: a view's query, or row-level security, may run functions, and its rows may be another relation's.
  const reads = new Set<string>();
  for (const r of s.relations) {
    if (r.access !== 'read') continue;
    const key = `${r.schema ?? ''}\u0000${r.name}`;
    if (reads.has(key)) continue;
    reads.add(key);
    sites.push({ ...bare(r), class: 'read' });
  }
  const defined: { schema?: string; name: string }[] = [];
  // Functions called now, and those a view, rule or function body will call when it runs.
  const calls: { schema?: string; name: string }[] = s.command.endsWith('trigger') ? [] : [...s.functions];
  if (DEFINES_ON_RELATIONS.has(s.command)) defined.push(...s.relations.map(bare));
  // Added writes are left out, so a statement and its expansion give the same sites (ownSitesMemo).
  if (DEFINES_BY_BODY.has(s.command)) for (const n of s.nested) if (n.via !== 'write-route') allRelations(n.statement, defined, calls);
  for (const d of defined) sites.push({ ...d, class: 'define' });
  const called = new Set<string>();
  for (const f of calls) {
    const key = `${f.schema ?? ''}\u0000${f.name}`;
    if (builtin(f) || called.has(key)) continue;
    called.add(key);
    sites.push({ ...(f.schema !== undefined ? { schema: f.schema } : {}), name: f.name, class: 'call' });
  }
  // Built-in trigger functions (pg_catalog) write nothing but the row they are given.
  const fn = s.command === 'create trigger' ? s.functions[0] : undefined;
  if (fn !== undefined && fn.schema?.toLowerCase() !== 'pg_catalog') sites.push({ ...(fn.schema !== undefined ? { schema: fn.schema } : {}), name: fn.name, class: 'trigger' });
  return { sites, keys: sites.map(siteKey), also };
}

/** A cheap test that lets statements that touch no relation and call nothing (`select 1`) through without collecting anything. */
export function mayWrite(s: StatementAnalysis): boolean {
  return s.command !== 'select' || s.functions.length > 0 || s.relations.some((r) => r.access === 'write') || s.nested.some((n) => mayWrite(n.statement));
}

/** Whether a statement reads any relation (which may be a view that writes, or return another relation's rows). */
function readsRelations(s: StatementAnalysis): boolean {
  return s.relations.some((r) => r.access === 'read') || s.nested.some((n) => readsRelations(n.statement));
}

/** Every site in an analysis, nested statements included, for loading the catalog's answers. */
export function writeSites(analysis: SqlAnalysis): WriteSite[] {
  const out = new Map<string, WriteSite>();
  const visit = (s: StatementAnalysis): void => {
    const own = ownSites(s);
    own.sites.forEach((site, i) => out.set(own.keys[i] as string, site));
    for (const n of s.nested) visit(n.statement);
  };
  if (analysis.ok) analysis.statements.forEach(visit);
  return [...out.values()];
}

/** Whether a statement defines something that could become a route (for cache invalidation). */
export function definesRoutes(analysis: SqlAnalysis): boolean {
  if (!analysis.ok) return false;
  const visit = (s: StatementAnalysis): boolean => DEFINES_ON_RELATIONS.has(s.command) || DEFINES_BY_BODY.has(s.command) || s.command.endsWith('trigger') || s.nested.some((n) => visit(n.statement));
  return analysis.statements.some(visit);
}

const synthetic = (s: StatementAnalysis, command: string, relation: { schema?: string; name: string }, opaque?: string): NestedStatement => ({
  via: 'write-route',
  executes: true,
  statement: {
    kind: command === 'drop table' ? 'drop' : command,
    command,
    text: s.text,
    relations: [{ ...relation, access: command === 'select' ? 'read' : 'write' }],
    schemas: [],
    functions: [],
    unboundedWrite: false,
    nested: [],
    ...(opaque !== undefined ? { opaque } : {}),
  },
});

/** An event trigger runs its function on DDL, any DDL: not a route from one table. */
function triggerOpaque(s: StatementAnalysis): string | undefined {
  return s.command === 'create event trigger' ? 'an event trigger runs a function on DDL that the gateway cannot see into' : undefined;
}

/**
 * The analysis with every reached write added, or the sites the catalog has not answered yet.
 * `answer` returns undefined for a site not looked up yet. Statements without writes or
 * definitions are returned as the same objects (the hot path allocates nothing).
 */
export function expandWrites(analysis: SqlAnalysis, answer: (site: WriteSite) => RouteAnswer | undefined): SqlAnalysis | { readonly missing: readonly WriteSite[] } {
  if (!analysis.ok || !analysis.statements.some((s) => mayWrite(s) || readsRelations(s))) return analysis;
  const missing = writeSites(analysis).filter((s) => answer(s) === undefined);
  if (missing.length > 0) return { missing };

  const visit = (s: StatementAnalysis): StatementAnalysis => {
    const nested = s.nested.map((n) => {
      const inner = visit(n.statement);
      return inner === n.statement ? n : { ...n, statement: inner };
    });
    const added: NestedStatement[] = [];
    const { sites, also } = ownSites(s);
    for (const a of also) added.push(synthetic(s, a.command, a.relation));
    for (const site of sites) {
      const a = answer(site) as RouteAnswer;
      if ('opaque' in a) {
        added.push(synthetic(s, site.class === 'define' ? 'create' : s.command, site, a.opaque));
        continue;
      }
      if (site.class === 'read') {
        // Reading runs what the view's query and row security call: writes are writes of every kind.
        for (const r of a.reached) {
          if (r.read === true) added.push(synthetic(s, 'select', { schema: r.schema, name: r.name }));
          else for (const c of ALL_WRITES) added.push(synthetic(s, c, { schema: r.schema, name: r.name }));
        }
        continue;
      }
      const byBody = site.class === 'trigger' || site.class === 'call';
      const commands = site.class === 'define' || byBody ? ALL_WRITES : site.class === 'drop' ? DROP_COMMANDS : [DML.has(s.command) ? s.command : site.class === 'truncate' ? 'delete' : 'insert'];
      // A definition names its relations so that rules on them see it; a write names them already.
      if (site.class === 'define') for (const c of commands) added.push(synthetic(s, c, site));
      for (const r of a.reached) {
        if (r.read === true) added.push(synthetic(s, 'select', { schema: r.schema, name: r.name }));
        else for (const c of r.viaRule ? ALL_WRITES : commands) added.push(synthetic(s, c, { schema: r.schema, name: r.name }));
      }
    }
    const opaque = triggerOpaque(s);
    if (opaque !== undefined) added.push(synthetic(s, s.command, s.relations[0] ?? { name: '(unknown)' }, opaque));
    const changed = added.length > 0 || nested.some((n, i) => n !== s.nested[i]);
    return changed ? { ...s, nested: [...nested, ...added] } : s;
  };
  const statements = analysis.statements.map(visit);
  return statements.every((s, i) => s === analysis.statements[i]) ? analysis : { ok: true, statements };
}

/** A statement without the writes expandWrites added, to expand it again after the catalog changed. */
export function stripWriteRoutes(s: StatementAnalysis): StatementAnalysis {
  if (!s.nested.some((n) => n.via === 'write-route' || n.statement.nested.length > 0)) return s;
  return { ...s, nested: s.nested.filter((n) => n.via !== 'write-route').map((n) => ({ ...n, statement: stripWriteRoutes(n.statement) })) };
}
