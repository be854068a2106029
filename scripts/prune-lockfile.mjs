#!/usr/bin/env node
// The npm registry mirror on our build machines serves only linux-x64 builds of packages
// with per-platform binaries (rollup's). npm then writes a package-lock.json whose
// `optionalDependencies` name packages it could not record, and `npm ci` refuses that
// lock as out of sync. This drops those dangling names (only they); run it after
// `npm install`. Idempotent; .ci/run runs it before `npm ci`.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
let removed = 0;
for (const [path, entry] of Object.entries(lock.packages)) {
  for (const dep of Object.keys(entry.optionalDependencies ?? {})) {
    const nested = path ? `${path}/node_modules/${dep}` : `node_modules/${dep}`;
    if (!lock.packages[nested] && !lock.packages[`node_modules/${dep}`]) {
      delete entry.optionalDependencies[dep];
      removed += 1;
    }
  }
}
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`prune-lockfile: removed ${removed} dangling optional dependencies`);
