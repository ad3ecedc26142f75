// The Connections view driven by keys: filter, empty states, the tunnel panel (open, live stats,
// copy with OSC 52, close), errors in the status bar, resize, help and quit.
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { AuthError, CliError } from '../../../src/errors.js';
import type { ListenOptions, LocalListener, TunnelStats } from '../../../src/tunnel/localListener.js';
import { alice, pgProd } from '../cli/fakes.js';
import { KEY, startApp } from './support.js';

const staging = { ...pgProd, name: 'pg-staging', description: 'staging copy', policy: 'masks: email' };
const gateway = { me: async () => alice, connections: async () => ({ connections: [pgProd, staging] }), reviews: { list: async () => [] } };
let app: Awaited<ReturnType<typeof startApp>> | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

function listener() {
  const stats: TunnelStats = { open: 0, total: 0, bytesUp: 0, bytesDown: 0, sessionIds: [] };
  const state = { closed: false };
  const listen = async (o: ListenOptions): Promise<LocalListener> => ({ host: o.host, port: 5433, stats, close: async () => void (state.closed = true) });
  return { listen, stats, state };
}

describe('Connections view', () => {
  it('lists connections with type, policy and description, and filters as you type', async () => {
    app = await startApp(gateway);
    const frame = await app.waitFor('pg-staging');
    expect(frame).toMatch(/› *pg-prod +postgres +read-only +production/);
    expect(frame).toContain('alice@example.com · https://gw.example.test:8443');
    // The selected connection's policy in full, below the list.
    expect(frame).toContain('pg-prod policy: read-only');
    await app.type('/', 's', 't', 'a', 'g');
    expect(app.frame()).toContain('/ stag▏');
    expect(app.frame()).not.toContain('pg-prod');
    await app.type(KEY.backspace, KEY.backspace, KEY.backspace, KEY.backspace, 'x', 'y');
    expect(app.frame()).toContain('no connection matches "xy"');
    await app.type(KEY.esc);
    expect(app.frame()).toContain('pg-prod');
    expect(app.frame()).toContain('pg-staging');
  });

  it('says so when no connection is available', async () => {
    app = await startApp({ ...gateway, connections: async () => ({ connections: [] }) });
    await app.waitFor('no connections are available to you on this gateway');
  });

  it('Enter opens a tunnel and shows its live panel; c copies the command; Esc closes it', async () => {
    const l = listener();
    app = await startApp(gateway, { listen: l.listen });
    await app.waitFor('pg-staging');
    await app.type('/prod\r');
    let frame = await app.waitFor('tunnel open on 127.0.0.1:5433');
    expect(frame).toContain('psql "host=127.0.0.1 port=5433 dbname=app user=sluice"');
    expect(frame).toContain('clients open: 0 (0 total)');
    expect(frame).toMatch(/›●pg-prod/);
    Object.assign(l.stats, { open: 1, total: 1, bytesUp: 120, bytesDown: 4096, sessionIds: ['S-77'] });
    await app.clock.advance(1000);
    frame = await app.waitFor('clients open: 1 (1 total)');
    expect(frame).toContain('↑ 120 B ↓ 4.0 KiB');
    expect(frame).toContain('sessions: S-77');

    await app.type('c');
    const osc = `\x1b]52;c;${Buffer.from('psql "host=127.0.0.1 port=5433 dbname=app user=sluice"').toString('base64')}\x07`;
    expect(app.frames).toContain(osc);
    await app.waitFor('copied to the clipboard (OSC 52)');

    await app.type(KEY.esc);
    frame = await app.waitFor('closed the tunnel to pg-prod');
    expect(frame).not.toContain('tunnel open');
    expect(l.state.closed).toBe(true);
  });

  it('several tunnels stay open at once and the list marks them; quitting closes them all', async () => {
    const closed: string[] = [];
    app = await startApp(gateway, {
      listen: async (o) => ({ host: o.host, port: o.connection === 'pg-prod' ? 5433 : 5434, stats: { open: 0, total: 0, bytesUp: 0, bytesDown: 0 }, close: async () => void closed.push(o.connection) }),
    });
    await app.waitFor('pg-staging');
    await app.type(KEY.enter, KEY.down, KEY.enter);
    await app.waitFor('tunnel open on 127.0.0.1:5434');
    expect(app.frame()).toMatch(/●pg-prod/);
    expect(app.frame()).toMatch(/›●pg-staging/);
    await app.type('q');
    for (let i = 0; i < 20 && !app.model.closed; i++) await app.clock.advance(0);
    expect(app.model.closed).toBe(true);
    expect(closed.sort()).toEqual(['pg-prod', 'pg-staging']);
  });

  it('a tunnel that cannot open says why in its panel', async () => {
    app = await startApp(gateway, { listen: () => Promise.reject(new CliError('ports 5433-5452 on 127.0.0.1 are all in use; pass --port')) });
    await app.waitFor('pg-prod');
    await app.type(KEY.enter);
    const frame = await app.waitFor('the tunnel could not be opened');
    expect(frame).toContain('ports 5433-5452 on 127.0.0.1 are all in use; pass --port');
  });

  it('a gateway that cannot be reached shows in the status bar with the retry, and recovers', async () => {
    let down = true;
    app = await startApp({
      ...gateway,
      connections: async () => (down ? Promise.reject(new CliError('cannot reach the gateway at https://gw.example.test:8443 (ECONNREFUSED)')) : { connections: [pgProd] }),
    });
    await app.waitFor('cannot reach the gateway at https://gw.example.test:8443 (ECONNREFUSED) — retrying in 4 s');
    expect(app.frame()).toContain('loading connections…');
    await app.clock.advance(4000);
    await app.waitFor('retrying in 8 s');
    down = false;
    await app.clock.advance(8000);
    const frame = await app.waitFor('pg-prod');
    expect(frame).not.toContain('retrying');
  });

  it('a long error is cut so that the retry still shows', async () => {
    const long = 'cannot reach the gateway at https://gw.example.test:8443: connection refused — is sluice-gateway running there, and is the port right?';
    app = await startApp({ ...gateway, connections: () => Promise.reject(new CliError(long)) });
    const frame = await app.waitFor('… — retrying in 4 s');
    expect(frame).toContain('cannot reach the gateway at https://gw.example.test:8443: connection refused');
  });

  it('an expired token is reported with what to do', async () => {
    const expired = new AuthError('your login to https://gw.example.test:8443 has expired: run `sluice login`', 401);
    app = await startApp({ ...gateway, me: () => Promise.reject(expired), connections: () => Promise.reject(expired) });
    await app.waitFor('your login to https://gw.example.test:8443 has expired: run `sluice login` — retrying in 4 s');
  });

  it('reflows when the terminal is resized', async () => {
    const long = { ...staging, description: 'a description far longer than any terminal is wide, '.repeat(4) };
    app = await startApp({ ...gateway, connections: async () => ({ connections: [pgProd, long] }) });
    await app.waitFor('pg-prod');
    const widest = () => Math.max(...app!.frame().split('\n').map((l) => [...l].length));
    expect(widest()).toBe(100);
    Object.defineProperty(app.stdout, 'columns', { value: 132, configurable: true });
    app.stdout.emit('resize');
    await app.until(() => widest() === 132, 'the frame is 132 columns wide');
    Object.defineProperty(app.stdout, 'columns', { value: 60, configurable: true });
    app.stdout.emit('resize');
    // Never narrower than the 80 columns the layout is made for.
    await app.until(() => widest() === 80, 'the frame is 80 columns wide');
  });

  it('NO_COLOR: the same screen without colour codes; the selection and view stay marked', async () => {
    const down = { ...gateway, connections: () => Promise.reject(new CliError('cannot reach the gateway')) };
    // eslint-disable-next-line no-control-regex
    const colour = /\x1b\[3[1-6]m/;
    // ink draws through chalk, which sees no colour terminal under the test runner: force it on, so
    // that only the app's own NO_COLOR handling can keep the colours out.
    const { default: chalk } = await import('chalk');
    const level = chalk.level;
    chalk.level = 1;
    onTestFinished(() => void (chalk.level = level));
    app = await startApp(down);
    await app.waitFor('retrying in 4 s');
    expect(app.frame()).toMatch(colour);
    await app.close();
    app = await startApp({ ...gateway, connections: async () => ({ connections: [pgProd] }) }, { noColor: true });
    await app.clock.advance(0);
    const frame = await app.waitFor('pg-prod');
    expect(frame).not.toMatch(colour);
    expect(frame).toContain('[Connections]');
    expect(frame).toMatch(/› *pg-prod/);
  });

  it('? shows the keys until any key; Ctrl-C quits like q', async () => {
    app = await startApp(gateway);
    await app.waitFor('pg-prod');
    await app.type('?');
    expect(app.frame()).toContain('Press any key to close this help.');
    await app.type('x');
    expect(app.frame()).not.toContain('Press any key');
    expect(app.model.closed).toBe(false);
    await app.type(KEY.ctrlC);
    expect(app.model.closed).toBe(true);
  });
});
