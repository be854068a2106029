/**
 * A counters URL with a password that Redis does not ask for: `keygate serve` says so once,
 * as a warning line of its own JSON log in `keygate check`'s words, never the password,
 * and nothing comes on stderr (ioredis's own plain-text `[WARN] …` line is kept out).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { BIN } from '../support/cli.js';
import { REDIS_URL, serviceAvailable } from '../support/services.js';
import { tempDir } from '../support/temp.js';
import { deleteRedisKeys, redisUrlWithPrefix, testRedisPrefix } from '../backends/isolation.js';
import { writeProfile } from './cluster.js';

const enabled = await serviceAvailable('Redis', REDIS_URL);
/** A hang guard, not a timing: serve starts within a second or two on a quiet host. */
const START_GUARD_MS = 60_000;

interface LogLine {
  level: number;
  msg: string;
  counters?: string;
}

describe.skipIf(!enabled)('keygate serve with a Redis that asks no password, given one', () => {
  const dir = tempDir('keygate-unused-redis-password');
  const prefix = testRedisPrefix('unused-password');
  const SECRET = 'hunter2-unused-secret';
  afterAll(() => deleteRedisKeys(prefix));

  it("says once, on its log at warning level, that the profile's password is not used, never the password; nothing on stderr", async () => {
    // Redis's own (ask no password) is assumed: keygate check's test of the same Redis says so.
    const url = new URL(redisUrlWithPrefix(prefix));
    url.password = SECRET;
    const shown = url.toString().replace(SECRET, '***');
    const profile: ConfigInput = {
      name: 'unused-password',
      upstream: { url: 'http://127.0.0.1:9' },
      store: `sqlite:${path.join(dir, 'keygate.db')}`,
      counters: url.toString(),
      listen: { host: '127.0.0.1', port: 0 },
      admin: { listen: { host: '127.0.0.1', port: 0 } },
      dashboard: { enabled: false },
      routes: [{ path: '/v1/*' }],
    };
    const child = spawn(process.execPath, [BIN, 'serve', '--config', writeProfile(dir, 'unused-password', profile)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const guard = setTimeout(() => child.kill('SIGKILL'), START_GUARD_MS);
    try {
      // Both connections (commands, and the subscriber's) are up and have sent AUTH by the
      // start line: the client waits for Redis before it (ready, subscribed).
      await new Promise<void>((resolve, reject) => {
        const look = () => (stdout.includes('keygate is serving') ? resolve() : undefined);
        child.stdout.on('data', look);
        void exited.then(() => reject(new Error(`keygate serve exited before serving:\n${stdout}${stderr}`)));
      });
      child.kill('SIGTERM');
      await exited;
    } finally {
      clearTimeout(guard);
      child.kill('SIGKILL');
    }
    const lines = stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as LogLine);
    const said = lines.filter((line) => line.msg.includes('asks no password'));
    expect(said.map(({ level, msg, counters }) => ({ level, msg, counters }))).toEqual([
      { level: 40, msg: `counters: Redis at ${shown} answers; it asks no password, so the one in the profile's counters is not used`, counters: shown },
    ]);
    expect(lines.at(-1)?.msg).toBe('keygate stopped');
    expect(stderr).toBe('');
    expect(stdout).not.toContain(SECRET);
  }, 90_000);
});
