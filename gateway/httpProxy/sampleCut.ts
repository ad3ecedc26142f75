// Text the audit trail keeps of something cut at a cap (a body sample, a watch event): scrubbed of
// the held credential *before* the cut, and a tail left at the cut that could be the beginning of
// an echo overwritten as well — the bytes that would have shown it to be one were cut off, so
// what cannot be proved harmless is not kept. Over-redacts a few characters at most.
import { scrubText } from './scrub.js';

/**
 * `text` cut to `cap` characters with every echo of `secrets` overwritten by "*", and when it was
 * cut (or `cut` says an earlier cut happened at its end) any tail that begins some secret too.
 */
export function cutScrubbed(text: string, cap: number, secrets: readonly string[], cut = false): string {
  if (secrets.length === 0) return text.length > cap ? text.slice(0, cap) : text;
  const longest = Math.max(...secrets.map((s) => s.length));
  // Enough past the cap to see an echo that straddles it whole.
  const window = text.length > cap + longest ? text.slice(0, cap + longest) : text;
  let out = scrubText(window, secrets);
  const wasCut = cut || out.length > cap;
  if (out.length > cap) out = out.slice(0, cap);
  return wasCut ? starTail(out, secrets) : out;
}

/** `text` with its longest tail that is a proper prefix of some secret overwritten. */
function starTail(text: string, secrets: readonly string[]): string {
  for (let at = Math.max(0, text.length - Math.max(...secrets.map((s) => s.length)) + 1); at < text.length; at++) {
    const tail = text.slice(at);
    if (secrets.some((s) => tail.length < s.length && s.startsWith(tail))) return text.slice(0, at) + '*'.repeat(text.length - at);
  }
  return text;
}
