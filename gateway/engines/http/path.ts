// The request path as policy judges it, and the form sent upstream. Percent-encoding is decoded
// once; what a server behind us might read differently from us is refused rather than guessed:
// encoded separators (%2f, %5c), a backslash, NUL and other control characters, a "%" left after
// decoding (double encoding), ";" (path parameters some servers strip), and ".." that climbs above
// the root. "." and ".." are resolved and "//" collapsed. The upstream then gets exactly the path
// that was judged: re-encoded canonically (or the client's own bytes when they already are that).

export type NormalisedTarget =
  | {
      readonly ok: true;
      /** The decoded, resolved path the rules match (e.g. `/admin/users`). */
      readonly path: string;
      /** The request-target to forward: canonical path plus the client's query, unchanged. */
      readonly target: string;
    }
  | { readonly ok: false; readonly reason: string };

/** Characters a path segment may carry unencoded (RFC 3986 pchar minus ";", which we refuse). */
const SEGMENT_SAFE = /[A-Za-z0-9\-._~!$&'()*+,=:@]/;

function encodeSegment(s: string): string {
  let out = '';
  for (const ch of s) {
    if (SEGMENT_SAFE.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function decodeSegment(raw: string): string | { reason: string } {
  if (/%(?![0-9A-Fa-f]{2})/.test(raw)) return { reason: 'a "%" not followed by two hex digits' };
  if (/%2f/i.test(raw) || /%5c/i.test(raw)) return { reason: 'an encoded "/" or "\\" (%2F, %5C)' };
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return { reason: 'percent-encoding that is not valid UTF-8' };
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(decoded)) return { reason: 'a control character (NUL, CR, LF, …)' };
  if (decoded.includes('\\')) return { reason: 'a backslash' };
  if (decoded.includes('%')) return { reason: 'a "%" left after decoding (double encoding)' };
  if (decoded.includes(';')) return { reason: 'a ";" (path parameters are read differently by different servers)' };
  return decoded;
}

/** Normalises an origin-form request-target (`/path?query`); anything else is refused. */
export function normaliseTarget(rawTarget: string): NormalisedTarget {
  const refuse = (reason: string): NormalisedTarget => ({ ok: false, reason: `the request path cannot be checked against this connection's rules: it has ${reason}` });
  if (!rawTarget.startsWith('/')) return refuse('no leading "/" (only origin-form targets such as /path?query are accepted)');
  if (rawTarget.includes('#')) return refuse('a "#"');
  const q = rawTarget.indexOf('?');
  const rawPath = q < 0 ? rawTarget : rawTarget.slice(0, q);
  const query = q < 0 ? '' : rawTarget.slice(q);
  const stack: string[] = [];
  const rawSegments = rawPath.split('/').slice(1);
  let trailingSlash = false;
  for (let i = 0; i < rawSegments.length; i++) {
    const decoded = decodeSegment(rawSegments[i]!);
    if (typeof decoded !== 'string') return refuse(decoded.reason);
    const last = i === rawSegments.length - 1;
    if (decoded === '' || decoded === '.') {
      trailingSlash = last && stack.length > 0;
      continue;
    }
    if (decoded === '..') {
      if (stack.length === 0) return refuse('a ".." that climbs above the root');
      stack.pop();
      trailingSlash = last && stack.length > 0;
      continue;
    }
    stack.push(decoded);
    trailingSlash = false;
  }
  const path = '/' + stack.join('/') + (trailingSlash ? '/' : '');
  const canonical = '/' + stack.map(encodeSegment).join('/') + (trailingSlash ? '/' : '');
  // Equal to the client's own bytes whenever those were already canonical.
  return { ok: true, path, target: canonical + query };
}
