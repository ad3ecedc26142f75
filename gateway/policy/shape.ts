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
const OPERATOR_CHARS = new Set('~!@#^&|`?+-*/%<>='.split('').map((c) => c.charCodeAt(0)));
const PUNCTUATION = new Set('()[],;:.'.split('').map((c) => c.charCodeAt(0)));

/**
 * The shape of a single-statement text: keywords and identifiers (ASCII lower-cased, as the
 * parser folds them; quoted identifiers verbatim), operators, punctuation and parameters kept;
 * literals replaced by `?s` (strings), `?b` (bit strings), `?i` (integers), `?f` (decimals);
 * comments and whitespace dropped. Undefined when the text is not safely cacheable.
 */
export function sqlShape(text: string): string | undefined {
  return sqlShapeTokens(text)?.join(' ');
}

/** sqlShape's tokens (a quoted identifier may contain spaces, so tests compare these). */
export function sqlShapeTokens(text: string): string[] | undefined {
  if (text.length > MAX_SHAPE_TEXT) return undefined;
  const out: string[] = [];
  const n = text.length;
  let i = 0;
  let afterSemicolon = false;
  const push = (tok: string) => {
    if (afterSemicolon) throw new NotCacheable(); // a second statement
    out.push(tok);
  };
  try {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (isSpace(c)) {
        i++;
      } else if (c === 45 && text.charCodeAt(i + 1) === 45) {
        // -- comment to the end of the line
        while (i < n && text.charCodeAt(i) !== 10 && text.charCodeAt(i) !== 13) i++;
      } else if (c === 47 && text.charCodeAt(i + 1) === 42) {
        i = skipBlockComment(text, i);
      } else if (c === 39) {
        i = noContinuation(text, skipQuoted(text, i, false));
        push('?s');
      } else if (c === 34) {
        const end = skipQuotedIdentifier(text, i);
        if (end === i + 2) throw new NotCacheable(); // "" is an error, not an identifier
        push(text.slice(i, end));
        i = end;
      } else if (c === 36) {
        i = dollar(text, i, push);
      } else if (c === 46 && text.charCodeAt(i + 1) === 46) {
        throw new NotCacheable(); // `..` is its own token (DOT_DOT), and `..5` is not `.` `.5`
      } else if (isDigit(c) || (c === 46 && isDigit(text.charCodeAt(i + 1)))) {
        i = number(text, i, push);
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
          const p = word.toLowerCase();
          if (p === 'e') i = skipQuoted(text, end, true);
          else if (p === 'n') {
            push('n'); // the scanner turns N'…' into the keyword NCHAR and a plain string
            i = skipQuoted(text, end, false);
          }
          else if (p === 'b' || p === 'x') i = skipBitString(text, end);
          else {
            push(folded);
            i = end;
            continue;
          }
          i = noContinuation(text, i);
          push(p === 'b' || p === 'x' ? '?b' : '?s');
        } else if ((word === 'u' || word === 'U') && next === 38) {
          throw new NotCacheable(); // U&'…' / U&"…" with UESCAPE: not worth the risk
        } else {
          push(folded);
          i = end;
        }
      } else if (c === 59) {
        // ';' ends the statement; only whitespace and comments may follow.
        afterSemicolon = true;
        i++;
      } else if (OPERATOR_CHARS.has(c)) {
        let end = i + 1;
        while (end < n && OPERATOR_CHARS.has(text.charCodeAt(end))) {
          const d = text.charCodeAt(end);
          if ((d === 45 && text.charCodeAt(end + 1) === 45) || (d === 47 && text.charCodeAt(end + 1) === 42)) break; // a comment starts
          end++;
        }
        push(text.slice(i, end));
        i = end;
      } else if (PUNCTUATION.has(c)) {
        push(text[i] as string);
        i++;
      } else {
        throw new NotCacheable(); // a backslash, a brace, a control character: let the parser decide
      }
    }
  } catch (err) {
    if (err instanceof NotCacheable) return undefined;
    throw err;
  }
  return out.length === 0 ? undefined : out;
}

class NotCacheable extends Error {}

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
  throw new NotCacheable();
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
  throw new NotCacheable();
}

/** B'…' and X'…' have no escapes: the first quote ends them (a doubled one would start a string). */
function skipBitString(text: string, quote: number): number {
  const close = text.indexOf("'", quote + 1);
  if (close === -1 || text.charCodeAt(close + 1) === 39) throw new NotCacheable();
  return close + 1;
}

/**
 * PostgreSQL joins 'a' <newline> 'b' into one literal, lexed with the first part's rules (an
 * E'' continuation keeps backslash escapes). Rather than follow that, refuse to shape it.
 */
function noContinuation(text: string, end: number): number {
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
    } else if (c === 47 && text.charCodeAt(i + 1) === 42) i = skipBlockComment(text, i);
    else break;
  }
  if (newline && text.charCodeAt(i) === 39) throw new NotCacheable();
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
  throw new NotCacheable();
}

/** `$1` (a parameter, kept) or a dollar-quoted string `$tag$…$tag$` (a literal). */
function dollar(text: string, start: number, push: (tok: string) => void): number {
  let i = start + 1;
  if (isDigit(text.charCodeAt(i))) {
    while (isDigit(text.charCodeAt(i))) i++;
    if (isIdentCont(text.charCodeAt(i))) throw new NotCacheable();
    push(text.slice(start, i));
    return i;
  }
  if (text.charCodeAt(i) !== 36) {
    if (!isIdentStart(text.charCodeAt(i))) throw new NotCacheable();
    while (i < text.length && isIdentCont(text.charCodeAt(i)) && text.charCodeAt(i) !== 36) i++;
    if (text.charCodeAt(i) !== 36) throw new NotCacheable();
  }
  const tag = text.slice(start, i + 1);
  const close = text.indexOf(tag, i + 1);
  if (close === -1) throw new NotCacheable();
  push('?s');
  return close + tag.length;
}

/** Integers (decimal, 0x, 0o, 0b, with `_`), decimals and exponents; glued junk is refused. */
const NUMBER = /0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(\d(?:_?\d)*)?(\.(?:\d(?:_?\d)*)?)?([eE][-+]?\d(?:_?\d)*)?/y;

function number(text: string, start: number, push: (tok: string) => void): number {
  NUMBER.lastIndex = start;
  const m = NUMBER.exec(text);
  const tok = m?.[0] ?? '';
  if (tok === '' || tok === '.') throw new NotCacheable();
  const end = start + tok.length;
  const next = text.charCodeAt(end);
  if (isIdentCont(next) || next === 46) throw new NotCacheable();
  if (m?.[2] !== undefined || m?.[3] !== undefined) push('?f');
  // Up to nine plain decimal digits always fit in int32 (the common case: no BigInt to build).
  else if (tok.length <= 9 && m?.[1] === tok && !tok.includes('_')) push('?i');
  else {
    // The scanner makes an integer that does not fit in int32 a numeric (FCONST), so the kind
    // of token depends on the value: follow it.
    const digits = tok.replace(/_/g, '');
    const value = /^0[xXoObB]/.test(digits) ? BigInt(digits.toLowerCase()) : BigInt(digits);
    push(value <= 2_147_483_647n ? '?i' : '?f');
  }
  return end;
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

/**
 * An analyzer with a bounded LRU cache of analyses by shape. One per gateway process is enough:
 * analyses depend only on the text, never on the session, identity or policy.
 */
export function createSqlAnalyzer(opts: { capacity?: number } = {}): SqlAnalyzer {
  const capacity = opts.capacity ?? 10_000;
  const cache = new Map<string, StatementAnalysis>();
  const stats = { hits: 0, misses: 0, uncacheable: 0 };
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
        cache.delete(shape);
        cache.set(shape, cached);
        return { ok: true, statements: [{ ...cached, text: text.trim().replace(/;\s*$/, '').trim() }] };
      }
      stats.misses++;
      const a = analyzeSql(text);
      if (reusable(a)) {
        cache.set(shape, a.statements[0] as StatementAnalysis);
        if (cache.size > capacity) cache.delete(cache.keys().next().value as string);
      }
      return a;
    },
  };
}
