// The contract of the shared HTTP/1.1 proxy core (gateway/httpProxy/), which the http and
// kubernetes engines build on without importing each other. The core owns the wire: it parses
// the client's requests from the upgraded tunnel stream with Node's own HTTP parser (keep-alive,
// pipelining, chunked and streamed bodies), forwards each to the upstream with undici over
// verified TLS, and passes `Connection: upgrade` requests (WebSocket, SPDY) through as raw streams
// once the upstream answers 101. The engine owns meaning, through these hooks, called in order for
// each request:
//
//   classify(req)            → { action, target }   what the request is, and the exact
//                                                   request-target to send upstream (throw
//                                                   ProxyRefusal to refuse, e.g. 400)
//   decide(action, req)      → allow | block | review   async: may hold for a review first
//   inject(action, req)      → headers that replace the client's under the same names
//   transformResponse(...)   → a replacement response (masking), or undefined to stream as is
//   responseFilter(...)      → optional length-keeping stream filter on a streamed body
//   onOutcome(action, …)     → status, bytes both ways, body samples, duration, error
//
// Nothing here knows policy, audit or credentials; a refusal's body is the engine's to shape.
import type { Readable, Transform } from 'node:stream';

/** One client request as the engine sees it, before anything is sent upstream. */
export interface ProxyRequest {
  readonly method: string;
  /** The request-target exactly as the client sent it (origin form: path and query). */
  readonly rawTarget: string;
  /** Header list as received, names in their original case: name, value, name, value, … */
  readonly rawHeaders: readonly string[];
  /** `Connection: upgrade` with an `Upgrade` field: the request asks to switch protocols. */
  readonly upgrade: boolean;
  /** 1-based position of the request on its client connection. */
  readonly sequence: number;
}

export interface Classification<A> {
  readonly action: A;
  /**
   * The request-target forwarded upstream: the form the engine judged (never judge one path and
   * send another). Usually `rawTarget` itself when it is already normal.
   */
  readonly target: string;
}

/** The engine's verdict. `block` and `review` carry the response the client gets instead. */
export type ProxyDecision =
  | { readonly verdict: 'allow' }
  | { readonly verdict: 'block' | 'review'; readonly refusal: ProxyResponse };

/** A complete response the core sends as is (refusals, transformed bodies). */
export interface ProxyResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[]>>;
  readonly body: Buffer;
}

/** The upstream's response as undici gave it, hop-by-hop fields already removed. */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[]>>;
  readonly body: Readable;
}

/** Thrown by a hook to refuse the request with this response (the connection keeps serving). */
export class ProxyRefusal extends Error {
  constructor(readonly response: ProxyResponse, message?: string) {
    super(message ?? `refused with ${response.status}`);
    this.name = 'ProxyRefusal';
  }
}

export interface ExchangeOutcome {
  /** The status the client was sent (the refusal's, or the upstream's); 0 when none could be. */
  readonly status: number;
  /** What was done: forwarded to the upstream, refused by a hook, or failed (upstream or client). */
  readonly result: 'forwarded' | 'refused' | 'failed' | 'upgraded';
  /** Request body bytes read from the client; response body bytes written to it. */
  readonly requestBytes: number;
  readonly responseBytes: number;
  /** The first `sampleBytes` of each body (for the record). */
  readonly requestSample: Buffer;
  readonly responseSample: Buffer;
  readonly durationMs: number;
  /** Why it failed (no secret: messages name the upstream's origin, never headers). */
  readonly error?: string;
}

export interface ProxyHooks<A> {
  classify(req: ProxyRequest): Classification<A> | Promise<Classification<A>>;
  /** May wait (a held review); `signal` aborts when the client goes away. */
  decide(action: A, req: ProxyRequest, signal: AbortSignal): Promise<ProxyDecision>;
  /** Headers set on the upstream request, replacing the client's under the same names (credentials). */
  inject?(action: A, req: ProxyRequest): Readonly<Record<string, string>>;
  /**
   * Called with the upstream's response before anything is sent to the client: return a
   * replacement (e.g. a masked JSON body), or undefined to stream it as is. Throwing ProxyRefusal
   * sends that response instead (e.g. 502 for a body that cannot be masked).
   */
  transformResponse?(action: A, req: ProxyRequest, res: UpstreamResponse): Promise<ProxyResponse | undefined>;
  /**
   * Sees each chunk of a response streamed as is (not replaced), as it passes to the client, e.g.
   * to count the events of a watch; undefined: nothing to observe. Must not throw.
   */
  observeResponse?(action: A, req: ProxyRequest, res: { readonly status: number; readonly headers: Readonly<Record<string, string | string[]>> }): ((chunk: Buffer) => void) | undefined;
  /**
   * Sees both directions of an upgraded stream once the upstream answered 101 (e.g. to record an
   * exec's terminal); undefined: nothing to observe. Its functions must not throw.
   */
  observeUpgrade?(action: A, req: ProxyRequest, res: { readonly headers: Readonly<Record<string, string | string[] | undefined>> }): UpgradeObserver | undefined;
  /**
   * Scanning of an upgraded stream's server→client bytes (e.g. for a held credential the service
   * might print), asked once the request is allowed; undefined: the stream is relayed as it is.
   * With a scan the core passes only WebSocket (other upgrades are refused with 400), does not
   * forward the client's Sec-WebSocket-Extensions offer (an extension would code the frames past
   * reading), refuses a 101 that names an extension anyway, and sends every server byte through
   * the filter `start` gives (which may throw to end a stream it cannot read).
   */
  upgradeScan?(action: A, req: ProxyRequest): UpgradeScan | undefined;
  /**
   * A filter for a response body streamed as is (no transformResponse replacement), e.g.
   * scrubbing a held credential an upstream echoes back: a stream, or a ChunkFilter the core calls
   * inline (cheaper: no stream per response). It must keep the body's length (the upstream's
   * Content-Length is forwarded). Undefined: the body passes untouched.
   */
  responseFilter?(action: A, req: ProxyRequest, res: UpstreamResponse): Transform | ChunkFilter | undefined;
  /** Once per request, when its response is complete or it failed. Must not throw. */
  onOutcome?(action: A | undefined, req: ProxyRequest, outcome: ExchangeOutcome): void;
  /** A refusal for a request no hook could judge (parse error, upstream failure). */
  errorResponse?(status: number, message: string): ProxyResponse;
}

/** A synchronous body filter: `push` returns what may go to the client now, `end` what is left. */
export interface ChunkFilter {
  push(chunk: Buffer): Buffer | undefined;
  end(): Buffer | undefined;
}

export interface UpgradeScan {
  /** After the upstream's 101: the filter for its bytes to the client, or why the stream is refused. */
  start(res: { readonly headers: Readonly<Record<string, string | string[] | undefined>> }): ChunkFilter | { readonly refuse: string };
}

export interface UpgradeObserver {
  fromClient(chunk: Buffer): void;
  toClient(chunk: Buffer): void;
  /** The stream ended (either side closed). */
  close(): void;
}

export interface ProxyOptions<A> {
  readonly upstream: import('./upstream.js').Upstream;
  readonly hooks: ProxyHooks<A>;
  /** Bytes of each body kept for `onOutcome` (default 4096). */
  readonly sampleBytes?: number;
  /** Largest request head accepted from the client (default 64 KiB); larger → 431. */
  readonly maxHeaderBytes?: number;
  /**
   * `Upgrade` protocols passed through (lower-case names, version included; default websocket and
   * SPDY/3.1). Any other, h2c above all, is refused with 400: after a 101 the stream is no longer
   * HTTP/1.1, and an h2c upgrade would carry HTTP/2 requests past every hook.
   */
  readonly upgradeProtocols?: readonly string[];
  /** Keep an idle client connection this long between requests (default 5 min). */
  readonly keepAliveMs?: number;
  /**
   * A request head must be complete this long after its first byte — or after the connection
   * opened, for the first — else 408 and the connection closes (default 30 s).
   */
  readonly headersTimeoutMs?: number;
}

/** What a session's totals are once the client stream closed. */
export interface ProxySessionTotals {
  readonly requests: number;
  readonly bytesFromClient: number;
  readonly bytesToClient: number;
}

/** The client-side timeouts of ProxyOptions from the gateway's `limits` (a key absent: the proxy's default). */
export function clientTimeouts(limits: { readonly httpHeadersTimeoutMs?: number; readonly httpIdleTimeoutMs?: number } | undefined): { headersTimeoutMs?: number; keepAliveMs?: number } {
  return {
    ...(limits?.httpHeadersTimeoutMs !== undefined ? { headersTimeoutMs: limits.httpHeadersTimeoutMs } : {}),
    ...(limits?.httpIdleTimeoutMs !== undefined ? { keepAliveMs: limits.httpIdleTimeoutMs } : {}),
  };
}
