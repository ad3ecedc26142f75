// `sluice whoami`: who the gateway thinks you are, as it verified your token.
import { createGatewayClient } from '../api/client.js';
import { resolveEndpoint } from '../api/endpoint.js';
import { credentialSource } from '../auth/credentials.js';
import { print, type Io } from '../io.js';

export async function runWhoami(io: Io, opts: { gateway?: string; ca?: string; json: boolean }): Promise<void> {
  const endpoint = resolveEndpoint(io, opts);
  const token = await credentialSource(io, endpoint).token();
  const who = await createGatewayClient(endpoint).me(token);
  if (opts.json) return print(io, JSON.stringify({ gateway: endpoint.url, ...who }));
  print(io, `${who.name} (${who.kind === 'service' ? 'service token' : 'user'}) at ${endpoint.url}`);
  if (who.email && who.email !== who.name) print(io, `  email:   ${who.email}`);
  print(io, `  subject: ${who.subject}`);
  print(io, `  groups:  ${who.groups.join(', ') || '(none)'}`);
  if (who.expiresAt) print(io, `  token expires ${who.expiresAt}`);
}
