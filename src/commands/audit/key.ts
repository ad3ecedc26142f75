// `sluice audit key > gateway.pub`: the gateway's public audit key (PEM), for offline verification.
// Keep it somewhere the gateway's operators cannot change: it is what makes verification
// independent of the gateway.
import { createPublicKey } from 'node:crypto';
import { resolveEndpoint } from '../../api/endpoint.js';
import { keyIdOf } from '../../api/auditTrail.js';
import { say, type Io } from '../../io.js';
import { createAuditClient } from '../sessions/client.js';

export async function runAuditKey(io: Io, opts: { gateway?: string; ca?: string }): Promise<void> {
  const endpoint = resolveEndpoint(io, opts);
  const pem = await createAuditClient(endpoint).publicKey();
  io.stdout.write(pem);
  say(io, `audit key ${keyIdOf(createPublicKey(pem))} of ${endpoint.url}`);
}
