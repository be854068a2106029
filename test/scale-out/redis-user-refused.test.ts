/**
 * keygate's Redis user taken away while keygate runs (docs/scale-out.md, "A Redis user for
 * keygate"): disabled, or its password changed, then its connections closed. The operator
 * reads why in keygate's own JSON log, once per change of why (not at each reconnection),
 * and in the CLI's messages, with what to fix; a user without +info leaves no plain text of
 * ioredis's on stderr beside that log. On a private redis-server: its users are made here,
 * the shared Redis's are left alone.
 */
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { runCli } from '../support/cli.js';
import { tempDir } from '../support/temp.js';
import { eventually } from '../backends/isolation.js';
import { provisionKey, startGateway, startRedisServer, writeProfile, type GatewayProcess, type RedisServer } from './cluster.js';

const USER = 'kgrefused';
const SECRET = 'the-users-own-secret';
const PREFIX = 'kgrefused:';
/** As docs/scale-out.md gives it, without `+info` (INFO is in @dangerous). */
const RIGHTS = ['resetkeys', `~${PREFIX}*`, 'resetchannels', `&${PREFIX}*`, '+@all', '-@dangerous'];
const FIX = "check the user and password in the profile's counters, and that Redis's ACL lets that user in: docs/scale-out.md#a-redis-user-for-keygate";
const WRONGPASS = 'WRONGPASS invalid username-password pair or user is disabled.';

interface LogLine {
  level: number;
  msg: string;
  err?: string;
}

describe("keygate's Redis user refused while keygate runs", () => {
  const dir = tempDir('keygate-redis-user-refused');
  let redis: RedisServer;
  let admin: Redis;
  let upstream: Server;
  let gateway: GatewayProcess;
  let profileFile: string;
  let accountId: string;
  let keyId: string;

  /** The JSON lines of the gateway's output; a line that is not JSON fails the test, naming it. */
  const logLines = (): LogLine[] =>
    gateway.output.map((line) => {
      try {
        return JSON.parse(line) as LogLine;
      } catch {
        throw new Error(`not a JSON log line: ${line}`);
      }
    });
  /** How many AUTHs of keygate's user Redis refused so far, by its own count (ACL LOG, reset by each case). */
  const refusedAuths = async (): Promise<number> => {
    const entries = (await admin.call('ACL', 'LOG', '128')) as unknown[][];
    return entries
      .map((entry) => Object.fromEntries(Array.from({ length: entry.length / 2 }, (_, i) => [String(entry[2 * i]), entry[2 * i + 1]])) as { reason?: string; username?: string; count?: number })
      .filter((entry) => entry.reason === 'auth' && entry.username === USER)
      .reduce((sum, entry) => sum + Number(entry.count ?? 0), 0);
  };
  const cli = (...args: string[]) => runCli(['--config', profileFile, ...args]);

  beforeAll(async () => {
    redis = await startRedisServer();
    admin = new Redis(redis.url);
    // While the test stops its Redis, this client's reconnections fail: not the test's output.
    admin.on('error', () => undefined);
    await admin.call('ACL', 'SETUSER', USER, 'on', `>${SECRET}`, ...RIGHTS);
    upstream = createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[]}'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const profile: ConfigInput = {
      name: 'redis-user-refused',
      upstream: { url: `http://127.0.0.1:${(upstream.address() as { port: number }).port}` },
      store: `sqlite:${path.join(dir, 'k.db')}`,
      counters: `redis://${USER}:${SECRET}@127.0.0.1:${redis.port}/0?prefix=${PREFIX}`,
      counterFailure: 'closed',
      listen: { host: '127.0.0.1', port: 0 },
      admin: { listen: { host: '127.0.0.1', port: 0 } },
      dashboard: { enabled: false },
      plans: { metered: { meters: { units: { limit: 100 } }, rateLimits: [{ limit: 50, window: '1h' }] } },
      routes: [{ method: 'GET', path: '/v1/charged', cost: { meter: 'units', perRequest: 1 } }],
    };
    profileFile = writeProfile(dir, 'refused', profile);
    gateway = await startGateway(profileFile);
    ({ accountId, keyId } = await provisionKey(gateway, 'metered'));
  });

  afterAll(async () => {
    await gateway?.stop();
    admin?.disconnect();
    await redis?.kill();
    await new Promise((resolve) => upstream?.close(resolve));
  });

  it('a user without +info: nothing but JSON lines from serve, at start and at each reconnection, and the INFO refusal said once in its log', async () => {
    const before = gateway.output.length;
    // Each of keygate's connections opens again, and ioredis's ready check asks INFO again.
    expect(Number(await admin.call('CLIENT', 'KILL', 'USER', USER))).toBeGreaterThanOrEqual(2);
    expect(await gateway.waitForLog(/Redis answers again/, before)).toBe(true);
    // The subscriber past its ready check too: subscribed again (its SUBSCRIBE goes once it is ready).
    const resubscribed = async () => ((await admin.call('CLIENT', 'LIST')) as string).split('\n').some((c) => c.includes(`user=${USER}`) && c.includes('name=keygate-events') && c.includes('cmd=subscribe'));
    expect(await eventually(resubscribed)).toBe(true);
    const lines = logLines();
    const info = lines.filter((line) => line.msg.includes('INFO'));
    expect(info).toEqual([
      expect.objectContaining({
        level: 40,
        msg: "Redis refuses INFO to keygate's user: keygate uses it all the same, but cannot tell a Redis still loading its data after a restart from a ready one (allow +info: docs/scale-out.md#a-redis-user-for-keygate)",
      }),
    ]);
  });

  it('a user disabled, then its connections closed: the refusal said once in words with what to fix, the CLI says it too, and its return', async () => {
    const before = gateway.output.length;
    await admin.call('ACL', 'LOG', 'RESET');
    await admin.call('ACL', 'SETUSER', USER, 'off');
    await admin.call('CLIENT', 'KILL', 'USER', USER);
    // Several reconnections refused, by Redis's own count: said once all the same.
    expect(await eventually(async () => (await refusedAuths()) >= 6, 20_000, 50)).toBe(true);
    const said = logLines().slice(before);
    const refusals = said.filter((line) => line.msg.includes('WRONGPASS'));
    expect(refusals).toEqual([
      {
        ...refusals[0],
        level: 40,
        err: `Redis refused the connection: ${WRONGPASS}`,
        msg: `Redis refuses the connection (${WRONGPASS}): requests with a rate limit, block policy or cost are refused (service_unavailable) until it takes it (counterFailure: closed); requests with none are served; ${FIX}`,
      },
    ]);
    const health = (await (await fetch(`${gateway.adminUrl}/health/ready`)).json()) as { reason: string };
    expect(health.reason).toBe(`the counters backend (redis) refuses the connection: ${WRONGPASS} (counterFailure: closed)`);

    // The CLI on the same profile says it in the same words, not "unreachable".
    const usage = await cli('accounts', 'usage', accountId);
    expect([usage.code, usage.stderr]).toEqual([0, `warning: Redis refuses the connection (${WRONGPASS}): balances are read from the store, up to a second or so behind; ${FIX}\n`]);
    const unblocked = await cli('keys', 'unblock', keyId);
    const shown = `redis://${USER}:***@127.0.0.1:${redis.port}/0?prefix=${PREFIX}`;
    expect([unblocked.code, unblocked.stderr]).toEqual([
      1,
      `error: the block of key ${keyId} was not lifted: Redis at ${shown} refuses the connection (${WRONGPASS}), and blocks are kept there. Nothing was changed; ${FIX}, then try again\n`,
    ]);
    // Whether the key is blocked cannot be asked: said as a refusal, once, with the fix, not "Redis is unreachable".
    const keyShown = await cli('keys', 'show', keyId);
    const notKnown = `Redis refuses the connection (${WRONGPASS}): whether a key is blocked is not known; ${FIX}`;
    expect([keyShown.code, keyShown.stderr]).toEqual([0, `warning: ${notKnown}\n`]);
    expect(keyShown.stdout).toMatch(/^status +active \(blocked or not: Redis refuses the connection\)$/m);
    const listed = await cli('keys', 'list');
    expect([listed.code, listed.stderr]).toEqual([0, `warning: ${notKnown}\n`]);
    expect(listed.stdout).toContain('active (blocked or not: Redis refuses the connection)');
    const listedJson = await cli('keys', 'list', '--json');
    expect([listedJson.code, JSON.parse(listedJson.stderr)]).toEqual([0, { warning: notKnown }]);
    expect((JSON.parse(listedJson.stdout) as object[])[0]).not.toHaveProperty('blockedUntil');
    expect(usage.stderr + unblocked.stderr + keyShown.stdout + keyShown.stderr + listed.stdout + listed.stderr + gateway.output.join('\n')).not.toContain(SECRET);

    // Its password changed instead (the user on again): the same refusal, not said again.
    await admin.call('ACL', 'SETUSER', USER, 'on', 'resetpass', '>another-secret');
    await admin.call('ACL', 'LOG', 'RESET');
    expect(await eventually(async () => (await refusedAuths()) >= 4, 20_000, 50)).toBe(true);
    expect(logLines().slice(before).filter((line) => line.msg.includes('WRONGPASS'))).toHaveLength(1);

    // Redis gone (another reason): said; back without the user (it keeps no ACL on disk): refused again, said again.
    const gone = gateway.output.length;
    await redis.kill();
    expect(await gateway.waitForLog(/Redis is unreachable/, gone)).toBe(true);
    await redis.start();
    expect(await gateway.waitForLog(/WRONGPASS/, gone)).toBe(true);
    expect(logLines().slice(gone).map((line) => line.msg.replace(/ \(.*/, ''))).toEqual(['Redis is unreachable: requests with a rate limit, block policy or cost are refused', 'Redis refuses the connection']);

    // The user made again: it answers again, said once, and nothing but JSON throughout.
    const back = gateway.output.length;
    await admin.call('ACL', 'SETUSER', USER, 'on', `>${SECRET}`, ...RIGHTS);
    expect(await gateway.waitForLog(/Redis answers again: shared counters resume/, back)).toBe(true);
    expect(logLines().slice(before).filter((line) => line.msg.includes('Redis answers again'))).toHaveLength(1);
  });

  it('readiness is still judged by the ready check: a Redis asking a password the URL does not give (NOAUTH) is not taken as ready, and said so in words', async () => {
    const guarded = await startRedisServer(['--requirepass', 'asked-but-not-given']);
    let other: GatewayProcess | undefined;
    try {
      const counters = `${guarded.url}/0?prefix=${PREFIX}`;
      const profile: ConfigInput = {
        name: 'redis-noauth',
        upstream: { url: 'http://127.0.0.1:9' },
        store: `sqlite:${path.join(dir, 'noauth.db')}`,
        counters,
        counterFailure: 'closed',
        listen: { host: '127.0.0.1', port: 0 },
        admin: { listen: { host: '127.0.0.1', port: 0 } },
        dashboard: { enabled: false },
        plans: { free: {} },
        routes: [{ path: '/v1/*' }],
      };
      other = await startGateway(writeProfile(dir, 'noauth', profile));
      const ready = await fetch(`${other.adminUrl}/health/ready`);
      const health = (await ready.json()) as { reason: string };
      expect([ready.status, health.reason]).toEqual([503, 'the counters backend (redis) refuses the connection: NOAUTH Authentication required. (counterFailure: closed)']);
      const lines = other.output.map((line) => JSON.parse(line) as LogLine);
      expect(lines.filter((line) => line.msg.startsWith('Redis refuses the connection'))).toEqual([
        expect.objectContaining({ level: 40, msg: expect.stringMatching(/^Redis refuses the connection \(NOAUTH Authentication required\.\): .*; check the user and password in the profile's counters/) }),
      ]);
    } finally {
      await other?.stop();
      await guarded.kill();
    }
  });
});
