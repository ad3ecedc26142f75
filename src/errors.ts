// Typed CLI errors and the one table that turns them into exit codes (docs/cli.md).
export const ExitCode = {
  ok: 0,
  error: 1,
  usage: 2,
  blockedByPolicy: 3,
  notAuthenticated: 4,
  reviewRejected: 5,
  interrupted: 130,
  reviewPending: 75,
} as const;

export class CliError extends Error {
  readonly exitCode: number = ExitCode.error;
}

/** The command line itself is wrong (unknown flag, bad value). */
export class UsageError extends CliError {
  override readonly exitCode = ExitCode.usage;
}

/** Not logged in, token expired beyond refresh, or refused by the gateway (401/403). */
export class AuthError extends CliError {
  override readonly exitCode = ExitCode.notAuthenticated;
  /** The gateway's HTTP status when it refused (401: the token itself; 403: its holder). */
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The gateway refused because the caller is at one of its limits (HTTP 429); later may succeed. */
export class LimitError extends CliError {}

/** A policy rule refused the work before it reached the target (the message names the rule). */
export class BlockedError extends CliError {
  override readonly exitCode = ExitCode.blockedByPolicy;
}

/** A review the work needed was rejected or expired without a decision: it did not run. */
export class ReviewRejectedError extends CliError {
  override readonly exitCode = ExitCode.reviewRejected;
}

/** The work waits for a review and the caller chose not to wait (`--no-wait`); run it again once approved. */
export class ReviewPendingError extends CliError {
  override readonly exitCode = ExitCode.reviewPending;
}

/** The user pressed Ctrl-C while the command waited. */
export class InterruptedError extends CliError {
  override readonly exitCode = ExitCode.interrupted;
}

/**
 * Ends the command with `exitCode` and no message of ours: whatever needed saying was said (e.g.
 * `connect NAME -- CMD` exits with CMD's code, and CMD printed its own errors).
 */
export class SilentExit extends CliError {
  constructor(override readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

export function exitCodeFor(err: unknown): number {
  return err instanceof CliError ? err.exitCode : ExitCode.error;
}

/** Says `sluice: MESSAGE` on `stderr` (nothing for SilentExit) and returns the error's exit code. */
export function reportFailure(err: unknown, stderr: (line: string) => void): number {
  if (!(err instanceof SilentExit)) stderr(`sluice: ${err instanceof CliError ? err.message : (err as Error).message}`);
  return exitCodeFor(err);
}
