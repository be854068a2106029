import { describe, expect, it } from 'vitest';
import { CountersUnavailableError, type AddressBlockEvent, type SharedAddressBlocks, type SharedUnknownKey } from '../counters/counters.js';
import type { Log } from '../log.js';
import { SharedUnknownKeyLimit } from './shared-unknown-key-limit.js';
import { UnknownKeyLimit, type BlockInForce } from './unknown-key-limit.js';

const POLICY = { limit: 3, window: 60_000, block: 600_000 };
const BLOCK: BlockInForce = { address: '192.0.2.1', unknownKeys: 3, startedAt: 10, endsAt: 600_010 };

/** A shared count that answers as told (or is away), and lets the test send its messages. */
function fakeShared(answer: () => SharedUnknownKey) {
  const handlers: ((event: AddressBlockEvent) => void)[] = [];
  const shared: SharedAddressBlocks = {
    unknownKey: async () => answer(),
    inForce: async () => [BLOCK],
    lift: async () => BLOCK,
    onChange: (handler) => void handlers.push(handler),
  };
  return { shared, tell: (event: AddressBlockEvent) => handlers.forEach((handler) => handler(event)) };
}

function fakeLog() {
  const lines: { level: string; msg: string }[] = [];
  const at = (level: string) => (...args: unknown[]) => void lines.push({ level, msg: String(args.find((arg) => typeof arg === 'string')) });
  const log = { fatal: at('fatal'), error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), trace: at('trace') } as unknown as Log;
  return { log, lines };
}

describe('SharedUnknownKeyLimit', () => {
  it('a block Redis says another process began is held here at once (the key is refused by it, not counted here)', async () => {
    const { shared } = fakeShared(() => ({ kind: 'blocked', block: BLOCK }));
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
    expect(await limit.fail('192.0.2.1', 20, POLICY)).toBeUndefined();
    expect(limit.blockedFor('192.0.2.1', 20)).toBe(600_000 - 10);
  });

  it('a block this key began is answered for the log and metrics, and held', async () => {
    const { shared } = fakeShared(() => ({ kind: 'started', block: BLOCK }));
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 10);
    expect(await limit.fail('192.0.2.1', 10, POLICY)).toEqual({ address: '192.0.2.1', unknownKeys: 3, windowMs: 60_000, blockMs: 600_000, endsAt: 600_010 });
    expect(limit.blockedFor('192.0.2.1', 10)).toBe(600_000);
  });

  it('learns blocks and lifts from the messages, and drops its copy when messages may have been missed', () => {
    const { shared, tell } = fakeShared(() => ({ kind: 'counted', count: 1 }));
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
    tell({ type: 'blocked', block: BLOCK });
    expect(limit.blockedFor('192.0.2.1', 20)).toBeGreaterThan(0);
    tell({ type: 'lifted', address: '192.0.2.1' });
    expect(limit.blockedFor('192.0.2.1', 20)).toBe(0);
    tell({ type: 'blocked', block: BLOCK });
    tell({ type: 'missed' });
    expect(limit.blockedFor('192.0.2.1', 20)).toBe(0);
  });

  it('with Redis away, counts in this process, saying so once, and once again when it answers', async () => {
    let away = true;
    const { shared } = fakeShared(() => {
      if (away) throw new CountersUnavailableError(new Error('Redis is not reachable'));
      return { kind: 'counted', count: 1 };
    });
    const { log, lines } = fakeLog();
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, log, () => 0);
    expect(await limit.fail('192.0.2.1', 0, POLICY)).toBeUndefined();
    expect(await limit.fail('192.0.2.1', 1, POLICY)).toBeUndefined();
    expect(await limit.fail('192.0.2.1', 2, POLICY)).toMatchObject({ address: '192.0.2.1', unknownKeys: 3 });
    expect(limit.blockedFor('192.0.2.1', 3)).toBeGreaterThan(0);
    expect(lines.filter((line) => line.level === 'warn')).toEqual([{ level: 'warn', msg: 'Redis is unreachable: unknown keys (auth.unknownKeys) are counted by each process on its own until it answers' }]);
    away = false;
    expect(await limit.fail('192.0.2.2', 4, POLICY)).toBeUndefined();
    expect(lines.filter((line) => line.level === 'info')).toHaveLength(1);
  });
});
