// One exec, start to end, once the HTTP request was admitted: the pre-check of the whole input,
// the one review it may need (waited for, or left pending for a later `review: ID`), then the
// statements through the engine (runner.ts), and exactly one `end` event. What the pre-check
// refuses or holds is recorded in the session's audit as the engine records a refused or held
// Query, so the trail reads the same whichever judged first.
import type { ExecEndStatus, ExecEvent } from '../../src/api/contract.js';
import { AuditUnavailableError } from '../audit/contract.js';
import type { ReviewOutcome } from '../reviews/contract.js';
import { SessionTermination } from '../engines/types.js';
import { auditRefusal, type PgEngine, type PgSessionContext } from '../engines/postgres/context.js';
import type { ReviewService } from '../reviews/service.js';
import type { EventSink } from './events.js';
import { execReviews, type Approval } from './execReviews.js';
import { EXEC_APPLICATION_NAME, EXEC_CLIENT_USER } from './pgFrontend.js';
import { runStatements } from './runner.js';
import { blockMessage, preCheck, splitScript } from './statements.js';

/** How often a pending review is reported while the exec waits (keeps idle proxies from closing). */
export const WAITING_EVERY_MS = 15_000;

export interface ExecSessionOptions {
  readonly engine: PgEngine;
  readonly context: PgSessionContext;
  readonly signal: AbortSignal;
  readonly reviews: ReviewService;
  readonly sink: EventSink;
  readonly input: string;
  readonly wait: boolean;
  /** The input was approved in review `approval.id` (the request named it and it was claimed). */
  readonly approval?: Approval;
  readonly timeoutMs?: number;
  readonly clientGone: Promise<void>;
  /** How often `waiting` is sent (default WAITING_EVERY_MS). */
  readonly waitingEveryMs?: number;
}

type ReviewEvent = Extract<ExecEvent, { type: 'review' }>;

const REVIEW_END: Record<'rejected' | 'expired', ExecEndStatus> = { rejected: 'review_rejected', expired: 'review_expired' };

/** Runs the exec and sends its events, ending with the one `end` event. Never throws. */
export async function runExec(o: ExecSessionOptions): Promise<void> {
  const { context: ctx, sink } = o;
  const audit = ctx.audit;
  let status: ExecEndStatus = 'error';
  let statements = 0;
  let endRecord: { status: 'ok' | 'error'; sqlstate?: string; message?: string } = { status: 'ok' };
  const waiting = new Map<string, ReturnType<typeof setInterval>>();
  const startWaiting = (id: string) => {
    const t = setInterval(() => void sink.emit({ type: 'waiting', review: id }), o.waitingEveryMs ?? WAITING_EVERY_MS);
    t.unref();
    waiting.set(id, t);
  };
  const stopWaiting = (id: string) => {
    clearInterval(waiting.get(id));
    waiting.delete(id);
  };
  try {
    await sink.emit({ type: 'session', id: ctx.id });
    audit.onSessionStart({ target: ctx.connection.target.database, clientUser: EXEC_CLIENT_USER, clientApplication: EXEC_APPLICATION_NAME });
    const script = splitScript(o.input);
    const pre = preCheck(script, ctx.identity, ctx.policy, o.input);
    const kinds = script.analysis.ok && script.analysis.statements.length > 0 ? script.analysis.statements.map((s) => s.command.toUpperCase()) : undefined;

    if (pre.verdict === 'block') {
      const message = blockMessage(pre.decision);
      const queryId = audit.onQuery({ text: o.input, protocol: 'simple', ...(kinds ? { kinds } : {}) });
      audit.onDecision?.({ queryId, verdict: 'block', ...(pre.decision.rule !== undefined ? { rule: pre.decision.rule } : {}), ...(pre.decision.reason !== undefined ? { reason: pre.decision.reason } : {}) });
      audit.onResult({ queryId, status: 'error', sqlstate: '42501', message, durationMs: 0 });
      await sink.emit({ type: 'error', ...(pre.statement !== undefined ? { statement: pre.statement } : {}), sqlstate: '42501', message, ...(pre.decision.rule !== undefined ? { rule: pre.decision.rule } : {}) });
      status = 'blocked';
      endRecord = { status: 'error', sqlstate: '42501', message };
      return;
    }

    let approval = o.approval;
    if (pre.verdict === 'review' && approval === undefined) {
      const d = pre.decision;
      const rule = d.rule ?? 'review';
      const started = Date.now();
      const queryId = audit.onQuery({ text: o.input, protocol: 'simple', ...(kinds ? { kinds } : {}) });
      audit.onDecision?.({ queryId, verdict: 'review', rule, ...(d.reason !== undefined ? { reason: d.reason } : {}) });
      const session = { sessionId: ctx.id, identity: ctx.identity, connection: ctx.connection.name };
      const req = { action: o.input, kind: 'sql', rule, approvers: d.approvers ?? [], timeoutMs: d.timeoutMs ?? 600_000, ...(d.reason !== undefined ? { reason: d.reason } : {}) };
      // Waited for, the review ends with the session or with the client going away.
      const gone = new AbortController();
      void o.clientGone.then(() => gone.abort());
      const held = o.wait ? o.reviews.forSession(session).request(req, AbortSignal.any([o.signal, gone.signal])) : o.reviews.requestDetached(session, req);
      audit.onReview?.({ queryId, event: 'created', reviewId: held.id });
      const record = await o.reviews.get(held.id, ctx.identity);
      await sink.emit({ type: 'review', id: held.id, status: 'pending', rule, approvers: [...record.approvers], expiresAt: record.expiresAt.toISOString() });
      if (!o.wait) {
        audit.onResult({ queryId, status: 'error', message: `held for review ${held.id}; not run in this session (exec without wait)`, durationMs: Date.now() - started });
        status = 'review_pending';
        return;
      }
      startWaiting(held.id);
      const outcome = await held.outcome.catch((): ReviewOutcome => ({ status: 'cancelled' }));
      stopWaiting(held.id);
      const durationMs = Date.now() - started;
      if (outcome.status === 'approved') {
        audit.onReview?.({ queryId, event: 'approved', reviewId: held.id, by: outcome.by, ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}) });
        // Claimed here, so the same review cannot be run again with `review: ID`.
        o.reviews.consume(held.id, ctx.identity, ctx.connection.name, o.input);
        audit.onResult({ queryId, status: 'ok', message: `approved in review ${held.id}; its statements follow`, durationMs });
        await sink.emit({ type: 'review', id: held.id, status: 'approved', by: outcome.by, ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}) });
        approval = { id: held.id, by: outcome.by, ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}) };
      } else {
        const message = reviewEndMessage(held.id, outcome);
        if (outcome.status !== 'cancelled') audit.onReview?.({ queryId, event: outcome.status, reviewId: held.id, ...(outcome.status === 'rejected' ? { by: outcome.by, reason: outcome.reason } : {}) });
        audit.onResult({ queryId, status: 'error', sqlstate: outcome.status === 'rejected' ? '42501' : '57014', message, durationMs });
        endRecord = { status: 'error', sqlstate: outcome.status === 'rejected' ? '42501' : '57014', message };
        await sink.emit(reviewEvent(held.id, outcome));
        status = outcome.status !== 'cancelled' ? REVIEW_END[outcome.status] : o.signal.reason instanceof SessionTermination ? 'denied' : 'cancelled';
        return;
      }
    }

    const reviews = execReviews(ctx.reviews ?? o.reviews.forSession({ sessionId: ctx.id, identity: ctx.identity, connection: ctx.connection.name }), {
      ...(approval !== undefined ? { approval } : {}),
      wait: o.wait,
      observer: {
        created(id, req) {
          void sink.emit({ type: 'review', id, status: 'pending', rule: req.rule, approvers: [...req.approvers], expiresAt: new Date(Date.now() + req.timeoutMs).toISOString() });
          startWaiting(id);
        },
        settled(id, outcome) {
          stopWaiting(id);
          void sink.emit(reviewEvent(id, outcome));
        },
      },
    });
    const result = await runStatements({
      engine: o.engine,
      context: { ...ctx, reviews },
      signal: o.signal,
      statements: script.statements,
      sink,
      clientGone: o.clientGone,
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
      explain: (statement) => {
        const last = reviews.last;
        if (last === undefined) return undefined;
        if (last.unforeseen) {
          return {
            status: 'review_pending',
            message: `statement ${statement + 1} needed a review (rule ${last.rule}) that only became known while it ran, and the exec does not wait: it was not run; the statements before it ran. Run the input again with wait to have it reviewed`,
          };
        }
        if (last.outcome?.status === 'rejected' || last.outcome?.status === 'expired') return { status: REVIEW_END[last.outcome.status] };
        return undefined;
      },
    });
    status = result.status;
    statements = result.statements;
  } catch (err) {
    const refusal = err instanceof AuditUnavailableError ? auditRefusal(err) : { sqlstate: 'XX000', message: 'exec failed inside the gateway' };
    if (!(err instanceof AuditUnavailableError)) ctx.log.error({ err }, 'exec failed');
    const { message } = refusal;
    await sink.emit({ type: 'error', sqlstate: refusal.sqlstate, message });
    status = 'error';
    endRecord = { status: 'error', sqlstate: refusal.sqlstate, message };
  } finally {
    for (const id of [...waiting.keys()]) stopWaiting(id);
    // The engine ended the session it ran; this records the end of one it never started.
    audit.onSessionEnd({ status: endRecord.status, ...(endRecord.sqlstate !== undefined ? { code: endRecord.sqlstate } : {}), ...(endRecord.message !== undefined ? { message: endRecord.message } : {}), bytesFromClient: 0, bytesToClient: 0 });
    await sink.emit({ type: 'end', status, statements, session: ctx.id });
  }
}

function reviewEvent(id: string, outcome: ReviewOutcome): ReviewEvent {
  switch (outcome.status) {
    case 'approved':
      return { type: 'review', id, status: 'approved', by: outcome.by, ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}) };
    case 'rejected':
      return { type: 'review', id, status: 'rejected', by: outcome.by, reason: outcome.reason };
    default:
      return { type: 'review', id, status: outcome.status };
  }
}

function reviewEndMessage(id: string, outcome: Exclude<ReviewOutcome, { status: 'approved' }>): string {
  if (outcome.status === 'rejected') return `rejected in review ${id} by ${outcome.by}: ${outcome.reason}`;
  if (outcome.status === 'expired') return `review ${id} expired without a decision: not executed`;
  return `review ${id} was cancelled: not executed`;
}
