#!/usr/bin/env node
// The `sluice-gateway` server: all logic lives in the compiled main; only this file sets the exit code.
import { main } from '../dist/gateway/main.js';

process.exitCode = await main(process.argv.slice(2));
