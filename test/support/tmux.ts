// A real terminal for tests: a private tmux server (its own socket in a temp dir, no user config)
// with one detached 80×24 session running a command, so the terminal app is driven exactly as a
// person drives it: keys go in with send-keys, the screen comes out with capture-pane. The command
// runs under a small `sh` wrapper that, once it exits, prints its exit status and `stty -a`, so a
// test can prove the terminal was left in cooked mode; the pane stays readable after that
// (remain-on-exit). Missing tmux is an error naming the Debian package, never a skip.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureProgram } from './pgCluster.js';

const execFileAsync = promisify(execFile);

export const TMUX_PATH = '/usr/bin/tmux';

/** Where the wrapper's report on the exited command begins; the exit status follows it. */
export const EXIT_MARKER = '[sluice-test: exited';

// Our settings only (-f): no status line, so the pane is the whole 80×24; no escape delay, so Esc
// reaches the app at once; the pane survives its command so the wrapper's report can be read.
const CONFIG = [
  'set -g status off',
  'set -wg remain-on-exit on',
  'set -sg escape-time 0',
  'set -g history-limit 5000',
  // A program's OSC 52 (copy to the clipboard) becomes a tmux paste buffer the test can read.
  'set -s set-clipboard on',
  'set -g default-terminal tmux-256color',
].join('\n');

// $1 the file the modes are also written to (parsed by tests); the command follows.
const WRAPPER = '"${@:2}"; code=$?; stty -a > "$1"; printf "\\n%s %s]\\n" "' + EXIT_MARKER + '" "$code"; stty -a';

/** Terminal modes from `stty -a`: the flags a cooked terminal has on, as stty prints them. */
export interface TtyModes {
  readonly icanon: boolean;
  readonly echo: boolean;
  readonly isig: boolean;
  readonly icrnl: boolean;
  readonly opost: boolean;
  /** The whole `stty -a` output. */
  readonly raw: string;
}

export interface TmuxOptions {
  /** argv of the command (run directly, no shell parsing). */
  readonly command: readonly string[];
  /** The command's whole environment besides what tmux sets (TERM, TMUX, TMUX_PANE); a key set to undefined is left out. */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly width?: number;
  readonly height?: number;
}

export interface CaptureOptions {
  readonly history?: boolean;
  readonly escapes?: boolean;
}

export interface WaitOptions {
  /** Give up after this many milliseconds (default 20 s). */
  readonly timeout?: number;
  /** Capture the scrollback too, not only the visible screen. */
  readonly history?: boolean;
}

export interface TmuxSession {
  /** The temp dir holding the socket; removed by kill(). */
  readonly dir: string;
  /** Key names as tmux knows them: `Enter`, `Escape`, `Tab`, `C-c`, `Up`, `q`, … */
  keys(...keys: string[]): Promise<void>;
  /** Literal text, in one write (as a paste, or fast typing that the program reads at once). */
  type(text: string): Promise<void>;
  /** The visible screen (or with `history` the scrollback as well), trailing blanks trimmed; with `escapes` the colours and attributes as SGR sequences. */
  capture(opts?: CaptureOptions): Promise<string>;
  /** Polls the screen until `pattern` appears; returns the screen and the match. Throws with the last screen on timeout. */
  waitFor(pattern: string | RegExp, opts?: WaitOptions): Promise<{ screen: string; match: RegExpExecArray }>;
  /** Polls the screen until `check` returns true for it. */
  waitUntil(check: (screen: string) => boolean, what: string, opts?: WaitOptions): Promise<string>;
  resize(width: number, height: number): Promise<void>;
  /** The pid of the command itself (the wrapper's child), while it runs. */
  commandPid(): Promise<number>;
  /** What the program last copied with OSC 52 (the newest paste buffer), or undefined. */
  clipboard(): Promise<string | undefined>;
  /** Whether the pane shows the alternate screen now. */
  alternateScreen(): Promise<boolean>;
  /** Waits for the command to exit; its exit status (128+N for signal N) and the terminal modes it left. */
  waitForExit(opts?: WaitOptions): Promise<{ code: number; modes: TtyModes }>;
  /** Kills the tmux server and removes its directory; safe to call twice. */
  kill(): Promise<void>;
}

/** Parses `stty -a` output: a flag is on when it appears without a leading `-`. */
export function parseStty(text: string): TtyModes {
  const words = new Set(text.split(/[\s;]+/));
  const on = (flag: string): boolean => {
    if (words.has(`-${flag}`)) return false;
    if (words.has(flag)) return true;
    throw new Error(`stty -a output names neither ${flag} nor -${flag}:\n${text}`);
  };
  return { icanon: on('icanon'), echo: on('echo'), isig: on('isig'), icrnl: on('icrnl'), opost: on('opost'), raw: text };
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Starts the tmux server and session; always `kill()` it (in a finally or afterAll). */
export async function startTmux(opts: TmuxOptions): Promise<TmuxSession> {
  ensureProgram(TMUX_PATH, 'tmux');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-tmux-'));
  const socket = join(dir, 'sock');
  const configFile = join(dir, 'tmux.conf');
  const modesFile = join(dir, 'stty.txt');
  writeFileSync(configFile, `${CONFIG}\n`);
  const width = opts.width ?? 80;
  const height = opts.height ?? 24;
  const target = 'sluice-test:0.0';
  // The server inherits the environment of the client that starts it and hands it to the pane.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries({ LANG: 'C.UTF-8', ...(opts.env ?? process.env) })) if (v !== undefined && k !== 'TMUX') env[k] = v;

  const tmux = async (...args: string[]): Promise<string> => {
    try {
      const { stdout } = await execFileAsync(TMUX_PATH, ['-u', '-S', socket, '-f', configFile, ...args], { env, encoding: 'utf8' });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`tmux ${args[0]} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
    }
  };

  let killed = false;
  const kill = async (): Promise<void> => {
    if (killed) return;
    killed = true;
    await tmux('kill-server').catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };

  // Should the test process die first, the server must not outlive it.
  const watchdog = spawn('sh', ['-c', 'while kill -0 "$1" 2>/dev/null && [ -d "$3" ]; do sleep 1; done; "$4" -S "$2" kill-server 2>/dev/null; rm -rf "$3"', 'sh', String(process.pid), socket, dir, TMUX_PATH], { detached: true, stdio: 'ignore' });
  watchdog.unref();

  try {
    await tmux('new-session', '-d', '-s', 'sluice-test', '-x', String(width), '-y', String(height), ...(opts.cwd ? ['-c', opts.cwd] : []), 'bash', '-c', WRAPPER, 'sluice-test', modesFile, ...opts.command);
  } catch (err) {
    await kill();
    throw err;
  }

  const capture = async (o: CaptureOptions = {}): Promise<string> => {
    const out = await tmux('capture-pane', '-p', '-J', '-t', target, ...(o.history ? ['-S', '-'] : []), ...(o.escapes ? ['-e'] : []));
    return out.replace(/[ \t]+$/gm, '').replace(/\n+$/, '');
  };

  const waitUntil = async (check: (screen: string) => boolean, what: string, o: WaitOptions = {}): Promise<string> => {
    const until = Date.now() + (o.timeout ?? 20_000);
    for (;;) {
      const screen = await capture({ history: o.history ?? false });
      if (check(screen)) return screen;
      if (Date.now() > until) throw new Error(`timed out after ${o.timeout ?? 20_000} ms waiting for ${what}; the screen:\n${screen}`);
      await delay(100);
    }
  };

  const pane = async (format: string): Promise<string> => (await tmux('display-message', '-p', '-t', target, format)).trim();

  const session: TmuxSession = {
    dir,
    keys: async (...keys) => void (await tmux('send-keys', '-t', target, ...keys)),
    type: async (text) => void (await tmux('send-keys', '-t', target, '-l', text)),
    capture,
    waitUntil,
    async waitFor(pattern, o) {
      const re = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
      let match: RegExpExecArray | null = null;
      const screen = await waitUntil((s) => (match = re.exec(s)) !== null, String(re), o);
      return { screen, match: match as unknown as RegExpExecArray };
    },
    async resize(w, h) {
      await tmux('resize-window', '-t', target, '-x', String(w), '-y', String(h));
    },
    async commandPid() {
      const wrapper = await pane('#{pane_pid}');
      const children = readFileSync(`/proc/${wrapper}/task/${wrapper}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      if (children.length !== 1) throw new Error(`expected the command as the only child of the pane's shell ${wrapper}, found [${children.join(', ')}]`);
      return Number(children[0]);
    },
    clipboard: () => tmux('show-buffer').catch(() => undefined),
    alternateScreen: async () => (await pane('#{alternate_on}')) === '1',
    async waitForExit(o = {}) {
      const until = Date.now() + (o.timeout ?? 20_000);
      while ((await pane('#{pane_dead}')) !== '1') {
        if (Date.now() > until) throw new Error(`the command did not exit within ${o.timeout ?? 20_000} ms; the screen:\n${await capture()}`);
        await delay(100);
      }
      const screen = await capture({ history: true });
      const m = new RegExp(`${EXIT_MARKER.replace(/[[\]]/g, '\\$&')} (\\d+)\\]`).exec(screen);
      if (!m) throw new Error(`the wrapper did not report an exit status; the screen:\n${screen}`);
      return { code: Number(m[1]), modes: parseStty(readFileSync(modesFile, 'utf8')) };
    },
    kill,
  };
  return session;
}
