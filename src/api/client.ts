// A typed client for the gateway's JSON API. Responses are validated with the shared contract;
// refusals become typed errors carrying the gateway's own message.
import type { z } from 'zod';
import { AuthError, CliError } from '../errors.js';
import { authConfig, connectionInfo, connectionList, errorBody, me, paths, type AuthConfig, type ConnectionInfo, type ConnectionList, type Me } from './contract.js';
import type { Endpoint } from './endpoint.js';

export class NotFoundError extends CliError {}

export interface GatewayClient {
  authConfig(): Promise<AuthConfig>;
  me(token: string): Promise<Me>;
  connections(token: string): Promise<ConnectionList>;
  connection(token: string, name: string): Promise<ConnectionInfo>;
}

export function createGatewayClient(endpoint: Endpoint): GatewayClient {
  async function get<T>(path: string, schema: z.ZodType<T>, token?: string): Promise<T> {
    let res: Response;
    try {
      res = await endpoint.fetch(endpoint.url + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    } catch (err) {
      throw new CliError(describeNetworkError(endpoint, err));
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new CliError(`the gateway at ${endpoint.url} answered ${res.status} with a body that is not JSON (is this a Sluice gateway?)`);
    }
    if (!res.ok) throw errorFromResponse(res.status, body);
    const parsed = schema.safeParse(body);
    if (!parsed.success) throw new CliError(`unexpected answer from the gateway for ${path}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    return parsed.data;
  }
  return {
    authConfig: () => get(paths.authConfig, authConfig),
    me: (token) => get(paths.me, me, token),
    connections: (token) => get(paths.connections, connectionList, token),
    connection: (token, name) => get(paths.connection(name), connectionInfo, token),
  };
}

/** Turns a gateway error status + body into the CLI's typed error. */
export function errorFromResponse(status: number, body: unknown): CliError {
  const parsed = errorBody.safeParse(body);
  const message = parsed.success ? parsed.data.error.message : `the gateway answered ${status}`;
  if (status === 401 || status === 403) return new AuthError(message);
  if (status === 404) return new NotFoundError(message);
  return new CliError(message);
}

export function describeNetworkError(endpoint: Endpoint, err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause ?? (err as { code?: string; message?: string });
  const code = cause.code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
    return `cannot verify the TLS certificate of ${endpoint.url} (${code})${endpoint.caFile ? ` against ${endpoint.caFile}` : ': pass --ca FILE (or set SLUICE_CA) with the gateway\'s certificate'}`;
  }
  return `cannot reach the gateway at ${endpoint.url}: ${code || cause.message || String(err)}`;
}
