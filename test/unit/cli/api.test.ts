// The bound gateway and the API client's messages, over a fake fetch (no network): a refused
// SLUICE_TOKEN names the variable, ECONNREFUSED asks whether the gateway runs, and the token is
// sent only where it belongs.
import { describe, expect, it } from 'vitest';
import { bindGateway } from '../../../src/api/gateway.js';
import type { Endpoint } from '../../../src/api/endpoint.js';
import { credentialSource } from '../../../src/auth/credentials.js';
import type { TokenStore } from '../../../src/auth/tokenStore.js';
import { AuthError, CliError } from '../../../src/errors.js';
import type { Io } from '../../../src/io.js';
import { PassThrough } from 'node:stream';

const URL_ = 'https://gw.example.test:8443';

function endpointAnswering(handler: (url: string, init: RequestInit) => Promise<Response>): Endpoint & { seen: { url: string; auth: string | undefined }[] } {
  const seen: { url: string; auth: string | undefined }[] = [];
  const fetch = (async (input: string, init: RequestInit = {}) => {
    seen.push({ url: input, auth: (init.headers as Record<string, string> | undefined)?.authorization });
    return handler(input, init);
  }) as unknown as typeof globalThis.fetch;
  return { url: URL_, dispatcher: undefined as never, fetch, seen };
}

const io = (env: NodeJS.ProcessEnv): Io => ({ stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough(), env });
const noStore = (): Promise<TokenStore> => Promise.reject(new Error('the store must not be opened'));
const refused = (status: number, code: string, message: string) => async () => new Response(JSON.stringify({ error: { code, message } }), { status });
const me = { subject: 's', name: 'ci', groups: ['ci'], kind: 'service' };

describe('bound gateway', () => {
  it('sends SLUICE_TOKEN as the bearer token and validates the answer', async () => {
    const ep = endpointAnswering(async () => Response.json(me));
    const gw = bindGateway(ep, credentialSource(io({ SLUICE_TOKEN: 'slc_abc' }), ep, noStore));
    expect(await gw.me()).toEqual(me);
    expect(ep.seen).toEqual([{ url: `${URL_}/v1/me`, auth: 'Bearer slc_abc' }]);
  });

  it('a 401 for SLUICE_TOKEN names the variable and says what to do (exit 4)', async () => {
    const ep = endpointAnswering(refused(401, 'token_revoked', 'service token "ci" was revoked'));
    const gw = bindGateway(ep, credentialSource(io({ SLUICE_TOKEN: 'slc_abc' }), ep, noStore));
    const err = await gw.connections().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect((err as AuthError).exitCode).toBe(4);
    expect((err as Error).message).toBe(
      'the token in SLUICE_TOKEN was refused: service token "ci" was revoked; unset it to use your login, or create a new service token',
    );
    expect((err as Error).message).not.toContain('slc_abc');
  });

  it('a 403 for SLUICE_TOKEN is about its holder, not the variable: the message is the gateway\'s', async () => {
    const ep = endpointAnswering(refused(403, 'forbidden', 'you may not use pg-prod'));
    const gw = bindGateway(ep, credentialSource(io({ SLUICE_TOKEN: 'slc_abc' }), ep, noStore));
    await expect(gw.connection('pg-prod')).rejects.toThrow(/^you may not use pg-prod$/);
  });

  it('a 401 for a stored login keeps the gateway\'s message', async () => {
    const ep = endpointAnswering(refused(401, 'invalid_token', 'token expired'));
    const store: TokenStore = { kind: 'file', location: 'x', load: () => ({ accessToken: 'at', expiresAt: 4_000_000_000, issuer: 'i', clientId: 'c' }), save: () => undefined, remove: () => false };
    const gw = bindGateway(ep, credentialSource(io({}), ep, async () => store));
    await expect(gw.me()).rejects.toThrow(/^token expired$/);
    expect(ep.seen[0]?.auth).toBe('Bearer at');
  });

  it('not logged in: exit 4 and the command to run, without a request', async () => {
    const ep = endpointAnswering(async () => Response.json(me));
    const store: TokenStore = { kind: 'file', location: 'x', load: () => undefined, save: () => undefined, remove: () => false };
    const gw = bindGateway(ep, credentialSource(io({}), ep, async () => store));
    await expect(gw.me()).rejects.toThrow(`not logged in to ${URL_}: run \`sluice login\``);
    expect(ep.seen).toEqual([]);
  });

  it('the audit key needs no token', async () => {
    const ep = endpointAnswering(async () => new Response('PEM'));
    const gw = bindGateway(ep, credentialSource(io({}), ep, noStore));
    expect(await gw.audit.publicKey()).toBe('PEM');
    expect(ep.seen[0]?.auth).toBeUndefined();
  });

  it('ECONNREFUSED asks whether sluice-gateway runs there (exit 1)', async () => {
    const ep = endpointAnswering(() => Promise.reject(new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) })));
    const gw = bindGateway(ep, credentialSource(io({ SLUICE_TOKEN: 't' }), ep, noStore));
    const err = await gw.me().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(1);
    expect((err as Error).message).toMatch(new RegExp(`^cannot reach the gateway at ${URL_.replace(/\./g, '\\.')}: connection refused — is sluice-gateway running there\\?`));
  });

  it('a certificate problem says to pass --ca', async () => {
    const ep = endpointAnswering(() => Promise.reject(new TypeError('fetch failed', { cause: Object.assign(new Error('self-signed'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }) })));
    const gw = bindGateway(ep, credentialSource(io({ SLUICE_TOKEN: 't' }), ep, noStore));
    await expect(gw.me()).rejects.toThrow(`cannot verify the TLS certificate of ${URL_} (DEPTH_ZERO_SELF_SIGNED_CERT): pass --ca FILE`);
  });

  it('an answer that is not JSON asks whether this is a Sluice gateway', async () => {
    const ep = endpointAnswering(async () => new Response('<html>'));
    const gw = bindGateway(ep, credentialSource(io({ SLUICE_TOKEN: 't' }), ep, noStore));
    await expect(gw.me()).rejects.toThrow('is this a Sluice gateway?');
  });
});
