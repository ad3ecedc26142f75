// `sluice agent start|stop|status`: the local exec agent (src/agent/server.ts), one per gateway and
// CA, that makes repeated `sluice exec` calls skip the TLS client's start-up. `agent run` is the
// agent itself in the foreground; `start` runs it in the background and returns once it listens.
import { Command } from 'commander';
import type { Factory } from '../../factory.js';
import { withGatewayFlags } from '../flags.js';
import { runAgentForeground, runAgentStart, runAgentStatus, runAgentStop, DEFAULT_IDLE } from './lifecycle.js';

export function defineAgent(f: Factory): Command {
  const start = withGatewayFlags(
    new Command('start')
      .description('start the agent for the gateway in the background (no-op when it runs)')
      .option('--idle <duration>', `exit after this long without an exec (default ${DEFAULT_IDLE})`),
  ).action((o: { gateway?: string; ca?: string; idle?: string }) => runAgentStart(f, o));
  const stop = withGatewayFlags(new Command('stop').description("stop the gateway's agent (execs then go direct)")).action((o: { gateway?: string; ca?: string }) => runAgentStop(f, o));
  const status = withGatewayFlags(new Command('status').description("whether the gateway's agent runs; exit 1 when it does not").option('--json', 'print the status as JSON')).action(
    (o: { gateway?: string; ca?: string; json?: boolean }) => runAgentStatus(f, o),
  );
  const run = withGatewayFlags(new Command('run').description('run the agent in the foreground (what `start` runs)').option('--idle <duration>', `exit after this long without an exec (default ${DEFAULT_IDLE})`)).action(
    (o: { gateway?: string; ca?: string; idle?: string }) => runAgentForeground(f, o),
  );
  return new Command('agent')
    .description('a local agent that keeps warm connections to the gateway, so `sluice exec` starts fast')
    .addCommand(start)
    .addCommand(stop)
    .addCommand(status)
    .addCommand(run);
}
