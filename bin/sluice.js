#!/usr/bin/env node
// The `sluice` CLI: all logic lives in the bundled main (scripts/bundleCli.js); only this file sets
// the exit code.
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
