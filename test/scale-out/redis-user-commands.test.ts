/**
 * The commands `keygate check` names for a Redis user that lacks keygate's rights are all
 * `keygate serve` needs: a user allowed those commands alone (its ACL made from the check's
 * own words, with keygate's keys and channel and INFO) serves counted, rate-limited and
 * blocked requests, lifts a block and tells the other processes of a revocation, writes
 * back to the store as it stops, and Redis refuses it nothing (no NOPERM in its log). On a
 * private redis-server, on a database other than 0 (SELECT): the shared Redis's ACL is left
 * alone.
 */
import { createServer, type Server } from 'node:http';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { readFileSync } from 'node:fs';
import { SERVE_COMMANDS } from '../../src/operations/reach.js';
import { runCli } from '../support/cli.js';
import { tempDir } from '../support/temp.js';
import { provisionKey, startGateway, startRedisServer, writeProfile, type GatewayProcess, type RedisServer } from './cluster.js';

const PREFIX = 'kgcmds:';
const SECRET = 'kgcmds-secret';

describe("the commands keygate check names for keygate's Redis user", () => {
  const dir = tempDir('keygate-redis-user-commands');
  let redis: RedisServer;
  let upstream: Server;
  let gateway: GatewayProcess | undefined;

  const acl = (...rule: string[]) => {
    const set = spawnSync('redis-cli', ['-p', String(redis.port), 'ACL', 'SETUSER', ...rule], { encoding: 'utf8' });
    expect(set.stdout.trim()).toBe('OK');
  };
  const profile = (user: string): ConfigInput => ({
    name: 'redis-user-commands',
    upstream: { url: `http://127.0.0.1:${(upstream.address() as { port: number }).port}` },
    store: `sqlite:${path.join(dir, 'k.db')}`,
    counters: `redis://${user}:${SECRET}@127.0.0.1:${redis.port}/3?prefix=${PREFIX}`,
    counterFailure: 'closed',
    listen: { host: '127.0.0.1', port: 0 },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    dashboard: { enabled: false },
    plans: { metered: { meters: { units: { limit: 100 } }, rateLimits: [{ limit: 2, window: '1h' }], block: { after: 1, within: '1h', duration: '10m' } } },
    routes: [{ method: 'GET', path: '/v1/charged', cost: { meter: 'units', perRequest: 1 } }],
  });

  beforeAll(async () => {
    redis = await startRedisServer();
    upstream = createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[]}'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    await gateway?.stop();
    await redis?.kill();
    await new Promise((resolve) => upstream?.close(resolve));
  });

  it("names every command keygate's scripts call (an ACL checks each), whichever path runs them", () => {
    const scripts = readFileSync(path.resolve(import.meta.dirname, '../../src/counters/redis/scripts.ts'), 'utf8');
    const called = [...new Set([...scripts.matchAll(/redis\.p?call\('([A-Za-z]+)'/g)].map((match) => (match[1] as string).toUpperCase()))];
    expect(called.length).toBeGreaterThan(10);
    expect(called.filter((command) => !SERVE_COMMANDS.includes(command))).toEqual([]);
  });

  it('a user allowed only the commands the check names (with the keys, the channel and INFO) serves, blocks, unblocks and revokes, and Redis refuses it nothing', async () => {
    // What the check says of a user whose keys are elsewhere: the rights it needs.
    acl('kgelsewhere', 'on', `>${SECRET}`, 'resetkeys', '~elsewhere:*', 'resetchannels', `&${PREFIX}*`, '+@all');
    const checked = await runCli(['check', '--config', writeProfile(dir, 'elsewhere', profile('kgelsewhere'))]);
    expect(checked.code).toBe(4);
    const named = /the user needs keys ~kgcmds:\*, the channel &kgcmds:cache@3 and the commands (.*?), which \+@all -@dangerous allows/.exec(checked.stdout);
    expect(named, checked.stdout).not.toBeNull();
    const commands = (named?.[1] ?? '').split(', ');
    // As an ACL names them: `CLIENT SETNAME` is the subcommand `client|setname`.
    acl('kgcmds', 'on', `>${SECRET}`, 'resetkeys', `~${PREFIX}*`, 'resetchannels', `&${PREFIX}*`, '-@all', '+info', ...commands.map((command) => `+${command.toLowerCase().replace(' ', '|')}`));

    const file = writeProfile(dir, 'commands', profile('kgcmds'));
    expect((await runCli(['check', '--config', file])).stdout).toContain(`counters: Redis at redis://kgcmds:***@127.0.0.1:${redis.port}/3?prefix=${PREFIX} answers\n`);
    gateway = await startGateway(file);
    const { keyId, secret } = await provisionKey(gateway, 'metered');
    // Two counted and charged, the third over the limit, then blocked.
    expect((await gateway.call('/v1/charged', secret)).status).toBe(200);
    expect((await gateway.call('/v1/charged', secret)).status).toBe(200);
    expect((await gateway.call('/v1/charged', secret)).status).toBe(429);
    const blocked = await gateway.call('/v1/charged', secret);
    expect(blocked.status).toBe(429);
    expect(((await (await gateway.admin(`/v1/keys/${keyId}`, { method: 'GET' })).json()) as { blockedUntil?: string }).blockedUntil).toBeDefined();
    expect((await gateway.admin(`/v1/keys/${keyId}/unblock`, { body: {} })).status).toBe(200);
    expect((await gateway.admin(`/v1/keys/${keyId}/revoke`, { body: {} })).status).toBe(200);
    // Stopping writes the counters back to the store.
    await gateway.stop();
    const running = gateway;
    gateway = undefined;
    const refused = running.output.filter((line) => /NOPERM|no permissions/.test(line));
    expect(refused).toEqual([]);
    expect(running.output.some((line) => line.includes('"msg":"keygate stopped"'))).toBe(true);
  });
});
