// `POST /v1/connections/NAME/exec`: the gateway runs the caller's SQL itself over its upstream
// connection (docs/cli.md, `sluice exec`). Before the stream starts, refusals are the API's usual
// JSON errors with an HTTP status (admission as for a tunnel, the body, a named review that cannot
// run); once it starts (200, NDJSON) everything is an event and the stream ends with one `end`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { EXEC_CONTENT_TYPE, execRequest, SESSION_HEADER, type ExecRequest } from '../../src/api/contract.js';
import { engineFor } from '../engines/registry.js';
import type { UpstreamSpares } from '../engines/postgres/upstreamSpares.js';
import { sendError } from '../http.js';
import { ReviewError, type ReviewService } from '../reviews/service.js';
import type { Admission, Refuse } from '../server.js';
import { EventSink } from './events.js';
import type { Approval } from './execReviews.js';
import { runExec } from './session.js';

/** The body holds at most 16 MiB of input, JSON-escaped: a generous cap on the raw body. */
const MAX_BODY_BYTES = 40 * 1024 * 1024;

export interface ExecRouteDeps {
  /** Admits a session as a tunnel is admitted (authentication, groups, audit health, limits). */
  readonly admit: (req: IncomingMessage, name: string, refuse: Refuse) => Promise<Admission | undefined>;
  readonly reviews: ReviewService;
  readonly log: Logger;
  /** Pre-opened upstream backends: an exec takes the one of its key instead of connecting. */
  readonly spares: UpstreamSpares;
}

export function createExecRoute(deps: ExecRouteDeps): (req: IncomingMessage, res: ServerResponse, name: string) => Promise<void> {
  return async (req, res, name) => {
    if (req.method !== 'POST') return sendError(res, 405, 'bad_request', `${req.method ?? 'this method'} is not supported on exec; POST the input as JSON`);
    const admitted = await deps.admit(req, name, (status, code, message) => sendError(res, status, code, message));
    if (admitted === undefined) return;
    let started = false;
    try {
      if (admitted.connection.type !== 'postgres') {
        // Commands on an ssh host run through the tunnel (the ssh protocol carries their exit status).
        return sendError(res, 400, 'bad_request', `connection "${name}" is of type ${admitted.connection.type}; exec over HTTP runs SQL on postgres connections. Run commands on it through a tunnel: sluice exec ${name} -- COMMAND`);
      }
      const connection = admitted.connection;
      const body = await readBody(req);
      if (typeof body === 'string') return sendError(res, body.startsWith('the request body is larger') ? 413 : 400, 'bad_request', body);
      const approval = claimReview(deps.reviews, admitted, body);
      if (approval instanceof ReviewError) return sendError(res, approval.status, approval.code, approval.message);

      res.writeHead(200, { 'content-type': EXEC_CONTENT_TYPE, 'cache-control': 'no-store', [SESSION_HEADER]: admitted.id });
      started = true;
      const sink = new EventSink(res);
      const clientGone = new Promise<void>((resolve) => res.once('close', () => (res.writableFinished ? undefined : resolve())));
      if (approval !== undefined && approval.status !== 'approved') {
        // Named a review that cannot run (yet): say how it stands and stop; nothing was recorded.
        const r = approval.record;
        await sink.emit({ type: 'review', id: r.id, status: r.status, rule: r.rule, approvers: [...r.approvers], expiresAt: r.expiresAt.toISOString(), ...(r.decidedBy ? { by: r.decidedBy.name } : {}), ...(r.decisionReason ? { reason: r.decisionReason } : {}) });
        await sink.emit({ type: 'end', status: approval.status === 'pending' ? 'review_pending' : approval.status === 'rejected' ? 'review_rejected' : 'review_expired', statements: 0 });
        return;
      }
      let runApproval: Approval | undefined;
      if (approval?.status === 'approved') {
        const r = approval.record;
        const by = r.decidedBy?.name ?? 'an approver';
        runApproval = { id: r.id, by, ...(r.decisionReason !== undefined ? { reason: r.decisionReason } : {}) };
        admitted.context.log.info({ review: r.id, by }, 'exec runs the input approved in review');
      }
      await runExec({
        engine: engineFor(admitted.connection),
        context: { ...admitted.context, connection, upstream: (opts) => deps.spares.connect(admitted.owner, opts, admitted.signal) },
        signal: admitted.signal,
        reviews: deps.reviews,
        sink,
        input: body.input,
        wait: body.wait ?? true,
        ...(runApproval !== undefined ? { approval: runApproval } : {}),
        ...(body.timeoutMs !== undefined ? { timeoutMs: body.timeoutMs } : {}),
        clientGone,
      });
    } finally {
      admitted.done();
      if (started && !res.writableEnded) res.end();
    }
  };
}

type Claim = ReturnType<ReviewService['consume']>;

/** The review the request names, claimed to run now; a ReviewError is a refusal before streaming. */
function claimReview(reviews: ReviewService, admitted: Admission, body: ExecRequest): Claim | ReviewError | undefined {
  if (body.review === undefined) return undefined;
  try {
    return reviews.consume(body.review, admitted.who, admitted.connection.name, body.input);
  } catch (err) {
    if (err instanceof ReviewError) return err;
    throw err;
  }
}

/** The parsed body, or the message of a 400 naming the field and what was expected. */
async function readBody(req: IncomingMessage): Promise<ExecRequest | string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return `the request body is larger than ${MAX_BODY_BYTES} bytes; the input may hold at most 16 MiB`;
    chunks.push(chunk);
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return 'the request body is not JSON: send {"input": "SQL…"} with content-type application/json';
  }
  const parsed = execRequest.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'body';
    return `invalid exec request: ${where}: ${issue?.message ?? 'invalid'}`;
  }
  if (parsed.data.input.includes('\0')) return 'invalid exec request: input: contains a NUL character, which PostgreSQL cannot receive; remove it';
  return parsed.data;
}
