// CPU per statement of the always-on sluice:credentials check (gateway/policy/credentials.ts),
// beside the application_name check every session already runs: a text that names nothing the
// check looks for costs one regular expression; one that does is parsed (cached by shape).
// Run: `npm run build && node dist/test/bench/credentials.js`. Prints CPU microseconds per call and the ratio.
import { applicationNameRefusal } from '../../gateway/policy/applicationName.js';
import { credentialRefusal } from '../../gateway/policy/credentials.js';

const TEXTS: readonly [string, string][] = [
  ['pgbench select (no match)', 'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;'],
  ['pgbench update (no match)', 'UPDATE pgbench_accounts SET abalance = abalance + -2114 WHERE aid = 48213;'],
  ['catalog read (parsed, allowed)', 'select rolname, rolcanlogin from pg_authid where rolname = $1'],
  ['credential read (parsed, refused)', 'select rolname, rolpassword from pg_authid'],
];

function cpuMicros(fn: () => void, n: number): number {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) fn();
  const d = process.cpuUsage(start);
  return (d.user + d.system) / n;
}

const N = 20_000;
const own = 'sluice:bench@example.com';
for (const [label, text] of TEXTS) {
  // Warm both (module load, the shape cache), then alternate rounds so load affects both alike.
  credentialRefusal(text);
  applicationNameRefusal(text, own);
  let cred = 0;
  let app = 0;
  for (let round = 0; round < 5; round++) {
    cred += cpuMicros(() => credentialRefusal(text), N);
    app += cpuMicros(() => applicationNameRefusal(text, own), N);
  }
  process.stdout.write(`${label.padEnd(36)} credentials ${(cred / 5).toFixed(3)} µs  application_name ${(app / 5).toFixed(3)} µs  ratio ${(cred / app).toFixed(2)}×\n`);
}
