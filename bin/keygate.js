#!/usr/bin/env node
import { holdSighup, runsServer } from '../dist/cli/early-sighup.js';
import { keepTickObjectShape } from '../dist/tick-shape.js';

// Before anything else can lose it (see src/tick-shape.ts).
keepTickObjectShape();

// Held before the rest of keygate loads: `serve` and `demo` reload their profile on SIGHUP.
if (runsServer(process.argv.slice(2))) holdSighup();
const { main } = await import('../dist/cli/main.js');
await main(process.argv);
