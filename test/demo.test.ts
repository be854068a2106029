/**
 * The main job: `keygate demo` (what `npm run demo` runs) starts the bundled demo API
 * behind keygate on the embedded default, creates an account and a key on first start,
 * and prints a curl line that works. Run as a user would: the built command, a real
 * SQLite file, real HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, runCli, spawnServe } from './support/cli.js';
import { tempDir } from './support/temp.js';
import { namedPort } from './support/ports.js';

const ADMIN_TOKEN = 'kgadm_demo_test_token_0123456789';
/** This package's folder (bin/, dist/, node_modules/). */
const PACKAGE = path.resolve(import.meta.dirname, '..');

interface Demo {
  child: ChildProcess;
  stdout: string;
  stop(): Promise<number | null>;
}

/**
 * Starts `keygate demo` (`bin`: of another install) on any free ports and waits for its
 * "Press Ctrl+C" line. With `adminToken` null, KEYGATE_ADMIN_TOKEN is unset: the demo makes one up.
 */
async function startDemo(cwd: string, args: string[] = [], bin = BIN, adminToken: string | null = ADMIN_TOKEN, more: NodeJS.ProcessEnv = {}): Promise<Demo> {
  const { KEYGATE_ADMIN_TOKEN: _inherited, ...env } = process.env;
  const child = spawn(process.execPath, [bin, 'demo', '--data', 'data/demo', '--port', '0', ...args], {
    cwd,
    env: { ...env, ...(adminToken === null ? {} : { KEYGATE_ADMIN_TOKEN: adminToken }), ...more },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let stdout = '';
  let stderr = '';
  const demo: Demo = {
    child,
    get stdout() {
      return stdout;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      // keygate drains for at most 10 s; past 20 s something hangs: kill it.
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  // Registered before it has started, so a demo that never starts is stopped too.
  running.push(demo);
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`keygate demo did not start within 90 s:\n${stdout}\n${stderr}`)), 90_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('Press Ctrl+C to stop.')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`keygate demo exited with ${code}:\n${stdout}\n${stderr}`));
    });
  });
  return demo;
}

const running: Demo[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((demo) => demo.stop()));
});

describe('keygate demo (npm run demo)', () => {
  const cwd = tempDir('demo');

  it('creates an account and a key on first start and prints a curl line that works', async () => {
    const demo = await startDemo(cwd);
    // Its own profile is warned of nothing (README shows the first start's log: migrations, then serving).
    expect(demo.stdout.split('\n').filter((line) => /^\{"level":(40|50|60)/.test(line))).toEqual([]);
    const curl = /curl -H "Authorization: (Bearer demo_live_\w+)" (http:\/\/127\.0\.0\.1:\d+)(\/v1\/projects)/.exec(demo.stdout);
    expect(curl, demo.stdout).not.toBeNull();
    const [, authorization, gateway, route] = curl as unknown as [string, string, string, string];
    expect(existsSync(path.join(cwd, 'data/demo/keygate.db'))).toBe(true);

    // The curl line, as printed.
    const listed = await fetch(`${gateway}${route}`, { headers: { authorization } });
    expect(listed.status).toBe(200);
    const { data } = (await listed.json()) as { data: { id: string; name: string; createdAt: string }[] };
    expect(data.map((p) => p.name)).toEqual(['example.com', 'shop.example.com']);
    // Made when the account first asked, not at the epoch.
    expect(Math.abs(Date.parse(data[0]?.createdAt ?? '') - Date.now())).toBeLessThan(10 * 60_000);

    // Without the key, or with a mistyped one: the demo's RFC 9457 problem, not the data.
    const missing = await fetch(`${gateway}${route}`);
    expect(missing.status).toBe(401);
    expect(missing.headers.get('content-type')).toContain('application/problem+json');
    expect(await missing.json()).toMatchObject({ status: 401, code: 'missing_key' });
    const typo = await fetch(`${gateway}${route}`, { headers: { authorization: `${authorization.slice(0, -1)}${authorization.endsWith('A') ? 'B' : 'A'}` } });
    expect(typo.status).toBe(401);
    expect(await typo.json()).toMatchObject({ status: 401, code: 'invalid_key' });

    // Another account's project is a 404, as in the reference APIs.
    const admin = /admin (http:\/\/127\.0\.0\.1:\d+)/.exec(demo.stdout)?.[1];
    expect(admin, demo.stdout).toBeDefined();
    const adminCall = async (url: string, body: unknown) => {
      const response = await fetch(`${admin}${url}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(response.status, url).toBe(201);
      return (await response.json()) as { id: string; secret: string };
    };
    const other = await adminCall('/v1/accounts', { name: 'Other Inc' });
    const otherKey = await adminCall('/v1/keys', { accountId: other.id, name: 'other' });
    const mine = data[0]?.id as string;
    expect((await fetch(`${gateway}/v1/projects/${mine}`, { headers: { authorization } })).status).toBe(200);
    const notTheirs = await fetch(`${gateway}/v1/projects/${mine}`, { headers: { authorization: `Bearer ${otherKey.secret}` } });
    expect(notTheirs.status).toBe(404);
    expect(notTheirs.headers.get('content-type')).toContain('application/problem+json');
    expect(await notTheirs.json()).toMatchObject({ status: 404, detail: `No project ${mine}.` });

    // The profile written for the CLI names the ports really listened on (not --port's 0):
    // an invitation made by the CLI links to the dashboard that is running.
    // The banner says where that profile is, and it comes before any log line of Fastify's.
    // Run as printed, from where the demo was started: it lists the demo's key.
    const printed = /The CLI works on the demo's data with its profile: node (\S+) keys list --config data\/demo\/keygate\.yaml\n/.exec(demo.stdout);
    expect(printed, demo.stdout).not.toBeNull();
    const script = (printed as RegExpExecArray)[1] as string;
    expect(path.resolve(cwd, script)).toBe(BIN);
    const keysListed = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const cli = spawn(process.execPath, [script, 'keys', 'list', '--config', 'data/demo/keygate.yaml'], { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
      let stdout = '';
      cli.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      cli.once('exit', (code) => resolve({ code, stdout }));
    });
    expect(keysListed.code).toBe(0);
    expect(keysListed.stdout).toContain('Demo key');
    expect(demo.stdout).not.toContain('Server listening');
    const dashboard = /dashboard (http:\/\/127\.0\.0\.1:\d+)/.exec(demo.stdout)?.[1];
    const invited = await runCli(['--config', path.join(cwd, 'data/demo/keygate.yaml'), 'members', 'invite', '--email', 'cli@example.com', '--account', other.id, '--json'], { cwd });
    expect(invited.code, invited.stderr).toBe(0);
    const link = (JSON.parse(invited.stdout) as { url: string }).url;
    expect(link.startsWith(`${dashboard}/invite/`)).toBe(true);
    expect((await fetch(link)).status).toBe(200);
    // Removed by the CLI: the invitation link stops working.
    const removed = await runCli(['--config', path.join(cwd, 'data/demo/keygate.yaml'), 'members', 'remove', '--email', 'CLI@example.com'], { cwd });
    expect(removed).toEqual({ code: 0, stdout: 'removed member cli@example.com: signed out everywhere, and their password and any pending link no longer work\n', stderr: '' });
    expect((await fetch(link)).status).toBe(404);
    const again404 = await runCli(['--config', path.join(cwd, 'data/demo/keygate.yaml'), 'members', 'remove', '--email', 'cli@example.com'], { cwd });
    expect(again404).toMatchObject({ code: 1, stderr: 'error: no member cli@example.com\n' });

    expect(await demo.stop()).toBe(0);

    // A second start keeps the data: no new key is printed, and the first one still works.
    const again = await startDemo(cwd);
    expect(again.stdout).toContain('Demo data already exists');
    expect(again.stdout).not.toMatch(/demo_live_\w+/);
    const gatewayAgain = /gateway (http:\/\/127\.0\.0\.1:\d+)/.exec(again.stdout)?.[1];
    expect((await fetch(`${gatewayAgain}${route}`, { headers: { authorization } })).status).toBe(200);
    // The first start's invitation link is not printed again: it says how the member gets a new one, and that command works.
    const reset = /^Forgot the dashboard password \(or lost the first link\): +.* members reset --config (\S+) --email (\S+)$/m.exec(again.stdout);
    expect(reset?.slice(1)).toEqual([path.join('data', 'demo', 'keygate.yaml'), 'demo@example.com']);
    const resetRun = await runCli(['members', 'reset', '--config', reset?.[1] as string, '--email', reset?.[2] as string, '--json'], { cwd });
    expect(resetRun.code, resetRun.stderr).toBe(0);
    const dashboardAgain = /dashboard (http:\/\/127\.0\.0\.1:\d+)/.exec(again.stdout)?.[1];
    const resetLink = (JSON.parse(resetRun.stdout) as { url: string }).url;
    expect(resetLink.startsWith(`${dashboardAgain}/invite/`)).toBe(true);
    expect((await fetch(resetLink)).status).toBe(200);
  });

  it('sent the demo key, a placeholder or a read-only token for a change instead of the admin token it made up, its admin API points to the banner line that printed the token, not to KEYGATE_ADMIN_TOKEN', async () => {
    const readToken = 'kgread_demo_test_token_0123456789';
    const demo = await startDemo(tempDir('demo-made-up-token'), [], BIN, null, { KEYGATE_ADMIN_READ_TOKEN: readToken });
    const token = /^admin token \(this run only\): (kgadm_\S+)$/m.exec(demo.stdout)?.[1];
    expect(token, demo.stdout).toBeDefined();
    const apiKey = /curl -H "Authorization: Bearer (demo_live_\w+)"/.exec(demo.stdout)?.[1];
    expect(apiKey, demo.stdout).toBeDefined();
    const admin = /admin (http:\/\/127\.0\.0\.1:\d+)/.exec(demo.stdout)?.[1] as string;
    const banner = 'the one this demo made up and printed as it started, after "admin token (this run only):"';
    const cases: [string, string][] = [
      [apiKey as string, `The admin token is not valid: that has the form of this API's keys. An API key goes to the gateway; the admin API takes the admin token keygate was started with (${banner}).`],
      ['<token>', `The admin token is not valid: that is a placeholder, as the docs write one. Send the admin token keygate was started with (${banner}).`],
    ];
    for (const [sent, detail] of cases) {
      const refused = await fetch(`${admin}/v1/accounts`, { headers: { authorization: `Bearer ${sent}` } });
      expect({ status: refused.status, detail: ((await refused.json()) as { detail: string }).detail }).toEqual({ status: 401, detail });
    }
    // A read-only token (its variable set) sent for a change: changes need the banner's token.
    const readOnly = await fetch(`${admin}/v1/accounts`, { method: 'POST', headers: { authorization: `Bearer ${readToken}`, 'content-type': 'application/json' }, body: '{"name":"x"}' });
    expect({ status: readOnly.status, detail: ((await readOnly.json()) as { detail: string }).detail }).toEqual({
      status: 403,
      detail: `This token (from KEYGATE_ADMIN_READ_TOKEN) may only read: GET, HEAD and POST /v1/forecast. Changes need the admin token (${banner}).`,
    });
    // The token the banner printed is the one that works.
    expect((await fetch(`${admin}/v1/accounts`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  });

  it('stops on SIGHUP (its terminal closed) as on Ctrl+C, with the charges of what it answered saved; its API listens where --upstream-port says', async () => {
    const dir = tempDir('demo-hangup');
    // Named (test/support/ports.ts): the demo listens on it a second or more from now.
    const upstreamPort = await namedPort();
    const demo = await startDemo(dir, ['--upstream-port', String(upstreamPort)]);
    expect(readFileSync(path.join(dir, 'data/demo/keygate.yaml'), 'utf8')).toContain(`url: http://127.0.0.1:${upstreamPort}`);
    const gateway = /gateway (http:\/\/127\.0\.0\.1:\d+)/.exec(demo.stdout)?.[1] as string;
    const authorization = /curl -H "Authorization: (Bearer demo_live_\w+)"/.exec(demo.stdout)?.[1] as string;
    // Five records, five credits.
    expect((await fetch(`${gateway}/v1/rankings?limit=5`, { headers: { authorization } })).status).toBe(200);
    const exited = new Promise<number | null>((resolve) => demo.child.once('exit', resolve));
    demo.child.kill('SIGHUP');
    expect(await exited).toBe(0);
    expect(demo.stdout).toContain('keygate stopping (SIGHUP)');
    const profile = path.join(dir, 'data/demo/keygate.yaml');
    const accountId = (JSON.parse((await runCli(['--config', profile, 'accounts', 'list', '--json'], { cwd: dir })).stdout) as { id: string }[])[0]?.id as string;
    const usage = JSON.parse((await runCli(['--config', profile, 'accounts', 'usage', accountId, '--json'], { cwd: dir })).stdout) as { meters: Record<string, { usage: number }> };
    expect(usage.meters.credits?.usage).toBe(5);
  });

  it('keygate serve on the profile it wrote serves the demo without it: the profile starts the demo API itself', async () => {
    const dir = tempDir('demo-serve-profile');
    const demo = await startDemo(dir);
    const authorization = /curl -H "Authorization: (Bearer demo_live_\w+)"/.exec(demo.stdout)?.[1] as string;
    expect(await demo.stop()).toBe(0);

    // Ports 0: the ones the demo listened on may have been taken meanwhile.
    const profile = path.join(dir, 'data/demo/keygate.yaml');
    // A data folder outside the package moves apart from it: the demo API named in full.
    expect((parseYaml(readFileSync(profile, 'utf8')) as { upstream: { spawn: string[] } }).upstream.spawn).toEqual(['node', path.join(PACKAGE, 'dist/demo/serve-upstream.js')]);
    const serve = spawnServe(profile, { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN }, ['--port', '0', '--admin-port', '0', '--dashboard-port', '0']);
    try {
      const serving = JSON.parse(await serve.logged('keygate is serving')) as { gateway: string };
      // It used to forward to the port the last demo's API had listened on: 502 to everything.
      const listed = await fetch(`${serving.gateway}/v1/projects`, { headers: { authorization } });
      expect(listed.status).toBe(200);
      expect(((await listed.json()) as { data: { name: string }[] }).data.map((p) => p.name)).toEqual(['example.com', 'shop.example.com']);
    } finally {
      serve.child.kill('SIGTERM');
    }
    expect(await serve.exited()).toBe(0);
    // The demo API it started is stopped with it.
    expect(existsSync(`${profile}.upstream.pid`)).toBe(false);
    // And the demo starts again on the folder, taking the profile as its own.
    const again = await startDemo(dir);
    expect(again.stdout).toContain('Demo data already exists');
  });

  it('the profile it writes inside the package (npm run demo: data/demo) names the demo API relative to itself: the package moved, keygate serve on it still starts the API', async () => {
    const root = tempDir('demo-moved');
    const installed = path.join(root, 'keygate');
    for (const part of ['bin', 'dist', 'package.json']) cpSync(path.join(PACKAGE, part), path.join(installed, part), { recursive: true });
    symlinkSync(path.join(PACKAGE, 'node_modules'), path.join(installed, 'node_modules'));
    const demo = await startDemo(installed, [], path.join(installed, 'bin/keygate.js'));
    expect(await demo.stop()).toBe(0);
    const profile = path.join(installed, 'data/demo/keygate.yaml');
    expect((parseYaml(readFileSync(profile, 'utf8')) as { upstream: { spawn: string[] } }).upstream.spawn).toEqual(['node', '../../dist/demo/serve-upstream.js']);

    const moved = path.join(root, 'moved');
    renameSync(installed, moved);
    const serve = spawnServe(path.join(moved, 'data/demo/keygate.yaml'), { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN }, ['--port', '0', '--admin-port', '0', '--dashboard-port', '0']);
    try {
      // It used to name the script where the package had been: the command exited and keygate did not start.
      const serving = JSON.parse(await serve.logged('keygate is serving')) as { upstream: string };
      // The demo API it started, from the moved package, answers (asked directly, it wants keygate's headers).
      const answer = await fetch(`${serving.upstream}/v1/projects`);
      expect([answer.status, await answer.json()]).toEqual([401, { error: 'no account header: call me through keygate' }]);
    } finally {
      serve.child.kill('SIGTERM');
    }
    expect(await serve.exited()).toBe(0);
  });

  it('a first start that fails on a busy port leaves a folder that the retry the error suggests takes as its own', async () => {
    const folder = tempDir('demo-busy-port');
    const port = await namedPort();
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(port, '127.0.0.1', resolve));
    try {
      const failed = await runCli(['demo', '--data', 'data/demo', '--port', String(port)], { cwd: folder, env: { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN } });
      expect(failed.code).toBe(1);
      expect(failed.stderr).toContain('start the demo with another --port');
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
    // It used to leave keygate.db without keygate.yaml, and the retry was refused as "not the demo's".
    const retried = await startDemo(folder);
    expect(retried.stdout).toContain('Created account "Demo Inc" and its first key.');
    expect(readFileSync(path.join(folder, 'data/demo/keygate.yaml'), 'utf8')).not.toContain(`port: ${port}\n`);
  });

  it('a second demo on the same folder while the first runs is refused, saying how to stop the first or start one beside it', async () => {
    const folder = tempDir('demo-twice');
    const first = await startDemo(folder);
    const profile = readFileSync(path.join(folder, 'data/demo/keygate.yaml'), 'utf8');
    const second = await runCli(['demo', '--data', 'data/demo', '--port', '0'], { cwd: folder, env: { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN } });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`^error: another keygate process \\(pid ${first.child.pid} on [^)]+\\) is already serving the demo's data in `));
    expect(second.stderr.replace(/^[^)]+\) /, '')).toBe(
      `is already serving the demo's data in ${path.join(folder, 'data/demo')}: stop it first (Ctrl+C in its terminal), or start a second demo on a folder of its own: keygate demo --data <another folder> --port 0\n`,
    );
    // The first one's profile (its ports, for the CLI) is left as it was.
    expect(readFileSync(path.join(folder, 'data/demo/keygate.yaml'), 'utf8')).toBe(profile);
  });

  it('refuses a folder holding a profile or a database it did not make, changing nothing and leaving nothing running', async () => {
    const operator = tempDir('demo-operator-folder');
    const own = '# my production profile\nupstream: {url: http://127.0.0.1:4000}\n';
    writeFileSync(path.join(operator, 'keygate.yaml'), own);
    const overProfile = await runCli(['demo', '--data', operator, '--port', '0'], { cwd: operator, env: { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN } });
    expect([overProfile.code, overProfile.stderr]).toEqual([1, `error: ${path.join(operator, 'keygate.yaml')} was not written by the demo, which would replace it; start the demo with another --data folder\n`]);
    expect(readFileSync(path.join(operator, 'keygate.yaml'), 'utf8')).toBe(own);

    const database = tempDir('demo-database-folder');
    writeFileSync(path.join(database, 'keygate.db'), '');
    const overDatabase = await runCli(['demo', '--data', database, '--port', '0'], { cwd: database, env: { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN } });
    expect(overDatabase.code).toBe(1);
    expect(overDatabase.stderr).toContain(`${path.join(database, 'keygate.db')} is not the demo's (its keygate.yaml is not beside it)`);
    expect(existsSync(path.join(database, 'keygate.yaml'))).toBe(false);

    // A keygate.yaml that is a folder: refused before anything listens (it used to be found only once everything served, which then went on serving).
    const odd = tempDir('demo-odd-folder');
    mkdirSync(path.join(odd, 'keygate.yaml'));
    const overFolder = await runCli(['demo', '--data', odd, '--port', '0'], { cwd: odd, env: { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN } });
    expect([overFolder.code, overFolder.stderr]).toEqual([1, `error: ${path.join(odd, 'keygate.yaml')} was not written by the demo, which would replace it; start the demo with another --data folder\n`]);
  });
});
