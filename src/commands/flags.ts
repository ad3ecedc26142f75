// Flags and value parsers shared by several commands, so each is spelled and validated once.
import { InvalidArgumentError, type Command } from 'commander';
import { DURATION_EXAMPLES, parseDuration } from '../duration.js';

/** --gateway and --ca: every command that talks to the gateway takes them. */
export function withGatewayFlags(cmd: Command): Command {
  return cmd
    .option('--gateway <url>', 'gateway URL (default: $SLUICE_GATEWAY, or `sluice config set gateway`)')
    .option('--ca <file>', "PEM file of the CA that signs the gateway's certificate (default: $SLUICE_CA)");
}

export function parsePositive(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number ≥ 1');
  return n;
}

export function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535 (0: any free port)');
  return n;
}

const MAX_STARTUP_TIMEOUT_MS = 3_600_000;

/** `--startup-timeout`: a duration (`10s`, `2m`); a bare number keeps meaning seconds. Returns ms. */
export function parseStartupTimeout(v: string): number {
  const ms = /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) * 1000 : parseDuration(v);
  if (ms === undefined || !(ms > 0) || ms > MAX_STARTUP_TIMEOUT_MS) {
    throw new InvalidArgumentError(`expected a duration (${DURATION_EXAMPLES}; a bare number is seconds), more than 0 and at most 1h`);
  }
  return ms;
}
