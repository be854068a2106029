#!/usr/bin/env node
import { holdSighup, runsServe } from '../dist/cli/early-sighup.js';
import { keepTickObjectShape } from '../dist/tick-shape.js';

// Before anything else can lose it (see src/tick-shape.ts).
keepTickObjectShape();

// Held before the rest of keygate loads: `serve` reloads its profile on SIGHUP.
if (runsServe(process.argv.slice(2))) holdSighup();
const { main } = await import('../dist/cli/main.js');
await main(process.argv);
