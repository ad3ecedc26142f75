// Applies the gateway's exec events, one at a time: results to the chosen format, notices and
// review progress to stderr, and what the summary and exit code need into ExecState.
import type { ExecEvent } from '../../api/contract.js';
import type { Clock } from '../../factory.js';
import { say, type Io } from '../../io.js';
import type { ResultFormat } from './formats.js';
import type { ExecState } from './outcome.js';
import { startReviewProgress, type ReviewProgress } from './reviewProgress.js';

export class ExecEvents {
  readonly state: ExecState = { statements: [] };
  private progress: ReviewProgress | undefined;

  constructor(
    private readonly io: Io,
    private readonly clock: Clock,
    private readonly results: ResultFormat,
    /** false with --no-wait: a pending review ends the exec, so there is no wait to show. */
    private readonly wait: boolean,
  ) {}

  on(ev: ExecEvent): void {
    const { state, results } = this;
    switch (ev.type) {
      case 'session':
        state.session = ev.id;
        return;
      case 'review':
        return this.review(ev);
      case 'waiting':
        return;
      case 'columns':
        return results.columns(ev.statement, ev.columns);
      case 'rows':
        return results.rows(ev.statement, ev.rows);
      case 'notice':
        return say(this.io, `${ev.severity}:  ${ev.message}`);
      case 'complete':
        state.statements.push({ command: ev.command, rows: ev.rows });
        return results.complete(ev.statement, ev.command, ev.rows);
      case 'error': {
        const { type: _t, statement, ...failure } = ev;
        state.error = { ...(statement !== undefined ? { statement } : {}), ...failure };
        return results.error(statement, failure);
      }
      case 'end':
        state.end = { status: ev.status, statements: ev.statements };
        if (ev.session) state.session = ev.session;
        return;
    }
  }

  /** Stops the review spinner or progress lines, if any. */
  stop(): void {
    this.progress?.stop();
    this.progress = undefined;
  }

  private review(ev: Extract<ExecEvent, { type: 'review' }>): void {
    const { type: _t, ...review } = ev;
    this.state.review = review;
    if (ev.status === 'pending') {
      if (this.wait && !this.progress) this.progress = startReviewProgress(this.io, this.clock, ev);
      return;
    }
    this.stop();
    if (ev.status === 'approved') say(this.io, `sluice: review ${ev.id} approved${ev.by ? ` by ${ev.by}` : ''}; running`);
  }
}
