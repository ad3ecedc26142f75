#!/usr/bin/env node
// The `sluice` CLI: all logic lives in the bundled code (scripts/bundleCli.js); only this file sets
// the exit code. `exec` first tries a running `sluice agent` through a thin client (one small file
// over node:net and node:fs); it declines (undefined) whenever the full CLI must decide. This file
// and that client are CommonJS (bin/package.json): an ES module entry costs every exec ~5 ms of CPU
// for the ES module loader, a sixth of what Node's own start costs.
'use strict';
const argv = process.argv.slice(2);
const fast = argv[0] === 'exec' ? require('../dist/cli/execClient.cjs').fastExec(argv) : Promise.resolve(undefined);
fast
  .then(async (code) => {
    process.exitCode = code ?? (await (await import('../dist/cli/main.js')).main(argv));
  })
  .catch((err) => {
    // What an uncaught error in an ES module entry did: the stack on stderr, exit 1.
    console.error(err);
    process.exitCode = 1;
  });
