// One request forwarded to the upstream with undici's dispatch(): the response's chunks are
// handed to the client's response from undici's parser callbacks, with no body stream, abort
// signal or promise per chunk between (undici's request() makes all three for every exchange).
// A body stream is made only when a hook reads the body (masking, decoding a coded body); a
// response streamed as is goes chunk by chunk to the client through the engine's filter, pausing
// the upstream socket only while the client is slow.
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { responseHeaders } from './headers.js';
import type { Sampler } from './sampler.js';
import type { ChunkFilter, UpstreamResponse } from './types.js';

type Controller = Dispatcher.DispatchController;

/** Response bytes buffered towards a client (or held before the core chose where they go) before the upstream is paused. */
export const CLIENT_BUFFER_BYTES = 256 * 1024;

/** How a streamed body reaches the client: through the engine's filter and observer, counted by the sampler. */
export interface DirectSink {
  readonly res: ServerResponse;
  readonly sampler: Sampler;
  readonly filter: ChunkFilter | undefined;
  readonly observe: ((chunk: Buffer) => void) | undefined;
}

const prematureClose = (message: string): Error => Object.assign(new Error(message), { code: 'ERR_STREAM_PREMATURE_CLOSE' });

/**
 * undici's handler for one exchange. `head` settles when the response head arrives (or the
 * request fails first); until the core says where the body goes — `stream()` for a hook that
 * reads it, `sendTo()` for the client — its chunks are held (pausing the upstream past
 * CLIENT_BUFFER_BYTES).
 */
export class UpstreamExchange implements Dispatcher.DispatchHandler {
  readonly head: Promise<UpstreamResponse>;
  private settleHead!: { resolve: (r: UpstreamResponse) => void; reject: (e: Error) => void };
  private controller: Controller | undefined;
  /** Why the exchange was abandoned before undici started it (the client left): aborted on start. */
  private abandoned: Error | undefined;
  private headSeen = false;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private body: Readable | undefined;
  private sink: DirectSink | undefined;
  private sinkDone: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private waitingForDrain = false;
  private finished = false;

  constructor() {
    this.head = new Promise<UpstreamResponse>((resolve, reject) => {
      this.settleHead = { resolve, reject };
    });
  }

  // undici treats a handler as the controller kind only when this method exists.
  onRequestStart(controller: Controller): void {
    this.controller = controller;
    if (this.abandoned !== undefined) controller.abort(this.abandoned);
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // 1xx informational answers (100 Continue, 103 Early Hints) belong to this hop.
    if (statusCode < 200) return;
    this.headSeen = true;
    this.settleHead.resolve(upstreamResponse(this, statusCode, responseHeaders(headers)));
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.sink !== undefined) this.toClient(chunk);
    else if (this.body !== undefined) {
      if (!this.body.push(chunk)) controller.pause();
    } else {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      if (this.heldBytes >= CLIENT_BUFFER_BYTES) controller.pause();
    }
  }

  onResponseEnd(): void {
    this.ended = true;
    if (this.sink !== undefined) this.endClient();
    else this.body?.push(null);
  }

  onResponseError(_controller: Controller, err: Error): void {
    if (!this.headSeen) {
      this.headSeen = true;
      this.settleHead.reject(err);
      return;
    }
    this.failure ??= err;
    if (this.sink !== undefined) this.failClient(err);
    else this.body?.destroy(err);
  }

  /** The client left before the exchange ended: the upstream request is aborted (now, or when undici starts it). */
  abandon(reason: Error): void {
    if (this.ended || this.failure !== undefined) return;
    if (this.controller !== undefined) this.controller.abort(reason);
    else this.abandoned = reason;
  }

  /** The body is not wanted (a hook replaced the response): stops reading it unless it has ended. */
  discard(): void {
    if (this.body !== undefined) {
      this.body.on('error', () => undefined);
      this.body.destroy();
    } else {
      this.held = [];
      if (!this.ended) this.controller?.abort(prematureClose('the response was replaced by the gateway'));
    }
  }

  /** The body as a stream, for a hook that reads it (made once). */
  stream(): Readable {
    if (this.body !== undefined) return this.body;
    const body = new Readable({
      read: () => this.controller?.resume(),
      destroy: (err, callback) => {
        if (!this.ended) this.controller?.abort(err ?? prematureClose('the response body was not read to its end'));
        callback(err);
      },
    });
    this.body = body;
    for (const chunk of this.held) body.push(chunk);
    this.held = [];
    if (this.failure !== undefined) body.destroy(this.failure);
    else if (this.ended) body.push(null);
    return body;
  }

  /** Whether a hook asked for the body as a stream. */
  get streamed(): boolean {
    return this.body !== undefined;
  }

  /**
   * Sends the body, chunk by chunk as undici parses it, to the client's response (whose head the
   * caller has written); resolves once the response is handed to the socket, rejects (with the
   * client's response destroyed) when the upstream fails or the client leaves first.
   */
  sendTo(sink: DirectSink): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.sink = sink;
      this.sinkDone = { resolve, reject };
      sink.res.once('finish', () => {
        this.finished = true;
        resolve();
      });
      sink.res.once('close', () => {
        if (!sink.res.writableFinished) this.failClient(prematureClose('the client closed the connection'));
      });
      const held = this.held;
      this.held = [];
      for (const chunk of held) this.toClient(chunk);
      if (this.failure !== undefined) this.failClient(this.failure);
      else if (this.ended) this.endClient();
      else if (this.heldBytes >= CLIENT_BUFFER_BYTES && !this.waitingForDrain) this.controller?.resume();
    });
  }

  private toClient(chunk: Buffer): void {
    if (this.finished) return;
    const { res, sampler, filter, observe } = this.sink!;
    observe?.(chunk);
    const out = filter === undefined ? chunk : filter.push(chunk);
    if (out === undefined || out.length === 0) return;
    sampler.observe(out);
    // write() says false past the socket's 16 KiB mark, i.e. after every TLS record's worth:
    // pausing then would stop and restart the upstream socket's reads per record. Pausing past
    // a larger mark keeps the memory bound and lets a tick's records leave in one write.
    // ('drain' still comes: write() said false before the buffer could reach this mark.)
    res.write(out);
    if (res.writableLength >= CLIENT_BUFFER_BYTES && !this.waitingForDrain) {
      this.waitingForDrain = true;
      this.controller?.pause();
      res.once('drain', () => {
        this.waitingForDrain = false;
        this.controller?.resume();
      });
    }
  }

  private endClient(): void {
    const { res, sampler, filter } = this.sink!;
    const rest = filter?.end();
    if (rest !== undefined && rest.length > 0) {
      sampler.observe(rest);
      res.write(rest);
    }
    res.end();
  }

  private failClient(err: Error): void {
    if (this.finished || this.sinkDone === undefined) return;
    this.finished = true;
    if (!this.ended && this.failure === undefined) this.controller?.abort(err);
    this.sink!.res.destroy();
    this.sinkDone.reject(err);
  }
}

/** The response as hooks see it; `body` is an own, enumerable getter, so a hook that spreads the response and reads the body gets the stream. */
function upstreamResponse(exchange: UpstreamExchange, status: number, headers: Readonly<Record<string, string | string[]>>): UpstreamResponse {
  return {
    status,
    headers,
    get body(): Readable {
      return exchange.stream();
    },
  };
}
