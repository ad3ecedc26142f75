#!/usr/bin/env node
// The `sluice` CLI: all logic lives in the bundled code (scripts/bundleCli.js); only this file sets
// the exit code. `exec` first tries a running `sluice agent` through a dumb-pipe client (one small
// module over node:net and node:fs); it declines (undefined) whenever the full CLI must decide.
const argv = process.argv.slice(2);
let code;
if (argv[0] === 'exec') code = await (await import('../dist/src/agent/client.js')).fastExec(argv);
process.exitCode = code ?? (await (await import('../dist/cli/main.js')).main(argv));
