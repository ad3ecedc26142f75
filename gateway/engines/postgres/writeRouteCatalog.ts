// What a write to a relation reaches, from the target's catalog: a view's base relations and the
// relations its rules' actions name (pg_rewrite and pg_depend, so auto-updatable views and INSTEAD
// rules alike), inheritance parents and children (pg_inherits: partitions too), the tables whose
// foreign keys cascade from it (pg_constraint), triggers (pg_trigger) and the functions its column
// defaults, checks and index expressions call (pg_depend) with their SQL and PL/pgSQL bodies read
// for what they write, followed recursively. A relation read reaches what its rules (a view's
// query, a materialized view's) and row-level security policies call and read, and the inheritance
// parents and children whose rows it shares. Asked once per relation per session and cached, on the
// session's catalog connection (TargetCatalog), through the asynchronous path PolicyGate.judge
// already takes for COPY plans; cleared when the session runs DDL, and after a minute. Whatever cannot be classified
// (a failed look-up, too many relations, a function it cannot read) is answered as opaque: the
// policy fails closed.
import {
  definesRoutes,
  expandWrites,
  mayWrite,
  plpgsqlWrites,
  siteKey,
  sqlFunctionWrites,
  type BodyWrites,
  type ReachedRelation,
  type RouteAnswer,
  type SqlAnalysis,
  type WriteClass,
  type WriteSite,
} from '../../policy/index.js';
import { quoteLiteral } from './catalog.js';

/** The catalog connection's one capability this module needs. */
export interface CatalogRows {
  rows(sql: string): Promise<(string | null)[][]>;
}

interface RelationFacts {
  readonly schema: string;
  readonly name: string;
  readonly parents: readonly number[];
  readonly children: readonly number[];
  /** Relations the rules on it (a view's _RETURN rule included) depend on. */
  readonly ruleRefs: readonly number[];
  /** Tables whose foreign keys to it cascade (ON DELETE/UPDATE CASCADE, SET NULL, SET DEFAULT). */
  readonly cascading: readonly number[];
  /** Every table with a foreign key to it (TRUNCATE … CASCADE empties them all). */
  readonly referencing: readonly number[];
  /** Functions of its triggers that are not built-ins (pg_catalog's are known not to write elsewhere). */
  readonly triggerFunctions: readonly number[];
  /** Functions (not built-ins) its defaults, check constraints and index expressions call: they run on writes. */
  readonly expressionFunctions: readonly number[];
  /** Functions (not built-ins) its rules (a view's query) and row-level security policies call: they run on reads. */
  readonly readFunctions: readonly number[];
}

interface Node {
  readonly oid: number;
  /** Reached through a rule's action or a trigger's body (whose command may differ from the write's). */
  readonly viaRule: boolean;
  readonly class: WriteClass;
}

/** Far beyond real schemas; a route wider than this is not followed but refused. */
const MAX_RELATIONS = 1000;
/**
 * How long the session trusts what it looked up. The session's own DDL drops it at once; this
 * bounds how long a route made elsewhere (another session, the database's owner) goes unseen, at
 * the cost of one look-up per relation written per minute.
 */
const ANSWERS_TTL_MS = 60_000;
/** Calls inside function bodies are followed this deep; deeper is opaque. */
const MAX_CALL_DEPTH = 4;
/** Relation kinds a statement can write or define routes through. */
const RELKINDS = "('r', 'v', 'p', 'f', 'm')";

const UNSETTLED = 'a definition that reaches a governed table was sent for review earlier in this transaction, and the gateway sees it only once committed: writes fail closed until then';

const oidList = (text: string | null | undefined): number[] => (text ?? '').match(/\d+/g)?.map(Number) ?? [];

/** Per-session write routes: PolicyGate asks `expand` before judging a statement. */
export class WriteRoutes {
  private readonly answers = new Map<string, RouteAnswer>();
  private readonly facts = new Map<number, RelationFacts>();
  private readonly functions = new Map<number, BodyWrites>();
  private readonly transitive = new Map<number, BodyWrites>();
  /** Bumped whenever cached answers are dropped: verdicts computed before it are stale. */
  generation = 0;
  /**
   * A definition that reaches a governed table went to review (and so may have run, approved)
   * and the target has not been idle outside a transaction since: the catalog connection cannot
   * see the client's uncommitted definitions, so the routes it would report may be incomplete.
   * Until then writes fail closed (and pipelined ones wait for the target, see waitsForCommit).
   */
  private unsettled = false;

  /** When the cached answers were first looked up (undefined: none cached). */
  private since: number | undefined;

  constructor(
    private readonly catalog: CatalogRows | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** The analysis with reached writes added; a promise when the catalog must be asked first. */
  expand(analysis: SqlAnalysis): SqlAnalysis | Promise<void> {
    // Routes another session (or the database's owner) made are seen within ANSWERS_TTL_MS.
    if (this.since !== undefined && this.now() - this.since > ANSWERS_TTL_MS) this.forget();
    const known = (s: WriteSite) => this.answers.get(siteKey(s));
    const answer = !this.unsettled
      ? known
      : (s: WriteSite): RouteAnswer | undefined => {
          // Reads are exempt: a view made in the open transaction was itself held when it was defined.
          if (s.class !== 'define' && s.class !== 'read') return { opaque: UNSETTLED };
          const a = known(s);
          // A name the catalog does not know may be the uncommitted route itself.
          return a !== undefined && 'found' in a && !a.found ? { opaque: UNSETTLED } : a;
        };
    const out = expandWrites(analysis, answer);
    if ('missing' in out) return this.load(out.missing);
    return out;
  }

  /** Whether a pipelined statement must wait until the target has answered what went before. */
  waitsForCommit(analysis: SqlAnalysis): boolean {
    return this.unsettled && analysis.ok && analysis.statements.some(mayWrite);
  }

  /** The target is idle outside a transaction: every definition is committed or gone. */
  settled(): void {
    if (!this.unsettled) return;
    this.unsettled = false;
    this.forget();
  }

  /** The verdict for a statement that may now be forwarded (allowed, or held for review). */
  judged(analysis: SqlAnalysis, verdict: 'allow' | 'block' | 'review'): void {
    if (!analysis.ok || verdict === 'block') return;
    const ddl = analysis.statements.some((s) => ['create', 'alter', 'drop', 'comment', 'security label'].includes(s.kind) || s.nested.some((n) => n.via === 'schema-element'));
    const defines = verdict === 'review' && definesRoutes(analysis);
    if (defines) this.unsettled = true;
    // The DDL may change what any relation reaches; ask the catalog again.
    if (ddl || defines) this.forget();
  }

  private forget(): void {
    this.since = undefined;
    this.answers.clear();
    this.facts.clear();
    this.functions.clear();
    this.transitive.clear();
    this.generation++;
  }

  private async load(sites: readonly WriteSite[]): Promise<void> {
    // Answers read before the caches were dropped may predate the DDL that dropped them: the
    // statement is judged again anyway (it retries), and looks them up afresh.
    const generation = this.generation;
    this.since ??= this.now();
    try {
      for (const site of sites) {
        const answer = await this.route(site);
        if (this.generation !== generation) return;
        this.answers.set(siteKey(site), answer);
      }
    } catch (err) {
      if (this.generation !== generation) return;
      const reason = `the gateway could not look up in the catalog what a write reaches (${(err as Error).message})`;
      for (const site of sites) if (!this.answers.has(siteKey(site))) this.answers.set(siteKey(site), { opaque: reason });
    }
  }

  private async route(site: WriteSite): Promise<RouteAnswer> {
    const label = site.schema === undefined ? site.name : `${site.schema}.${site.name}`;
    if (this.catalog === undefined) return { opaque: `the gateway has no catalog connection to look up what a write to ${label} reaches` };
    if (site.class === 'trigger' || site.class === 'call') return this.functionRoute(site, label);
    const start = await this.resolve(site);
    if (start.length === 0) return { found: false, reached: [] };
    return this.closure(label, start.map((oid) => ({ oid, viaRule: false, class: site.class })), start);
  }

  /**
   * A function called, or named by CREATE TRIGGER: what its body (and the bodies of what it calls)
   * writes, and what that reaches. A name the catalog does not know at all may be a function
   * created or renamed in the client's open transaction: opaque.
   */
  private async functionRoute(site: WriteSite, label: string): Promise<RouteAnswer> {
    const { builtin, oids: fns } = await this.functionsNamed(site);
    if (fns.length === 0 && builtin) return { found: true, reached: [] };
    if (fns.length === 0) return { opaque: `function ${label} is not in the catalog (created or renamed in this transaction?), so the gateway cannot see what it writes` };
    const start: Node[] = [];
    for (const fn of fns) {
      const body = await this.transitiveWrites(fn, 0, new Set());
      if ('opaque' in body) return { opaque: `${site.class === 'trigger' ? 'a trigger would run' : 'the statement calls'} ${body.opaque}` };
      for (const w of body.writes) for (const oid of await this.resolve(w)) start.push({ oid, viaRule: true, class: w.class });
    }
    return this.closure(label, start, []);
  }

  /**
   * The functions a name may denote outside pg_catalog and information_schema (every schema when
   * unqualified: the client's search_path is not ours), and whether a built-in has the name.
   */
  private async functionsNamed(f: { readonly schema?: string; readonly name: string }): Promise<{ builtin: boolean; oids: number[] }> {
    const schema = f.schema === undefined ? 'true' : `n.nspname = ${quoteLiteral(f.schema)}`;
    const rows = await this.catalog?.rows(
      "SELECT p.oid, n.nspname IN ('pg_catalog', 'information_schema') FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace " +
        `WHERE p.proname = ${quoteLiteral(f.name)} AND ${schema}`,
    );
    const all = rows ?? [];
    return { builtin: all.some((r) => r[1] === 't'), oids: all.filter((r) => r[1] !== 't').map((r) => Number(r[0])) };
  }

  /** What a function writes, with the functions it calls followed (MAX_CALL_DEPTH deep). */
  private async transitiveWrites(oid: number, depth: number, visiting: Set<number>): Promise<BodyWrites> {
    const generation = this.generation;
    const known = this.transitive.get(oid);
    if (known !== undefined) return known;
    if (depth > MAX_CALL_DEPTH) return { opaque: `functions calling functions more than ${MAX_CALL_DEPTH} deep` };
    const own = await this.functionWrites(oid);
    if ('opaque' in own || own.calls.length === 0) return own;
    visiting.add(oid);
    const writes = [...own.writes];
    for (const call of own.calls) {
      if (call.schema !== undefined && ['pg_catalog', 'information_schema'].includes(call.schema.toLowerCase())) continue;
      const named = await this.functionsNamed(call);
      if (named.oids.length === 0 && !named.builtin) return { opaque: `function ${call.name}, called by a function, which is not in the catalog` };
      for (const fn of named.oids) {
        if (visiting.has(fn)) continue;
        const inner = await this.transitiveWrites(fn, depth + 1, visiting);
        if ('opaque' in inner) return inner;
        writes.push(...inner.writes);
      }
    }
    visiting.delete(oid);
    const out: BodyWrites = { writes, calls: [] };
    if (this.generation === generation) this.transitive.set(oid, out);
    return out;
  }

  /** Everything the nodes reach, breadth first; `own` (the written relation itself) is not listed. */
  private async closure(label: string, nodes: Node[], own: readonly number[]): Promise<RouteAnswer> {
    // A relation may be reached both by reading and by writing: each is its own node.
    const key = (oid: number, cls: WriteClass) => (cls === 'read' ? -oid : oid);
    const seen = new Map<number, boolean>(nodes.map((n) => [key(n.oid, n.class), n.viaRule]));
    let frontier = nodes;
    while (frontier.length > 0) {
      await this.loadFacts(frontier.map((f) => f.oid));
      const next: Node[] = [];
      const step = (oids: readonly number[], viaRule: boolean, cls: WriteClass) => {
        for (const o of oids) {
          if (seen.has(key(o, cls))) continue;
          seen.set(key(o, cls), viaRule);
          next.push({ oid: o, viaRule, class: cls });
        }
      };
      for (const node of frontier) {
        const f = this.facts.get(node.oid);
        if (f === undefined) continue;
        if (node.class === 'read') {
          // Reading runs the view's query and the row security policies: what their functions write
          // is written, what they read is read; the rows are also those of what the rules name.
          for (const fn of f.readFunctions) {
            const body = await this.transitiveWrites(fn, 0, new Set());
            if ('opaque' in body) return { opaque: `a read of ${label} reaches ${f.schema}.${f.name}, whose view query or row security runs ${body.opaque}` };
            for (const w of body.writes) step(await this.resolve(w), true, w.class);
          }
          step(f.ruleRefs, false, 'read');
          step(f.parents, false, 'read');
          step(f.children, false, 'read');
          continue;
        }
        // A dropped table takes its partitions (and, with CASCADE, its children); nothing runs.
        if (node.class === 'drop') {
          step(f.children, node.viaRule, 'drop');
          continue;
        }
        // A definition names the table a trigger is on; the trigger runs when that table is written.
        if (node.class !== 'define') {
          for (const fn of [...f.triggerFunctions, ...f.expressionFunctions]) {
            const body = await this.transitiveWrites(fn, 0, new Set());
            if ('opaque' in body) return { opaque: `a write to ${label} reaches ${f.schema}.${f.name}, whose triggers or column expressions run ${body.opaque}` };
            for (const w of body.writes) step(await this.resolve(w), true, w.class);
          }
        }
        step(f.parents, node.viaRule, node.class);
        step(f.children, node.viaRule, node.class);
        // A rule's action may be any command: what it reaches is written in every way.
        step(f.ruleRefs, true, node.class === 'define' ? 'define' : 'modify');
        if (node.class === 'modify' || node.class === 'define') step(f.cascading, node.viaRule, node.class);
        if (node.class === 'truncate') step(f.referencing, node.viaRule, 'truncate');
      }
      if (seen.size > MAX_RELATIONS) return { opaque: `a write to ${label} reaches more than ${MAX_RELATIONS} relations` };
      frontier = next;
    }
    const reached: ReachedRelation[] = [];
    for (const [k, viaRule] of seen) {
      const oid = Math.abs(k);
      const f = this.facts.get(oid);
      if (f !== undefined && !own.includes(oid)) reached.push({ schema: f.schema, name: f.name, viaRule, ...(k < 0 ? { read: true as const } : {}) });
    }
    return { found: true, reached };
  }

  /**
   * What a function's own body writes and calls: SQL and PL/pgSQL are read; C and internal
   * functions are compiled code a superuser installed (extensions) and taken to write no table;
   * any other language is opaque.
   */
  private async functionWrites(oid: number): Promise<BodyWrites> {
    const generation = this.generation;
    const known = this.functions.get(oid);
    if (known !== undefined) return known;
    const rows = await this.catalog?.rows(
      'SELECT p.proname, l.lanname, p.prosrc, ' +
        "CASE WHEN l.lanname = 'sql' THEN pg_catalog.pg_get_functiondef(p.oid) END, " +
        "CASE WHEN p.prokind = 'p' THEN 'void' ELSE pg_catalog.concat(CASE WHEN p.proretset THEN 'SETOF ' END, pg_catalog.format_type(p.prorettype, NULL)) END " +
        `FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang WHERE p.oid = ${oid >>> 0}`,
    );
    const [name, language, src, definition, returns] = rows?.[0] ?? [];
    let body: BodyWrites;
    if (name === undefined || name === null) body = { opaque: `a function (OID ${oid}) the catalog does not know` };
    else if (language === 'plpgsql') body = plpgsqlWrites(name, src ?? '', returns ?? 'void');
    else if (language === 'sql') body = sqlFunctionWrites(name, definition ?? '');
    else if (language === 'c' || language === 'internal') body = { writes: [], calls: [] };
    else body = { opaque: `function ${name}, written in ${language ?? 'an unknown language'}, which the gateway cannot see into` };
    if (this.generation === generation) this.functions.set(oid, body);
    return body;
  }

  /**
   * Every relation the name may denote. Unqualified names are matched in every schema: the
   * client's search_path (and its temporary schema) is not the catalog connection's.
   */
  private async resolve(site: WriteSite): Promise<number[]> {
    const schema = site.schema?.toLowerCase() === 'pg_temp' ? "n.nspname LIKE 'pg\\_temp\\_%'" : site.schema === undefined ? 'true' : `n.nspname = ${quoteLiteral(site.schema)}`;
    const rows = await this.catalog?.rows(
      `SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = ${quoteLiteral(site.name)} AND ${schema} AND c.relkind IN ${RELKINDS}`,
    );
    return (rows ?? []).map((r) => Number(r[0]));
  }

  private async loadFacts(oids: readonly number[]): Promise<void> {
    const generation = this.generation;
    const missing = [...new Set(oids)].filter((o) => !this.facts.has(o) && Number.isInteger(o) && o > 0);
    if (missing.length === 0 || this.catalog === undefined) return;
    const rows = await this.catalog.rows(
      'SELECT c.oid, n.nspname, c.relname, ' +
        'ARRAY(SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid)::text, ' +
        'ARRAY(SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid)::text, ' +
        'ARRAY(SELECT DISTINCT d.refobjid FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d ' +
        "ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid " +
        "WHERE r.ev_class = c.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> c.oid)::text, " +
        "ARRAY(SELECT k.conrelid FROM pg_catalog.pg_constraint k WHERE k.contype = 'f' AND k.confrelid = c.oid " +
        "AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd')))::text, " +
        "ARRAY(SELECT k.conrelid FROM pg_catalog.pg_constraint k WHERE k.contype = 'f' AND k.confrelid = c.oid)::text, " +
        'ARRAY(SELECT DISTINCT t.tgfoid FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid ' +
        "WHERE t.tgrelid = c.oid AND NOT t.tgisinternal AND p.pronamespace <> 'pg_catalog'::pg_catalog.regnamespace)::text, " +
        // Functions its column defaults (generated columns too), check constraints and index expressions call.
        'ARRAY(SELECT DISTINCT d.refobjid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid ' +
        "WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.pronamespace <> 'pg_catalog'::pg_catalog.regnamespace AND (" +
        "(d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND d.objid IN (SELECT a.oid FROM pg_catalog.pg_attrdef a WHERE a.adrelid = c.oid)) " +
        "OR (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.objid IN (SELECT k.oid FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid)) " +
        "OR (d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid IN (SELECT i.indexrelid FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid))))::text, " +
        // Functions its rules (a view's or materialized view's query) and row security policies call.
        'ARRAY(SELECT DISTINCT d.refobjid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid ' +
        "WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.pronamespace <> 'pg_catalog'::pg_catalog.regnamespace AND (" +
        "(d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid IN (SELECT r.oid FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid)) " +
        "OR (d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid IN (SELECT y.oid FROM pg_catalog.pg_policy y WHERE y.polrelid = c.oid))))::text " +
        `FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid IN (${missing.join(', ')})`,
    );
    // Facts read before the caches were dropped are not kept (load() drops what they answered).
    if (this.generation !== generation) return;
    for (const [oid, schema, name, parents, children, ruleRefs, cascading, referencing, triggerFunctions, expressionFunctions, readFunctions] of rows) {
      this.facts.set(Number(oid), {
        schema: schema ?? '',
        name: name ?? '',
        parents: oidList(parents),
        children: oidList(children),
        ruleRefs: oidList(ruleRefs),
        cascading: oidList(cascading),
        referencing: oidList(referencing),
        triggerFunctions: oidList(triggerFunctions),
        expressionFunctions: oidList(expressionFunctions),
        readFunctions: oidList(readFunctions),
      });
    }
  }
}
