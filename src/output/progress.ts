// "Waiting…" feedback on stderr. On a terminal: a spinner (yocto-spinner, loaded only then). Anywhere
// else (CI logs, a pipe, a file): the text once as a plain line, with no ANSI escapes, since
// cursor movements and colours turn into garbage in a log.
import { say, type Io } from '../io.js';

export interface Progress {
  start(): void;
  stop(): void;
}

export async function createProgress(io: Io, text: string): Promise<Progress> {
  if (!io.stderr.isTTY || io.env.TERM === 'dumb') {
    return { start: () => say(io, text), stop: () => undefined };
  }
  const { default: yoctoSpinner } = await import('yocto-spinner');
  // handleSignals off: Ctrl-C is the command's to handle (e.g. cancel a poll, exit 130).
  const spinner = yoctoSpinner({ stream: io.stderr as NodeJS.WriteStream, text, handleSignals: false });
  return {
    start: () => void spinner.start(),
    stop: () => void spinner.stop(),
  };
}
