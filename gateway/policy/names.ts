// Names as policy rules write them (`customers`, `billing.customers`, `pg_read_*`,
// `customers.card_number`) and how they are compared with names found in SQL.
//
// Comparison is case-insensitive on purpose: PostgreSQL folds unquoted identifiers to lower case,
// so a rule `customers` already matches `CUSTOMERS` and `Customers`; comparing without case also
// makes it match a quoted `"Customers"`, a different table to PostgreSQL. Over-matching a block
// rule is the safe side; under-matching is how a policy is evaded.

/** PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes (with a notice); rules must too. */
const MAX_IDENTIFIER_BYTES = 63;

export function truncateIdentifier(name: string): string {
  if (Buffer.byteLength(name) <= MAX_IDENTIFIER_BYTES) return name;
  let out = '';
  let bytes = 0;
  for (const ch of name) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > MAX_IDENTIFIER_BYTES) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/**
 * Splits `a.b."C.d"` into its parts the way SQL does: dots separate, double quotes protect (with
 * `""` for a quote), unquoted parts are lower-cased. Returns undefined for malformed input (an
 * empty part, an unterminated quote).
 */
export function splitQualifiedName(text: string): string[] | undefined {
  const parts: string[] = [];
  let i = 0;
  while (i <= text.length) {
    let part = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) return undefined;
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            part += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        part += text[i];
        i++;
      }
      if (i < text.length && text[i] !== '.') return undefined;
    } else {
      const dot = text.indexOf('.', i);
      const end = dot === -1 ? text.length : dot;
      part = text.slice(i, end).trim().toLowerCase();
      if (part.includes('"')) return undefined;
      i = end;
    }
    if (part === '') return undefined;
    parts.push(truncateIdentifier(part));
    if (i >= text.length) break;
    i++; // the dot
    if (i >= text.length) return undefined; // trailing dot
  }
  return parts;
}

/** One part of a pattern: an exact name, or a glob where `*` matches any run of characters. */
export type NameGlob = { readonly exact: string } | { readonly glob: RegExp; readonly source: string };

export function compileGlob(part: string): NameGlob {
  const lower = part.toLowerCase();
  if (!lower.includes('*')) return { exact: lower };
  const body = lower
    .split('*')
    .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return { glob: new RegExp(`^${body}$`, 's'), source: lower };
}

export function globMatches(g: NameGlob, name: string): boolean {
  const lower = name.toLowerCase();
  return 'exact' in g ? g.exact === lower : g.glob.test(lower);
}

/** `name` or `schema.name` (tables, functions); either part may be a glob. */
export interface NamePattern {
  readonly schema?: NameGlob;
  readonly name: NameGlob;
  /** The pattern as written, for messages. */
  readonly text: string;
}

export interface QualifiedName {
  readonly schema?: string;
  readonly name: string;
}

export function compileNamePattern(text: string): NamePattern | undefined {
  const parts = splitQualifiedName(text);
  if (parts === undefined || parts.length > 2) return undefined;
  const [a, b] = parts as [string, string | undefined];
  return b === undefined ? { name: compileGlob(a), text } : { schema: compileGlob(a), name: compileGlob(b), text };
}

/**
 * A pattern with a schema matches a name without one: SQL's unqualified `customers` may resolve
 * through search_path to `billing.customers`, and the gateway cannot know the path (it can be
 * changed with SET at any time), so it assumes the worst.
 */
export function nameMatches(p: NamePattern, n: QualifiedName): boolean {
  if (!globMatches(p.name, n.name)) return false;
  if (p.schema === undefined || n.schema === undefined) return true;
  return globMatches(p.schema, n.schema);
}

/** `table.column` or `schema.table.column`, as mask rules name columns. */
export interface ColumnPattern {
  readonly schema?: NameGlob;
  readonly table: NameGlob;
  readonly column: NameGlob;
  readonly text: string;
}

export function compileColumnPattern(text: string): ColumnPattern | undefined {
  const parts = splitQualifiedName(text);
  if (parts === undefined || parts.length < 2 || parts.length > 3) return undefined;
  if (parts.length === 2) return { table: compileGlob(parts[0] as string), column: compileGlob(parts[1] as string), text };
  return { schema: compileGlob(parts[0] as string), table: compileGlob(parts[1] as string), column: compileGlob(parts[2] as string), text };
}

export function columnMatches(p: ColumnPattern, c: { readonly schema?: string; readonly table: string; readonly column: string }): boolean {
  if (!globMatches(p.column, c.column) || !globMatches(p.table, c.table)) return false;
  return p.schema === undefined || c.schema === undefined || globMatches(p.schema, c.schema);
}
