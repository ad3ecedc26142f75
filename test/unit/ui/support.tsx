// What the picker's tests share: a clock the test moves by hand (pollers wait on it), a model over
// the fake gateway of the CLI tests, the app rendered by ink-testing-library, and a way to wait
// for a frame to show something (renders happen after promises settle, never after a fixed time).
import { render } from 'ink-testing-library';
import type { Clock } from '../../../src/factory.js';
import { App } from '../../../src/ui/App.js';
import { UiModel } from '../../../src/ui/state/model.js';
import type { Listen } from '../../../src/ui/state/tunnels.js';
import { fakeFactory, NOW, type GatewayOverrides } from '../cli/fakes.js';

export class FakeClock implements Clock {
  #now = NOW;
  #timers: { at: number; resolve: () => void }[] = [];

  now = (): number => this.#now;

  sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer = { at: this.#now + ms, resolve };
      this.#timers.push(timer);
      signal?.addEventListener(
        'abort',
        () => {
          this.#timers = this.#timers.filter((t) => t !== timer);
          reject(signal.reason);
        },
        { once: true },
      );
    });

  /** Waits currently pending, in ms from now (what the pollers are waiting for). */
  pending(): number[] {
    return this.#timers.map((t) => t.at - this.#now).sort((a, b) => a - b);
  }

  /** Moves time on by `ms`, waking every sleeper due, then lets the woken work run. */
  async advance(ms: number): Promise<void> {
    this.#now += ms;
    const due = this.#timers.filter((t) => t.at <= this.#now);
    this.#timers = this.#timers.filter((t) => t.at > this.#now);
    for (const t of due) t.resolve();
    await settle();
  }
}

/** Lets pending promise callbacks and the renders they cause run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

export async function startApp(gateway: GatewayOverrides, opts: { listen?: Listen; noColor?: boolean } = {}) {
  const f = fakeFactory({ gateway });
  const clock = new FakeClock();
  const model = new UiModel({ gateway: await f.gateway({}), clock, ...opts });
  const app = render(<App model={model} />);
  model.start();
  await settle();
  return {
    ...app,
    model,
    clock,
    calls: f.calls,
    frame: () => app.lastFrame() ?? '',
    /** Types `keys` one key at a time, letting each take effect. */
    async type(...keys: string[]) {
      for (const k of keys) {
        app.stdin.write(k);
        await settle();
      }
    },
    async waitFor(text: string | RegExp, tries = 50) {
      for (let i = 0; i < tries; i++) {
        const f = app.lastFrame() ?? '';
        if (typeof text === 'string' ? f.includes(text) : text.test(f)) return f;
        await settle();
      }
      throw new Error(`the frame never showed ${String(text)}; last frame:\n${app.lastFrame()}`);
    },
    /** Waits until `check` holds for the current frame. */
    async until(check: (frame: string) => boolean, what: string) {
      for (let i = 0; i < 50; i++) {
        if (check(app.lastFrame() ?? '')) return;
        await settle();
      }
      throw new Error(`never: ${what}; last frame:\n${app.lastFrame()}`);
    },
    async close() {
      await model.close();
      app.unmount();
    },
  };
}

export const KEY = { up: '\x1b[A', down: '\x1b[B', enter: '\r', esc: '\x1b', tab: '\t', backspace: '\x7f', ctrlC: '\x03' } as const;
