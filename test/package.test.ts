/**
 * What `npm pack` (and so `npm install <tarball or git url>`) ships: the built library
 * and the CLI, with their docs and example profiles, and none of the tests.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.join(import.meta.dirname, '..');

describe('the npm package', () => {
  it('ships dist/ and bin/ (built by prepare), docs and examples, without tests or sources', () => {
    // dist/ exists: `npm test` builds first. --ignore-scripts skips prepare's second build.
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
    const files = (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'bin/keygate.js', 'package.json', 'README.md', 'examples/ranksy/keygate.yaml']));
    expect(files.filter((f) => /\.test\.|^test\/|^src\/|^bench\/|^examples\/support\/[^/]+\.ts$|\.tsbuildinfo$/.test(f))).toEqual([]);
    // What the shipped example upstreams import is shipped too (keygate serve starts them).
    for (const file of files.filter((f) => f.endsWith('.mjs'))) {
      for (const [, specifier] of readFileSync(path.join(ROOT, file), 'utf8').matchAll(/from '(\.[^']+)'/g)) {
        expect(files, `${file} imports ${specifier}`).toContain(path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier as string)));
      }
    }
  });
});
