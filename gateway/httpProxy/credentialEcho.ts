// Keeps the credentials the gateway injects upstream from coming back to the client, for every
// engine that injects one (http, kubernetes): a service that echoes what it was sent (a debug
// endpoint, an error page, a TokenReview) would otherwise hand the held token to the very client
// it is kept from. Each echo is overwritten with "*" of the same length, in response headers and
// bodies. A body can only be scanned in the bytes the client reads after decoding it, so the
// service is asked for `identity`, and a body it codes anyway is decoded here (whole, capped) and
// sent decoded; one the gateway cannot decode or hold is refused, never passed on unscanned.
import { BodyDecodeError, contentCodings, discardBody, hasNoBody, readDecoded, rewrittenBodyHeaders } from './bodyDecoding.js';
import { chunkScrubber, scrubInPlace, scrubText } from './scrub.js';
import type { ChunkFilter, ProxyResponse, UpstreamResponse } from './types.js';

/** Injected values shorter than this are not scrubbed from responses (they would match ordinary text). */
export const MIN_SCRUB_LENGTH = 8;

/** The largest coded body the gateway decodes to scan (decoded size); larger is refused. */
export const SCAN_BODY_CAP = 32 * 1024 * 1024;

/**
 * The held values to keep out of responses and the record, longest first: each value, a token
 * after its scheme ("Bearer x" → "x"), what a Basic credential decodes to ("user:password" and
 * the password: a service may report whom it authenticated), and each of these as JSON and as a
 * URL spell it when that differs (a debug page that serialises its headers escapes `/` or `"`, a
 * redirect quotes a token in its query).
 */
export function secretValues(headers: Readonly<Record<string, string>>): string[] {
  const held = new Set<string>();
  const add = (v: string) => {
    if (v.length >= MIN_SCRUB_LENGTH) held.add(v);
  };
  for (const v of Object.values(headers)) {
    add(v);
    const m = /^(\S+)\s+(\S.*)$/.exec(v);
    if (m === null) continue;
    add(m[2]!);
    if (m[1]!.toLowerCase() === 'basic' && /^[A-Za-z0-9+/]+=*$/.test(m[2]!)) {
      const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
      add(decoded);
      const colon = decoded.indexOf(':');
      if (colon >= 0) add(decoded.slice(colon + 1));
    }
  }
  const out = new Set(held);
  for (const v of held) {
    const json = JSON.stringify(v).slice(1, -1);
    // A spelling that still holds a held value verbatim is scrubbed through it: not scanned for twice.
    for (const spelled of [json, json.replaceAll('/', '\\/'), encodeURIComponent(v), encodeURIComponent(v).replaceAll('%20', '+')]) {
      if (![...held].some((h) => spelled.includes(h))) out.add(spelled);
    }
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/** A response the gateway cannot scan for the held credential (the engine answers 502 in its own shape). */
export class EchoRefusal extends Error {
  override readonly name = 'EchoRefusal';
}

export interface CredentialEcho {
  /** The values scrubbed, longest first (empty: nothing injected is long enough to be scrubbed). */
  readonly secrets: readonly string[];
  /** Text (a sample, a header, an error) with every echo overwritten. */
  text(s: string): string;
  /** The headers to set upstream: the injected ones, and a request for an uncoded body when there is something to scan for. */
  upstreamHeaders(injected: Readonly<Record<string, string>>): Readonly<Record<string, string>>;
  /** Response headers with every echo overwritten, and how many there were. */
  headers(h: Readonly<Record<string, string | string[]>>): { headers: Readonly<Record<string, string | string[]>>; hits: number };
  /**
   * The replacement for a response that cannot stream through filter(): one whose body is still
   * coded (decoded and scrubbed, sent uncoded) or whose headers echo the credential (scrubbed,
   * body too). Undefined when it may stream as is. Throws EchoRefusal when the body cannot be
   * decoded or held; `count` receives the echoes overwritten.
   */
  rebuild(method: string, res: UpstreamResponse, count: (n: number) => void): Promise<ProxyResponse | undefined>;
  /** A length-keeping filter for a body streamed as is; undefined when there is nothing to scrub. */
  filter(count: (n: number) => void): ChunkFilter | undefined;
}

export function credentialEcho(secrets: readonly string[]): CredentialEcho {
  const buffers = secrets.map((s) => Buffer.from(s, 'utf8'));
  const active = secrets.length > 0;
  const text = (s: string) => (active ? scrubText(s, secrets) : s);
  // Most responses echo nothing: look before building a scrubbed copy of every header.
  const echoedIn = (h: Readonly<Record<string, string | string[]>>) => {
    for (const k in h) {
      const v = h[k]!;
      for (const x of Array.isArray(v) ? v : [v]) if (secrets.some((s) => x.includes(s))) return true;
    }
    return false;
  };
  const headers: CredentialEcho['headers'] = (h) => {
    if (!active || !echoedIn(h)) return { headers: h, hits: 0 };
    let hits = 0;
    const scrub = (v: string) => {
      const out = scrubText(v, secrets);
      if (out !== v) hits++;
      return out;
    };
    const out = Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? v.map(scrub) : scrub(v as string)]));
    return { headers: hits > 0 ? out : h, hits };
  };
  return {
    secrets,
    text,
    upstreamHeaders: (injected) => (active ? { ...injected, 'accept-encoding': 'identity' } : injected),
    headers,
    async rebuild(method, res, count) {
      if (!active) return undefined;
      const scrubbed = headers(res.headers);
      if (scrubbed.hits > 0) count(scrubbed.hits);
      const noBody = hasNoBody(method, res.status);
      if (res.status === 206 && !noBody) {
        // A range can start or end inside an echo, or lie wholly within one: no piece is the
        // credential, yet a few ranges put it together. Only whole bodies can be scanned.
        discardBody(res.body);
        throw new EchoRefusal('a partial (206) response cannot be scanned for the held credential (a range can cut an echo of it into pieces); ask without Range');
      }
      const codings = noBody ? [] : contentCodings(res.headers['content-encoding']);
      if (codings.length === 0 && scrubbed.hits === 0) return undefined;
      let body: Buffer;
      try {
        if (noBody) {
          // Nothing to read; undici's body would report the core's destroy of it as an unheard error.
          discardBody(res.body);
          body = Buffer.alloc(0);
        } else body = await readDecoded(res.body, codings, SCAN_BODY_CAP);
      } catch (err) {
        if (!(err instanceof BodyDecodeError)) throw err;
        throw new EchoRefusal(`${err.message}, so it cannot be scanned for the held credential`, { cause: err });
      }
      const hits = scrubInPlace(body, buffers);
      if (hits > 0) count(hits);
      return { status: res.status, headers: codings.length > 0 ? rewrittenBodyHeaders(scrubbed.headers) : scrubbed.headers, body };
    },
    filter: (count) => (active ? chunkScrubber(buffers, count) : undefined),
  };
}
