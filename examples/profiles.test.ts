/**
 * The five shipped profiles as files: each is valid, starts its own upstream with
 * `node upstream.mjs` on the port its `upstream.url` names, listens on loopback only,
 * and uses ports no other example uses, so all five can run side by side. Their README
 * names the one command that starts them.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../src/config/load.js';
import { EXAMPLES_DIR, profileFile } from './support/example.js';
import { runCli } from '../test/support/cli.js';

const EXAMPLES = ['ranktracker', 'ranksy', 'seranking-project', 'seranking-data', 'trakkr'] as const;

describe('the five example profiles', () => {
  it.each(EXAMPLES)('%s: a valid profile whose upstream.spawn starts upstream.mjs on the port upstream.url names', async (name) => {
    const { config } = loadConfigFile(profileFile(name));
    expect(config.name).toBe(name);
    expect(config.upstream.spawn).toEqual(['node', 'upstream.mjs']);
    const upstreamFile = path.join(EXAMPLES_DIR, name, 'upstream.mjs');
    expect(existsSync(upstreamFile)).toBe(true);
    const upstream = (await import(pathToFileURL(upstreamFile).href)) as { DEFAULT_PORT: number };
    const url = new URL(config.upstream.url ?? 'no upstream.url');
    expect(url.hostname).toBe('127.0.0.1');
    expect(Number(url.port)).toBe(upstream.DEFAULT_PORT);
    for (const host of [config.listen.host, config.admin.listen.host, config.dashboard.listen.host]) expect(host).toBe('127.0.0.1');
    expect(config.store).toBe(`sqlite:./data/${name}/keygate.db`);

    const readme = readFileSync(path.join(EXAMPLES_DIR, name, 'README.md'), 'utf8');
    expect(readme).toContain(`node bin/keygate.js serve --config examples/${name}/keygate.yaml`);
  });

  it.each(EXAMPLES)('%s: `keygate check --offline` passes it without a warning (no route leaves a path to one that requires less)', async (name) => {
    const r = await runCli(['check', '--offline', '--config', profileFile(name)]);
    // The ok line, then how `keygate serve` would serve it, and nothing else (a warning would be another line).
    expect([r.code, r.stdout]).toEqual([0, expect.stringMatching(/^[^\n]*: ok \([^)]*\)\nserves: the gateway, the admin API[^\n]*\n$/)]);
  });

  it('no two examples share a port (gateway, admin, dashboard, upstream)', () => {
    const ports = EXAMPLES.flatMap((name) => {
      const { config } = loadConfigFile(profileFile(name));
      return [config.listen.port, config.admin.listen.port, config.dashboard.listen.port, Number(new URL(config.upstream.url ?? 'no upstream.url').port)];
    });
    expect(new Set(ports).size).toBe(ports.length);
    expect(ports.every((port) => port >= 1024)).toBe(true);
  });
});
