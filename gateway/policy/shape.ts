// A cache of SQL analyses keyed by statement shape — the text with its literals replaced by
// placeholders — so `SELECT abalance FROM pgbench_accounts WHERE aid = 4711` is parsed once, not
// once per account id. PostgreSQL's parser costs 10-40 µs per statement here; the lexer below
// costs a few.
//
// Why a cache hit cannot turn a blocked statement into an allowed one:
//  1. The lexer follows PostgreSQL's scanner for everything that decides where a literal starts
//     and ends (quotes, E'' escapes, dollar quotes, nested comments, identifiers, numbers) and
//     gives up (no shape, so no caching) on anything it is not sure of: U&'' strings, a number
//     glued to a word, a backslash or other stray character outside a literal, unterminated
//     literals or comments, more than one statement, very long text.
//  2. Two texts with the same shape therefore differ only in literal values of the same kind
//     (string, bit string, integer, decimal). The grammar never looks at a literal's value, so
//     either both parse to the same tree up to literal values, or the second one does not parse
//     at all — and then the server refuses it too and nothing runs.
//  3. Analyses that read a literal's value (EXPLAIN options, COPY options, function bodies, SQL
//     given to query_to_xml/dblink: `literalSensitive`) are never stored, and parse failures are
//     never stored (their message belongs to their text).
//  4. `sql` rules match the request's own text (evaluate.ts), never the cached statement's.
// shape.test.ts checks the claim directly: texts generated to share a shape analyse alike.
import { analyzeSql, type SqlAnalysis, type StatementAnalysis } from './sql.js';

/** Texts longer than this are analysed directly: they repeat rarely and would bloat the cache. */
const MAX_SHAPE_TEXT = 8192;

const isIdentStart = (c: number) => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 0x80;
const isIdentCont = (c: number) => isIdentStart(c) || (c >= 48 && c <= 57) || c === 36;
const isDigit = (c: number) => c >= 48 && c <= 57;
const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13 || c === 12 || c === 11;
/** ASCII character classes by code: the lexer looks up every operator and punctuation character. */
const OPERATOR = 1;
const PUNCTUATION = 2;
const CLASS = new Uint8Array(128);
for (const c of '~!@#^&|`?+-*/%<>=') CLASS[c.charCodeAt(0)] = OPERATOR;
for (const c of '()[],;:.') CLASS[c.charCodeAt(0)] = PUNCTUATION;
const isOperatorChar = (c: number) => c < 128 && CLASS[c] === OPERATOR;

/** What the lexer's helpers return instead of an offset when the text is not safely cacheable. */
const NOT_CACHEABLE = -1;

/**
 * The shape of a single-statement text: keywords and identifiers (ASCII lower-cased, as the
 * parser folds them; quoted identifiers verbatim), operators, punctuation and parameters kept;
 * literals replaced by `?s` (strings), `?b` (bit strings), `?i` (integers), `?f` (decimals);
 * comments and whitespace dropped; the tokens joined by single spaces. Undefined when the text is
 * not safely cacheable.
 */
export function sqlShape(text: string): string | undefined {
  return lexShape(text, undefined);
}

/** sqlShape's tokens (a quoted identifier may contain spaces, so tests compare these). */
export function sqlShapeTokens(text: string): string[] | undefined {
  const out: string[] = [];
  return lexShape(text, out) === undefined ? undefined : out;
}

/**
 * The lexer behind both: the shape as one string (built as it goes: every statement a session
 * sends is lexed, so no token array, closure or exception on the way), each token also pushed to
 * `tokens` when given.
 */
function lexShape(text: string, tokens: string[] | undefined): string | undefined {
  const n = text.length;
  if (n > MAX_SHAPE_TEXT) return undefined;
  let shape = '';
  let count = 0;
  let i = 0;
  let afterSemicolon = false;
  while (i < n) {
    const c = text.charCodeAt(i);
    let tok: string;
    if (isSpace(c)) {
      i++;
      continue;
    } else if (c === 45 && text.charCodeAt(i + 1) === 45) {
      // -- comment to the end of the line
      while (i < n && text.charCodeAt(i) !== 10 && text.charCodeAt(i) !== 13) i++;
      continue;
    } else if (c === 47 && text.charCodeAt(i + 1) === 42) {
      i = skipBlockComment(text, i);
      if (i === NOT_CACHEABLE) return undefined;
      continue;
    } else if (c === 59) {
      // ';' ends the statement; only whitespace and comments may follow.
      afterSemicolon = true;
      i++;
      continue;
    } else if (afterSemicolon) {
      return undefined; // a second statement
    } else if (c === 39) {
      i = noContinuation(text, skipQuoted(text, i, false));
      tok = '?s';
    } else if (c === 34) {
      const end = skipQuotedIdentifier(text, i);
      if (end === NOT_CACHEABLE || end === i + 2) return undefined; // "" is an error, not an identifier
      tok = text.slice(i, end);
      i = end;
    } else if (c === 36) {
      // `$1` (a parameter, kept) or a dollar-quoted string `$tag$…$tag$` (a literal).
      let end = i + 1;
      if (isDigit(text.charCodeAt(end))) {
        while (isDigit(text.charCodeAt(end))) end++;
        if (isIdentCont(text.charCodeAt(end))) return undefined;
        tok = text.slice(i, end);
        i = end;
      } else {
        i = dollarQuoted(text, i);
        tok = '?s';
      }
    } else if (c === 46 && text.charCodeAt(i + 1) === 46) {
      return undefined; // `..` is its own token (DOT_DOT), and `..5` is not `.` `.5`
    } else if (isDigit(c) || (c === 46 && isDigit(text.charCodeAt(i + 1)))) {
      let end = i;
      while (isDigit(text.charCodeAt(end))) end++;
      const next = text.charCodeAt(end);
      // Up to nine plain decimal digits always fit in int32 (the common case: no regex, no BigInt).
      if (end > i && end - i <= 9 && !isIdentCont(next) && next !== 46) {
        tok = '?i';
        i = end;
      } else {
        const k = number(text, i);
        if (k === undefined) return undefined;
        tok = k.kind;
        i = k.end;
      }
    } else if (isIdentStart(c)) {
      let end = i + 1;
      let upper = c >= 65 && c <= 90;
      let ascii = c < 0x80;
      for (let d = text.charCodeAt(end); end < n && isIdentCont(d); d = text.charCodeAt(++end)) {
        if (d >= 65 && d <= 90) upper = true;
        else if (d >= 0x80) ascii = false;
      }
      const word = text.slice(i, end);
      // On an all-ASCII word toLowerCase() folds exactly A-Z, and costs a fraction of the regex.
      const folded = upper ? (ascii ? word.toLowerCase() : lowerAscii(word)) : word;
      const next = text.charCodeAt(end);
      if (word.length === 1 && next === 39) {
        // A one-letter prefix glued to a quote: E'…' (backslash escapes), N'…', B'…', X'…'.
        const p = folded.toLowerCase();
        if (p === 'e') {
          i = noContinuation(text, skipQuoted(text, end, true));
          tok = '?s';
        } else if (p === 'n') {
          // The scanner turns N'…' into the keyword NCHAR and a plain string.
          shape = count++ === 0 ? 'n' : `${shape} n`;
          tokens?.push('n');
          i = noContinuation(text, skipQuoted(text, end, false));
          tok = '?s';
        } else if (p === 'b' || p === 'x') {
          i = noContinuation(text, skipBitString(text, end));
          tok = '?b';
        } else {
          tok = folded;
          i = end;
        }
      } else if ((word === 'u' || word === 'U') && next === 38) {
        return undefined; // U&'…' / U&"…" with UESCAPE: not worth the risk
      } else {
        tok = folded;
        i = end;
      }
    } else if (isOperatorChar(c)) {
      let end = i + 1;
      while (end < n && isOperatorChar(text.charCodeAt(end))) {
        const d = text.charCodeAt(end);
        if ((d === 45 && text.charCodeAt(end + 1) === 45) || (d === 47 && text.charCodeAt(end + 1) === 42)) break; // a comment starts
        end++;
      }
      tok = text.slice(i, end);
      i = end;
    } else if (c < 128 && CLASS[c] === PUNCTUATION) {
      tok = text[i] as string;
      i++;
    } else {
      return undefined; // a backslash, a brace, a control character: let the parser decide
    }
    if (i === NOT_CACHEABLE) return undefined;
    shape = count++ === 0 ? tok : `${shape} ${tok}`;
    tokens?.push(tok);
  }
  return count === 0 ? undefined : shape;
}

/** PostgreSQL folds only ASCII letters of unquoted identifiers (in UTF8 databases). */
function lowerAscii(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** PostgreSQL block comments nest. */
function skipBlockComment(text: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < text.length) {
    if (text.charCodeAt(i) === 47 && text.charCodeAt(i + 1) === 42) {
      depth++;
      i += 2;
    } else if (text.charCodeAt(i) === 42 && text.charCodeAt(i + 1) === 47) {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else i++;
  }
  return NOT_CACHEABLE;
}

/** A '…' literal from its opening quote; `''` is a quote, and in E'…' a backslash escapes. */
function skipQuoted(text: string, quote: number, backslashEscapes: boolean): number {
  let i = quote + 1;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (backslashEscapes && c === 92) i += 2;
    else if (c === 39) {
      if (text.charCodeAt(i + 1) === 39) i += 2;
      else return i + 1;
    } else i++;
  }
  return NOT_CACHEABLE;
}

/** B'…' and X'…' have no escapes: the first quote ends them (a doubled one would start a string). */
function skipBitString(text: string, quote: number): number {
  const close = text.indexOf("'", quote + 1);
  if (close === -1 || text.charCodeAt(close + 1) === 39) return NOT_CACHEABLE;
  return close + 1;
}

/**
 * PostgreSQL joins 'a' <newline> 'b' into one literal, lexed with the first part's rules (an
 * E'' continuation keeps backslash escapes). Rather than follow that, refuse to shape it.
 */
function noContinuation(text: string, end: number): number {
  if (end === NOT_CACHEABLE) return end;
  let i = end;
  let newline = false;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13) {
      newline = true;
      i++;
    } else if (isSpace(c)) i++;
    else if (c === 45 && text.charCodeAt(i + 1) === 45) {
      while (i < text.length && text.charCodeAt(i) !== 10 && text.charCodeAt(i) !== 13) i++;
    } else if (c === 47 && text.charCodeAt(i + 1) === 42) {
      i = skipBlockComment(text, i);
      if (i === NOT_CACHEABLE) return i;
    } else break;
  }
  if (newline && text.charCodeAt(i) === 39) return NOT_CACHEABLE;
  return end;
}

function skipQuotedIdentifier(text: string, quote: number): number {
  let i = quote + 1;
  while (i < text.length) {
    if (text.charCodeAt(i) === 34) {
      if (text.charCodeAt(i + 1) === 34) i += 2;
      else return i + 1;
    } else i++;
  }
  return NOT_CACHEABLE;
}

/** A dollar-quoted string `$tag$…$tag$` from its first `$`: the offset after it. */
function dollarQuoted(text: string, start: number): number {
  let i = start + 1;
  if (text.charCodeAt(i) !== 36) {
    if (!isIdentStart(text.charCodeAt(i))) return NOT_CACHEABLE;
    while (i < text.length && isIdentCont(text.charCodeAt(i)) && text.charCodeAt(i) !== 36) i++;
    if (text.charCodeAt(i) !== 36) return NOT_CACHEABLE;
  }
  const tag = text.slice(start, i + 1);
  const close = text.indexOf(tag, i + 1);
  if (close === -1) return NOT_CACHEABLE;
  return close + tag.length;
}

/** Integers (decimal, 0x, 0o, 0b, with `_`), decimals and exponents; glued junk is refused. */
const NUMBER = /0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(\d(?:_?\d)*)?(\.(?:\d(?:_?\d)*)?)?([eE][-+]?\d(?:_?\d)*)?/y;

/** A number's token (`?i` or `?f`) and where it ends; undefined when it is not safely cacheable. */
function number(text: string, start: number): { kind: '?i' | '?f'; end: number } | undefined {
  NUMBER.lastIndex = start;
  const m = NUMBER.exec(text);
  const tok = m?.[0] ?? '';
  if (tok === '' || tok === '.') return undefined;
  const end = start + tok.length;
  const next = text.charCodeAt(end);
  if (isIdentCont(next) || next === 46) return undefined;
  if (m?.[2] !== undefined || m?.[3] !== undefined) return { kind: '?f', end };
  if (tok.length <= 9 && m?.[1] === tok && !tok.includes('_')) return { kind: '?i', end };
  // The scanner makes an integer that does not fit in int32 a numeric (FCONST), so the kind
  // of token depends on the value: follow it.
  const digits = tok.replace(/_/g, '');
  const value = /^0[xXoObB]/.test(digits) ? BigInt(digits.toLowerCase()) : BigInt(digits);
  return { kind: value <= 2_147_483_647n ? '?i' : '?f', end };
}

export interface SqlAnalyzer {
  /** Same contract as analyzeSql(); answers from the cache when the shape allows it. */
  analyze(text: string): SqlAnalysis;
  readonly stats: { hits: number; misses: number; uncacheable: number };
}

/** Whether an analysis may be reused for another text of the same shape. */
function reusable(a: SqlAnalysis): a is { ok: true; statements: readonly StatementAnalysis[] } {
  return a.ok && a.statements.length === 1 && a.statements[0]?.literalSensitive !== true;
}

/** A cached analysis; `used` is set on every hit (the second chance of a CLOCK eviction). */
interface Entry {
  readonly statement: StatementAnalysis;
  used: boolean;
}

/** Printable ASCII other than the space: never whitespace to String.prototype.trim or `\s`. */
const visible = (c: number) => c > 32 && c < 127;

/**
 * The text a cache hit's statement carries: `text.trim().replace(/;\s*$/, '').trim()`, without
 * the regex and copies when the text starts and ends with visible characters (what drivers send).
 */
function statementText(text: string): string {
  const n = text.length;
  if (n > 1 && visible(text.charCodeAt(0)) && visible(text.charCodeAt(n - 2))) {
    const last = text.charCodeAt(n - 1);
    if (last === 59) return text.slice(0, n - 1);
    if (visible(last)) return text;
  }
  return text.trim().replace(/;\s*$/, '').trim();
}

/**
 * An analyzer with a bounded cache of analyses by shape, evicted in CLOCK order (least recently
 * used, approximately: a hit only marks its entry, where moving it to the back of the map cost
 * a delete and an insert per statement). One per gateway process is enough: analyses depend
 * only on the text, never on the session, identity or policy.
 */
export function createSqlAnalyzer(opts: { capacity?: number } = {}): SqlAnalyzer {
  const capacity = opts.capacity ?? 10_000;
  const cache = new Map<string, Entry>();
  const stats = { hits: 0, misses: 0, uncacheable: 0 };
  /** Drops the oldest entry not used since it was last passed over; used ones go to the back, unmarked. */
  const evict = () => {
    for (const [shape, entry] of cache) {
      cache.delete(shape);
      if (!entry.used) return;
      entry.used = false;
      cache.set(shape, entry);
    }
  };
  return {
    stats,
    analyze(text) {
      const shape = sqlShape(text);
      if (shape === undefined) {
        stats.uncacheable++;
        return analyzeSql(text);
      }
      const cached = cache.get(shape);
      if (cached !== undefined) {
        stats.hits++;
        cached.used = true;
        return { ok: true, statements: [{ ...cached.statement, text: statementText(text) }] };
      }
      stats.misses++;
      const a = analyzeSql(text);
      if (reusable(a)) {
        if (cache.size >= capacity) evict();
        cache.set(shape, { statement: a.statements[0] as StatementAnalysis, used: false });
      }
      return a;
    },
  };
}
