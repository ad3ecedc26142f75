// The proxy core's client side: Node's own HTTP/1.1 parser (an http.Server that is fed the
// tunnel stream as its one connection) turns the client's bytes into requests, each of which the
// engine's hooks judge (types.ts) before undici forwards it. Bodies stream both ways with
// backpressure; nothing is buffered unless the engine's transformResponse asks for it.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { Stream, type Duplex, type Readable, type Transform } from 'node:stream';
import { forwardHeaders, headViolation } from './headers.js';
import { plainResponse, Sampler } from './sampler.js';
import type { ChunkFilter, ExchangeOutcome, ProxyOptions, ProxyRequest, ProxyResponse, ProxySessionTotals } from './types.js';
import { ProxyRefusal } from './types.js';
import { passUpgrade } from './upgrade.js';
import { CLIENT_BUFFER_BYTES, UpstreamExchange } from './upstreamExchange.js';

export interface HttpProxy {
  /** Serves the client stream until it closes (or `signal` aborts); resolves with the session's totals. */
  handle(client: Duplex, signal: AbortSignal): Promise<ProxySessionTotals>;
}

export function createHttpProxy<A>(options: ProxyOptions<A>): HttpProxy {
  return { handle: (client, signal) => serveClient(options, client, signal) };
}

async function serveClient<A>(options: ProxyOptions<A>, client: Duplex, signal: AbortSignal): Promise<ProxySessionTotals> {
  const { hooks } = options;
  const errorResponse = hooks.errorResponse ?? plainResponse;
  const totals = { requests: 0, bytesFromClient: 0, bytesToClient: 0 };
  const headersTimeout = options.headersTimeoutMs ?? 30_000;
  const server = http.createServer({
    maxHeaderSize: options.maxHeaderBytes ?? 64 * 1024,
    // Node would answer a missing Host itself, unrecorded and without closing; headViolation does.
    requireHostHeader: false,
    // Stated, not left to a default or NODE_OPTIONS: a lenient parser is a smuggling parser.
    insecureHTTPParser: false,
    // Held reviews and long uploads: the client decides how long a request may take.
    requestTimeout: 0,
    // But not how long it takes to send a request head: one that never completes would hold the
    // tunnel, its audit session and a slot of its identity's session limit for ever.
    headersTimeout,
    connectionsCheckingInterval: Math.min(1_000, Math.max(50, Math.floor(headersTimeout / 4))),
    keepAliveTimeout: options.keepAliveMs ?? 300_000,
  });
  // Node checks head timeouts only on servers that listen; this one is fed the tunnel instead, so
  // the checks are started by hand (server.close() below stops them).
  server.emit('listening');
  // One signal per client connection rather than per exchange: an HTTP/1.1 response that closes
  // before it finished takes its connection with it, so "this exchange's client went away" and
  // "this connection went away" are the same event, and an AbortController per request is spared.
  const clientGone = new AbortController();
  const ctx: ExchangeContext<A> = { options, totals, errorResponse, clientGone };
  // Set once the core refused a request and closes the connection after its answer: whatever the
  // client glued behind it is never read as a request, nor answered.
  let closing = false;
  /** Exchanges whose response is not finished (a parse error in one's body belongs to it). */
  const open = new Set<ServerResponse>();
  /** Answers `req` with `status` and closes the connection; the refusal is reported with no action. */
  const refuseInCore = (req: IncomingMessage | undefined, request: ProxyRequest, status: number, reason: string, reply: (r: ProxyResponse) => void): void => {
    closing = true;
    req?.resume();
    const response = errorResponse(status, reason);
    reply(response);
    hooks.onOutcome?.(undefined, request, { status, result: 'refused', requestBytes: 0, responseBytes: response.body.length, requestSample: EMPTY, responseSample: EMPTY, durationMs: 0, error: reason });
  };
  const answerOnStream = (res: ServerResponse) => (reply: ProxyResponse) => {
    res.writeHead(reply.status, { ...reply.headers, connection: 'close', 'content-length': String(reply.body.length) });
    res.end(reply.body);
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const sequence = ++totals.requests;
    if (closing) {
      req.resume();
      return;
    }
    const violation = headViolation(req.httpVersion, req.rawHeaders);
    if (violation !== undefined) {
      refuseInCore(req, toProxyRequest(req, sequence), 400, violation, answerOnStream(res));
      return;
    }
    open.add(res);
    res.once('close', () => {
      open.delete(res);
      if (closing && open.size === 0) client.end();
    });
    // A hook that throws past its contract ends this exchange, never the gateway process.
    void exchange(ctx, req, res, sequence).catch(() => res.destroy());
  });
  // Without this listener Node answers 417 itself and keeps reading the connection, unrecorded.
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    refuseInCore(req, toProxyRequest(req, ++totals.requests), 417, 'the only expectation the gateway meets is 100-continue', answerOnStream(res));
  });
  // A CONNECT would make the gateway a tunnel to wherever the client names: never.
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    refuseInCore(req, toProxyRequest(req, ++totals.requests), 405, 'CONNECT is not accepted: the gateway forwards requests to its configured service only', (reply) => {
      socket.end(serialize({ ...reply, headers: { ...reply.headers, allow: ALLOWED_METHODS } }));
    });
  });
  // Upgraded streams still finishing: their outcomes belong to this session, so it ends after them.
  const upgrades = new Set<Promise<void>>();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const started = Date.now();
    const request = toProxyRequest(req, ++totals.requests, true);
    const done = passUpgrade({ options, req, request, socket, head, signal, errorResponse })
      .then((outcome) => {
        totals.bytesFromClient += outcome.action.requestBytes;
        totals.bytesToClient += outcome.action.responseBytes;
        hooks.onOutcome?.(outcome.classified, request, { ...outcome.action, durationMs: Date.now() - started });
      })
      .catch(() => {
        socket.destroy();
      })
      .finally(() => upgrades.delete(done));
    upgrades.add(done);
  });
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex) => {
    // Bytes glued behind a request the core already refused: its answer is on its way, then the close.
    if (closing) return;
    // A request Node's parser refuses (malformed, head too large, head too slow) ends this client connection only.
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const reason = status === 431 ? 'request head too large' : status === 408 ? `no complete request head within ${headersTimeout / 1000} s` : 'malformed HTTP/1.1 request';
    // Every open exchange read to its end: the error is in a head pipelined behind them, and a 400
    // now would be taken for their answer. They are answered, then the connection ends.
    if (open.size > 0 && [...open].every((res) => res.req.complete)) {
      closing = true;
      return;
    }
    // An open exchange whose answer has begun cannot be answered again: the connection just ends.
    // One not yet answered (its body was malformed) is answered here and reports its own failure.
    const answered = [...open].some((res) => res.headersSent);
    if (socket.writable && !answered) socket.end(serialize(errorResponse(status, reason)));
    socket.destroy();
    // A malformed head is recorded when its request line could be read (no exchange holds the bytes).
    const line = open.size === 0 ? requestLine(err.rawPacket) : undefined;
    if (line !== undefined) {
      const request: ProxyRequest = { method: line.method, rawTarget: line.target, rawHeaders: [], upgrade: false, sequence: ++totals.requests };
      hooks.onOutcome?.(undefined, request, { status, result: 'refused', requestBytes: 0, responseBytes: 0, requestSample: EMPTY, responseSample: EMPTY, durationMs: 0, error: reason });
    }
  });

  const closed = new Promise<void>((resolve) => {
    client.once('close', resolve);
  });
  const onAbort = () => client.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  client.on('error', () => client.destroy());
  client.once('close', () => clientGone.abort());
  server.emit('connection', client);
  try {
    await closed;
    // The client stream is closed, so each upgrade's sockets are closing too: its outcome is near.
    await Promise.all(upgrades);
  } finally {
    signal.removeEventListener('abort', onAbort);
    server.close();
  }
  return totals;
}

const EMPTY = Buffer.alloc(0);
/** The `Allow` of a CONNECT's 405: the methods a request through the gateway may have. */
const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

/** The method and target of a request line at the start of `packet`, when there is one to read (cut to 256 bytes). */
export function requestLine(packet: Buffer | undefined): { method: string; target: string } | undefined {
  if (packet === undefined) return undefined;
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}) ([^ \r\n]{1,2048}) HTTP\/\d\.\d\r?\n/.exec(packet.subarray(0, 2200).toString('latin1'));
  return m === null ? undefined : { method: m[1]!, target: m[2]!.slice(0, 256) };
}

interface ExchangeContext<A> {
  readonly options: ProxyOptions<A>;
  readonly totals: { requests: number; bytesFromClient: number; bytesToClient: number };
  readonly errorResponse: (status: number, message: string) => ProxyResponse;
  /** Aborted when the client connection closes (or one of its responses closes unfinished, which ends it). */
  readonly clientGone: AbortController;
}

/** `upgrade`: whether Node's parser handed the request over as a protocol upgrade (not a stray Upgrade field). */
export function toProxyRequest(req: IncomingMessage, sequence: number, upgrade = false): ProxyRequest {
  return { method: req.method ?? 'GET', rawTarget: req.url ?? '/', rawHeaders: req.rawHeaders, upgrade, sequence };
}

async function exchange<A>(ctx: ExchangeContext<A>, req: IncomingMessage, res: ServerResponse, sequence: number): Promise<void> {
  const { hooks, upstream } = ctx.options;
  const started = Date.now();
  const request = toProxyRequest(req, sequence);
  const reqSample = new Sampler(ctx.options.sampleBytes ?? 4096);
  const resSample = new Sampler(ctx.options.sampleBytes ?? 4096);
  const aborter = ctx.clientGone;
  let forwarded: UpstreamExchange | undefined;
  // The client going away mid-exchange aborts the upstream request and any held review.
  res.once('close', () => {
    if (res.writableFinished) return;
    aborter.abort();
    forwarded?.abandon(CLIENT_GONE);
  });
  let action: A | undefined;
  let result: ExchangeOutcome['result'] = 'forwarded';
  let error: string | undefined;
  try {
    const classifying = hooks.classify(request);
    const classified = classifying instanceof Promise ? await classifying : classifying;
    action = classified.action;
    const decision = await hooks.decide(classified.action, request, aborter.signal);
    if (decision.verdict !== 'allow') throw new ProxyRefusal(decision.refusal);
    if (aborter.signal.aborted) throw CLIENT_GONE;
    const headers = forwardHeaders(req.rawHeaders, hooks.inject?.(classified.action, request) ?? {});
    headers.push('host', upstream.origin.host);
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
    const body: Readable | undefined = hasBody ? req.pipe(reqSample.tap()) : undefined;
    if (!hasBody) req.resume();
    forwarded = new UpstreamExchange();
    upstream.pool.dispatch({ origin: upstream.origin.origin, path: classified.target, method: req.method as 'GET', headers, body: body ?? null }, forwarded);
    const upstreamResponse = await forwarded.head;
    const replaced = await hooks.transformResponse?.(classified.action, request, upstreamResponse);
    if (replaced !== undefined) {
      forwarded.discard();
      send(res, replaced, resSample);
    } else {
      const filter = hooks.responseFilter?.(classified.action, request, upstreamResponse);
      res.writeHead(upstreamResponse.status, upstreamResponse.headers);
      const observe = hooks.observeResponse?.(classified.action, request, upstreamResponse);
      if (forwarded.streamed || filter instanceof Stream) {
        // A hook read from the body, or the filter is a stream: the body goes on as a stream.
        const stream = forwarded.stream();
        if (observe !== undefined) stream.on('data', observe);
        await relayBody(stream, filter, res, resSample);
      } else await forwarded.sendTo({ res, sampler: resSample, filter, observe });
    }
  } catch (err) {
    if (err instanceof ProxyRefusal) {
      result = 'refused';
      req.resume();
      forwarded?.discard();
      if (!res.headersSent) send(res, err.response, resSample);
      else res.destroy();
    } else {
      result = 'failed';
      forwarded?.discard();
      error = aborter.signal.aborted ? 'the client closed the connection' : upstreamError(err, upstream.origin.origin);
      if (!res.headersSent && !res.destroyed) send(res, ctx.errorResponse(502, error), resSample);
      else res.destroy();
    }
  }
  ctx.totals.bytesFromClient += reqSample.bytes;
  ctx.totals.bytesToClient += resSample.bytes;
  hooks.onOutcome?.(action, request, {
    status: res.headersSent ? res.statusCode : 0,
    result,
    requestBytes: reqSample.bytes,
    responseBytes: resSample.bytes,
    requestSample: reqSample.sample(),
    responseSample: resSample.sample(),
    durationMs: Date.now() - started,
    ...(error !== undefined ? { error } : {}),
  });
}

/** Why an upstream request is aborted when its client left. */
const CLIENT_GONE = Object.assign(new Error('the client closed the connection'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });

/**
 * Streams an upstream body, through the engine's filter if there is one, to the client, counting
 * and sampling what is sent; resolves once the response is handed to the socket. On a failure of
 * the body, a filter stream, or the client leaving first, every stream is destroyed and it
 * rejects. Plain 'data' handlers with pause-until-drain (what pipe() does) rather than
 * stream.pipeline: for a small response, pipeline's AbortController (aborted, with a
 * DOMException, on every completion) and a pass-through Transform for the sampler cost more than
 * the forwarding itself. A ChunkFilter runs inline in the same handler.
 */
function relayBody(body: Readable, filter: Transform | ChunkFilter | undefined, res: ServerResponse, sampler: Sampler): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const stream = filter instanceof Stream ? filter : undefined;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      body.destroy();
      stream?.destroy();
      res.destroy();
      reject(err);
    };
    const watch = (from: Readable): void => {
      from.once('error', fail);
      // A stream closed before its end (the upstream connection dropped) fails the exchange.
      from.once('close', () => {
        if (!from.readableEnded) fail(Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
      });
    };
    const forward = (from: Readable, write: (chunk: Buffer) => boolean, to: NodeJS.EventEmitter): void => {
      const resume = () => from.resume();
      from.on('data', (chunk: Buffer) => {
        if (!write(chunk)) {
          from.pause();
          to.once('drain', resume);
        }
      });
    };
    const toClient = (chunk: Buffer): boolean => {
      sampler.observe(chunk);
      // write() says false past the socket's 16 KiB mark, i.e. after every TLS record's worth:
      // pausing then would stop and restart the upstream socket's reads per record. Pausing past
      // a larger mark keeps the memory bound and lets a tick's records leave in one write.
      // ('drain' still comes: write() said false before the buffer could reach this mark.)
      res.write(chunk);
      return res.writableLength < CLIENT_BUFFER_BYTES;
    };
    watch(body);
    let src: Readable = body;
    if (stream !== undefined) {
      watch(stream);
      forward(body, (chunk) => stream.write(chunk), stream);
      body.once('end', () => stream.end());
      src = stream;
    }
    const inline = stream === undefined ? (filter as ChunkFilter | undefined) : undefined;
    forward(
      src,
      inline === undefined
        ? toClient
        : (chunk) => {
            const out = inline.push(chunk);
            return out === undefined || out.length === 0 ? true : toClient(out);
          },
      res,
    );
    src.once('end', () => {
      const rest = inline?.end();
      if (rest !== undefined && rest.length > 0) toClient(rest);
      res.end();
    });
    res.once('finish', () => {
      settled = true;
      resolve();
    });
    res.once('close', () => {
      if (!res.writableFinished) fail(Object.assign(new Error('the client closed the connection'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    });
  });
}

function send(res: ServerResponse, reply: ProxyResponse, sampler: Sampler): void {
  sampler.observe(reply.body);
  res.writeHead(reply.status, { ...reply.headers, 'content-length': String(reply.body.length) });
  res.end(reply.body);
}

/** A response head and body on the wire (for sockets no longer owned by the HTTP parser). */
export function serialize(reply: ProxyResponse, extra: Record<string, string> = { connection: 'close' }): Buffer {
  const lines = [`HTTP/1.1 ${reply.status} ${http.STATUS_CODES[reply.status] ?? ''}`];
  for (const [name, value] of Object.entries({ ...reply.headers, ...extra, 'content-length': String(reply.body.length) })) {
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  }
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), reply.body]);
}

/** What went wrong upstream, in words that carry no request header (so never a credential). */
export function upstreamError(err: unknown, origin: string): string {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e.code ?? e.cause?.code;
  if (typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS/.test(code)) return `the upstream ${origin} presented a certificate that is not trusted (${code})`;
  if (code === 'ECONNREFUSED') return `the upstream ${origin} refused the connection`;
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return `the upstream ${origin} did not answer in time`;
  return `the upstream ${origin} failed: ${typeof code === 'string' ? code : 'connection error'}`;
}
