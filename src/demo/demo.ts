/**
 * `npm run demo` / `keygate demo`: the bundled demo upstream behind keygate on the
 * embedded default (SQLite under ./data/demo, counters in memory). On first start it
 * creates a demo account, a key and a dashboard invitation, and prints a curl line.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { stringify as stringifyYaml } from 'yaml';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseConfigObject } from '../config/load.js';
import type { ConfigInput } from '../config/schema.js';
import { serve, type RunningKeygate } from '../serve.js';
import { createAccount } from '../operations/accounts.js';
import { createKey } from '../operations/keys.js';
import { inviteMember } from '../operations/members.js';
import { buildDemoUpstream } from './upstream.js';
import { makeFolder } from '../store/sqlite/private-files.js';
import { DatabaseInUseError } from '../store/sqlite/process-lock.js';

/** The demo API on its own (serve-upstream.ts, built beside this file): what the written profile starts. */
const DEMO_API_SCRIPT = fileURLToPath(new URL('./serve-upstream.js', import.meta.url));

/** The installed package's folder (dist/demo/ → its root). */
const PACKAGE_FOLDER = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The demo API's script as the profile written into `dataDir` names it (`upstream.spawn`
 * runs in the profile's folder): relative to that folder where it lies inside the package
 * (`npm run demo` in a clone: data/demo), so that the two move together; absolute where
 * it lies elsewhere (`--data ~/demo`), which then moves on its own.
 */
function demoApiScript(dataDir: string): string {
  const inPackage = path.relative(PACKAGE_FOLDER, dataDir);
  const outside = inPackage === '..' || inPackage.startsWith(`..${path.sep}`) || path.isAbsolute(inPackage);
  return outside ? DEMO_API_SCRIPT : path.relative(dataDir, DEMO_API_SCRIPT);
}

/**
 * `spawn`: the profile starts the demo API itself (`upstream.spawn`, at upstream.url's
 * port, 0: any free one), as the one written for `keygate serve --config` does; without
 * it, keygate forwards to the API `keygate demo` runs in its own process.
 */
export function demoProfile(upstreamUrl: string, dataDir: string, ports = { gateway: 8080, admin: 8081, dashboard: 8082 }, spawn = false): ConfigInput {
  return {
    name: 'demo',
    listen: { port: ports.gateway },
    basePath: '/v1',
    upstream: { url: upstreamUrl, timeout: '10s', ...(spawn ? { spawn: ['node', demoApiScript(dataDir)] } : {}) },
    store: `sqlite:${path.join(dataDir, 'keygate.db')}`,
    keys: { format: 'prefixed', prefix: { live: 'demo_live_', test: 'demo_test_' } },
    auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }, { in: 'query', name: 'api_key' }] },
    errors: {
      envelope: 'problem',
      realm: 'demo',
      reasons: { insufficient_funds: { message: 'This request needs more {{meter}} than are left of the account\'s {{limit}} this month; they renew on {{resets}}.' } },
    },
    scopes: ['projects:read', 'projects:write', 'rankings:read'],
    plans: {
      free: { name: 'Free', apiAccess: false },
      starter: {
        name: 'Starter',
        maxKeys: 5,
        rateLimits: [
          { limit: 10, window: '1s' },
          { limit: 1000, window: '1h' },
        ],
        block: { after: 5, within: '1m', duration: '1m', factor: 2, max: '1h' },
        meters: { credits: { limit: 10_000, unit: 'credits' } },
      },
    },
    defaultPlan: 'starter',
    routes: [
      { method: 'GET', path: '/v1/projects', scopes: ['projects:read'] },
      { method: 'GET', path: '/v1/projects/:id', scopes: ['projects:read'] },
      { method: 'POST', path: '/v1/projects', scopes: ['projects:write'], cost: { meter: 'credits', perRequest: 10 } },
      {
        method: 'GET',
        path: '/v1/rankings',
        scopes: ['rankings:read'],
        cost: { meter: 'credits', perRecord: 1, records: { header: 'X-Record-Count' }, reserveFromQuery: 'limit', reserveRecords: 10 },
      },
      { path: '/v1/echo' },
    ],
    builtins: [
      {
        method: 'GET',
        path: '/v1/account/usage',
        allowWhenApiDisabled: true,
        body: { account: '{{account.id}}', plan: '{{plan.name}}', apiEnabled: '{{account.apiEnabled}}', credits: '{{meters.credits}}' },
      },
    ],
    admin: { listen: { port: ports.admin } },
    dashboard: { listen: { port: ports.dashboard } },
  };
}

/** The first line of the profile the demo writes into its folder: how it knows the file is its own. */
const WRITTEN_BY_DEMO = '# Written by "keygate demo" on each start';

/**
 * Refuses a folder the demo would harm: one holding a keygate.yaml it did not write (it
 * would replace it) or a database without the demo's profile beside it (someone's own,
 * which the demo would serve under its plans as if it were its data).
 */
function checkDemoFolder(dataDir: string): void {
  if (existsSync(dataDir) && !statSync(dataDir).isDirectory()) throw new Error(`the demo's folder ${dataDir} is a file; start the demo with another --data folder`);
  const profileFile = path.join(dataDir, 'keygate.yaml');
  if (existsSync(profileFile)) {
    const ours = statSync(profileFile).isFile() && readFileSync(profileFile, 'utf8').startsWith(WRITTEN_BY_DEMO);
    if (!ours) throw new Error(`${profileFile} was not written by the demo, which would replace it; start the demo with another --data folder`);
  } else if (existsSync(path.join(dataDir, 'keygate.db'))) {
    throw new Error(`${path.join(dataDir, 'keygate.db')} is not the demo's (its keygate.yaml is not beside it), and the demo would serve it as its own; start the demo with another --data folder, or delete ${dataDir} if it was the demo's`);
  }
}

/** `upstreamPort`: where the demo API listens on 127.0.0.1 (default 0: any free port). */
export async function runDemo(options: { dataDir: string; ports?: { gateway: number; admin: number; dashboard: number }; upstreamPort?: number }): Promise<RunningKeygate> {
  const dataDir = path.resolve(options.dataDir);
  checkDemoFolder(dataDir);
  try {
    // Node's own default mode (before the umask): the demo's folder is not the store's private one.
    makeFolder(dataDir, 0o777);
  } catch (error) {
    throw new Error(`--data: ${(error as Error).message}`);
  }
  const upstream = buildDemoUpstream();
  try {
    await upstream.listen({ host: '127.0.0.1', port: options.upstreamPort ?? 0 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new Error(`the demo API cannot listen on 127.0.0.1:${options.upstreamPort}: another process is using that port; start the demo with another --upstream-port (0: any free port)`);
    throw error;
  }
  const upstreamUrl = `http://127.0.0.1:${(upstream.server.address() as AddressInfo).port}`;
  const profile = demoProfile(upstreamUrl, dataDir, options.ports);
  const config = parseConfigObject(profile, 'demo profile');
  const profileFile = path.join(dataDir, 'keygate.yaml');
  // For `keygate serve --config` on it (and the CLI): it starts the demo API itself, on
  // --upstream-port if one was given, else on any free port (this run's is its own).
  const writtenUpstreamUrl = `http://127.0.0.1:${options.upstreamPort ?? 0}`;
  const writeProfile = (ports: typeof options.ports) =>
    writeFileSync(
      profileFile,
      `${WRITTEN_BY_DEMO}; "keygate serve --config" on it starts the demo API itself (upstream.spawn).\n${stringifyYaml(demoProfile(writtenUpstreamUrl, dataDir, ports, true))}`,
    );
  // Written before the database is made, so a first start that fails (a busy port) leaves
  // a folder the next start knows as the demo's. A profile already there stays until this
  // start listens: it may be another running demo's, whose ports it tells the CLI.
  if (!existsSync(profileFile)) {
    try {
      writeProfile(options.ports);
    } catch (error) {
      await upstream.close();
      throw error;
    }
  }
  // Set but empty is unset: the token is made up and printed (not an empty one printed, and the admin API locked).
  const ownToken = process.env.KEYGATE_ADMIN_TOKEN || undefined;
  const madeUp = ownToken === undefined;
  const adminToken = ownToken ?? `kgadm_${randomBytes(18).toString('base64url')}`;
  let running: RunningKeygate;
  try {
    running = await serve(
      { config, file: 'demo profile', dir: process.cwd() },
      {
        adminToken,
        // A key sent to the admin API is told where this token is: the banner, not KEYGATE_ADMIN_TOKEN (unset).
        ...(madeUp ? { adminTokenFrom: `the one this demo made up and printed as it started, after "${MADE_UP_TOKEN_LINE}"` } : {}),
        portHint: 'start the demo with another --port (the admin API and the dashboard take the next two)',
      },
    );
  } catch (error) {
    await upstream.close();
    // Most often the demo started before, still running in another terminal; PostgreSQL + Redis
    // (what the store's refusal suggests for two processes) is no way to run a second demo.
    if (error instanceof DatabaseInUseError) {
      throw new Error(
        `another keygate process${error.holder ? ` (${error.holder})` : ''} is already serving the demo's data in ${dataDir}: stop it first (Ctrl+C in its terminal), or start a second demo on a folder of its own: keygate demo --data <another folder> --port 0`,
      );
    }
    throw error;
  }
  // Written out so the CLI can work on the demo's data (keygate keys list --config <this
  // file>), with the ports really listened on: with --port 0 the profile's say 0, and
  // the CLI's invitation links would point nowhere.
  const portOf = (url: string | undefined, fallback: number) => (url ? Number(new URL(url).port) : fallback);
  const listened = {
    gateway: portOf(running.gatewayUrl, 0),
    admin: portOf(running.adminUrl, 0),
    dashboard: portOf(running.dashboardUrl, options.ports?.dashboard ?? 8082),
  };
  try {
    writeProfile(listened);
  } catch (error) {
    // Nothing keeps listening after a start that failed.
    await running.close();
    await upstream.close();
    throw error;
  }
  const rt = running.runtime;
  const out = (line = '') => process.stdout.write(`${line}\n`);
  out();
  out(`keygate demo: gateway ${running.gatewayUrl}  admin ${running.adminUrl}  dashboard ${running.dashboardUrl ?? '-'}`);
  if (madeUp) out(`${MADE_UP_TOKEN_LINE} ${adminToken}`);

  const accounts = await rt.store.listAccounts();
  if (accounts.length === 0) {
    const account = await createAccount(rt, { name: 'Demo Inc' }, 'demo');
    const { secret } = await createKey(rt, { accountId: account.id, name: 'Demo key' }, 'demo');
    const invitation = await inviteMember(rt, { email: DEMO_MEMBER, accountId: account.id }, 'demo');
    out();
    out('Created account "Demo Inc" and its first key. The key is shown only this once:');
    out();
    out(`  curl -H "Authorization: Bearer ${secret}" ${running.gatewayUrl}/v1/projects`);
    out();
    if (running.dashboardUrl) out(`Sign in to the dashboard as ${DEMO_MEMBER} after choosing a password at:\n  ${invitation.url}`);
    out();
    out(`The CLI works on the demo's data with its profile: ${cliCommand()} keys list --config ${path.relative(process.cwd(), profileFile)}`);
  } else {
    out();
    out(`Demo data already exists in ${dataDir} (a key is shown only when it is created).`);
    const profileArg = path.relative(process.cwd(), profileFile);
    out(`New key:  ${cliCommand()} keys create --config ${profileArg} --account ${accounts[0]?.id} --name "second key"`);
    // The invitation link was printed once, on the first start: a member who has lost it or
    // forgotten the password gets a new link to choose one (it also works for a link never used).
    if (running.dashboardUrl && (await rt.store.findMemberByEmail(DEMO_MEMBER))) {
      out(`Forgot the dashboard password (or lost the first link):  ${cliCommand()} members reset --config ${profileArg} --email ${DEMO_MEMBER}`);
    }
    out(`Start over: delete ${path.relative(process.cwd(), dataDir) || dataDir}`);
  }
  out();
  out('Press Ctrl+C to stop.');
  return {
    ...running,
    async close(why?: string, options?: { startedJustNow?: boolean }) {
      await running.close(why, options);
      await upstream.close();
    },
  };
}

/** The banner's line for an admin token the demo made up (KEYGATE_ADMIN_TOKEN unset), before the token. */
const MADE_UP_TOKEN_LINE = 'admin token (this run only):';

/** The member the demo invites to the dashboard on its first start. */
const DEMO_MEMBER = 'demo@example.com';

/**
 * How to run the CLI from where the demo was started: `npx keygate` in a project that
 * installed keygate, `keygate` for a global install, `node bin/keygate.js` in a clone (the
 * script's path as the demo was started with it, from the current folder).
 */
function cliCommand(): string {
  const script = process.argv[1] ?? 'bin/keygate.js';
  const modules = script.indexOf(`${path.sep}node_modules${path.sep}`);
  if (modules !== -1) return `${process.cwd()}${path.sep}`.startsWith(`${script.slice(0, modules)}${path.sep}`) ? 'npx keygate' : 'keygate';
  const relative = path.relative(process.cwd(), script);
  const shown = relative.startsWith('..') || path.isAbsolute(relative) ? script : relative;
  return `node ${/[^\w./-]/.test(shown) ? `'${shown.replaceAll("'", `'\\''`)}'` : shown}`;
}
