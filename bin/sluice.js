#!/usr/bin/env node
// The `sluice` CLI: all logic lives in the bundled code (scripts/bundleCli.js); only this file sets
// the exit code. `exec` first tries the agent fast path, a small entry that loads neither commander
// nor the TLS client; it declines (undefined) whenever the full CLI must decide.
const argv = process.argv.slice(2);
let code;
if (argv[0] === 'exec') code = await (await import('../dist/cli/execFast.js')).fastExec(argv);
process.exitCode = code ?? (await (await import('../dist/cli/main.js')).main(argv));
