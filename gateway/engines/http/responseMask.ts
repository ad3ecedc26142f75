// Masks a JSON response body before the client sees any of it: the body is read whole (up to a
// cap), decoded from its Content-Encoding, parsed, masked (jsonMask.ts) and re-serialised.
// Fail closed: a body that cannot be decoded, parsed or held is refused with 502 and a message
// saying why, never passed through unmasked.
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { ProxyResponse, UpstreamResponse } from '../../httpProxy/types.js';
import { maskJsonDocument, type JsonMaskResult } from './jsonMask.js';
import type { MaskPlan } from './policy.js';

/** The largest body the gateway buffers to mask (decoded size). */
export const MASK_BODY_CAP = 32 * 1024 * 1024;

const decoders: Readonly<Record<string, (b: Buffer) => Promise<Buffer>>> = {
  gzip: promisify(zlib.gunzip),
  'x-gzip': promisify(zlib.gunzip),
  deflate: promisify(zlib.inflate),
  br: promisify(zlib.brotliDecompress),
};

/** Fields that describe the upstream's bytes, no longer true of the masked body. */
const STALE = new Set(['content-length', 'content-encoding', 'etag', 'content-md5', 'digest', 'accept-ranges', 'last-modified']);

export class MaskRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MaskRefusal';
  }
}

async function readCapped(body: UpstreamResponse['body'], cap: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > cap) {
      body.destroy();
      throw new MaskRefusal(`the response is larger than ${cap / (1024 * 1024)} MiB, the most the gateway holds to mask`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}

/** Statuses whose responses carry no body to mask. */
export function hasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

export interface MaskedResponse {
  readonly response: ProxyResponse;
  readonly result: JsonMaskResult;
}

/** Throws MaskRefusal when the body cannot be masked; resolves with the masked response. */
export async function maskJsonResponse(res: UpstreamResponse, plan: MaskPlan, hashKey: Buffer | undefined, rules: string): Promise<MaskedResponse> {
  if (res.status === 206) throw new MaskRefusal(`a partial (206) response cannot be masked (rule ${rules}); ask without Range`);
  const encoding = (single(res.headers['content-encoding']) ?? 'identity').trim().toLowerCase();
  const layers = encoding === '' ? [] : encoding.split(',').map((e) => e.trim()).filter((e) => e !== 'identity');
  let body = await readCapped(res.body, MASK_BODY_CAP);
  for (const layer of layers.reverse()) {
    const decode = decoders[layer];
    if (decode === undefined) throw new MaskRefusal(`the response is encoded as "${layer}", which the gateway cannot decode to mask it (rule ${rules})`);
    try {
      body = await decode(body);
    } catch {
      throw new MaskRefusal(`the response's ${layer} encoding is corrupt, so it cannot be masked (rule ${rules})`);
    }
    if (body.length > MASK_BODY_CAP) throw new MaskRefusal(`the decoded response is larger than ${MASK_BODY_CAP / (1024 * 1024)} MiB, the most the gateway holds to mask`);
  }
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(res.headers)) if (!STALE.has(k.toLowerCase())) headers[k] = v;
  if (body.length === 0) return { response: { status: res.status, headers, body }, result: { doc: undefined, maskedPaths: [], valuesMasked: 0, detectorHits: {} } };
  let doc: unknown;
  try {
    const text = body.toString('utf8');
    doc = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch {
    throw new MaskRefusal(`the response is not JSON, and rule ${rules} masks JSON fields of it; it was not passed on`);
  }
  const result = maskJsonDocument(doc, plan, hashKey);
  return { response: { status: res.status, headers, body: Buffer.from(JSON.stringify(result.doc)) }, result };
}
