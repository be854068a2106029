/**
 * docs/library.md's Python backend, run as the page shows it (python3, the standard library
 * only) against a real keygate's admin API: it serves and settles an admitted request, sends
 * a refusal as it is, and fails closed (503, Retry-After) when keygate cannot be reached or
 * answers 5xx.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, startKeygate, type TestKeygate } from '../support/keygate.js';
import { tempDir } from '../support/temp.js';
import { IN_CI } from '../support/services.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The page's Python block, as a reader would copy it. */
function pythonExample(): string {
  const page = readFileSync(path.join(ROOT, 'docs/library.md'), 'utf8');
  const from = page.indexOf('A backend in Python');
  const block = /```python\n([^]*?)```/.exec(page.slice(from));
  if (from === -1 || !block) throw new Error('docs/library.md has no Python backend');
  return block[1] as string;
}

/** A port nothing listens on once this answers. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Whether python3 runs here: without CI, its absence skips these tests with a printed reason; with CI=true (where .ci/run installs it) it fails them. */
function pythonAvailable(): boolean {
  if (spawnSync('python3', ['--version']).status === 0) return true;
  if (IN_CI) throw new Error('python3 is not installed, and CI=true requires it (.ci/run installs it)');
  console.warn('[skip] python3 is not installed: the Python example of docs/library.md is not run (set CI=true to make this a failure)');
  return false;
}

describe.runIf(pythonAvailable())("docs/library.md's Python backend", () => {
  const dir = tempDir('library-python');
  const script = path.join(dir, 'backend.py');
  const backends: ChildProcess[] = [];
  let kg: TestKeygate;
  let failing: Server;
  let secret: string;
  let accountId: string;

  /** Starts the example against `adminUrl`; answers its address once it takes requests. */
  async function startBackend(adminUrl: string): Promise<string> {
    const port = await freePort();
    const child = spawn('python3', [script], { env: { ...process.env, KEYGATE_ADMIN_URL: adminUrl, KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN, PORT: String(port) }, stdio: 'ignore' });
    backends.push(child);
    const url = `http://127.0.0.1:${port}`;
    for (let tries = 0; tries < 100; tries += 1) {
      if (await fetch(url, { method: 'HEAD' }).then(() => true, () => false)) return url;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('the Python backend did not start');
  }

  beforeAll(async () => {
    writeFileSync(script, pythonExample());
    kg = await startKeygate(
      {
        upstream: { url: 'http://127.0.0.1:9' },
        keys: { prefix: { live: 'sk_live_' } },
        plans: { free: { meters: { credits: { limit: 100 } } } },
        defaultPlan: 'free',
        routes: [{ method: 'GET', path: '/rows', cost: { meter: 'credits', perRecord: 1, records: { header: 'X-Rows' } } }],
      },
      { dir },
    );
    accountId = ((await (await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Acme' }) })).json()) as { id: string }).id;
    secret = ((await (await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId, name: 'py' }) })).json()) as { secret: string }).secret;
    // An admin API that answers every call with a 500.
    failing = createServer((_req, res) => res.writeHead(500, { 'content-type': 'application/json' }).end('{}'));
    await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    for (const child of backends) child.kill();
    if (failing) await new Promise((resolve) => failing.close(resolve));
    await kg?.close();
  });

  it('serves and settles an admitted request (3 records charged) and sends a refusal as keygate renders it', async () => {
    const backend = await startBackend(kg.adminUrl);
    const served = await fetch(`${backend}/rows`, { headers: { authorization: `Bearer ${secret}` } });
    expect(served.status).toBe(200);
    expect(await served.json()).toEqual([{ account: accountId }, { account: accountId }, { account: accountId }]);
    const usage = (await (await kg.admin(`/v1/accounts/${accountId}/usage`)).json()) as { meters: { credits: { usage: number } } };
    expect(usage.meters.credits.usage).toBe(3);
    const refused = await fetch(`${backend}/rows`);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ code: 'missing_key', detail: 'Missing API key.' });
  });

  it('fails closed: keygate unreachable, or answering 500, is a 503 with Retry-After, never the data', async () => {
    const failingUrl = `http://127.0.0.1:${(failing.address() as AddressInfo).port}`;
    for (const adminUrl of [`http://127.0.0.1:${await freePort()}`, failingUrl]) {
      const backend = await startBackend(adminUrl);
      const answer = await fetch(`${backend}/rows`, { headers: { authorization: `Bearer ${secret}` } });
      expect({ status: answer.status, retryAfter: answer.headers.get('retry-after'), body: await answer.text() }, adminUrl).toEqual({ status: 503, retryAfter: '1', body: '{"error":"Service unavailable."}' });
    }
  });
});
