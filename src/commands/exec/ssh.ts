// `sluice exec NAME -- COMMAND…` for ssh connections: an ssh2 client in the CLI speaks to the
// gateway's ssh server over one tunnel stream and runs COMMAND as an `exec` request, so the
// gateway's engine judges and records it like any ssh client's. stdout and stderr stream to ours
// separately; the exit code is the remote exit status (the gateway answers 3 for a command policy
// blocks and 5 for one a reviewer rejected, with the reason on stderr).
import type { Duplex, Readable } from 'node:stream';
import type { ClientChannel } from 'ssh2';
import type { SshConnectionInfo } from '../../api/contract.js';
import { DURATION_EXAMPLES, parseDuration } from '../../duration.js';
import { CliError, InterruptedError, UsageError } from '../../errors.js';
import type { Clock } from '../../factory.js';
import type { Io } from '../../io.js';
import { TimeoutError } from './outcome.js';

export interface SshExecOptions {
  name: string;
  /** The words after `--`, joined with spaces as ssh joins them. */
  command: string[];
  timeout?: string;
}

export interface SshExecDeps {
  io: Io;
  clock: Clock;
  /** Opens one tunnel stream to the connection (origin `exec`). */
  dial(name: string): Promise<Duplex>;
  signal?: AbortSignal;
}

/** Signal numbers for the names ssh sends in exit-signal (RFC 4254 §6.10), for 128+N like a shell. */
const SIGNALS: Record<string, number> = { HUP: 1, INT: 2, QUIT: 3, ILL: 4, ABRT: 6, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12, PIPE: 13, ALRM: 14, TERM: 15 };

/** Runs the command; resolves with the remote exit status (128+N for a signal). */
export async function runSshExec(opts: SshExecOptions, info: SshConnectionInfo, deps: SshExecDeps): Promise<number> {
  const { io } = deps;
  const command = opts.command.join(' ');
  if (command.trim() === '') throw new UsageError('the command after -- is empty: e.g. `sluice exec web-1 -- uptime`');
  const timeoutMs = parseTimeout(opts.timeout);
  const expectedKey = hostKeyBlob(info.hostKey);
  const { Client } = await import('ssh2');
  const sock = await deps.dial(opts.name);
  const client = new Client();
  const stopped = new AbortController();
  try {
    return await new Promise<number>((resolve, reject) => {
      let keyMismatch = false;
      const fail = (err: CliError) => {
        reject(err);
        client.end();
      };
      const interrupted = () => fail(new InterruptedError('interrupted; the command on the host is ended with the session'));
      // Ctrl-C may have come while the tunnel was being opened.
      if (deps.signal?.aborted) return interrupted();
      deps.signal?.addEventListener('abort', interrupted, { once: true, signal: stopped.signal });
      if (timeoutMs !== undefined) {
        deps.clock.sleep(timeoutMs, stopped.signal).then(
          () => fail(new TimeoutError(`cancelled after ${opts.timeout} (--timeout): the session on the host is closed`)),
          () => undefined,
        );
      }
      client.on('error', (err: Error) =>
        fail(new CliError(keyMismatch ? `the gateway's ssh host key is not the one it announced for ${opts.name}: refusing to go on` : `ssh to ${opts.name} through the gateway failed: ${err.message}`)),
      );
      client.on('close', () => fail(new CliError(`the gateway closed the ssh session to ${opts.name} before the command finished`)));
      client.on('ready', () => {
        client.exec(command, (err, channel) => {
          if (err) return fail(new CliError(`the gateway refused to run the command: ${err.message}`));
          forwardStdin(io, channel);
          pipeOut(channel, io.stdout);
          pipeOut(channel.stderr, io.stderr);
          let status: number | undefined;
          channel.on('exit', (code: number | null, signalName?: string) => {
            // ssh2 reports the name as `SIGTERM`; the wire carries `TERM`.
            status = code ?? 128 + (SIGNALS[(signalName ?? '').replace(/^SIG/, '')] ?? 0);
          });
          channel.on('close', () => {
            if (status === undefined) return fail(new CliError(`the command's channel closed without an exit status`));
            resolve(status);
            client.end();
          });
        });
      });
      client.connect({
        sock,
        username: info.user,
        // The key the gateway announced over HTTPS (authenticated) must be the one its ssh server shows.
        hostVerifier: (key: Buffer) => {
          keyMismatch = !key.equals(expectedKey);
          return !keyMismatch;
        },
        readyTimeout: 30_000,
      });
    });
  } finally {
    stopped.abort();
    // A pending read of a pipe that never ends would keep the process alive (an async iterator's
    // return() waits for it), so the stream itself is closed: the command no longer needs it.
    if (!io.stdin.isTTY) (io.stdin as Partial<Readable>).destroy?.();
    sock.destroy();
  }
}

/** Writes with backpressure and never ends `to` (stdout and stderr outlive the channel). */
function pipeOut(from: NodeJS.ReadableStream, to: NodeJS.WritableStream): void {
  from.on('data', (d: Buffer) => {
    if (!to.write(d)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
}

/** Piped stdin goes to the command (EOF when it ends); a terminal's is left alone, as `ssh -n` would. */
function forwardStdin(io: Io, channel: ClientChannel): void {
  if (io.stdin.isTTY) return void channel.end();
  void (async () => {
    try {
      for await (const chunk of io.stdin) {
        if (!channel.write(chunk)) await new Promise((r) => channel.once('drain', r));
      }
      channel.end();
    } catch {
      // stdin broke or the channel went away: the command's own exit status tells the rest.
    }
  })();
}

function hostKeyBlob(line: string): Buffer {
  const b64 = line.trim().split(/\s+/)[1];
  if (!b64) throw new CliError('the gateway announced no ssh host key for this connection');
  return Buffer.from(b64, 'base64');
}

function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined || ms === 0) throw new UsageError(`--timeout "${text}" is not a duration: ${DURATION_EXAMPLES}`);
  return ms;
}
