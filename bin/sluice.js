#!/usr/bin/env node
// The `sluice` CLI: all logic lives in the compiled main; only this file sets the exit code.
import { main } from '../dist/src/main.js';

process.exitCode = await main(process.argv.slice(2));
