/**
 * Which keygate a process runs: the installed package's version (what `keygate --version`
 * prints) and Node's. Shown in /health, on the start line and as `keygate_build_info` in
 * /metrics, so that during a rolling upgrade an operator can tell old processes from new.
 */
import { readFileSync } from 'node:fs';

/** The package's version from its package.json (src/ and dist/ both sit one level below it). */
export const KEYGATE_VERSION: string = readVersion();

/** The Node.js version the process runs on (`v22.11.0`). */
export const NODE_VERSION: string = process.version;

function readVersion(): string {
  try {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof manifest.version === 'string' ? manifest.version : 'unknown';
  } catch {
    // A bundle that left package.json behind still serves; it cannot say its version.
    return 'unknown';
  }
}
