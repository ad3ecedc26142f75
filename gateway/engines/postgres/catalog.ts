// The gateway's own look-ups in the target's catalog, for masking: table OIDs from RowDescription
// to schema, table and column names; view definitions to the base columns they read; relation
// names (COPY) and function OIDs (FunctionCall) to what they are. They run on a separate,
// short-lived connection with the held credential — never on the client's own connection, whose
// transaction state (an aborted transaction, an open COPY) must stay exactly what the client
// made it — opened on the first look-up of a session, kept while look-ups follow, closed when idle.
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { analyzeSql, USER_OBJECTS_SQL, USER_SQL_FUNCTIONS_SQL, userObjectsFromRows, viewColumnSources, type ColumnNameResolver, type ColumnSource, type FunctionKind, type NamedRelation, type QualifiedRef, type RelationFacts, type ResolvedRelation, type UserObjects } from '../../policy/index.js';
import { ATTACHED_CODE_SQL, ATTACHED_REACH_SQL, attachedCodeFromRows } from '../../policy/attachedCode.js';
import type { PostgresTarget } from '../../model.js';
import { decodeErrorFields } from './codec/backend.js';
import { createBackendFramer } from './codec/framer.js';
import { MessageWriter } from './codec/wire.js';
import { connectUpstream } from './upstream.js';

/** How long an unused catalog connection stays open. */
const IDLE_MS = 5_000;
/** Views over views are followed this deep; further sources are kept as they are named. */
const MAX_VIEW_DEPTH = 4;

export interface CatalogOptions {
  readonly connectionName: string;
  readonly target: PostgresTarget;
  readonly database: string;
  readonly timeoutMs: number;
  readonly log: Logger;
  readonly identityName: string;
}

type Row = (string | null)[];

/** How lineage look-ups are keyed: `schema\0name`, the schema empty when unqualified. */
export const lineageKey = (r: QualifiedRef): string => `${r.schema ?? ''}\u0000${r.name}`;

/** `"name"` with embedded quotes doubled. */
export function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** A dollar-quoted literal whose tag does not occur in `s` (independent of standard_conforming_strings). */
export function quoteLiteral(s: string): string {
  let tag = 'q';
  while (s.includes(`$${tag}$`)) tag += 'q';
  return `$${tag}$${s}$${tag}$`;
}

/** Catalog look-ups for one session; answers are cached for the session's life. */
export class TargetCatalog implements ColumnNameResolver {
  private socket: Socket | undefined;
  private opening: Promise<Socket> | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly byOid = new Map<number, ResolvedRelation>();
  private readonly byName = new Map<string, number | null>();

  constructor(private readonly opts: CatalogOptions) {}

  /** The relation if its OID was resolved before, else undefined. */
  cached(oid: number): ResolvedRelation | undefined {
    return this.byOid.get(oid);
  }

  async resolve(oids: readonly number[]): Promise<ReadonlyMap<number, ResolvedRelation>> {
    await this.load(oids, 0);
    const out = new Map<number, ResolvedRelation>();
    for (const o of oids) {
      const r = this.byOid.get(o);
      if (r) out.set(o, r);
    }
    return out;
  }

  async relationColumns(relation: { readonly schema?: string; readonly name: string }): Promise<ResolvedRelation | undefined> {
    const oid = await this.oidOf(relation.schema, relation.name);
    if (oid === undefined) return undefined;
    await this.load([oid], 0);
    return this.byOid.get(oid) ?? undefined;
  }

  /**
   * Every relation named `name` (in `schema`, or in any schema: the client's search_path is not
   * this connection's), with the tables each inherits from or is a partition of.
   */
  async relationsNamed(relation: { readonly schema?: string; readonly name: string }): Promise<NamedRelation[]> {
    const rows = await this.query(
      'SELECT c.oid, (WITH RECURSIVE up(oid) AS (SELECT inhparent FROM pg_catalog.pg_inherits WHERE inhrelid = c.oid ' +
        'UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.oid) ' +
        'SELECT pg_catalog.json_agg(pg_catalog.json_build_array(an.nspname, ac.relname)) FROM up ' +
        'JOIN pg_catalog.pg_class ac ON ac.oid = up.oid JOIN pg_catalog.pg_namespace an ON an.oid = ac.relnamespace) ' +
        'FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ' +
        `WHERE c.relname = ${quoteLiteral(relation.name)}${relation.schema === undefined ? '' : ` AND n.nspname = ${quoteLiteral(relation.schema)}`}`,
    );
    const oids = rows.map((r) => Number(r[0]));
    await this.load(oids, 0);
    const out: NamedRelation[] = [];
    rows.forEach(([, up], i) => {
      const rel = this.byOid.get(oids[i] as number);
      const ancestors = up === null || up === undefined ? [] : (JSON.parse(up) as [string, string][]).map(([schema, table]) => ({ schema, table }));
      if (rel !== undefined) out.push({ ...rel, ancestors });
    });
    return out;
  }

  /**
   * Whether any function named `name` (any schema, any overload) was written in the database in
   * SQL or a procedural language — its body can read and store anything — or none exists yet.
   * Built-in functions have OIDs below FirstNormalObjectId (16384).
   */
  async functionIsUserCode(name: string): Promise<boolean> {
    const rows = await this.query(
      "SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE p.oid >= 16384 AND l.lanname NOT IN ('c', 'internal')) " +
        `FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang WHERE p.proname = ${quoteLiteral(name)}`,
    );
    const [all, user] = rows[0] ?? ['0', '0'];
    return Number(all) === 0 || Number(user) > 0;
  }

  /** Schema and name of a function by OID (FunctionCall names none). */
  async functionName(oid: number): Promise<{ schema: string; name: string } | undefined> {
    const rows = await this.query(`SELECT n.nspname, p.proname FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = ${oid >>> 0}`);
    const r = rows[0];
    return r ? { schema: r[0] ?? '', name: r[1] ?? '' } : undefined;
  }

  /** The target's user-defined operators, aggregates, types and casts with their functions, its functions' bodies and the code attached to its relations. */
  async userObjects(): Promise<UserObjects> {
    const objects = await this.query(USER_OBJECTS_SQL);
    const functions = await this.query(USER_SQL_FUNCTIONS_SQL);
    return userObjectsFromRows(objects, functions, attachedCodeFromRows(await this.query(ATTACHED_CODE_SQL), await this.query(ATTACHED_REACH_SQL)));
  }

  /** Runs a read-only query on the catalog connection (text values, NULL as null): writeRouteCatalog.ts. */
  rows(sql: string): Promise<Row[]> {
    return this.query(sql);
  }

  /**
   * For result-column lineage: every relation each name could denote (an unqualified name in any
   * schema, since the client's search_path is not the catalog connection's), with its columns
   * and, for views, its definition. Keyed by lineageKey().
   */
  async lineageRelations(refs: readonly QualifiedRef[]): Promise<Map<string, RelationFacts[]>> {
    const names = [...new Set(refs.map((r) => r.name))];
    const rows = await this.query(
      'SELECT n.nspname, c.relname, c.relkind, ' +
        "CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END, " +
        '(SELECT pg_catalog.array_to_json(pg_catalog.array_agg(a.attname::text ORDER BY a.attnum))::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) ' +
        'FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ' +
        `WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND c.relname IN (${names.map(quoteLiteral).join(', ')})`,
    );
    const facts = rows.map(([schema, name, kind, definition, columns]): RelationFacts => {
      const f = { schema: schema ?? '', name: name ?? '', kind: kind === 'v' || kind === 'm' ? ('view' as const) : ('table' as const), columns: JSON.parse(columns ?? '[]') as string[] };
      return definition === null || definition === undefined ? f : { ...f, definition };
    });
    return new Map(refs.map((r) => [lineageKey(r), facts.filter((f) => f.name === r.name && (r.schema === undefined || f.schema === r.schema))]));
  }

  /**
   * For lineage: what calling each function name can do (FunctionKind). Shipped means an OID
   * below 16384 (created by initdb) or a member of an installed extension; `user` also when no
   * function of that name exists yet.
   */
  async functionKinds(refs: readonly QualifiedRef[]): Promise<Map<string, FunctionKind>> {
    const names = [...new Set(refs.map((r) => r.name))];
    const rows = await this.query(
      'SELECT n.nspname, p.proname, CASE WHEN p.oid < 16384 OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d ' +
        "WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e') " +
        "THEN p.provolatile::text ELSE 'user' END FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace " +
        `WHERE p.proname IN (${names.map(quoteLiteral).join(', ')})`,
    );
    return new Map(
      refs.map((r): [string, FunctionKind] => {
        const found = rows.filter(([schema, name]) => name === r.name && (r.schema === undefined || schema === r.schema)).map((f) => f[2]);
        const kind: FunctionKind = found.length === 0 || found.includes('user') ? 'user' : found.includes('v') ? 'volatile' : 'stable';
        return [lineageKey(r), kind];
      }),
    );
  }
  /**
   * For lineage: per operator name, `user` when an operator of that name (any schema, any
   * argument types: the gateway does not know the operands' types) runs a function written in the
   * database — its code, restriction or join estimator — and `stable` when all are shipped (OID
   * below 16384 or part of an installed extension). A name with no operator is `user` too.
   */
  async operatorKinds(refs: readonly QualifiedRef[]): Promise<Map<string, FunctionKind>> {
    const names = [...new Set(refs.map((r) => r.name))];
    const shipped = (col: string) =>
      `(${col} = 0 OR ${col} < 16384 OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass ` +
      `AND d.objid = ${col} AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'))`;
    const rows = await this.query(
      `SELECT n.nspname, o.oprname, CASE WHEN ${shipped('o.oprcode::pg_catalog.oid')} AND ${shipped('o.oprrest::pg_catalog.oid')} AND ${shipped('o.oprjoin::pg_catalog.oid')} THEN 'stable' ELSE 'user' END ` +
        'FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace ' +
        `WHERE o.oprname IN (${names.map(quoteLiteral).join(', ')})`,
    );
    return new Map(
      refs.map((r): [string, FunctionKind] => {
        const found = rows.filter(([schema, name]) => name === r.name && (r.schema === undefined || schema === r.schema)).map((f) => f[2]);
        return [lineageKey(r), found.length === 0 || found.includes('user') ? 'user' : 'stable'];
      }),
    );
  }


  close(): void {
    this.closed = true;
    clearTimeout(this.idleTimer);
    this.socket?.destroy();
    this.socket = undefined;
  }

  private async oidOf(schema: string | undefined, name: string): Promise<number | undefined> {
    const key = `${schema ?? ''}\u0000${name}`;
    if (!this.byName.has(key)) {
      const qualified = schema === undefined ? quoteIdent(name) : `${quoteIdent(schema)}.${quoteIdent(name)}`;
      const rows = await this.query(`SELECT pg_catalog.to_regclass(${quoteLiteral(qualified)})::oid`);
      const v = rows[0]?.[0];
      this.byName.set(key, v === null || v === undefined ? null : Number(v));
    }
    return this.byName.get(key) ?? undefined;
  }

  /** Resolves OIDs not yet cached, following view definitions to their base columns. */
  private async load(oids: readonly number[], depth: number): Promise<void> {
    const missing = [...new Set(oids)].filter((o) => !this.byOid.has(o) && Number.isInteger(o) && o > 0);
    if (missing.length === 0) return;
    const rows = await this.query(
      'SELECT c.oid, n.nspname, c.relname, c.relkind, a.attnum, a.attname, ' +
        "CASE WHEN c.relkind IN ('v', 'm') AND a.attnum = 1 THEN pg_catalog.pg_get_viewdef(c.oid) END " +
        'FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ' +
        'LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ' +
        `WHERE c.oid IN (${missing.join(', ')}) ORDER BY c.oid, a.attnum`,
    );
    const found = new Map<number, { schema: string; table: string; columns: Map<number, string>; viewdef?: string }>();
    for (const [oid, schema, table, , attnum, attname, viewdef] of rows) {
      const o = Number(oid);
      let rel = found.get(o);
      if (!rel) found.set(o, (rel = { schema: schema ?? '', table: table ?? '', columns: new Map() }));
      if (attnum !== null && attnum !== undefined && attname !== null && attname !== undefined) rel.columns.set(Number(attnum), attname);
      if (viewdef) rel.viewdef = viewdef;
    }
    for (const o of missing) {
      const rel = found.get(o);
      // Not cached: a table created in the client's open transaction is invisible here until it
      // commits, and must not stay unknown (redacted) for the rest of the session.
      if (!rel) continue;
      const resolved: { schema: string; table: string; columns: Map<number, string>; sources?: Map<number, readonly ColumnSource[]> } = { schema: rel.schema, table: rel.table, columns: rel.columns };
      if (rel.viewdef !== undefined) resolved.sources = await this.viewSources(rel.viewdef, rel.columns, depth);
      this.byOid.set(o, resolved);
    }
  }

  /**
   * attnum → base columns for a view. Untraceable definitions count every column as computed from
   * every relation the definition reads; sources that are views themselves are followed.
   */
  private async viewSources(viewdef: string, columns: ReadonlyMap<number, string>, depth: number): Promise<Map<number, readonly ColumnSource[]>> {
    const traced = viewColumnSources(viewdef);
    const out = new Map<number, readonly ColumnSource[]>();
    let all: ColumnSource[] | undefined;
    if (traced === undefined) {
      const a = analyzeSql(viewdef);
      const rels = a.ok ? a.statements.flatMap((s) => [s, ...s.nested.map((n) => n.statement)]).flatMap((s) => s.relations) : [];
      all = rels.map((r) => (r.schema === undefined ? { table: r.name, column: '*' } : { schema: r.schema, table: r.name, column: '*' }));
    }
    for (const attnum of columns.keys()) {
      const direct = all ?? traced?.[attnum - 1] ?? [];
      out.set(attnum, depth < MAX_VIEW_DEPTH ? await this.expand(direct, depth + 1) : direct);
    }
    return out;
  }

  /** Replaces sources that name a view by what that view's column is computed from. */
  private async expand(sources: readonly ColumnSource[], depth: number): Promise<ColumnSource[]> {
    const out: ColumnSource[] = [];
    for (const s of sources) {
      out.push(s);
      const oid = await this.oidOf(s.schema, s.table);
      if (oid === undefined) continue;
      await this.load([oid], depth);
      const rel = this.byOid.get(oid);
      if (!rel?.sources) continue;
      for (const [attnum, name] of rel.columns) {
        if (s.column === '*' || s.column === name) out.push(...(rel.sources.get(attnum) ?? []));
      }
    }
    return out;
  }

  /** Runs one simple query on the catalog connection (serialized); text values, NULL as null. */
  private query(sql: string): Promise<Row[]> {
    const run = this.chain.then(() => this.exchange(sql));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async exchange(sql: string): Promise<Row[]> {
    if (this.closed) throw new Error('the session has ended');
    clearTimeout(this.idleTimer);
    const socket = this.socket ?? (await this.open());
    try {
      return await new Promise<Row[]>((resolve, reject) => {
        const framer = createBackendFramer();
        const rows: Row[] = [];
        let error: string | undefined;
        // A catalog that does not answer must not hold the session's results forever.
        const timer = setTimeout(() => {
          cleanup();
          socket.destroy();
          reject(new Error('the catalog query timed out'));
        }, this.opts.timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          socket.off('data', onData);
          socket.off('close', onClose);
        };
        const onClose = () => {
          cleanup();
          reject(new Error('the catalog connection closed'));
        };
        const onData = (chunk: Buffer) => {
          try {
            framer.push(chunk);
            while (framer.next()) {
              if (framer.type === 0x44) rows.push(decodeRow(framer.body));
              else if (framer.type === 0x45) error = decodeErrorFields(framer.body).message;
              else if (framer.type === 0x5a) {
                cleanup();
                if (error !== undefined) reject(new Error(`catalog query failed: ${error}`));
                else resolve(rows);
                return;
              }
            }
          } catch (err) {
            cleanup();
            reject(err as Error);
          }
        };
        socket.on('data', onData);
        socket.on('close', onClose);
        socket.write(new MessageWriter().cstring(sql).typed('Q'));
      });
    } finally {
      if (!this.closed && this.socket) this.idleTimer = setTimeout(() => this.idle(), IDLE_MS).unref();
    }
  }

  private idle(): void {
    this.socket?.end();
    this.socket = undefined;
  }

  private open(): Promise<Socket> {
    this.opening ??= connectUpstream({
      connectionName: this.opts.connectionName,
      target: this.opts.target,
      database: this.opts.database,
      parameters: [
        ['application_name', `sluice-catalog:${this.opts.identityName}`],
        ['client_encoding', 'UTF8'],
      ],
      timeoutMs: this.opts.timeoutMs,
    }).then(
      (up) => {
        this.opening = undefined;
        up.socket.on('error', (err) => this.opts.log.debug({ err }, 'catalog connection error'));
        up.socket.on('close', () => {
          if (this.socket === up.socket) this.socket = undefined;
        });
        up.socket.resume();
        if (this.closed) up.socket.destroy();
        this.socket = up.socket;
        return up.socket;
      },
      (err: unknown) => {
        this.opening = undefined;
        throw err;
      },
    );
    return this.opening;
  }
}

function decodeRow(body: Buffer): Row {
  const n = body.readUInt16BE(0);
  const row: Row = [];
  let p = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(p);
    p += 4;
    if (len < 0) row.push(null);
    else {
      row.push(body.toString('utf8', p, p + len));
      p += len;
    }
  }
  return row;
}
