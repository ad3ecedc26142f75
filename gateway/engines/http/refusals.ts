// What the client receives instead of the service's answer: a JSON body that says why, with the
// rule and (for reviews) the review id, and `sluice-refusal` / `sluice-review` headers so a
// program can tell a gateway refusal from the service's own 403 without parsing the body.
import type { ProxyResponse } from '../../httpProxy/types.js';

export type RefusalCode = 'blocked' | 'review_rejected' | 'review_expired' | 'review_unavailable' | 'unjudgeable_request' | 'audit_unavailable' | 'unmaskable_response' | 'unscannable_response' | 'upstream_failed' | 'bad_request';

export function refusal(status: number, code: RefusalCode, message: string, extra: { rule?: string; review?: string } = {}): ProxyResponse {
  const body = Buffer.from(JSON.stringify({ error: { code, message, ...extra } }) + '\n');
  return {
    status,
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'sluice-refusal': code,
      ...(extra.review !== undefined ? { 'sluice-review': extra.review } : {}),
    },
    body,
  };
}

/** The core's refusals (parse errors, upstream failures) in the same shape. */
export function coreErrorResponse(status: number, message: string): ProxyResponse {
  return refusal(status, status === 502 ? 'upstream_failed' : 'bad_request', message);
}
