// `sluice sessions export ID --cast`: an ssh session's terminal stream as an asciicast v2 file on
// stdout (`> s.cast`, then `asciinema play s.cast`). The signed, verifiable form of a session is
// `sluice audit export`; this is for watching one.
import { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { Factory, GatewayFlags } from '../../factory.js';
import { say } from '../../io.js';
import { withGatewayFlags } from '../flags.js';
import { asciicastLines } from './cast.js';
import { isTerminalSession, terminalTimeline } from './terminal.js';

export interface SessionsExportOptions extends GatewayFlags {
  id: string;
  cast: boolean;
}

export function defineSessionsExport(f: Factory): Command {
  return withGatewayFlags(new Command('export'))
    .description("write an ssh session's terminal recording to stdout (--cast: asciicast v2, for asciinema)")
    .argument('<id>', 'session id (see `sluice sessions`)')
    .option('--cast', 'asciicast v2 (the only format so far)')
    .action((id: string, o: GatewayFlags & { cast?: boolean }) => runSessionsExport({ ...o, id, cast: Boolean(o.cast) }, f));
}

export async function runSessionsExport(opts: SessionsExportOptions, f: Factory): Promise<void> {
  if (!opts.cast) throw new UsageError('say which format: --cast (asciicast v2); for the signed audit trail use `sluice audit export --session ID`');
  const detail = await (await f.gateway(opts)).audit.session(opts.id);
  if (!isTerminalSession(detail)) throw new UsageError(`session ${opts.id} is a ${detail.session.protocol} session: only ssh sessions have a terminal recording (see \`sluice sessions replay ${opts.id}\`)`);
  const timeline = terminalTimeline(detail);
  const s = detail.session;
  for (const line of asciicastLines(timeline, { timestamp: Date.parse(s.startedAt) / 1000, title: `${s.connection} · ${s.email ?? s.user} · ${s.id}` })) {
    if (!f.io.stdout.write(line)) await new Promise((r) => f.io.stdout.once('drain', r));
  }
  if (timeline.truncated) say(f.io, 'note: the gateway stopped keeping terminal output at its per-session cap; the recording ends there');
}
