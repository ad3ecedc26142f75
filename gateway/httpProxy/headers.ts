// Header rules of a forwarding HTTP/1.1 proxy (RFC 9110 §7.6.1): connection-specific ("hop-by-hop")
// fields are meaningful only on one hop and are dropped, including every field the sender names in
// `Connection`; the gateway's injected credential replaces whatever the client sent under the same
// name, so a client can neither learn nor override it.

/** Fields that describe one connection, never forwarded either way (RFC 9110 §7.6.1, RFC 9112 §9.6). */
const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // Addressed to a proxy, not the origin; the tunnel is this hop's authentication.
  'proxy-authorization',
  'proxy-authenticate',
  // Node answers `100-continue` itself on the client hop; undici refuses to send it upstream.
  'expect',
  // The gateway sets its own for the upstream's authority.
  'host',
]);

/** A header list as Node's `rawHeaders` and undici take it: name, value, name, value, … */
export type RawHeaders = string[];

/** Lower-cased names listed in `Connection` (each of its values is a comma-separated list). */
function namedInConnection(raw: readonly string[]): Set<string> {
  const named = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'connection') continue;
    for (const token of raw[i + 1]!.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') named.add(name);
    }
  }
  return named;
}

/**
 * The end-to-end fields of `raw` (hop-by-hop ones and those named in `Connection` removed), minus
 * any field whose lower-cased name is in `drop`, then `inject` appended (replacing, never merging,
 * what the client sent under those names).
 */
export function forwardHeaders(raw: readonly string[], inject: Readonly<Record<string, string>> = {}, drop: ReadonlySet<string> = new Set()): RawHeaders {
  const connectionNamed = namedInConnection(raw);
  const injected = new Set(Object.keys(inject).map((n) => n.toLowerCase()));
  const out: RawHeaders = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || connectionNamed.has(lower) || injected.has(lower) || drop.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  for (const [name, value] of Object.entries(inject)) out.push(name, value);
  return out;
}

/** The response's end-to-end fields from undici's header object (hop-by-hop ones removed). */
export function responseHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string | string[]> {
  // Straight from object to object: this runs for every response.
  let named: Set<string> | undefined;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.toLowerCase() !== 'connection') continue;
    const raw = Array.isArray(value) ? value.flatMap((v) => ['connection', v]) : ['connection', value];
    for (const n of namedInConnection(raw)) (named ??= new Set()).add(n);
  }
  const out: Record<string, string | string[]> = {};
  let transferCodings: string[] | undefined;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (lower === 'transfer-encoding') transferCodings = codingsBesideChunked(value);
    if (HOP_BY_HOP.has(lower) || named?.has(lower)) continue;
    if (!Array.isArray(value)) out[name] = value;
    else if (value.length > 0) out[name] = value.length === 1 ? value[0]! : [...value];
  }
  if (transferCodings !== undefined && transferCodings.length > 0) moveToContentEncoding(out, transferCodings);
  return out;
}

/** The codings of a Transfer-Encoding value other than `chunked` (which only frames the body). */
function codingsBesideChunked(value: string | readonly string[]): string[] {
  return (Array.isArray(value) ? value.join(',') : (value as string))
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '' && c.toLowerCase() !== 'chunked');
}

/**
 * A transfer coding other than chunked (`Transfer-Encoding: gzip, chunked`) codes the body's
 * bytes, which undici passes on still coded. Transfer-Encoding is dropped on this hop, so the
 * codings are named where the rest of the gateway (decoding to mask or to scan for a held
 * credential) and the client look: after the Content-Encoding codings, applied last.
 */
function moveToContentEncoding(out: Record<string, string | string[]>, codings: readonly string[]): void {
  let existing: string | undefined;
  for (const name of Object.keys(out)) {
    if (name.toLowerCase() !== 'content-encoding') continue;
    const v = out[name]!;
    existing = Array.isArray(v) ? v.join(', ') : v;
    delete out[name];
  }
  out['content-encoding'] = [...(existing !== undefined && existing.trim() !== '' ? [existing] : []), ...codings].join(', ');
}

/** The value of one field in a raw list (the first, if repeated), or undefined. */
export function headerValue(raw: readonly string[], name: string): string | undefined {
  const lower = name.toLowerCase();
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === lower) return raw[i + 1];
  return undefined;
}

/**
 * Why a parsed request head is refused before any hook sees it, or undefined when it is sound.
 * Node's parser already refuses most framing ambiguities; these are the ones it lets through
 * (a request line without a version, a missing or repeated Host) and, checked again here so a
 * change of parser leniency cannot reopen them, the framing rules of RFC 9112 §6: one
 * Content-Length, Transfer-Encoding only as `chunked` alone, never beside Content-Length, never
 * on HTTP/1.0.
 */
export function headViolation(httpVersion: string, raw: readonly string[]): string | undefined {
  if (httpVersion !== '1.1' && httpVersion !== '1.0') return `HTTP/${httpVersion} requests are not accepted`;
  let hosts = 0;
  let lengths = 0;
  let codings = 0;
  let coding = '';
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (lower === 'host') hosts++;
    else if (lower === 'content-length') lengths++;
    else if (lower === 'transfer-encoding') {
      codings++;
      coding = raw[i + 1]!.trim().toLowerCase();
    }
  }
  if (hosts > 1) return 'more than one Host field';
  if (hosts === 0 && httpVersion === '1.1') return 'an HTTP/1.1 request without a Host field';
  if (lengths > 1) return 'more than one Content-Length field';
  if (codings === 0) return undefined;
  if (httpVersion === '1.0') return 'Transfer-Encoding on an HTTP/1.0 request';
  if (lengths > 0) return 'both Content-Length and Transfer-Encoding';
  if (codings > 1 || coding !== 'chunked') return 'a Transfer-Encoding other than chunked alone';
  return undefined;
}
