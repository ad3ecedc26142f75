// Starts the picker on the terminal and guarantees the terminal comes back as it was: raw mode off
// and the cursor shown on a normal quit, an uncaught exception, SIGTERM, SIGHUP or SIGINT (a
// Ctrl-C typed in raw mode arrives as a key and quits through the app). Every tunnel is closed first.
// (An unhandled rejection reaches `uncaughtException` under Node's default --unhandled-rejections=throw.)
import { render } from 'ink';
import type { Factory } from '../factory.js';
import { App } from './App.js';
import { UiModel } from './state/model.js';
import { clientCommand } from './state/tunnels.js';
import type { ConnectionInfo } from '../api/contract.js';
import type { Gateway } from '../api/gateway.js';

const SHOW_CURSOR = '\x1b[?25h';
const SIGNALS = { SIGTERM: 15, SIGHUP: 1, SIGINT: 2 } as const;

/** psql's line for postgres; for ssh, the full command with the gateway's key in a known_hosts file, as `sluice connect` prints it. */
async function describeTunnel(f: Factory, gateway: Gateway, info: ConnectionInfo, host: string, port: number): Promise<string> {
  if (info.type !== 'ssh') return clientCommand(info, host, port);
  const [{ localSshTarget }, { sshCommandLines }] = await Promise.all([import('../ssh/localTarget.js'), import('../ssh/sshArgs.js')]);
  return sshCommandLines(await localSshTarget(f, gateway.url, info, host, port)).ssh;
}

export async function runApp(f: Factory, gateway: Gateway): Promise<number> {
  const stdin = f.io.stdin as unknown as NodeJS.ReadStream;
  const stdout = f.io.stdout as NodeJS.WriteStream;
  const model = new UiModel({ gateway, clock: f.clock, noColor: f.io.env.NO_COLOR !== undefined && f.io.env.NO_COLOR !== '', describe: (info, host, port) => describeTunnel(f, gateway, info, host, port) });
  const instance = render(<App model={model} />, { stdin, stdout, stderr: f.io.stderr as NodeJS.WriteStream, exitOnCtrlC: false, patchConsole: false });
  model.start();

  const restore = () => {
    try {
      if (stdin.isTTY) stdin.setRawMode(false);
    } catch {
      // The terminal is already gone (SIGHUP): nothing to restore.
    }
    stdout.write(SHOW_CURSOR);
  };
  let exitCode = 0;
  const stop = (code: number) => {
    exitCode = code;
    void model.close().finally(() => instance.unmount());
  };
  const onSignal = (sig: keyof typeof SIGNALS) => () => stop(128 + SIGNALS[sig]);
  const handlers = Object.keys(SIGNALS).map((sig) => [sig, onSignal(sig as keyof typeof SIGNALS)] as const);
  const onCrash = (err: unknown) => {
    instance.unmount();
    restore();
    f.io.stderr.write(`sluice ui: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  };
  for (const [sig, h] of handlers) process.on(sig, h);
  process.on('uncaughtException', onCrash);
  try {
    await instance.waitUntilExit();
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
    process.off('uncaughtException', onCrash);
    await model.close();
    restore();
    // ink leaves stdin flowing; the process should end once the app has.
    stdin.pause();
    stdin.unref?.();
  }
  return exitCode;
}
