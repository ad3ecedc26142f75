// JSON parsed and re-serialised without changing any number the service sent. A masked response
// is rebuilt from its parsed document, and JavaScript numbers would turn 9007199254740993 (an id
// beyond 2^53) into ...992, and `1.0` or `1e2` into `1` and `100`: the client would read data the
// service never sent. lossless-json keeps a literal's text, but parses about eight times slower
// than JSON.parse (docs/performance.md), so a quick scan first tells whether the body has such a
// literal at all; most bodies do not and take JSON.parse. Within the slow path, literals a JS
// number writes back identically stay plain numbers (the masking code sees what it expects).
import { isLosslessNumber, LosslessNumber, parse, stringify } from 'lossless-json';

export { isLosslessNumber };

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/**
 * Whether some number literal of `text` (outside strings) reads back differently through a JS
 * number. A literal of at most 15 digits with no fraction or exponent always round-trips; only
 * the rest are converted to check. Garbage is not judged here (the parser refuses it).
 */
export function hasInexactNumber(text: string): boolean {
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x2d || isDigit(c)) {
      const start = i;
      let plain = true;
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (isDigit(d)) continue;
        // . e E + - : a fraction or an exponent
        if (d === 0x2e || d === 0x65 || d === 0x45 || d === 0x2b || d === 0x2d) plain = false;
        else break;
      }
      const literal = text.slice(start, i);
      i--;
      if (plain && literal.length <= 15 && literal !== '-0') continue;
      if (String(Number(literal)) !== literal) return true;
    }
  }
  return false;
}

const parseNumber = (text: string): number | LosslessNumber => {
  const n = Number(text);
  return String(n) === text ? n : new LosslessNumber(text);
};

/** A parsed document, and whether it holds numbers kept as their text (then write it with stringifyJsonExact). */
export interface ExactJson {
  readonly doc: unknown;
  readonly exact: boolean;
}

/**
 * JSON.parse, except that a number literal a JS number cannot write back identically is kept as
 * its text (a LosslessNumber: `isLosslessNumber`, text in `.value`). A body with such a literal is
 * read by lossless-json, which refuses an object holding a key twice with different values.
 */
export function parseJsonExact(text: string): ExactJson {
  if (!hasInexactNumber(text)) return { doc: JSON.parse(text) as unknown, exact: false };
  return { doc: parse(text, null, parseNumber), exact: true };
}

/** JSON.stringify, writing each kept number literal exactly as it was read. */
export function stringifyJsonExact(json: { readonly doc: unknown; readonly exact: boolean }): string {
  return (json.exact ? stringify(json.doc) : JSON.stringify(json.doc)) ?? 'null';
}
