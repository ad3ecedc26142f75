// The reviews' HTTP API (docs/reviews.md): `GET /v1/reviews[?all=1]`, `GET /v1/reviews/ID`,
// `POST /v1/reviews/ID/approve` (`{ reason? }`) and `POST /v1/reviews/ID/reject` (`{ reason }`).
// Authenticated like the rest of the API; refusals are `{ error: { code, message } }` with real
// statuses. These are the only POST routes of the gateway, so they check methods themselves.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { reviewDecisionBody, type ReviewInfo } from '../../src/api/contract.js';
import type { Authenticator } from '../auth/authenticate.js';
import { authenticateOrRefuse, sendError, sendJson } from '../http.js';
import { ReviewError, type ReviewRecord } from './model.js';
import type { ReviewService } from './service.js';

export interface ReviewRoutesDeps {
  reviews: ReviewService;
  authenticate: Authenticator;
}

/** A decision body is a short JSON object; anything bigger is refused before it is buffered. */
const MAX_BODY_BYTES = 16 * 1024;

const listPath = /^\/v1\/reviews\/?$/;
const onePath = /^\/v1\/reviews\/([^/]+)$/;
const decidePath = /^\/v1\/reviews\/([^/]+)\/(approve|reject)$/;

/** Returns a handler that answers the review paths (any method) and returns false for others. */
export function createReviewRoutes(deps: ReviewRoutesDeps): (req: IncomingMessage, res: ServerResponse, path: string) => Promise<boolean> {
  return async (req, res, path) => {
    const list = listPath.test(path);
    const one = onePath.exec(path);
    const decide = decidePath.exec(path);
    if (!list && !one && !decide) return false;

    const allowed = decide ? 'POST' : 'GET';
    if (req.method !== allowed) {
      sendJson(res, 405, { error: { code: 'bad_request', message: `${req.method} is not supported on ${path}; use ${allowed}` } }, { allow: allowed });
      return true;
    }
    const who = await authenticateOrRefuse(deps.authenticate, req, res);
    if (who === undefined) return true;

    try {
      if (list) {
        const all = ['1', 'true', 'yes'].includes(new URL(req.url ?? '/', 'http://x').searchParams.get('all') ?? '');
        const reviews = await deps.reviews.list(who, { all });
        sendJson(res, 200, { reviews: reviews.map((r) => toReviewInfo(r, deps.reviews.canDecide(r, who))) });
      } else if (one) {
        const r = await deps.reviews.get(decodeURIComponent(one[1] as string), who);
        sendJson(res, 200, toReviewInfo(r, deps.reviews.canDecide(r, who)));
      } else if (decide) {
        const body = await readDecisionBody(req);
        const approve = decide[2] === 'approve';
        const r = await deps.reviews.decide(decodeURIComponent(decide[1] as string), who, { approve, ...(body.reason !== undefined ? { reason: body.reason } : {}) });
        sendJson(res, 200, toReviewInfo(r, false));
      }
    } catch (err) {
      if (!(err instanceof ReviewError)) throw err;
      sendError(res, err.status, err.code, err.message);
    }
    return true;
  };
}

/** Reads `{ reason? }`; an empty body is `{}`. Throws ReviewError 400 for anything else. */
async function readDecisionBody(req: IncomingMessage): Promise<{ reason?: string }> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new ReviewError(400, 'bad_request', `the request body is larger than ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Chunked bodies declare no length: count as they come.
    if (size > MAX_BODY_BYTES) throw new ReviewError(400, 'bad_request', `the request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ReviewError(400, 'bad_request', 'the request body must be JSON: { "reason": "…" }');
  }
  const parsed = reviewDecisionBody.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ReviewError(400, 'bad_request', `invalid request body${issue?.path.length ? ` at ${issue.path.join('.')}` : ''}: ${issue?.message ?? 'expected { "reason": "…" }'}`);
  }
  return parsed.data;
}

/** The API's view of a review; `canDecide` is for the caller who asked. */
export function toReviewInfo(r: ReviewRecord, canDecide: boolean): ReviewInfo {
  return {
    id: r.id,
    status: r.status,
    session: r.session,
    connection: r.connection,
    requester: { ...r.requester },
    ...(r.kind === 'sql' ? { sql: r.action } : {}),
    action: r.action,
    kind: r.kind,
    ...(r.parameters !== undefined ? { parameters: r.parameters.map((p) => ({ ...p })) } : {}),
    ...(r.parametersOmitted !== undefined ? { parametersOmitted: r.parametersOmitted } : {}),
    rule: r.rule,
    ...(r.reason !== undefined ? { reason: r.reason } : {}),
    approvers: [...r.approvers],
    createdAt: r.createdAt.toISOString(),
    expiresAt: r.expiresAt.toISOString(),
    ...(r.endedAt ? { endedAt: r.endedAt.toISOString() } : {}),
    ...(r.decidedBy ? { decidedBy: { ...r.decidedBy } } : {}),
    ...(r.decisionReason !== undefined ? { decisionReason: r.decisionReason } : {}),
    canDecide,
  };
}
