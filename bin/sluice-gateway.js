#!/usr/bin/env node
// The `sluice-gateway` server: all logic lives in the compiled main; only this file sets the exit code.
// CommonJS like bin/sluice.js (bin/package.json), so the compiled ES module main is imported.
'use strict';
import('../dist/gateway/main.js')
  .then(async ({ main }) => {
    process.exitCode = await main(process.argv.slice(2));
  })
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
