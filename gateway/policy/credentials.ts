// The built-in rule `sluice:credentials`: no session reads a credential the target stores. A
// target role that is superuser (or may read the catalog) can select password hashes and SCRAM
// verifiers (pg_authid.rolpassword, pg_shadow.passwd), foreign-server passwords
// (pg_user_mapping(s).umoptions) and subscription connection strings (pg_subscription.subconninfo);
// an md5 hash is a usable password and a verifier allows offline guessing, so the gateway, which
// holds the target's credential, refuses (42501) every statement that can read one. Always on,
// with or without a policy (docs/policy.md, "Built-in reasons").
//
// Column reads come from the parse tree as the masking's side-door check reads them
// (mask/columnReads.ts: names anywhere, `*`, whole rows, renamed columns, SQL function bodies,
// SQL literals given to query_to_xml/dblink), relations from the statement analysis (sql.ts:
// nested statements, COPY, relations named by string). Fail closed: a credential column named
// anywhere, in any relation, is refused (a view defined over one keeps its name unless renamed);
// a credential catalog read without naming its columns is refused; SQL the gateway cannot see
// into, in a text that could reach one, is refused; a text that does not parse is refused. So are
// reads of the server's files, raw pages and write-ahead log (functions, COPY to or from a file or
// a program), which hold pg_authid's rows as stored.
import { columnReads } from './mask/columnReads.js';
import { EXPOSING_FUNCTIONS } from './mask/exposingCatalog.js';
import { createSqlAnalyzer } from './shape.js';
import type { SqlAnalysis, StatementAnalysis } from './sql.js';

export const CREDENTIALS_RULE = 'sluice:credentials';

/** For sessions without a policy, which parse nothing else: analyses cached by statement shape. */
const analyzer = createSqlAnalyzer({ capacity: 1000 });

/** Credential columns, by the catalog relations that show them. */
const CREDENTIAL_RELATIONS: ReadonlyMap<string, string> = new Map([
  ['pg_authid', 'rolpassword'],
  ['pg_shadow', 'passwd'],
  ['pg_user_mapping', 'umoptions'],
  ['pg_user_mappings', 'umoptions'],
  ['pg_subscription', 'subconninfo'],
]);

/** Functions that hand out the server's files, raw pages or WAL, of which pg_authid's are part. */
const STORAGE_READERS: ReadonlySet<string> = new Set([...[...EXPOSING_FUNCTIONS.keys()].filter((f) => /page|wal|logical_slot|read_file|read_binary_file/.test(f)), 'lo_import', 'pg_file_read']);

const CREDENTIAL_COLUMNS: ReadonlyMap<string, string> = new Map([...CREDENTIAL_RELATIONS].map(([rel, col]) => [col, rel]));

/**
 * Texts that cannot reach a credential are not parsed: they name none of the columns or
 * relations, spell no identifier in Unicode escapes, and run no SQL held in a string or read
 * a relation, schema or database named by one (where a name can be assembled at run time).
 */
const MAY_REACH = /rolpassword|passwd|umoptions|subconninfo|pg_authid|pg_shadow|pg_user_mapping|pg_subscription|u&|execute|_to_xml|dblink|connectby|get_raw_page|ts_stat|\bdo\b|function|procedure|language|copy|_file|lo_import|page|wal|logical_slot/i;

const label = (column: string): string => `${CREDENTIAL_COLUMNS.get(column) ?? '?'}.${column}`;

const refusal = (column: string, how: string): string =>
  `${how} ${label(column)}, which holds a credential; the gateway never lets a session read the target's stored passwords or connection secrets`;

/** The statement and every statement nested in it. */
function* withNested(s: StatementAnalysis): Generator<StatementAnalysis> {
  yield s;
  for (const n of s.nested) yield* withNested(n.statement);
}

function statementRefusal(s: StatementAnalysis): string | undefined {
  const reads = columnReads(s);
  for (const c of reads.columns) if (CREDENTIAL_COLUMNS.has(c)) return refusal(c, 'the statement reads');
  for (const n of withNested(s)) {
    if (n.opaque !== undefined) return `the statement runs code the gateway cannot see into (${n.opaque}), which could read a stored credential (pg_authid.rolpassword and the like)`;
    const storage = n.functions.find((f) => STORAGE_READERS.has(f.name));
    if (storage !== undefined) return `the statement calls ${storage.name}(), which reads the server's files or pages, where pg_authid.rolpassword is stored; the gateway never lets a session read the target's stored passwords`;
    if (n.copy !== undefined && n.copy.target !== 'stdio') return `the statement copies to or from a server ${n.copy.target}, which can read the files where pg_authid.rolpassword is stored; the gateway never lets a session read the target's stored passwords`;
    if (n.everyTable === true || n.schemas.includes('pg_catalog')) return refusal('rolpassword', 'the statement reads every table of the catalog, with');
    if (n.copy?.relation !== undefined) {
      const column = CREDENTIAL_RELATIONS.get(n.copy.relation.name);
      if (column !== undefined && (n.copy.columns === undefined || n.copy.columns.includes(column))) return refusal(column, 'the statement copies');
    }
    for (const r of n.relations) {
      const column = CREDENTIAL_RELATIONS.get(r.name);
      if (column === undefined) continue;
      // `*`, `t.*`, a whole-row reference, NATURAL JOIN, `AS t(a, b)` or a relation named by a string.
      const whole = reads.unnamed || [...reads.singles].some((x) => reads.rangeNames.has(x));
      if (whole) return refusal(column, 'the statement reads whole rows of');
    }
  }
  return undefined;
}

/**
 * Why `text` is refused by `sluice:credentials`, or undefined when it reads no stored
 * credential. `analysis`, when the caller has one for the same text, saves a parse.
 */
export function credentialRefusal(text: string, analysis?: SqlAnalysis): string | undefined {
  if (!MAY_REACH.test(text)) return undefined;
  const a = analysis !== undefined && (analysis.ok ? analysis.statements.length > 0 : true) ? analysis : analyzer.analyze(text);
  if (!a.ok) return `the gateway cannot parse this SQL (${a.error}), so cannot tell whether it reads a stored credential`;
  try {
    for (const s of a.statements) {
      const r = statementRefusal(s);
      if (r !== undefined) return r;
    }
  } catch {
    return 'the statement is nested too deeply to tell whether it reads a stored credential';
  }
  return undefined;
}
