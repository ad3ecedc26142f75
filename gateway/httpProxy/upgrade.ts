// Protocol upgrades (WebSocket, SPDY as kubectl exec uses): the request is judged like any other,
// forwarded with Node's client on a socket of its own, and once the upstream answers 101 the two
// sockets are piped as raw streams until either side closes — or, when the engine scans the stream
// (types.ts, upgradeScan), the server's bytes pass through its filter on their way to the client
// and to the observer. Any other answer is relayed with
// `Connection: close` and the client connection ends, so no later bytes on it can reach the
// upstream unjudged.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable, Stream, type Duplex } from 'node:stream';
import { forwardHeaders } from './headers.js';
import { serialize, upstreamError } from './proxy.js';
import type { ChunkFilter, ExchangeOutcome, ProxyHooks, ProxyOptions, ProxyRequest, ProxyResponse, UpgradeObserver, UpgradeScan } from './types.js';
import { ProxyRefusal } from './types.js';
import { requestFunction } from './upstream.js';

/** What passes through when ProxyOptions.upgradeProtocols is not given. */
export const DEFAULT_UPGRADE_PROTOCOLS: readonly string[] = ['websocket', 'spdy/3.1'];

/** Offers not forwarded on a scanned upgrade: a negotiated extension (permessage-deflate) would code the frames. */
const UNSCANNABLE_OFFERS: ReadonlySet<string> = new Set(['sec-websocket-extensions']);

/** RFC 6455 §1.3: the GUID a server appends to the client's key to prove it read the handshake. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/**
 * Why a `101` to a WebSocket upgrade is not a WebSocket server's answer, or undefined when it is:
 * its `Sec-WebSocket-Accept` must be the one the client's key calls for. A `101` without it comes
 * from something that did not switch protocols (a proxy fooled by its backend, a health check
 * answering 101), where the bytes relayed next would be read as further HTTP requests that no
 * rule judged.
 */
function notWebSocketAnswer(req: IncomingMessage, res: IncomingMessage): string | undefined {
  const key = req.headers['sec-websocket-key'];
  const accept = res.headers['sec-websocket-accept'];
  const expected = typeof key === 'string' ? createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64') : undefined;
  if (expected !== undefined && accept === expected) return undefined;
  return 'the upstream answered the WebSocket upgrade with 101 but without the Sec-WebSocket-Accept its key calls for, so the stream would not be WebSocket frames';
}

/** The most of a non-101 answer to an upgrade that is relayed (they are short error bodies). */
const REFUSED_UPGRADE_BODY_CAP = 1024 * 1024;

interface UpgradeArgs<A> {
  readonly options: ProxyOptions<A>;
  readonly req: IncomingMessage;
  readonly request: ProxyRequest;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly signal: AbortSignal;
  readonly errorResponse: (status: number, message: string) => ProxyResponse;
}

type Outcome = Omit<ExchangeOutcome, 'durationMs'>;

export async function passUpgrade<A>(args: UpgradeArgs<A>): Promise<{ classified: A | undefined; action: Outcome }> {
  const { options, request, socket } = args;
  const { hooks } = options;
  const empty = Buffer.alloc(0);
  const closed = new AbortController();
  socket.once('close', () => closed.abort());
  socket.on('error', () => socket.destroy());
  let action: A | undefined;
  const refuse = (reply: ProxyResponse, result: Outcome['result'], error?: string): { classified: A | undefined; action: Outcome } => {
    if (socket.writable) socket.end(serialize(reply));
    return { classified: action, action: { status: reply.status, result, requestBytes: 0, responseBytes: reply.body.length, requestSample: empty, responseSample: reply.body.subarray(0, 4096), ...(error ? { error } : {}) } };
  };
  const allowed = options.upgradeProtocols ?? DEFAULT_UPGRADE_PROTOCOLS;
  const asked = (args.req.headers.upgrade ?? '').split(',').map((p) => p.trim().toLowerCase());
  if (asked.length !== 1 || !allowed.includes(asked[0]!)) {
    const message = `upgrade to ${JSON.stringify(args.req.headers.upgrade ?? '')} is not passed through (only ${allowed.join(', ')})`;
    return refuse(args.errorResponse(400, message), 'refused', message);
  }
  try {
    const classified = await hooks.classify(request);
    action = classified.action;
    const decision = await hooks.decide(classified.action, request, closed.signal);
    if (decision.verdict !== 'allow') return refuse(decision.refusal, 'refused');
    const scan = hooks.upgradeScan?.(classified.action, request);
    if (scan !== undefined && asked[0] !== 'websocket') {
      const message = `an upgrade to ${asked[0]!} cannot be scanned for the held credential; only WebSocket is passed on this connection`;
      return refuse(args.errorResponse(400, message), 'refused', message);
    }
    const headers = forwardHeaders(args.req.rawHeaders, hooks.inject?.(classified.action, request) ?? {}, scan !== undefined ? UNSCANNABLE_OFFERS : undefined);
    headers.push('host', options.upstream.origin.host, 'connection', 'Upgrade', 'upgrade', args.req.headers.upgrade ?? '');
    const observe = (res: IncomingMessage) => hooks.observeUpgrade?.(classified.action, request, { headers: res.headers });
    const shape = (reply: ProxyResponse) => asEngineSends(hooks, classified.action, request, reply);
    return await relay(args, classified.target, headers, closed.signal, observe, scan, shape).then((outcome) => ({ classified: action, action: outcome }));
  } catch (err) {
    if (err instanceof ProxyRefusal) return refuse(err.response, 'refused');
    const message = upstreamError(err, options.upstream.origin.origin);
    return refuse(args.errorResponse(502, message), 'failed', message);
  }
}

/**
 * A response the client is sent whole — a refused upgrade's answer, a 101's head — as the engine
 * has every response sent (transformResponse, then responseFilter): an error page or challenge
 * quoting a held credential is scrubbed like any body, a coded one decoded or refused.
 */
async function asEngineSends<A>(hooks: ProxyHooks<A>, action: A, request: ProxyRequest, reply: ProxyResponse): Promise<ProxyResponse> {
  const res = { status: reply.status, headers: reply.headers, body: Readable.from([reply.body]) };
  const replaced = await hooks.transformResponse?.(action, request, res);
  if (replaced !== undefined) return replaced;
  const filter = hooks.responseFilter?.(action, request, res);
  if (filter === undefined) return reply;
  if (filter instanceof Stream) {
    filter.end(reply.body);
    return { ...reply, body: Buffer.concat((await filter.toArray()) as Buffer[]) };
  }
  return { ...reply, body: Buffer.concat([filter.push(reply.body) ?? Buffer.alloc(0), filter.end() ?? Buffer.alloc(0)]) };
}

/** A raw header list as a header object (a repeated field as an array), names as sent. */
function headerObject(raw: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const [name, value] = [raw[i]!, raw[i + 1]!];
    const had = out[name];
    out[name] = had === undefined ? value : [...(Array.isArray(had) ? had : [had]), value];
  }
  return out;
}

function relay<A>(args: UpgradeArgs<A>, target: string, headers: string[], closed: AbortSignal, observe: (res: IncomingMessage) => UpgradeObserver | undefined, scan: UpgradeScan | undefined, shape: (reply: ProxyResponse) => Promise<ProxyResponse>): Promise<Outcome> {
  const { options, socket, head } = args;
  const upstream = options.upstream;
  return new Promise<Outcome>((resolve, reject) => {
    const outgoing = requestFunction(upstream)({ ...upstream.requestOptions(), method: args.request.method, path: target, headers });
    const onClosed = () => outgoing.destroy();
    closed.addEventListener('abort', onClosed, { once: true });
    outgoing.on('error', (err) => {
      closed.removeEventListener('abort', onClosed);
      reject(err);
    });
    outgoing.on('upgrade', (res: IncomingMessage, upSocket: Duplex, upHead: Buffer) => {
      closed.removeEventListener('abort', onClosed);
      const fake = (args.req.headers.upgrade ?? '').trim().toLowerCase() === 'websocket' ? notWebSocketAnswer(args.req, res) : undefined;
      if (fake !== undefined) {
        upSocket.destroy();
        const reply = args.errorResponse(502, fake);
        if (socket.writable) socket.end(serialize(reply));
        resolve({ status: 502, result: 'failed', requestBytes: 0, responseBytes: reply.body.length, requestSample: Buffer.alloc(0), responseSample: Buffer.alloc(0), error: fake });
        return;
      }
      // The 101's head is shaped like any response's (it may repeat the credential) before a byte of it is relayed.
      shape({ status: 101, headers: headerObject(res.rawHeaders), body: Buffer.alloc(0) }).then(
        (shaped) => upgraded(res, upSocket, upHead, shaped.headers),
        (err: unknown) => {
          upSocket.destroy();
          if (err instanceof ProxyRefusal && socket.writable) socket.end(serialize(err.response));
          reject(err instanceof ProxyRefusal ? new Error(`the upgrade's answer was refused: ${err.response.status}`) : err);
        },
      );
    });
    const upgraded = (res: IncomingMessage, upSocket: Duplex, upHead: Buffer, head101: Readonly<Record<string, string | string[]>>): void => {
      let filter: ChunkFilter | undefined;
      if (scan !== undefined) {
        const started = res.headers['sec-websocket-extensions'] !== undefined ? { refuse: `the upstream negotiated a WebSocket extension (${String(res.headers['sec-websocket-extensions'])}) that was not offered; its frames cannot be scanned for the held credential` } : scan.start(res);
        if ('refuse' in started) {
          upSocket.destroy();
          const reply = args.errorResponse(502, started.refuse);
          if (socket.writable) socket.end(serialize(reply));
          resolve({ status: 502, result: 'failed', requestBytes: 0, responseBytes: reply.body.length, requestSample: Buffer.alloc(0), responseSample: Buffer.alloc(0), error: started.refuse });
          return;
        }
        filter = started;
      }
      const lines = [`HTTP/1.1 ${res.statusCode ?? 101} ${res.statusMessage ?? 'Switching Protocols'}`];
      for (const [name, value] of Object.entries(head101)) for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
      socket.write(lines.join('\r\n') + '\r\n\r\n');
      let fromClient = head.length;
      let toClient = 0;
      const observer = observe(res);
      const sampleIn: Buffer[] = [];
      const sampleOut: Buffer[] = [];
      // What the client is sent (after the filter, when there is one) is what is counted, sampled and observed.
      const sent = (c: Buffer) => {
        toClient += c.length;
        if (toClient <= 4096) sampleOut.push(c);
        observer?.toClient(c);
      };
      let stopped: string | undefined;
      const fromUpstream = (c: Buffer): Buffer | undefined => {
        if (filter === undefined) return c;
        try {
          return filter.push(c);
        } catch (err) {
          // A frame the filter cannot read ends the stream: nothing more is relayed unread.
          stopped = err instanceof Error ? err.message : String(err);
          upSocket.destroy();
          socket.destroy();
          return undefined;
        }
      };
      const first = upHead.length > 0 ? fromUpstream(upHead) : undefined;
      if (first !== undefined && first.length > 0) {
        socket.write(first);
        sent(first);
      }
      if (head.length > 0) upSocket.write(head);
      if (observer !== undefined) {
        if (head.length > 0) observer.fromClient(head);
        socket.on('data', (c: Buffer) => observer.fromClient(c));
      }
      socket.on('data', (c: Buffer) => {
        fromClient += c.length;
        if (fromClient <= 4096) sampleIn.push(c);
      });
      socket.pipe(upSocket);
      if (filter === undefined) {
        upSocket.on('data', sent);
        upSocket.pipe(socket);
      } else {
        const scanned = filter;
        upSocket.on('data', (c: Buffer) => {
          const out = fromUpstream(c);
          if (out === undefined || out.length === 0) return;
          sent(out);
          if (!socket.write(out)) upSocket.pause();
        });
        socket.on('drain', () => upSocket.resume());
        upSocket.once('end', () => {
          const rest = scanned.end();
          if (rest !== undefined && rest.length > 0 && socket.writable) {
            sent(rest);
            socket.write(rest);
          }
          socket.end();
        });
      }
      let open = 2;
      const done = () => {
        if (--open > 0) return;
        observer?.close();
        socket.destroy();
        upSocket.destroy();
        resolve({ status: 101, result: stopped === undefined ? 'upgraded' : 'failed', requestBytes: fromClient, responseBytes: toClient, requestSample: Buffer.concat(sampleIn), responseSample: Buffer.concat(sampleOut), ...(stopped !== undefined ? { error: `the stream was ended: ${stopped}` } : {}) });
      };
      upSocket.on('error', () => upSocket.destroy());
      // Either side closing ends both: a half-open raw stream has nobody left to read it.
      socket.once('close', () => {
        upSocket.destroy();
        done();
      });
      upSocket.once('close', () => {
        socket.end();
        done();
      });
    };
    outgoing.on('response', (res: IncomingMessage) => {
      closed.removeEventListener('abort', onClosed);
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= REFUSED_UPGRADE_BODY_CAP) chunks.push(c);
        else res.destroy();
      });
      const finish = () => {
        const body = Buffer.concat(chunks);
        const kept: Record<string, string | string[]> = {};
        const raw = forwardHeaders(res.rawHeaders, {}, new Set(['content-length']));
        for (let i = 0; i + 1 < raw.length; i += 2) kept[raw[i]!] = raw[i + 1]!;
        const sendShaped = (reply: ProxyResponse, result: Outcome['result']) => {
          if (socket.writable) socket.end(serialize(reply));
          resolve({ status: reply.status, result, requestBytes: head.length, responseBytes: reply.body.length, requestSample: Buffer.alloc(0), responseSample: reply.body.subarray(0, 4096) });
        };
        shape({ status: res.statusCode ?? 502, headers: kept, body }).then(
          (reply) => sendShaped(reply, 'forwarded'),
          (err: unknown) => (err instanceof ProxyRefusal ? sendShaped(err.response, 'refused') : reject(err)),
        );
      };
      res.once('end', finish);
      res.once('close', () => {
        if (!res.complete) finish();
      });
    });
    outgoing.end();
  });
}
