// The other ways a service behind the gateway may read one request, which the rules must judge
// as well as the request line: frameworks take the method from an override header
// (X-HTTP-Method-Override and kin), a `_method` query parameter or a form body's `_method`
// field (Rails, Laravel, Symfony), and the path from X-Original-URL / X-Rewrite-URL (IIS URL
// Rewrite, Symfony, Zend); servers also route paths the request line spells differently:
// Rails and older Spring read `/v1/refunds.json` as `/v1/refunds`, IIS and Windows drop trailing
// dots and spaces from segments, and Unicode-normalising stacks read the fullwidth `／ａｄｍｉｎ`
// as `/admin`. WebDAV's MOVE and COPY write at the path their `Destination` header names (and a
// MOVE removes its own), so that path is judged too, with the methods that do the same (PUT, and
// DELETE for a MOVE). Judging every reading (the strictest verdict wins) only blocks or masks more; a
// reading that cannot itself be judged refuses the request.
import { normaliseTarget } from './path.js';

/** What else the service may take the request for: methods and paths besides the request line's. */
export interface Readings {
  readonly methods: readonly string[];
  readonly paths: readonly string[];
}

/** Every value of one field in a raw header list (name, value, name, value, …). */
function headerValues(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
}

/** Headers through which common frameworks let a client replace the request's method. */
const METHOD_OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'];
/** Headers through which common frameworks let a client replace the request's path. */
const PATH_OVERRIDE_HEADERS = ['x-original-url', 'x-rewrite-url'];
/** The methods a form POST may claim with a `_method` field (the body is not read to find out which). */
const FORM_OVERRIDE_METHODS = ['PUT', 'PATCH', 'DELETE'];
const FORM_TYPES = /^\s*(application\/x-www-form-urlencoded|multipart\/form-data)\s*(;|$)/i;
/** The methods a WebDAV request performs at its Destination (and, for MOVE, at its own path). */
const DESTINATION_METHODS: Readonly<Record<string, readonly string[]>> = { MOVE: ['PUT', 'DELETE'], COPY: ['PUT'] };
/** An absolute URI (RFC 3986 §4.3) up to its path: the path is what a Destination header routes by. */
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/;

/**
 * The alternative methods and paths of a request (`normalisedTarget` is its judged form), or why
 * one of them cannot be judged. Paths come back in every spelling `pathSpellings` gives.
 */
export function alternateReadings(method: string, normalisedTarget: string, rawHeaders: readonly string[]): Readings | { readonly reason: string } {
  const methods = new Set<string>();
  const paths: string[] = [];
  for (const name of METHOD_OVERRIDE_HEADERS) {
    for (const value of headerValues(rawHeaders, name)) {
      for (const m of value.split(',').map((v) => v.trim())) {
        if (!/^[A-Za-z]+$/.test(m)) return { reason: `the request cannot be checked against this connection's rules: its ${name} header names no method the gateway can judge` };
        methods.add(m.toUpperCase());
      }
    }
  }
  const q = normalisedTarget.indexOf('?');
  if (q >= 0) {
    for (const m of new URLSearchParams(normalisedTarget.slice(q + 1)).getAll('_method')) {
      if (!/^[A-Za-z]+$/.test(m.trim())) return { reason: 'the request cannot be checked against this connection\'s rules: its _method parameter names no method the gateway can judge' };
      methods.add(m.trim().toUpperCase());
    }
  }
  if (method.toUpperCase() === 'POST' && headerValues(rawHeaders, 'content-type').some((t) => FORM_TYPES.test(t))) for (const m of FORM_OVERRIDE_METHODS) methods.add(m);
  methods.delete(method.toUpperCase());
  for (const name of PATH_OVERRIDE_HEADERS) {
    for (const value of headerValues(rawHeaders, name)) {
      const n = normaliseTarget(value.trim());
      if (!n.ok) return { reason: `the ${name} header, which some servers route by, ${n.reason.replace(/^the request path /, '')}` };
      paths.push(n.path);
    }
  }
  for (const value of headerValues(rawHeaders, 'destination')) {
    const v = value.trim();
    const m = ABSOLUTE_URI.exec(v);
    const target = m === null ? v : v.slice(m[0].length) || '/';
    const n = normaliseTarget(target.replace(/#.*$/, ''));
    if (!n.ok) return { reason: `the Destination header, where WebDAV servers write, ${n.reason.replace(/^the request path /, '')}` };
    paths.push(n.path);
    for (const d of DESTINATION_METHODS[method.toUpperCase()] ?? ['PUT']) if (d !== method.toUpperCase()) methods.add(d);
  }
  return { methods: [...methods], paths };
}

/** A path with every segment's trailing dots and spaces removed (segments left empty dropped). */
function withoutTrailingDots(path: string): string {
  const segments = path.split('/').slice(1).map((s) => s.replace(/[. ]+$/, ''));
  const kept = segments.filter((s, i) => s !== '' || i === segments.length - 1);
  return '/' + kept.join('/');
}

/** The path without the last segment's extension (`/v1/refunds.json` → `/v1/refunds`). */
function withoutExtension(path: string): string {
  return path.replace(/(\/[^/]+?)\.[^./]*(\/?)$/, '$1$2');
}

/**
 * The spellings of one judged path that servers route alike, the path itself first; or why its
 * Unicode-normalised form (NFKC) cannot be judged (it makes a separator, a dot segment, a `%`,
 * `;` or backslash out of characters that were none).
 */
export function pathSpellings(path: string): readonly string[] | { readonly reason: string } {
  const bases = [path];
  const nfkc = path.normalize('NFKC');
  if (nfkc !== path) {
    if (/[%;\\]/.test(nfkc) || nfkc.split('/').some((s) => s === '.' || s === '..') || nfkc.includes('//')) {
      return { reason: 'the request path cannot be checked against this connection\'s rules: its Unicode-normalised form (NFKC), which some servers route by, holds a separator, a dot segment, "%", ";" or a backslash' };
    }
    bases.push(nfkc);
  }
  const out = new Set<string>();
  for (const b of bases) {
    out.add(b);
    const trimmed = withoutTrailingDots(b);
    out.add(trimmed);
    out.add(withoutExtension(trimmed));
  }
  return [...out];
}
