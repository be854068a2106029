import { describe, expect, it } from 'vitest';
import { CountersRefusedError, CountersUnavailableError, type AddressBlockEvent, type SharedAddressBlocks, type SharedUnknownKey } from '../counters/counters.js';
import type { Log } from '../log.js';
import { RECHECK_MS, SharedUnknownKeyLimit } from './shared-unknown-key-limit.js';
import { UnknownKeyLimit, type BlockInForce } from './unknown-key-limit.js';

const POLICY = { limit: 3, window: 60_000, block: 600_000 };
const BLOCK: BlockInForce = { address: '192.0.2.1', unknownKeys: 3, startedAt: 10, endsAt: 600_010 };

/**
 * A shared count that answers as told (or is away), holds `inForce`, lifts as `lift` says,
 * takes blocks handed over as `share` says (by default, all of them), and lets the test send its messages.
 */
function fakeShared(
  answer: () => SharedUnknownKey,
  inForce: () => Promise<BlockInForce[]> = async () => [BLOCK],
  lift: (address: string) => Promise<BlockInForce | undefined> = async () => BLOCK,
  share: (blocks: readonly BlockInForce[]) => Promise<BlockInForce[]> = async (blocks) => [...blocks],
) {
  const handlers: ((event: AddressBlockEvent) => void)[] = [];
  const shared: SharedAddressBlocks = {
    unknownKey: async () => answer(),
    inForce,
    lift,
    share: (blocks) => share(blocks),
    onChange: (handler) => void handlers.push(handler),
  };
  return { shared, tell: (event: AddressBlockEvent) => handlers.forEach((handler) => handler(event)) };
}

/** What a shared count that does not answer throws. */
const unreachable = () => new CountersUnavailableError(new Error('Redis is not reachable'));

/**
 * A shared count that is away (every count and list refused as unreachable) until the test
 * sets `redis.away` to false; then it counts, lists `held()`, and takes blocks handed over as
 * `share` says (by default, all of them).
 */
function awayAtFirst(held: () => BlockInForce[] = () => [], share?: (blocks: readonly BlockInForce[]) => Promise<BlockInForce[]>) {
  const redis = { away: true };
  const { shared, tell } = fakeShared(
    () => {
      if (redis.away) throw unreachable();
      return { kind: 'counted', count: 1 };
    },
    async () => {
      if (redis.away) throw unreachable();
      return held();
    },
    undefined,
    share,
  );
  return { shared, tell, redis };
}

/**
 * A limit that blocked 192.0.2.9 on its own while Redis was away (holding `held()` once
 * back), with the hand-over of that block on its way: `answerShare` answers it.
 */
async function handOverOnItsWay(held: () => BlockInForce[]) {
  let answerShare: (blocks: BlockInForce[]) => void = () => undefined;
  const { shared, tell, redis } = awayAtFirst(held, () => new Promise<BlockInForce[]>((resolve) => (answerShare = resolve)));
  const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
  for (let i = 0; i < POLICY.limit; i++) await limit.fail('192.0.2.9', 20, POLICY);
  redis.away = false;
  tell({ type: 'back' });
  await settled();
  return { limit, tell, answerShare: (blocks: BlockInForce[]) => answerShare(blocks) };
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

  it('lists the blocks Redis holds with those begun here while it was away (shared); while Redis is away, this process\'s alone, and says so', async () => {
    let away = true;
    const { shared } = fakeShared(
      () => {
        throw new CountersUnavailableError(new Error('Redis is not reachable'));
      },
      async () => {
        if (away) throw new CountersUnavailableError(new Error('Redis is not reachable'));
        return [BLOCK];
      },
    );
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
    for (let i = 0; i < POLICY.limit; i++) await limit.fail('192.0.2.9', 20, POLICY);
    const own = { address: '192.0.2.9', unknownKeys: 3, startedAt: 20, endsAt: 600_020 };
    expect(await limit.blocksInForce(20)).toEqual({ blocks: [own], from: 'this-process-redis-away' });
    away = false;
    expect(await limit.blocksInForce(20)).toEqual({ blocks: [BLOCK, own], from: 'shared' });
  });

  it('says where a lift reached: in Redis (every process), or while Redis is away this process\'s copy alone, which Redis brings back once it answers', async () => {
    let away = false;
    const { shared, tell } = fakeShared(
      () => {
        if (away) throw unreachable();
        return { kind: 'counted', count: 1 };
      },
      async () => {
        if (away) throw unreachable();
        return [BLOCK];
      },
      async (address) => {
        if (away) throw unreachable();
        return address === BLOCK.address ? BLOCK : undefined;
      },
    );
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
    expect(await limit.lift('192.0.2.1', 20)).toEqual({ block: BLOCK, from: 'shared' });
    tell({ type: 'blocked', block: BLOCK });
    away = true;
    expect(await limit.lift('192.0.2.1', 20)).toEqual({ block: BLOCK, from: 'this-process-redis-away' });
    expect(limit.blockedFor('192.0.2.1', 20)).toBe(0);
    // None held here, and Redis cannot be asked: refused, not a lift.
    await expect(limit.lift('192.0.2.2', 20)).rejects.toBeInstanceOf(CountersUnavailableError);
    for (let i = 0; i < POLICY.limit; i++) await limit.fail('192.0.2.9', 20, POLICY);
    // Back: Redis still holds the block lifted here alone, and the recheck brings it back.
    away = false;
    tell({ type: 'missed' });
    await settled();
    expect(limit.blockedFor('192.0.2.1', 20)).toBe(600_000 - 10);
    // A block begun here alone (Redis never held it): lifted wherever it was, as shared.
    const own = { address: '192.0.2.9', unknownKeys: 3, startedAt: 20, endsAt: 600_020 };
    expect(await limit.lift('192.0.2.9', 20)).toEqual({ block: own, from: 'shared' });
  });

  it('while Redis answers with an error (NOPERM), lists and lifts this process\'s copies alone, and says Redis refused (this-process-redis-refused), not that it is away', async () => {
    const refused = () => new CountersRefusedError(new Error("NOPERM User default has no permissions to run the 'evalsha' command"));
    const { shared } = fakeShared(
      () => {
        throw refused();
      },
      async () => {
        throw refused();
      },
      async () => {
        throw refused();
      },
    );
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
    for (let i = 0; i < POLICY.limit; i++) await limit.fail('192.0.2.9', 20, POLICY);
    const own = { address: '192.0.2.9', unknownKeys: 3, startedAt: 20, endsAt: 600_020 };
    expect(await limit.blocksInForce(20)).toEqual({ blocks: [own], from: 'this-process-redis-refused' });
    expect(await limit.lift('192.0.2.9', 20)).toEqual({ block: own, from: 'this-process-redis-refused' });
    await expect(limit.lift('192.0.2.9', 20)).rejects.toBeInstanceOf(CountersRefusedError);
  });

  it('learns blocks and lifts from the messages', () => {
    const { shared, tell } = fakeShared(() => ({ kind: 'counted', count: 1 }));
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
    tell({ type: 'blocked', block: BLOCK });
    expect(limit.blockedFor('192.0.2.1', 20)).toBeGreaterThan(0);
    tell({ type: 'lifted', address: '192.0.2.1' });
    expect(limit.blockedFor('192.0.2.1', 20)).toBe(0);
  });

  it('when messages may have been missed, holds what Redis holds: a lift it missed is served, a block it missed is refused, one begun here while Redis was away stays', async () => {
    let away = true;
    const kept = { ...BLOCK, address: '192.0.2.3' };
    const { shared, tell } = fakeShared(
      () => {
        if (away) throw new CountersUnavailableError(new Error('Redis is not reachable'));
        return { kind: 'counted', count: 1 };
      },
      async () => [BLOCK, kept],
    );
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
    // Blocked here alone, while Redis was away.
    for (let i = 0; i < POLICY.limit; i++) await limit.fail('192.0.2.9', 20, POLICY);
    away = false;
    tell({ type: 'blocked', block: { ...BLOCK, address: '192.0.2.2' } });
    tell({ type: 'blocked', block: kept });
    tell({ type: 'missed' });
    await settled();
    // Lifted in Redis (its message missed): served; begun in Redis (its message missed): refused.
    expect(limit.blockedFor('192.0.2.2', 20)).toBe(0);
    expect(limit.blockedFor('192.0.2.1', 20)).toBe(600_000 - 10);
    expect(limit.blockedFor('192.0.2.3', 20)).toBe(600_000 - 10);
    expect(limit.blockedFor('192.0.2.9', 20)).toBe(600_000);
  });

  it('a block it refuses is checked against Redis at most every RECHECK_MS (a lift\'s message can be lost without a reconnect)', async () => {
    let reads = 0;
    const { shared, tell } = fakeShared(
      () => ({ kind: 'counted', count: 1 }),
      async () => {
        reads += 1;
        return [];
      },
    );
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
    tell({ type: 'blocked', block: BLOCK });
    // Lifted in Redis since, its message lost: refused until the recheck is due.
    expect(limit.blockedFor('192.0.2.1', 20 + RECHECK_MS - 1)).toBeGreaterThan(0);
    await settled();
    expect(reads).toBe(0);
    // Due: this refusal stands, and reads Redis; the next request is served.
    expect(limit.blockedFor('192.0.2.1', 20 + RECHECK_MS)).toBeGreaterThan(0);
    await settled();
    expect(reads).toBe(1);
    expect(limit.blockedFor('192.0.2.1', 20 + RECHECK_MS)).toBe(0);
  });

  it('a recheck Redis could not answer (the listener back before the command connection) is read again at the next refusal', async () => {
    let answers = false;
    const { shared, tell } = fakeShared(
      () => ({ kind: 'counted', count: 1 }),
      async () => {
        if (!answers) throw new CountersUnavailableError(new Error('Redis is not reachable'));
        return [];
      },
    );
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
    tell({ type: 'blocked', block: BLOCK });
    tell({ type: 'missed' });
    await settled();
    // Redis answers now: this refusal (before the recheck is due) reads again; the next request is served.
    answers = true;
    expect(limit.blockedFor('192.0.2.1', 20)).toBeGreaterThan(0);
    await settled();
    expect(limit.blockedFor('192.0.2.1', 20)).toBe(0);
  });

  it('a lift or block heard while the recheck reads Redis is not undone by its answer', async () => {
    let answer: (blocks: BlockInForce[]) => void = () => undefined;
    const { shared, tell } = fakeShared(
      () => ({ kind: 'counted', count: 1 }),
      () => new Promise<BlockInForce[]>((resolve) => (answer = resolve)),
    );
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
    tell({ type: 'blocked', block: BLOCK });
    tell({ type: 'missed' });
    tell({ type: 'lifted', address: '192.0.2.1' });
    tell({ type: 'blocked', block: { ...BLOCK, address: '192.0.2.2' } });
    // Read before either: the block still in force, the other not begun yet.
    answer([BLOCK]);
    await settled();
    expect(limit.blockedFor('192.0.2.1', 20)).toBe(0);
    expect(limit.blockedFor('192.0.2.2', 20)).toBeGreaterThan(0);
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

  it('says once when Redis begins answering counts with an error (OOM) and once when it takes a count again, not each time it answers a list, a lift or a recheck meanwhile', async () => {
    let refusing = true;
    const { shared, tell } = fakeShared(
      () => {
        if (refusing) throw new CountersRefusedError(new Error("OOM command not allowed when used memory > 'maxmemory'."));
        return { kind: 'counted', count: 1 };
      },
      async () => [],
      async () => undefined,
    );
    const { log, lines } = fakeLog();
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, log, () => 20);
    for (let round = 0; round < 3; round++) {
      expect(await limit.fail(`192.0.2.${round + 1}`, 20, POLICY)).toBeUndefined();
      // Reads and lifts Redis still answers: counts are refused all the same.
      tell({ type: 'missed' });
      await settled();
      await limit.blocksInForce(20);
      await limit.lift('192.0.2.7', 20);
    }
    expect(lines.filter((line) => line.level !== 'debug')).toEqual([
      { level: 'warn', msg: 'Redis answers with an error: unknown keys (auth.unknownKeys) are counted by each process on its own until Redis takes counts again' },
    ]);
    refusing = false;
    expect(await limit.fail('192.0.2.4', 20, POLICY)).toBeUndefined();
    await limit.blocksInForce(20);
    expect(lines.filter((line) => line.level === 'info')).toEqual([{ level: 'info', msg: 'Redis answers again: unknown keys (auth.unknownKeys) are counted for all processes again' }]);
    expect(lines.filter((line) => line.level === 'warn')).toHaveLength(1);
  });

  it('says Redis answers again (once) when a list, a lift or a recheck is the first thing it answers, not only a count', async () => {
    const backLine = 'Redis answers again: unknown keys (auth.unknownKeys) are counted for all processes again';
    for (const first of ['list', 'lift', 'recheck'] as const) {
      let away = true;
      const { shared, tell } = fakeShared(
        () => {
          if (away) throw unreachable();
          return { kind: 'counted', count: 1 };
        },
        async () => {
          if (away) throw unreachable();
          return [BLOCK];
        },
        async () => {
          if (away) throw unreachable();
          return BLOCK;
        },
      );
      const { log, lines } = fakeLog();
      const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, log, () => 20);
      expect(await limit.fail('192.0.2.1', 20, POLICY)).toBeUndefined();
      away = false;
      if (first === 'list') await limit.blocksInForce(20);
      else if (first === 'lift') await limit.lift('192.0.2.1', 20);
      else {
        tell({ type: 'missed' });
        await settled();
      }
      expect(lines.filter((line) => line.level === 'info'), first).toEqual([{ level: 'info', msg: backLine }]);
      // Said once: what Redis answers next says nothing more.
      await limit.blocksInForce(20);
      await limit.fail('192.0.2.2', 20, POLICY);
      expect(lines.filter((line) => line.level === 'info'), first).toHaveLength(1);
    }
  });

  it('hands the blocks it began alone while Redis was away to Redis once it answers (those ended are not), and follows Redis for them from then on', async () => {
    const handed: BlockInForce[][] = [];
    const { shared, tell, redis } = awayAtFirst(
      () => [],
      async (blocks) => {
        if (redis.away) throw unreachable();
        handed.push([...blocks]);
        return [...blocks];
      },
    );
    let now = 20;
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => now);
    const short = { ...POLICY, block: 1_000 };
    for (let i = 0; i < POLICY.limit; i++) await limit.fail('192.0.2.9', 20, POLICY);
    for (let i = 0; i < POLICY.limit; i++) await limit.fail('192.0.2.8', 20, short);
    now = 2_000;
    // Still away: a list says so, and nothing is handed over.
    expect((await limit.blocksInForce(now)).from).toBe('this-process-redis-away');
    expect(handed).toEqual([]);
    // Redis answers again (the counters say so): the block in force is handed over, once; the ended one is not.
    redis.away = false;
    tell({ type: 'back' });
    await settled();
    await settled();
    const own = { address: '192.0.2.9', unknownKeys: 3, startedAt: 20, endsAt: 600_020 };
    expect(handed).toEqual([[own]]);
    expect(limit.blockedFor('192.0.2.9', now)).toBe(600_020 - now);
    // Redis's now: lifted there (its message missed), a recheck drops it here too; it is not handed over again.
    tell({ type: 'missed' });
    await settled();
    expect(limit.blockedFor('192.0.2.9', now)).toBe(0);
    expect(handed).toHaveLength(1);
  });

  it('a hand-over Redis could not take keeps the blocks this process\'s own, and hands them over the next time Redis answers; a longer block Redis holds for the address is the one held', async () => {
    let takes = false;
    const longer = { address: '192.0.2.9', unknownKeys: 5, startedAt: 10, endsAt: 900_000 };
    const { shared, tell, redis } = awayAtFirst(
      () => [],
      async () => {
        if (!takes) throw unreachable();
        return [longer];
      },
    );
    const { log, lines } = fakeLog();
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, log, () => 20);
    for (let i = 0; i < POLICY.limit; i++) await limit.fail('192.0.2.9', 20, POLICY);
    redis.away = false;
    tell({ type: 'back' });
    await settled();
    await settled();
    // Not taken: still this process's own (a recheck keeps it), and Redis is said to be away again.
    expect(limit.blockedFor('192.0.2.9', 20)).toBe(600_000);
    expect(lines.filter((line) => line.level === 'warn')).toHaveLength(2);
    takes = true;
    expect((await limit.blocksInForce(20)).from).toBe('shared');
    await settled();
    expect(limit.blockedFor('192.0.2.9', 20)).toBe(900_000 - 20);
  });

  it('a block Redis did not take in the hand-over (past the most blocks it holds) is neither refused nor listed here, nor is a copy Redis no longer holds: what Redis answers is what is held', async () => {
    const taken = { address: '192.0.2.9', unknownKeys: 3, startedAt: 20, endsAt: 600_020 };
    const { shared, tell, redis } = awayAtFirst(
      () => [taken],
      // Redis holds its most blocks: the one ending later stays, the other is dropped.
      async (blocks) => blocks.filter((block) => block.address === '192.0.2.9'),
    );
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
    for (let i = 0; i < POLICY.limit; i++) await limit.fail('192.0.2.9', 20, POLICY);
    for (let i = 0; i < POLICY.limit; i++) await limit.fail('192.0.2.8', 20, { ...POLICY, block: 300_000 });
    redis.away = false;
    tell({ type: 'back' });
    await settled();
    await settled();
    expect(limit.blockedFor('192.0.2.8', 20)).toBe(0);
    expect(limit.blockedFor('192.0.2.9', 20)).toBe(600_000);
    // A copy heard of that Redis dropped since (another process's block past the most held): refused until a recheck, not listed as shared.
    tell({ type: 'blocked', block: BLOCK });
    expect(await limit.blocksInForce(20)).toEqual({ blocks: [taken], from: 'shared' });
  });

  it('a block another process began that is heard before the hand-over\'s answer is not lifted here when Redis did not take this process\'s block: a recheck follows Redis for it', async () => {
    // What Redis holds: nothing yet; then (the hand-over's trim done) the block another process began.
    let held: BlockInForce[] = [];
    const { limit, tell, answerShare } = await handOverOnItsWay(() => held);
    // The hand-over is on its way; Redis dropped this process's block past the most it holds, and then another process began one for the address, whose message comes first.
    const others = { address: '192.0.2.9', unknownKeys: 3, startedAt: 30, endsAt: 600_030 };
    held = [others];
    tell({ type: 'blocked', block: others });
    answerShare([]);
    await settled();
    await settled();
    expect(limit.blockedFor('192.0.2.9', 40)).toBe(600_030 - 40);
    expect(await limit.blocksInForce(40)).toEqual({ blocks: [others], from: 'shared' });
  });

  it('a block heard before the hand-over\'s answer that Redis no longer holds either (its trim dropped both) is dropped here by the recheck that follows', async () => {
    const { limit, tell, answerShare } = await handOverOnItsWay(() => []);
    tell({ type: 'blocked', block: { address: '192.0.2.9', unknownKeys: 3, startedAt: 10, endsAt: 500_000 } });
    answerShare([]);
    await settled();
    await settled();
    expect(limit.blockedFor('192.0.2.9', 40)).toBe(0);
  });

  it('a block another process began that ends sooner, heard before the hand-over\'s answer, does not shorten the one this process began alone; one that ends later is held; the answer is held then', async () => {
    const own = { address: '192.0.2.9', unknownKeys: 3, startedAt: 20, endsAt: 600_020 };
    const { limit, tell, answerShare } = await handOverOnItsWay(() => [own]);
    tell({ type: 'blocked', block: { address: '192.0.2.9', unknownKeys: 3, startedAt: 10, endsAt: 300_010 } });
    expect(limit.blockedFor('192.0.2.9', 40)).toBe(600_020 - 40);
    const later = { address: '192.0.2.9', unknownKeys: 4, startedAt: 30, endsAt: 900_000 };
    tell({ type: 'blocked', block: later });
    expect(limit.blockedFor('192.0.2.9', 40)).toBe(900_000 - 40);
    // Redis held the later one when the hand-over reached it: that one stays, and is what is held.
    answerShare([later]);
    await settled();
    expect(limit.blockedFor('192.0.2.9', 40)).toBe(900_000 - 40);
  });

  it('with no hand-over on its way (Redis away for counts, its messages still heard), a block heard that ends sooner does not shorten the one this process began alone, and that one is what it hands over; a copy of Redis\'s follows the message', async () => {
    const handed: BlockInForce[][] = [];
    const { shared, tell, redis } = awayAtFirst(
      () => [],
      async (blocks) => {
        handed.push([...blocks]);
        return [...blocks];
      },
    );
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
    for (let i = 0; i < POLICY.limit; i++) await limit.fail('192.0.2.9', 20, POLICY);
    tell({ type: 'blocked', block: { address: '192.0.2.9', unknownKeys: 3, startedAt: 10, endsAt: 300_010 } });
    expect(limit.blockedFor('192.0.2.9', 20)).toBe(600_000);
    // A copy of a block Redis holds (not this process's own): the message is Redis's word, sooner end or not (its lift's message was lost).
    tell({ type: 'blocked', block: BLOCK });
    tell({ type: 'blocked', block: { ...BLOCK, startedAt: 15, endsAt: 300_015 } });
    expect(limit.blockedFor('192.0.2.1', 20)).toBe(300_015 - 20);
    redis.away = false;
    tell({ type: 'back' });
    await settled();
    await settled();
    expect(handed).toEqual([[{ address: '192.0.2.9', unknownKeys: 3, startedAt: 20, endsAt: 600_020 }]]);
    expect(limit.blockedFor('192.0.2.9', 20)).toBe(600_000);
  });

  it('a count Redis answers with a block that ends sooner than the one this process began alone does not shorten it here', async () => {
    let away = true;
    const sooner = { address: '192.0.2.9', unknownKeys: 3, startedAt: 10, endsAt: 300_010 };
    const { shared } = fakeShared(
      () => {
        if (away) throw unreachable();
        return { kind: 'blocked', block: sooner };
      },
      async () => [sooner],
      undefined,
      // The hand-over is not answered while the test looks.
      () => new Promise<BlockInForce[]>(() => undefined),
    );
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), shared, fakeLog().log, () => 20);
    for (let i = 0; i < POLICY.limit; i++) await limit.fail('192.0.2.9', 20, POLICY);
    away = false;
    // A request from the address that was past the block's check before it began: Redis answers with another process's block.
    expect(await limit.fail('192.0.2.9', 20, POLICY)).toBeUndefined();
    expect(limit.blockedFor('192.0.2.9', 20)).toBe(600_000);
  });

  it('a lift sent before the hand-over reached Redis but heard after its answer is followed on the channel by the hand-over\'s own announcement: the block Redis holds is refused here again', async () => {
    const own = { address: '192.0.2.9', unknownKeys: 3, startedAt: 20, endsAt: 600_020 };
    const { limit, tell, answerShare } = await handOverOnItsWay(() => [own]);
    answerShare([own]);
    await settled();
    // The channel delivers in the order Redis published: the lift (before the hand-over ran), then the hand-over's announcement.
    tell({ type: 'lifted', address: '192.0.2.9' });
    tell({ type: 'blocked', block: own });
    expect(limit.blockedFor('192.0.2.9', 40)).toBe(600_020 - 40);
    expect(await limit.blocksInForce(40)).toEqual({ blocks: [own], from: 'shared' });
  });
});

/** Lets the recheck's read (answered at once by the fakes) be applied. */
function settled(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
