/**
 * npm's `prepare`: builds dist/ on `npm ci` or `npm install` in a clone, before `npm pack`,
 * and when a project installs keygate from its git repository. An install without dev
 * dependencies (`npm ci --omit=dev`, say for an image that copies a built dist/) has no
 * TypeScript to build with: dist/ is then left as it is, and the install goes on.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

try {
  createRequire(import.meta.url).resolve('typescript');
} catch {
  console.log('keygate: TypeScript is not installed (an install without dev dependencies): dist/ is not built');
  process.exit(0);
}
execFileSync('npm', ['run', 'build'], { stdio: 'inherit' });
