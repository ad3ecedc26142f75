// Masks a JSON response body before the client sees any of it: the body is read whole (up to a
// cap), decoded from its Content-Encoding, parsed, masked (jsonMask.ts) and re-serialised. Number
// literals keep the service's exact text (jsonNumbers.ts): an id beyond 2^53 must not change.
// Fail closed: a body that cannot be decoded, parsed or held is refused with 502 and a message
// saying why, never passed through unmasked.
import { BodyDecodeError, contentCodings, readDecoded, rewrittenBodyHeaders } from '../../httpProxy/bodyDecoding.js';
import type { ProxyResponse, UpstreamResponse } from '../../httpProxy/types.js';
import { maskJsonDocument, type JsonMaskResult } from './jsonMask.js';
import { parseJsonExact, stringifyJsonExact, type ExactJson } from './jsonNumbers.js';
import type { MaskPlan } from './policy.js';

/** The largest body the gateway buffers to mask (decoded size). */
export const MASK_BODY_CAP = 32 * 1024 * 1024;

export class MaskRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MaskRefusal';
  }
}

export interface MaskedResponse {
  readonly response: ProxyResponse;
  readonly result: JsonMaskResult;
}

/** Throws MaskRefusal when the body cannot be masked; resolves with the masked response. */
export async function maskJsonResponse(res: UpstreamResponse, plan: MaskPlan, hashKey: Buffer | undefined, rules: string): Promise<MaskedResponse> {
  if (res.status === 206) throw new MaskRefusal(`a partial (206) response cannot be masked (rule ${rules}); ask without Range`);
  let body: Buffer;
  try {
    body = await readDecoded(res.body, contentCodings(res.headers['content-encoding']), MASK_BODY_CAP);
  } catch (err) {
    if (!(err instanceof BodyDecodeError)) throw err;
    throw new MaskRefusal(`${err.message}, so it cannot be masked (rule ${rules})`);
  }
  const headers = rewrittenBodyHeaders(res.headers);
  if (body.length === 0) return { response: { status: res.status, headers, body }, result: { doc: undefined, maskedPaths: [], valuesMasked: 0, detectorHits: {} } };
  let parsed: ExactJson;
  try {
    const text = body.toString('utf8');
    parsed = parseJsonExact(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    // The parser's message is not passed on: it can quote the body (a duplicated key).
    const twice = err instanceof Error && /^Duplicate key/.test(err.message);
    throw new MaskRefusal(`the response is not JSON${twice ? ' that every parser reads alike (an object holds a key twice)' : ''}, and rule ${rules} masks JSON fields of it; it was not passed on`);
  }
  const result = maskJsonDocument(parsed.doc, plan, hashKey);
  return { response: { status: res.status, headers, body: Buffer.from(stringifyJsonExact({ doc: result.doc, exact: parsed.exact })) }, result };
}
