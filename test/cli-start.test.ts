/**
 * What a `keygate` command loads: --help and --version print from the command line's
 * definition alone, not after loading the server, the store and the runtime (which took
 * a second of CPU per command); a command on the store does not load the server, nor
 * one on the profile alone (check, schema, plans list) the store.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, type CliResult } from './support/cli.js';
import { tempDir } from './support/temp.js';

const PRELOAD = path.resolve(import.meta.dirname, 'support/module-trace.mjs');
/** What keygate serves with: HTTP, the proxy, the log. */
const SERVER = ['fastify', 'undici', 'pino'];
/** What commands work on the store and the profile with. */
const STORE = ['kysely', 'better-sqlite3', 'pg', 'ioredis', 'zod', 'yaml'];

const dir = tempDir('cli-start');
let runs = 0;

/** The command's result, and the packages (node_modules/<name>) and keygate modules (dist/…) it loaded. */
async function traced(args: string[]): Promise<CliResult & { packages: Set<string>; modules: Set<string> }> {
  const trace = path.join(dir, `trace-${++runs}.txt`);
  writeFileSync(trace, '');
  const result = await runCli(args, { env: { NODE_OPTIONS: `--import=${PRELOAD}`, KEYGATE_MODULE_TRACE: trace } });
  const urls = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  const packages = new Set(urls.flatMap((url) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1] ?? []));
  const modules = new Set(urls.flatMap((url) => (url.includes('/node_modules/') ? [] : (/\/dist\/(.+)$/.exec(url)?.[1] ?? []))));
  return { ...result, packages, modules };
}

describe('what a keygate command loads', () => {
  it('prints --version and --help without loading the server, the store or the runtime', async () => {
    const version = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../package.json'), 'utf8')).version as string;
    for (const [args, printed] of [
      [['--version'], `${version}\n`],
      [['--help'], 'Usage: keygate [options] [command]'],
      [['keys', 'list', '--help'], 'Usage: keygate keys list [options]'],
      [['accounts', 'create', '--help'], '--meter-limit'],
    ] as const) {
      const run = await traced([...args]);
      expect([run.code, run.stderr], args.join(' ')).toEqual([0, '']);
      expect(run.stdout, args.join(' ')).toContain(printed);
      // The trace saw the command itself (else the assertions below could not fail).
      expect(run.modules, args.join(' ')).toContain('cli/main.js');
      expect([...run.packages].filter((name) => [...SERVER, ...STORE].includes(name)), args.join(' ')).toEqual([]);
      expect([...run.modules].filter((module) => ['runtime.js', 'serve.js', 'config/load.js', 'demo/demo.js'].includes(module)), args.join(' ')).toEqual([]);
    }
  });

  it('checks the profile, prints its schema and lists its plans without loading the store or the server', async () => {
    const profile = path.join(dir, 'profile-only.yaml');
    // A store that is not there: these commands do not open it (check only says whether it
    // could be made, from the file system). No routes: the default one, every path. The
    // upstream, which check tries, answers (with node:http, not the gateway's undici).
    const api = createServer((_request, response) => response.end());
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    const upstream = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
    writeFileSync(profile, `upstream:\n  url: ${upstream}\nstore: sqlite:${path.join(dir, 'none', 'keygate.db')}\nplans:\n  team: {}\n`);
    const checked = await traced(['--config', profile, 'check']).finally(() => api.close());
    expect([checked.code, checked.stdout, checked.stderr]).toEqual([
      0,
      `${profile}: ok (1 plan, 1 route)\nserves: the gateway, the admin API and the dashboard\nstore: no database at ${path.join(dir, 'none', 'keygate.db')} yet: keygate serve begins one there\nupstream: ${upstream} answers (HEAD /: 200)\n`,
      '',
    ]);
    const schema = await traced(['schema']);
    expect([schema.code, schema.stderr]).toEqual([0, '']);
    expect(JSON.parse(schema.stdout)).toMatchObject({ type: 'object' });
    const plans = await traced(['--config', profile, 'plans', 'list']);
    expect([plans.code, plans.stderr]).toEqual([0, '']);
    expect(plans.stdout).toMatch(/^ID\s+NAME\s+API/);
    expect(plans.stdout).toContain('team');
    for (const [name, run] of [['check', checked], ['schema', schema], ['plans list', plans]] as const) {
      // The profile's reading was traced (else the assertions below could not fail).
      expect(run.packages, name).toContain('zod');
      expect([...run.packages].filter((pkg) => ['kysely', 'better-sqlite3', 'pg', 'ioredis', ...SERVER].includes(pkg)), name).toEqual([]);
      expect([...run.modules].filter((module) => ['runtime.js', 'serve.js', 'store/open.js', 'cli/operations.js'].includes(module)), name).toEqual([]);
    }
    expect(existsSync(path.join(dir, 'none'))).toBe(false);
    // --offline (a CI job without the services) loads no driver for the backends it does not try.
    const scaleOut = path.join(dir, 'scale-out.yaml');
    writeFileSync(scaleOut, 'upstream:\n  url: http://127.0.0.1:9\nstore: postgres://keygate@127.0.0.2:1/keygate\ncounters: redis://127.0.0.2:1\n');
    const offline = await traced(['--config', scaleOut, 'check', '--offline']);
    expect([offline.code, offline.stdout, offline.stderr]).toEqual([0, `${scaleOut}: ok (1 plan, 1 route)\nserves: the gateway, the admin API and the dashboard\n`, '']);
    expect([...offline.packages].filter((pkg) => ['kysely', 'pg', 'ioredis'].includes(pkg))).toEqual([]);
  });

  it('works on the store without loading the server', async () => {
    const profile = path.join(dir, 'keygate.yaml');
    writeFileSync(profile, `upstream:\n  url: http://127.0.0.1:9\nstore: sqlite:${path.join(dir, 'keygate.db')}\n`);
    const created = await traced(['--config', profile, 'accounts', 'create', '--name', 'Acme']);
    expect([created.code, created.stderr]).toEqual([0, '']);
    expect(created.stdout).toMatch(/^created account acc_\w+ \(Acme, plan /);
    const listed = await traced(['--config', profile, 'accounts', 'list']);
    expect(listed.stdout).toContain('Acme');
    for (const run of [created, listed]) {
      expect(run.packages).toContain('kysely');
      expect([...run.packages].filter((name) => ['fastify', 'undici'].includes(name))).toEqual([]);
      expect([...run.modules].filter((module) => module === 'serve.js' || module === 'dashboard/dashboard.js')).toEqual([]);
    }
  });
});
