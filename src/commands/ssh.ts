// `sluice ssh NAME [-- COMMAND…]`: opens a tunnel to an ssh connection on a free loopback port and
// runs the system `ssh` against it (the user the gateway names, a known_hosts file holding the
// gateway's host key, strict checking), then exits with ssh's exit code: the remote command's
// status, or 255 when ssh itself failed.
import { Command } from 'commander';
import { SilentExit, UsageError } from '../errors.js';
import type { Factory, GatewayFlags } from '../factory.js';
import { say } from '../io.js';
import { withGatewayFlags } from './flags.js';

export interface SshOptions extends GatewayFlags {
  name: string;
  command: string[];
  /** `-A`: forward the local ssh agent (refused by the gateway unless a rule allows it). */
  forwardAgent?: boolean;
}

export function defineSsh(f: Factory): Command {
  return withGatewayFlags(new Command('ssh'))
    .description('log in to an ssh connection through the gateway (or run `-- COMMAND…` there); exits with ssh\'s code')
    .argument('<name>', 'connection name (see `sluice connections`)')
    .argument('[command...]', 'after --: the command to run on the host')
    .option('-A, --forward-agent', 'forward your ssh agent to the host (only where the connection\'s policy allows agent forwarding)')
    .action(async (name: string, command: string[], o: GatewayFlags & { forwardAgent?: boolean }) => {
      const code = await f.interruptible((signal) => runSsh({ ...o, name, command }, f, signal));
      if (code !== 0) throw new SilentExit(code);
    });
}

export async function runSsh(opts: SshOptions, f: Factory, signal: AbortSignal): Promise<number> {
  const { io } = f;
  const gateway = await f.pinnedGateway(opts);
  const info = await gateway.connection(opts.name);
  if (info.type !== 'ssh') throw new UsageError(`${opts.name} is a ${info.type} connection, not ssh: use \`sluice connect ${opts.name}\` or \`sluice exec ${opts.name}\``);
  const [{ listenLocal }, { localSshTarget }, { sshArgv }, { runChild }] = await Promise.all([
    import('../tunnel/localListener.js'),
    import('../ssh/localTarget.js'),
    import('../ssh/sshArgs.js'),
    import('./connect.js'),
  ]);
  const host = '127.0.0.1';
  const listener = await listenLocal({
    endpoint: gateway.endpoint,
    credentials: gateway.credentials,
    connection: opts.name,
    type: info.type,
    host,
    port: 0,
    fallbackToNextFree: false,
    onClientError: (message) => say(io, `sluice ssh: ${message}`),
  });
  try {
    const target = await localSshTarget(f, gateway.url, info, host, listener.port);
    const ssh = io.env.SLUICE_SSH || 'ssh';
    return await runChild(io, [ssh, ...sshArgv(target, opts.command, { forwardAgent: opts.forwardAgent === true })], {}, signal);
  } finally {
    await listener.close();
  }
}
