// `sluice` (the interactive picker) in a real terminal: tmux at 80×24 running the real binary as
// alice (logged in with the device flow, an approver), a real gateway and PostgreSQL. The test
// types a filter, opens a tunnel, copies its command (OSC 52, read back from tmux), runs psql with
// it, watches the client count, opens a second tunnel, closes both, approves a statement another
// user's psql holds in a second terminal, reads the session's timeline and replay, resizes, and
// quits; the terminal must come back in cooked mode and off the alternate screen, also after
// Ctrl-C, SIGTERM and SIGHUP. NO_COLOR and a gateway that goes away are checked on the screen too.
// With UPDATE_SCREENSHOTS=1 it writes each view to docs/screenshots/.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CLI_BIN, cliEnv, login, newConfigDir, ROOT, runCli, serviceToken, startGateway, type GatewayOptions, type GatewayProcess } from '../support/binaries.js';
import { freshDatabase } from '../support/pgEngineHarness.js';
import { startTmux, type TmuxSession } from '../support/tmux.js';

const cluster = inject('pgCluster');
const SCREENSHOTS = join(ROOT, 'docs/screenshots');
const PASSWORD_ENV = 'UI_TMUX_PG_PASSWORD';

let gw: GatewayProcess;
let gatewayOptions: GatewayOptions;
let db: Awaited<ReturnType<typeof freshDatabase>>;
let aliceDir: string;
let devToken: string;
const terminals: TmuxSession[] = [];
const clients: ChildProcessWithoutNullStreams[] = [];

beforeAll(async () => {
  db = await freshDatabase(cluster, 'ui_tmux');
  await db.admin.query(`
    create table customers (id int primary key, name text not null, email text);
    insert into customers values (1, 'Ada', 'ada.lovelace@example.com'), (2, 'Grace', 'grace.hopper@example.com');
    create table payments (id int primary key, amount numeric not null, note text);
  `);
  const su = cluster.roles.superuser;
  const target = { host: cluster.host, port: cluster.port, database: db.target.database, user: su.user, password: { env: PASSWORD_ENV }, sslmode: 'disable' };
  gatewayOptions = {
    env: { [PASSWORD_ENV]: su.password },
    connections: [
      {
        name: 'pg-prod',
        type: 'postgres',
        description: 'orders and payments (primary)',
        target,
        allow: { groups: ['eng', 'dba'] },
        policy: {
          rules: [
            { id: 'no-ddl', block: { statements: ['drop', 'truncate', 'alter'] } },
            { id: 'payments-review', review: { statements: ['insert', 'update', 'delete'], tables: ['payments'], approvers: ['dba'], timeout: '120s' } },
            { id: 'pii', mask: { columns: ['customers.email'], with: 'partial' } },
          ],
        },
      },
      { name: 'analytics', type: 'postgres', description: 'reporting replica', target, allow: { groups: ['eng', 'dba'] } },
    ],
  };
  gw = await startGateway(gatewayOptions);
  devToken = serviceToken(gw, 'dev', 'eng');
  aliceDir = newConfigDir();
  const res = await login(gw, aliceDir, 'alice');
  expect(res.code, res.stderr).toBe(0);
});

afterAll(async () => {
  for (const c of clients.splice(0)) c.kill();
  for (const t of terminals.splice(0)) await t.kill();
  await gw?.stop();
  await db?.drop();
});

/** The environment of a terminal where alice runs `sluice`. */
function aliceEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  // CI=1 as agents' and CI runners' shells often export it: ink would then draw nothing until exit.
  return cliEnv({ configDir: aliceDir, env: { SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string, CI: '1', ...extra } });
}

async function terminal(command: string[], env: NodeJS.ProcessEnv): Promise<TmuxSession> {
  const t = await startTmux({ command, env, cwd: ROOT });
  terminals.push(t);
  return t;
}

/** `sluice` with no arguments, in a fresh 80×24 terminal, once its first frame is up. */
async function startPicker(extra: NodeJS.ProcessEnv = {}): Promise<TmuxSession> {
  const t = await terminal([process.execPath, CLI_BIN], aliceEnv(extra));
  await t.waitFor('pg-prod');
  return t;
}

/** With UPDATE_SCREENSHOTS=1, the screen goes to docs/screenshots/NAME.txt. */
function screenshot(name: string, screen: string): void {
  if (process.env.UPDATE_SCREENSHOTS !== '1') return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  writeFileSync(join(SCREENSHOTS, `${name}.txt`), `${screen}\n`);
}

/** psql with the conninfo the picker shows, kept open on a pipe until `end()`. */
function openPsql(conninfo: string): { child: ChildProcessWithoutNullStreams; output: () => string; run: (sql: string, expect: RegExp) => Promise<void>; end: () => Promise<number | null> } {
  const child = spawn(cluster.psqlPath, ['-X', '-w', '-At', '-d', `${conninfo} connect_timeout=10`], { env: { ...process.env, PGPASSWORD: '' } });
  clients.push(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return {
    child,
    output: () => out,
    async run(sql, re) {
      child.stdin.write(`${sql}\n`);
      const until = Date.now() + 15_000;
      while (!re.test(out)) {
        if (child.exitCode !== null) throw new Error(`psql exited with ${child.exitCode}:\n${out}`);
        if (Date.now() > until) throw new Error(`psql printed no ${re} within 15 s:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async end() {
      child.stdin.end();
      if (child.exitCode === null) await once(child, 'exit');
      return child.exitCode;
    },
  };
}

const clientsOpen = (n: number): RegExp => new RegExp(`clients open: ${n} \\(`);

describe('sluice in a real terminal', () => {
  it('filter, open a tunnel, psql through it, a second tunnel, close them, approve a held statement, quit: the terminal is restored', async () => {
    const ui = await startPicker();
    const first = await ui.capture();
    expect(first).toContain('analytics');
    expect(first).toMatch(/alice/);
    screenshot('connections', first);

    // One key at a time where a key changes the mode: a terminal delivers fast typing in one read.
    await ui.type('/');
    await ui.waitFor('Esc: clear');
    await ui.type('prod');
    await ui.waitUntil((s) => s.includes('pg-prod') && !s.includes('reporting replica'), 'the filter to hide analytics');
    await ui.keys('Enter');
    const { screen: panel, match } = await ui.waitFor(/psql "(host=\S+ port=(\d+) dbname=\S+ user=\S+)"/);
    const [, conninfo, port] = match as unknown as [string, string, string];
    expect(panel).toMatch(clientsOpen(0));
    await ui.keys('c');
    await ui.waitFor('copied to the clipboard');
    expect(await ui.clipboard()).toBe(`psql "${conninfo}"`);

    const psql = openPsql(conninfo);
    await psql.run('select name, email from customers order by id;', /^Grace\|/m);
    expect(psql.output()).not.toContain('ada.lovelace@example.com');
    // Stats are refreshed every second: wait until the reply's bytes are counted too.
    const busy = await ui.waitFor(/clients open: 1 \(1 total\) · ↑ [1-9][\d.]* \S+ ↓ [1-9]/);
    expect(busy.screen).toMatch(/sessions: s_\S+/);
    screenshot('tunnel', busy.screen);
    expect(await psql.end()).toBe(0);
    await ui.waitFor(clientsOpen(0));

    // A second tunnel at once: the list marks both; Esc closes the selected one only.
    await ui.type('/');
    await ui.waitFor('Esc: clear');
    await ui.keys('Escape');
    await ui.waitFor('reporting replica');
    await ui.keys('Down');
    await ui.waitFor(/›\s?analytics/);
    await ui.keys('Enter');
    await ui.waitFor(/── analytics: tunnel open on 127\.0\.0\.1:\d+/);
    await ui.waitFor(/●pg-prod[\s\S]*●analytics/);
    await ui.keys('Escape');
    await ui.waitUntil((s) => !s.includes('●analytics') && s.includes('●pg-prod'), 'the analytics tunnel to close, not pg-prod');
    await ui.keys('Up');
    await ui.waitFor(`port=${port}`);
    await ui.keys('Escape');
    await ui.waitUntil((s) => !s.includes(`port=${port}`) && !s.includes('●'), 'the pg-prod tunnel to close');
    const refused = spawn(cluster.psqlPath, ['-X', '-w', '-d', `${conninfo} connect_timeout=5`, '-c', 'select 1']);
    expect((await once(refused, 'exit'))[0]).not.toBe(0);

    // Another user's statement waits for review in a second terminal.
    const requester = await terminal(
      [process.execPath, CLI_BIN, 'connect', 'pg-prod', '--', cluster.psqlPath, '-X', '-w', '-c', `insert into payments values (1, 42, 'from the other pane')`],
      cliEnv({ configDir: newConfigDir(), env: { SLUICE_TOKEN: devToken, SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string } }),
    );
    const held = await requester.waitFor(/query held for review (R-[2-9A-Z]{4})/);
    const reviewId = (held.match as unknown as [string, string])[1];

    // It is announced in the status bar while the Connections view is shown.
    const announced = await ui.waitFor(new RegExp(`new review ${reviewId} from dev on pg-prod`));
    expect(announced.screen).toContain('[Connections]');
    screenshot('new-review', announced.screen);

    await ui.keys('r');
    // The id is in the announcement already: wait for the view itself.
    const reviews = await ui.waitFor(new RegExp(`\\[Reviews \\(1\\)\\][\\s\\S]*${reviewId}\\s+\\S+\\s+dev\\s+pg-prod`));
    expect(reviews.screen).toMatch(/insert into payments/);
    screenshot('reviews', reviews.screen);
    await ui.keys('Enter');
    const detail = await ui.waitFor(`review ${reviewId} · pg-prod · rule payments-review`);
    expect(detail.screen).toContain(`insert into payments values (1, 42, 'from the other pane')`);
    screenshot('review-detail', detail.screen);
    await ui.keys('a');
    await ui.waitFor(`approve ${reviewId}: reason (optional)`);
    await ui.type('looks right');
    screenshot('review-approve', (await ui.waitFor(`reason (optional): looks right`)).screen);
    await ui.keys('Enter');
    await ui.waitFor(new RegExp(`approved ${reviewId}`));

    await requester.waitFor('INSERT 0 1');
    expect((await requester.waitForExit()).code).toBe(0);
    expect((await db.admin.query('select note from payments')).rows).toEqual([{ note: 'from the other pane' }]);

    // Sessions: alice's psql session, its timeline (the masked column named) and its replay.
    await ui.keys('s');
    await ui.waitFor('[Sessions]');
    await ui.type('/');
    await ui.waitFor('Esc: clear');
    await ui.type('alice');
    const sessions = await ui.waitFor(/alice@example\.com\s+pg-prod/);
    screenshot('sessions', sessions.screen);
    await ui.keys('Enter');
    const timeline = await ui.waitFor(/masked: \S*email/);
    expect(timeline.screen).toMatch(/select name, email from customers order by id/);
    screenshot('session-timeline', timeline.screen);
    await ui.keys('r');
    const replayed = await ui.waitFor(/replay of \S+ \(done\)/);
    screenshot('session-replay', replayed.screen);
    await ui.keys('Escape');
    await ui.waitFor(/alice@example\.com\s+pg-prod/);

    await ui.keys('?');
    const help = await ui.waitFor('Press any key to close this help.');
    screenshot('help', help.screen);
    await ui.keys('Escape');
    await ui.waitUntil((s) => !s.includes('Press any key'), 'the help to close');

    // Wider and taller: the frame reflows; back to 80×24 it is cut to fit again.
    await ui.keys('c');
    await ui.waitFor('orders and payment…');
    await ui.resize(120, 30);
    const wide = await ui.waitFor('orders and payments (primary)');
    const wideLines = wide.screen.split('\n');
    expect(Math.max(...wideLines.map((l) => [...l].length))).toBeGreaterThan(80);
    // The status bar stays on the last lines of the taller screen and is no longer cut short.
    expect(wideLines.length).toBeGreaterThan(24);
    expect(wideLines.at(-1)).toMatch(/alice@example\.com · .*expires in [^…]*$/);
    await ui.resize(80, 24);
    const narrow = await ui.waitFor('orders and payment…');
    const narrowLines = narrow.screen.split('\n');
    expect(Math.max(...narrowLines.map((l) => [...l].length))).toBeLessThanOrEqual(80);
    expect(narrowLines.length).toBeLessThanOrEqual(24);
    expect(narrowLines.at(-1)).toMatch(/alice@example\.com · /);

    await ui.keys('q');
    const exit = await ui.waitForExit();
    expect(exit.code).toBe(0);
    expect(exit.modes).toMatchObject({ icanon: true, echo: true, isig: true });
    expect(await ui.alternateScreen()).toBe(false);
  });

  // In raw mode Ctrl-C arrives as input, so it is a quit like `q`; a signal exits with 128+N.
  const stops: [string, (t: TmuxSession) => Promise<unknown>, number][] = [
    ['Ctrl-C', (t) => t.keys('C-c'), 0],
    ['SIGTERM', async (t) => process.kill(await t.commandPid(), 'SIGTERM'), 128 + 15],
    ['SIGHUP', async (t) => process.kill(await t.commandPid(), 'SIGHUP'), 128 + 1],
  ];
  it.each(stops)('%s restores the terminal', async (_name, stop, code) => {
    const ui = await startPicker();
    await stop(ui);
    const exit = await ui.waitForExit();
    expect(exit.code).toBe(code);
    expect(exit.modes).toMatchObject({ icanon: true, echo: true, isig: true });
    expect(await ui.alternateScreen()).toBe(false);
  });

  it('NO_COLOR turns the colours off; without it the filter being typed is coloured', async () => {
    for (const [noColor, coloured] of [[undefined, true], ['1', false]] as const) {
      // FORCE_COLOR from the runner would decide for the terminal: leave it to TERM and NO_COLOR.
      const ui = await startPicker({ NO_COLOR: noColor, FORCE_COLOR: undefined });
      await ui.type('/');
      await ui.waitFor('Esc: clear');
      const screen = await ui.capture({ escapes: true });
      expect(colours(screen), `NO_COLOR=${noColor ?? '(unset)'}:\n${screen}`).toBe(coloured);
      // The selection stays marked without colour.
      expect(screen).toContain('›');
      await ui.keys('Escape');
      await ui.keys('q');
      expect((await ui.waitForExit()).code).toBe(0);
    }
  });

  it('a gateway that goes away is shown with its retry, and the error clears when it is back', async () => {
    const ui = await startPicker();
    const port = Number(new URL(gw.url).port);
    await gw.stop();
    const down = await ui.waitFor(/— retrying in \d+ s/);
    expect(down.screen).toContain('pg-prod');
    screenshot('gateway-down', down.screen);
    gw = await startGateway({ ...gatewayOptions, dir: gw.dir, port });
    await ui.waitUntil((s) => !s.includes('retrying in'), 'the error to clear', { timeout: 45_000 });
    await ui.keys('q');
    expect((await ui.waitForExit()).code).toBe(0);
  }, 90_000);

  it('without a terminal, `sluice` prints help and exits 0; `sluice ui` is a usage error', async () => {
    const ctx = { configDir: aliceDir, env: { SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.caFile as string } };
    const bare = await runCli([], ctx);
    expect(bare.code).toBe(0);
    expect(bare.stdout + bare.stderr).toMatch(/Usage: sluice/);
    const ui = await runCli(['ui'], ctx);
    expect(ui.code).toBe(2);
    expect(ui.stderr).toMatch(/terminal/);
  });
});

/** Whether any SGR sequence on the captured screen sets a foreground or background colour. */
function colours(screen: string): boolean {
  const sgr = new RegExp(`${String.fromCharCode(27)}\\[([\\d;]*)m`, 'g');
  return [...screen.matchAll(sgr)].some((m) => (m[1] ?? '').split(';').some((p) => /^(3[0-8]|4[0-8]|9[0-7]|10[0-7])$/.test(p)));
}
