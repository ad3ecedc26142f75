// `sluice audit export [--session ID | --since 2h] > trail.jsonl`: the trail as JSON Lines with
// hashes, the ledger, the signed checkpoints and a signed end line, for `sluice audit verify`.
import { Command } from 'commander';
import { parseSince } from '../../duration.js';
import { UsageError } from '../../errors.js';
import type { Factory, GatewayFlags } from '../../factory.js';
import { say } from '../../io.js';
import { withGatewayFlags } from '../flags.js';

export interface AuditExportOptions extends GatewayFlags {
  session?: string;
  since?: string;
}

export function defineAuditExport(f: Factory): Command {
  return withGatewayFlags(new Command('export'))
    .description('write the trail as JSON Lines (hashes, ledger, signed checkpoints) to stdout')
    .option('--session <id>', 'only this session')
    .option('--since <when>', 'only sessions started since, e.g. 24h or 2026-11-05T09:00:00Z')
    .action((o: AuditExportOptions) => runAuditExport(o, f));
}

export async function runAuditExport(opts: AuditExportOptions, f: Factory): Promise<void> {
  const { io } = f;
  if (opts.session && opts.since) throw new UsageError('give either --session or --since, not both');
  const since = opts.since !== undefined ? parseSince(opts.since, f.clock.now()) : undefined;
  const gateway = await f.gateway(opts);
  const body = await gateway.audit.exportTrail({ ...(opts.session ? { session: opts.session } : {}), ...(since ? { since } : {}) });
  let lines = 0;
  for await (const chunk of body) {
    for (const b of chunk) if (b === 0x0a) lines++;
    if (!io.stdout.write(chunk)) await new Promise((r) => io.stdout.once('drain', r));
  }
  say(io, `exported ${lines} lines from ${gateway.url}; check them with: sluice audit verify FILE --key gateway.pub`);
}
