// How an exec ended, as the exit code's typed error and as the `--json` summary. The gateway's
// `end` event says how it ended; the `error` and `review` events before it say why.
import type { ExecEndStatus, ExecEvent } from '../../api/contract.js';
import { AuthError, BlockedError, CliError, InterruptedError, ReviewPendingError, ReviewRejectedError } from '../../errors.js';
import type { ExecFailure } from './formats.js';

type ReviewEvent = Extract<ExecEvent, { type: 'review' }>;

/** What the stream told us so far. */
export interface ExecState {
  session?: string;
  statements: { command: string; rows: number | null }[];
  error?: ExecFailure & { statement?: number };
  review?: Omit<ReviewEvent, 'type'>;
  end?: { status: ExecEndStatus; statements: number };
}

export interface OutcomeContext {
  /** `--timeout` as the user wrote it. */
  timeout?: string;
  /** The command that runs the same input against a review once approved. */
  rerun: (reviewId: string) => string;
}

/** The error the exec ended with (undefined: it succeeded). Called once `end` has arrived. */
export function outcomeError(state: ExecState, ctx: OutcomeContext): CliError | undefined {
  const e = state.error;
  const r = state.review;
  const which = r ? `review ${r.id}` : 'the review';
  switch (state.end?.status) {
    case 'ok':
      return undefined;
    case 'error':
      return new CliError(sqlError(e));
    case 'blocked':
      return new BlockedError(`blocked by policy${e?.rule ? ` rule ${e.rule}` : ''}: ${e?.message ?? 'the gateway refused the input'}`);
    case 'denied':
      return new AuthError(e?.message ?? 'the gateway refused this exec');
    case 'review_pending': {
      const id = r?.id ?? 'R-?';
      const detail = [r?.rule ? `rule ${r.rule}` : '', r?.approvers?.length ? `approvers ${r.approvers.join(', ')}` : ''].filter(Boolean).join(', ');
      return new ReviewPendingError(`review ${id} is pending${detail ? ` (${detail})` : ''}; once it is approved, run: ${ctx.rerun(id)}`);
    }
    case 'review_rejected':
      return new ReviewRejectedError(`${which} was rejected${r?.by ? ` by ${r.by}` : ''}: ${r?.reason ?? e?.message ?? 'no reason given'}; not executed`);
    case 'review_expired':
      return new ReviewRejectedError(`${which} expired without a decision: not executed`);
    case 'timeout':
      return new CliError(`cancelled after ${ctx.timeout ?? 'the time limit'} (--timeout)${e?.message ? `: ${e.message}` : ''}`);
    case 'cancelled':
      return new CliError(e?.message ? `cancelled by the gateway: ${e.message}` : 'the gateway cancelled the exec');
    case undefined:
      return new CliError("the gateway's answer broke off before its end event");
  }
}

/** `ERROR 42P01: relation "x" does not exist`, as psql shows errors, with the SQLSTATE. */
export function sqlError(e: ExecFailure | undefined): string {
  if (!e) return 'ERROR: the statement failed (the gateway gave no reason)';
  return `ERROR${e.sqlstate ? ` ${e.sqlstate}` : ''}: ${e.message}`;
}

/** The summary status of an exec that ended by an error of ours rather than an `end` event. */
export function statusOfFailure(err: CliError, state: ExecState): ExecEndStatus {
  if (state.end) return state.end.status;
  if (err instanceof AuthError) return 'denied';
  if (err instanceof InterruptedError) return 'cancelled';
  if (err instanceof TimeoutError) return 'timeout';
  return 'error';
}

/** The CLI's own `--timeout` fired before the gateway ended the exec. */
export class TimeoutError extends CliError {}

/** The one object `--json` prints. */
export function summary(state: ExecState, status: ExecEndStatus, failure: CliError | undefined): Record<string, unknown> {
  const error = state.error ?? (failure && status !== 'ok' ? { message: failure.message } : undefined);
  return {
    status,
    ...(state.session ? { session: state.session } : {}),
    statements: state.statements,
    ...(error ? { error } : {}),
    ...(state.review ? { review: state.review } : {}),
  };
}
