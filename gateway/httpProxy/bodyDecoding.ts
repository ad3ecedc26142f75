// Reading a response body whole and undoing its Content-Encoding, for the engines that must see
// the bytes a client would see after decoding (masking JSON fields, finding an echoed credential).
// The decoded size is capped while it streams, so a small compressed body cannot make the gateway
// hold gigabytes (a decompression bomb is refused at the cap, not after).
import type { Readable, Transform } from 'node:stream';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

/** Why a body could not be read decoded: a clause about "the response" that a caller completes with its purpose. */
export class BodyDecodeError extends Error {
  constructor(
    message: string,
    readonly reason: 'encoding' | 'corrupt' | 'size',
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'BodyDecodeError';
  }
}

const decoders: Readonly<Record<string, () => Transform>> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

/**
 * Stops reading a body the gateway will not pass on. undici's body reports a destroy before its
 * end as an error event, which would take the gateway down with no listener.
 */
export function discardBody(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** The codings of a Content-Encoding value in the order they were applied (`identity` left out). */
export function contentCodings(value: string | readonly string[] | undefined): string[] {
  const text = (Array.isArray(value) ? value.join(',') : ((value as string | undefined) ?? '')).trim().toLowerCase();
  return text === '' ? [] : text.split(',').map((e) => e.trim()).filter((e) => e !== 'identity' && e !== '');
}

/**
 * The body, read whole and decoded from `codings` (contentCodings), at most `cap` bytes decoded.
 * Rejects with BodyDecodeError: a coding the gateway cannot decode (checked before any byte is
 * read), corrupt or truncated coded data, or more than `cap` bytes.
 */
export async function readDecoded(body: Readable, codings: readonly string[], cap: number): Promise<Buffer> {
  const stages: Transform[] = [];
  for (const coding of [...codings].reverse()) {
    const make = decoders[coding];
    if (make === undefined) {
      discardBody(body);
      throw new BodyDecodeError(`the response is encoded as "${coding}", which the gateway cannot decode`, 'encoding');
    }
    stages.push(make());
  }
  const chunks: Buffer[] = [];
  let size = 0;
  const tooLarge = new BodyDecodeError(`the ${codings.length > 0 ? 'decoded ' : ''}response is larger than ${cap / (1024 * 1024)} MiB, the most the gateway holds`, 'size');
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > cap) return done(tooLarge);
      chunks.push(chunk);
      done();
    },
  });
  try {
    await pipeline([body, ...stages, sink]);
  } catch (err) {
    if (err === tooLarge) throw err;
    throw new BodyDecodeError(codings.length > 0 ? `the response's ${codings.join(', ')} encoding is corrupt or cut short` : 'the response was cut short', 'corrupt', { cause: err });
  }
  return Buffer.concat(chunks);
}

/** Fields that describe the upstream's coded bytes, no longer true of a body the gateway decoded or rewrote. */
const REPRESENTATION_FIELDS = new Set(['content-length', 'content-encoding', 'etag', 'content-md5', 'digest', 'accept-ranges', 'last-modified']);

/** A response's headers without those that describe its original bytes (the core sets Content-Length anew). */
export function rewrittenBodyHeaders(headers: Readonly<Record<string, string | string[]>>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (!REPRESENTATION_FIELDS.has(k.toLowerCase())) out[k] = v;
  return out;
}

/** Statuses (and HEAD) whose responses carry no body. */
export function hasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}
