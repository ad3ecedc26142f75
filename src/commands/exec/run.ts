// What `sluice exec NAME` does once its flags are parsed: read the input, send it to the gateway,
// render the event stream as it arrives, and turn how it ended into a typed error. Kept apart from
// the commander definition (exec.ts) so the agent fast path (exec/fast.ts) runs exactly this code
// without loading commander.
import type { ExecRequest } from '../../api/contract.js';
import type { ExecClient } from '../../api/exec.js';
import { DURATION_EXAMPLES, parseDuration } from '../../duration.js';
import { CliError, InterruptedError, UsageError } from '../../errors.js';
import type { Clock } from '../../factory.js';
import { say, type Io } from '../../io.js';
import { createFormat, FORMATS, silentFormat, type Format, type ResultFormat } from './formats.js';
import { readExecInput, sourceArgs } from './input.js';
import { ExecEvents } from './events.js';
import { outcomeError, statusOfFailure, summary, TimeoutError, type ExecState } from './outcome.js';
import { StdoutSink } from './sink.js';

export interface ExecOptions {
  name: string;
  input?: string;
  file?: string;
  format?: string;
  json: boolean;
  /** false with `--no-wait`. */
  wait: boolean;
  review?: string;
  timeout?: string;
}

/** What exec reads and writes: the command's Io (stdin is read only for piped or `-f -` input). */
export type ExecIo = Io;

export interface ExecDeps {
  io: ExecIo;
  clock: Clock;
  exec: ExecClient;
  /** Aborts when the user presses Ctrl-C. */
  signal?: AbortSignal;
}

/** The longest `--timeout` the gateway accepts (execRequest). */
const MAX_TIMEOUT_MS = 7 * 24 * 3_600_000;
/**
 * The gateway enforces `--timeout` itself and says so with a `timeout` end event; we give up on our
 * own only when the stream has been silent this much longer, so a gateway that stopped answering
 * cannot hold a CI job forever.
 */
export const TIMEOUT_GRACE_MS = 10_000;
/** While a review is pending the gateway sends a keep-alive every 15 s; silence this long means it is gone. */
export const REVIEW_SILENCE_MS = 45_000;

export async function runExec(opts: ExecOptions, deps: ExecDeps): Promise<void> {
  const { io, clock } = deps;
  const format = chooseFormat(opts, io);
  const timeoutMs = parseTimeout(opts.timeout);
  if (opts.review !== undefined && !/^[\w-]{1,40}$/.test(opts.review)) throw new UsageError(`--review "${opts.review}" is not a review id: expected e.g. R-8F3K (see \`sluice reviews\`)`);
  const input = await readExecInput(opts, () => io.stdin, io.cwd);

  const request: ExecRequest = {
    input: input.sql,
    ...(opts.review !== undefined ? { review: opts.review } : {}),
    ...(opts.wait ? {} : { wait: false }),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  };
  const sink = new StdoutSink(io.stdout);
  const results: ResultFormat = opts.json ? silentFormat : createFormat(format, sink);
  const handler = new ExecEvents(io, clock, results, opts.wait);
  const { state } = handler;
  const local = new AbortController();
  const signal = deps.signal ? AbortSignal.any([deps.signal, local.signal]) : local.signal;
  const silenceLimit = (): number => {
    const limit = (timeoutMs ?? 0) + TIMEOUT_GRACE_MS;
    return state.review?.status === 'pending' ? Math.max(limit, REVIEW_SILENCE_MS) : limit;
  };
  const watchdog =
    timeoutMs !== undefined
      ? startWatchdog(clock, silenceLimit, () => local.abort(new TimeoutError(`cancelled after ${opts.timeout} (--timeout): the gateway did not end the exec in time`)))
      : undefined;
  let failure: CliError | undefined;
  try {
    const events = await deps.exec.exec(opts.name, request, signal);
    for await (const ev of events) {
      watchdog?.touch();
      handler.on(ev);
      // Wait until stdout took this event's output before pulling the next one: backpressure.
      await sink.flush();
    }
    failure = outcomeError(state, {
      ...(opts.timeout !== undefined ? { timeout: opts.timeout } : {}),
      rerun: (id) => `sluice exec ${opts.name} --review ${id} ${sourceArgs(input.source, input.sql)}`,
    });
  } catch (err) {
    failure = asFailure(err, deps.signal, local.signal, state);
  } finally {
    handler.stop();
    watchdog?.stop();
  }

  try {
    await sink.flush();
    if (opts.json) {
      sink.write(JSON.stringify(summary(state, failure ? statusOfFailure(failure, state) : 'ok', failure)) + '\n');
      await sink.flush();
    }
  } catch (err) {
    failure ??= err instanceof CliError ? err : new CliError(String(err));
  } finally {
    sink.close();
  }
  if (failure && state.error?.statement !== undefined && state.end?.status === 'error' && (state.error.statement > 0 || state.end.statements > 1)) {
    say(io, `sluice: stopped at statement ${state.error.statement + 1}: the statements before it ran, the ones after it did not`);
  }
  if (failure) throw failure;
}

function chooseFormat(opts: ExecOptions, io: Io): Format {
  if (opts.format === undefined) return io.stdout.isTTY ? 'table' : 'csv';
  if (opts.json) throw new UsageError('--json prints only the final summary, so it takes no --format: drop one of them');
  if (!(FORMATS as readonly string[]).includes(opts.format)) throw new UsageError(`--format "${opts.format}" is not known: use table, csv or json`);
  return opts.format as Format;
}

function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined || ms === 0) throw new UsageError(`--timeout "${text}" is not a duration: ${DURATION_EXAMPLES}`);
  if (ms > MAX_TIMEOUT_MS) throw new UsageError(`--timeout "${text}" is longer than the 7d an exec may run`);
  return ms;
}

function asFailure(err: unknown, interrupt: AbortSignal | undefined, local: AbortSignal, state: ExecState): CliError {
  if (interrupt?.aborted) {
    const held = state.review?.status === 'pending' ? `; review ${state.review.id} is cancelled with it` : '; the gateway cancels the running statement';
    return new InterruptedError(`interrupted${held}`);
  }
  if (local.aborted && local.reason instanceof CliError) return local.reason;
  if (err instanceof CliError) return err;
  return new CliError((err as Error).message ?? String(err));
}

/** Calls `fire` once when `limitMs()` pass without a `touch()`. */
function startWatchdog(clock: Clock, limitMs: () => number, fire: () => void): { touch(): void; stop(): void } {
  let last = clock.now();
  const stopped = new AbortController();
  void (async () => {
    for (;;) {
      const wait = last + limitMs() - clock.now();
      if (wait <= 0) return fire();
      try {
        await clock.sleep(wait, stopped.signal);
      } catch {
        return;
      }
      if (stopped.signal.aborted) return;
    }
  })();
  return { touch: () => (last = clock.now()), stop: () => stopped.abort() };
}
