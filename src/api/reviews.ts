// The reviews half of the gateway API, for `sluice reviews …` (and exec's review wait): listings and single reviews
// (validated with the shared contract) and the two decisions, which are the CLI's only POSTs.
// Refusals become the CLI's typed errors with the gateway's own message: 401/403 → AuthError
// (exit 4), 404 → NotFoundError (exit 1), 409 and 400 → CliError (exit 1).
import type { z } from 'zod';
import { requestJson } from './client.js';
import { paths, reviewInfo, reviewList, type ReviewInfo } from './contract.js';
import type { Endpoint } from './endpoint.js';

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
