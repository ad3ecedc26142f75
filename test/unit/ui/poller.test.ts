// Polling with backoff, on a clock the test moves: 2 s while answers come, doubling after each
// failure up to 30 s, the error and the wait reported, and back to 2 s after a success.
import { describe, expect, it } from 'vitest';
import { Poller } from '../../../src/ui/state/poller.js';
import { FakeClock, settle } from './support.js';

describe('Poller', () => {
  it('polls every 2 s, backs off 4, 8, 16, 30, 30 s on errors and recovers', async () => {
    const clock = new FakeClock();
    let calls = 0;
    let failing = false;
    const p = new Poller(clock, async () => {
      calls++;
      if (failing) throw new Error('cannot reach the gateway');
    });
    p.start();
    await settle();
    expect(calls).toBe(1);
    expect(clock.pending()).toEqual([2000]);
    await clock.advance(2000);
    expect(calls).toBe(2);

    failing = true;
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const [wait] = clock.pending();
      await clock.advance(wait as number);
      waits.push(p.getSnapshot().retryInMs as number);
    }
    expect(waits).toEqual([4000, 8000, 16000, 30000, 30000]);
    expect(p.getSnapshot()).toMatchObject({ error: 'cannot reach the gateway', failures: 5 });

    failing = false;
    await clock.advance(30000);
    expect(p.getSnapshot()).toMatchObject({ error: undefined, retryInMs: undefined, failures: 0 });
    expect(clock.pending()).toEqual([2000]);
    await p.stop();
    expect(clock.pending()).toEqual([]);
  });

  it('refresh() polls at once instead of waiting out the interval', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const p = new Poller(clock, async () => void calls++);
    p.start();
    await settle();
    p.refresh();
    await settle();
    expect(calls).toBe(2);
    await p.stop();
  });

  it('stop() waits for the attempt in flight and polls no more', async () => {
    const clock = new FakeClock();
    let release!: () => void;
    let calls = 0;
    const p = new Poller(clock, () => {
      calls++;
      return new Promise<void>((r) => (release = r));
    });
    p.start();
    await settle();
    const stopped = p.stop();
    release();
    await stopped;
    await clock.advance(60_000);
    expect(calls).toBe(1);
    expect(p.getSnapshot().running).toBe(false);
  });
});
