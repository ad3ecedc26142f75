// `sluice dsn NAME`: a connection string for the gateway's direct PostgreSQL listener, with a
// short-lived password issued for the caller and this connection. Stdout carries exactly that
// one line (so `psql "$(sluice dsn pg-prod)"` works); --url prints the postgresql:// form and
// --json everything, for programs.
import { Command } from 'commander';
import { conninfo, postgresUrl, sslRootCert } from '../direct/conninfo.js';
import { UsageError } from '../errors.js';
import type { Factory, GatewayFlags } from '../factory.js';
import { print } from '../io.js';
import { withGatewayFlags } from './flags.js';

export interface DsnOptions extends GatewayFlags {
  name: string;
  format: 'conninfo' | 'url' | 'json';
}

export function defineDsn(f: Factory): Command {
  return withGatewayFlags(new Command('dsn'))
    .description('print a PostgreSQL connection string with a short-lived password (direct mode)')
    .argument('<name>', 'connection name (see `sluice connections`)')
    .option('--url', 'print the postgresql:// URL form')
    .option('--json', 'print one JSON object with every field')
    .action(async (name: string, o: GatewayFlags & { url?: boolean; json?: boolean }) => {
      if (o.url && o.json) throw new UsageError('--url and --json cannot be combined');
      const { url: _u, json: _j, ...flags } = o;
      await runDsn({ ...flags, name, format: o.json ? 'json' : o.url ? 'url' : 'conninfo' }, f);
    });
}

export async function runDsn(opts: DsnOptions, f: Factory): Promise<void> {
  const gateway = await f.gateway(opts);
  const c = await gateway.direct.issue(opts.name);
  const rootCert = sslRootCert(gateway.endpoint);
  if (opts.format === 'url') return print(f.io, postgresUrl(c, rootCert));
  if (opts.format === 'conninfo') return print(f.io, conninfo(c, rootCert));
  print(f.io, JSON.stringify({ ...c, sslmode: 'verify-full', sslrootcert: rootCert, dsn: conninfo(c, rootCert), url: postgresUrl(c, rootCert) }));
}
