/**
 * What an operator running several processes sees of each, over real sockets: which
 * release it runs (/health, /metrics, the start line), which profile it applies (a digest
 * in /metrics, on the start line and on each reload's line), which process wrote a line
 * that is not a request line, how full its key cache is and why it was dropped, how long
 * the upstream took of a logged request, and how long a stop took.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigObject } from '../src/config/load.js';
import type { ConfigInput } from '../src/config/schema.js';
import { tempDir } from './support/temp.js';
import { startKeygate, type TestKeygate } from './support/keygate.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { namedPort } from './support/ports.js';

const VERSION = (JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../package.json'), 'utf8')) as { version: string }).version;

type Line = Record<string, unknown> & { msg: string };

describe('what an operator sees of one keygate process', () => {
  const dir = tempDir('operator-view');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  const profile = (message: string): ConfigInput => ({
    upstream: { url: upstream.url },
    errors: { envelope: 'error', reasons: { missing_key: { message } } },
    plans: { team: { meters: { credits: { limit: 1000 } } } },
    routes: [{ path: '/*' }],
  });
  const lines = (): Line[] => kg.logs.lines.map((text) => JSON.parse(text) as Line);
  const line = (msg: string | RegExp): Line | undefined => lines().find((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg)));
  const metrics = async () => (await kg.admin('/metrics')).text();
  const bearer = (secret: string) => ({ headers: { authorization: `Bearer ${secret}` } });
  let accountId: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(profile('First'), { dir });
    const account = (await (await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Acme', planId: 'team' }) })).json()) as { id: string };
    accountId = account.id;
  });
  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('names its release (package.json\'s version) and Node\'s in /metrics, /health and the start line', async () => {
    expect(await metrics()).toContain(`keygate_build_info{version="${VERSION}",node="${process.version}"} 1`);
    const health = (await (await fetch(`${kg.adminUrl}/health`)).json()) as { version?: string };
    expect(health.version).toBe(VERSION);
    expect(line(/^keygate is serving/)).toMatchObject({ version: VERSION });
  });

  it('shows the digest of its profile on the start line, in /metrics, and a new one on the reload line, the old series gone', async () => {
    const series = async () => (await metrics()).match(/^keygate_config_info\{digest="[0-9a-f]+"\} 1$/gm) ?? [];
    const first = line(/^keygate is serving/)?.digest as string;
    expect(first).toMatch(/^[0-9a-f]{16}$/);
    expect(await series()).toEqual([`keygate_config_info{digest="${first}"} 1`]);

    await kg.reload({ config: parseConfigObject({ store: `sqlite:${path.join(dir, 'keygate.db')}`, dashboard: { enabled: false }, ...profile('Second') }), file: 'test profile', dir });
    const reloaded = line(/^profile reloaded/);
    expect(reloaded).toMatchObject({ changed: ['errors'] });
    const second = reloaded?.digest as string;
    expect(second).toMatch(/^[0-9a-f]{16}$/);
    expect(second).not.toBe(first);
    expect(await series()).toEqual([`keygate_config_info{digest="${second}"} 1`]);
  });

  it('names the process on lines that are not request lines, as on the start line; request lines name it in reqId', async () => {
    const serving = line(/^keygate is serving/);
    expect(serving).toMatchObject({ pid: process.pid });
    const tag = serving?.process as string;
    expect(tag).toMatch(/^[A-Za-z0-9_-]{8}$/);
    // Lines of serve's own and of the runtime's (a new SQLite file's migrations).
    expect(line(/^profile reloaded/)).toMatchObject({ process: tag, pid: process.pid });
    expect(line(/^applied database migrations/)).toMatchObject({ process: tag, pid: process.pid });
    expect((await kg.call('/rows')).status).toBe(401);
    const request = line('request');
    expect(request?.reqId).toMatch(new RegExp(`^${tag}-`));
    expect(request).not.toHaveProperty('process');
    expect(request).not.toHaveProperty('pid');
  });

  it('shows the keys its key cache holds, and each drop by cause', async () => {
    const entries = async () => Number(/^keygate_key_cache_entries (\d+)$/m.exec(await metrics())?.[1]);
    const drops = async () => Object.fromEntries([...(await metrics()).matchAll(/^keygate_key_cache_drops_total\{cause="([a-z_]+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
    expect(await drops()).toEqual({ message: 0, resubscribed: 0, store_mark: 0, store_file: 0 });
    const before = await entries();
    const key = (await (await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId, name: 'cached' }) })).json()) as { id: string; secret: string };
    expect((await kg.call('/rows', bearer(key.secret))).status).toBe(200);
    expect(await entries()).toBe(before + 1);
    expect((await kg.admin(`/v1/keys/${key.id}/revoke`, { method: 'POST' })).status).toBe(200);
    expect(await entries()).toBe(before);
    // The revocation, heard as the counters' message (this process's own change among them).
    expect(await drops()).toEqual({ message: 1, resubscribed: 0, store_mark: 0, store_file: 0 });
  });

  it("puts the upstream's time on a forwarded request's line (upstreamMs, within ms), none on a refusal's", async () => {
    const key = (await (await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId, name: 'timed' }) })).json()) as { secret: string };
    expect((await kg.call('/slow?ms=30', bearer(key.secret))).status).toBe(200);
    const forwarded = lines().find((l) => l.msg === 'request' && l.target === '/slow?ms=30');
    expect(forwarded).toMatchObject({ outcome: 'forwarded', status: 200 });
    expect(typeof forwarded?.upstreamMs).toBe('number');
    expect(forwarded?.upstreamMs as number).toBeLessThanOrEqual(forwarded?.ms as number);
    // The upstream waited 30 ms before its answer's head: most of that, at least, is the upstream's.
    expect(forwarded?.upstreamMs as number).toBeGreaterThanOrEqual(20);
    const refused = lines().find((l) => l.msg === 'request' && l.status === 401);
    expect(refused).not.toHaveProperty('upstreamMs');
  });
});

describe('a stopping keygate', () => {
  it("says which process stops, and how long its stop took from the signal (ms on 'keygate stopped')", async () => {
    const dir = tempDir('operator-view-stop');
    const kg = await startKeygate({ upstream: { url: 'http://127.0.0.1:1' } }, { dir });
    const tag = kg.logs.lines.map((text) => JSON.parse(text) as Line).find((l) => /^keygate is serving/.test(l.msg))?.process;
    expect(tag).toEqual(expect.any(String));
    await kg.close('SIGTERM');
    const lines = kg.logs.lines.map((text) => JSON.parse(text) as Line);
    const stopping = lines.find((l) => /^keygate stopping \(SIGTERM\)/.test(l.msg));
    const stopped = lines.find((l) => l.msg === 'keygate stopped');
    expect(stopping).toMatchObject({ process: tag, pid: process.pid });
    expect(stopped).toMatchObject({ process: tag, pid: process.pid });
    expect(typeof stopped?.ms).toBe('number');
  });
});

describe('a keygate whose Redis is unreachable', () => {
  it('says so on a line naming its process, as its start line does', async () => {
    const dir = tempDir('operator-view-redis');
    // A port nothing listens on: connections to it are refused, as with a mistyped port.
    const counters = `redis://127.0.0.1:${await namedPort()}/15?prefix=hF-operator-view:`;
    const kg = await startKeygate({ upstream: { url: 'http://127.0.0.1:1' }, counters, counterFailure: 'closed' }, { dir });
    try {
      const lines = kg.logs.lines.map((text) => JSON.parse(text) as Line);
      const serving = lines.find((l) => /^keygate is serving/.test(l.msg));
      const unreachable = lines.find((l) => /^Redis is unreachable/.test(l.msg));
      expect(serving).toMatchObject({ process: expect.any(String), pid: process.pid });
      expect(unreachable).toMatchObject({ level: 40, process: serving?.process, pid: process.pid });
    } finally {
      await kg.close();
    }
  });
});
