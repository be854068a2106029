/**
 * A process that stops while its store is unreachable cannot write what it counted since
 * its last write (daily request and denial counts, keys' last use): the log says how much
 * was lost, not only that the write failed. With memory counters, that includes the
 * rate-limit blocks and windows changed since, counted per kind: here on a real SQLite file
 * whose disk is full.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../src/runtime.js';
import { parseConfigObject } from '../src/config/load.js';
import { openStore } from '../src/store/open.js';
import type { Store } from '../src/store/store.js';
import { createLog } from '../src/log.js';
import { tempDir } from './support/temp.js';
import { fill, mountSmallDisk } from './support/small-disk.js';

describe('stopping while the store is unreachable', () => {
  const dir = tempDir('usage-loss');

  it('logs what it counted and could not write', async () => {
    const file = path.join(dir, 'k.db');
    const real = openStore(`sqlite:${file}`);
    let down = false;
    const unreachable = () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
    // The store as a process cut off from its database sees it: every write fails.
    const store = new Proxy(real, {
      get(target, name, receiver) {
        if (down && (name === 'addUsageDaily' || name === 'touchKeys' || name === 'saveMeterUsage' || name === 'setGauge')) return unreachable;
        return Reflect.get(target, name, receiver);
      },
    }) as Store;
    const lines: string[] = [];
    const log = createLog({ level: 'warn', destination: { write: (line: string) => void lines.push(line) } });
    const loaded = { config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${file}` }), file: 'inline', dir };
    const rt = await createRuntime(loaded, { store, log, flushIntervalMs: 3_600_000 });
    const now = rt.clock();
    for (let i = 0; i < 3; i++) rt.usage.add('acc_1', now, 'requests', '2xx');
    rt.usage.add('acc_1', now, 'denials', 'rate_limited');
    rt.usage.touch('key_1', 'acc_1', now);
    down = true;
    await rt.close();

    const failed = lines.map((line) => JSON.parse(line) as { msg: string; lost?: unknown }).find((line) => line.msg.startsWith('final usage flush failed'));
    expect(failed).toMatchObject({ lost: { requests: 3, denials: 1, units: 0, keysLastUsed: 1, gauges: 0, meterBalancesNotWritten: 0 } });
  });
});

const disk = mountSmallDisk();

describe.skipIf(disk === undefined)('stopping while the SQLite disk is full', () => {
  const disk_ = disk as string;

  afterAll(() => {
    execFileSync('umount', [disk_]);
    rmSync(disk_, { recursive: true, force: true });
  });

  it('says how many rate-limit blocks and windows it could not write', async () => {
    const file = path.join(disk_, 'k.db');
    const lines: string[] = [];
    const log = createLog({ level: 'warn', destination: { write: (line: string) => void lines.push(line) } });
    const config = parseConfigObject({
      upstream: { url: 'http://127.0.0.1:9' },
      store: `sqlite:${file}`,
      plans: { limited: { rateLimits: [{ limit: 1, window: '1h' }], block: { after: 1, within: '1h', duration: '10m' } } },
    });
    const rt = await createRuntime({ config, file: 'inline', dir: disk_ }, { log, flushIntervalMs: 3_600_000 });
    const policy = config.plans.limited?.block;
    if (!policy) throw new Error('the profile has no block policy');
    // One key's hour window: admitted, then refused, which blocks it (as the pipeline asks).
    const request = { now: rt.clock(), windows: [{ id: 'k:key_1:w3600000:limited', name: 'limited', limit: 1, windowMs: 3_600_000 }], block: { id: 'k:key_1', policy } };
    expect((await rt.counters.admit(request)).ok).toBe(true);
    expect((await rt.counters.admit(request)).ok).toBe(false);
    const filler = fill(disk_);
    try {
      await rt.close();
    } finally {
      rmSync(filler, { force: true });
    }

    const failed = lines.map((line) => JSON.parse(line) as { msg: string; lost?: unknown }).find((line) => line.msg.startsWith('final usage flush failed'));
    expect(failed).toMatchObject({ lost: { rateLimitBlocksNotWritten: 1, rateLimitWindowsNotWritten: 1 } });
    expect(failed?.msg).toContain('the changes to 1 rate-limit block and 1 rate-limit window since are lost (after a restart each is as the store last held it, or absent)');
  });
});
