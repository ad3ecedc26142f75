// The reviews half of the gateway API, for `sluice reviews …`: listings and single reviews
// (validated with the shared contract) and the two decisions, which are the CLI's only POSTs.
// Refusals become the CLI's typed errors with the gateway's own message: 401/403 → AuthError
// (exit 4), 404 → NotFoundError (exit 1), 409 and 400 → CliError (exit 1).
import type { z } from 'zod';
import { requestJson } from '../../api/client.js';
import { paths, reviewInfo, reviewList, type ReviewInfo } from '../../api/contract.js';
import type { Endpoint } from '../../api/endpoint.js';

export interface ReviewsClient {
  /** Pending reviews the caller may decide or requested; with `all`, also recently ended ones. */
  list(token: string, opts: { all: boolean }): Promise<ReviewInfo[]>;
  get(token: string, id: string): Promise<ReviewInfo>;
  approve(token: string, id: string, reason?: string): Promise<ReviewInfo>;
  reject(token: string, id: string, reason: string): Promise<ReviewInfo>;
}

export function createReviewsClient(endpoint: Endpoint): ReviewsClient {
  const call = <T>(path: string, schema: z.ZodType<T>, token: string, body?: Record<string, unknown>) =>
    requestJson(endpoint, path, schema, { token, ...(body ? { body } : {}) });
  return {
    list: async (token, { all }) => (await call(paths.reviews + (all ? '?all=1' : ''), reviewList, token)).reviews,
    get: (token, id) => call(paths.review(id), reviewInfo, token),
    approve: (token, id, reason) => call(paths.reviewApprove(id), reviewInfo, token, reason !== undefined ? { reason } : {}),
    reject: (token, id, reason) => call(paths.reviewReject(id), reviewInfo, token, { reason }),
  };
}

/** How long until `iso`, or since it, as people read it: `4m 10s`, `2h 5m`, `12 s`. */
export function relative(iso: string, now = Date.now()): string {
  const ms = Math.abs(Date.parse(iso) - now);
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** One line saying where a review stands: `pending, expires in 9m 50s`, `approved by bob@…`. */
export function statusLine(r: ReviewInfo, now = Date.now()): string {
  switch (r.status) {
    case 'pending':
      return `pending, expires in ${relative(r.expiresAt, now)}`;
    case 'approved':
    case 'rejected':
      return `${r.status} by ${r.decidedBy?.name ?? 'someone'}`;
    default:
      return r.status;
  }
}

/** The statement on one line, shortened for a table cell. */
export function oneLineSql(sql: string, max = 60): string {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}
