// How a refused request or a network failure reads to the user: one place for every command, and
// free of zod (the error body is checked by hand against contract.ts `errorBody`), so that
// `sluice exec` reports refusals without loading it.
import { AuthError, CliError, LimitError } from '../errors.js';
import type { GatewayTarget } from './gatewayTarget.js';

export class NotFoundError extends CliError {}

/** Turns a gateway error status + body into the CLI's typed error. */
export function errorFromResponse(status: number, body: unknown): CliError {
  const message = errorMessage(body) ?? `the gateway answered ${status}`;
  if (status === 401 || status === 403) return new AuthError(message, status);
  if (status === 404) return new NotFoundError(message);
  if (status === 429) return new LimitError(message);
  return new CliError(message);
}

export function describeNetworkError(endpoint: GatewayTarget, err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause ?? (err as { code?: string; message?: string });
  const code = cause.code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
    return `cannot verify the TLS certificate of ${endpoint.url} (${code})${endpoint.caFile ? ` against ${endpoint.caFile}` : ': pass --ca FILE (or set SLUICE_CA) with the gateway\'s certificate'}`;
  }
  if (code === 'ECONNREFUSED') {
    return `cannot reach the gateway at ${endpoint.url}: connection refused — is sluice-gateway running there? (check the URL: --gateway, SLUICE_GATEWAY or \`sluice config get gateway\`)`;
  }
  return `cannot reach the gateway at ${endpoint.url}: ${code || cause.message || String(err)}`;
}

/** The message of a body shaped like contract.ts `errorBody` ({ error: { code, message } }). */
function errorMessage(body: unknown): string | undefined {
  const error = (body as { error?: unknown } | null | undefined)?.error as { code?: unknown; message?: unknown } | null | undefined;
  return typeof error === 'object' && error !== null && typeof error.code === 'string' && typeof error.message === 'string' ? error.message : undefined;
}
