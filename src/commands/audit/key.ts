// `sluice audit key > gateway.pub`: the gateway's public audit key (PEM), for offline verification.
// Keep it somewhere the gateway's operators cannot change: it is what makes verification
// independent of the gateway.
import { createPublicKey } from 'node:crypto';
import { Command } from 'commander';
import type { Factory, GatewayFlags } from '../../factory.js';
import { say } from '../../io.js';
import { withGatewayFlags } from '../flags.js';

export function defineAuditKey(f: Factory): Command {
  return withGatewayFlags(new Command('key'))
    .description("print the gateway's public audit key (PEM)")
    .action((o: GatewayFlags) => runAuditKey(o, f));
}

export async function runAuditKey(opts: GatewayFlags, f: Factory): Promise<void> {
  const gateway = await f.gateway(opts);
  const pem = await gateway.audit.publicKey();
  const { keyIdOf } = await import('../../api/auditTrail.js');
  f.io.stdout.write(pem);
  say(f.io, `audit key ${keyIdOf(createPublicKey(pem))} of ${gateway.url}`);
}
