/**
 * Unknown keys per client address (`auth.unknownKeys`) shared by every keygate process
 * through Redis (`counters: redis://...`): behind a load balancer, an address gets
 * `limit` unknown keys in all, not `limit` per process, and a block begun by one process
 * is refused by all of them.
 *
 * - A valid key never waits on Redis for this: a cached key is judged before any of it,
 *   and a key the store finds is not counted.
 * - The count is one script per unknown key (UNKNOWN_KEY), after the store lookup that
 *   key costs anyway; its answer says whether the address is blocked already (another
 *   process began it: the key is refused too_many_failures, and not counted).
 * - Each process keeps a copy of the blocks in force (`UnknownKeyLimit.learn`), filled by
 *   the script's answers and by the message each block's start and lift send on the
 *   invalidation channel: a blocked address is refused before its lookup, in every
 *   process, once that message has arrived.
 * - Redis away (or slow past a second): each process counts alone, as with memory
 *   counters, until it answers (said once in the log); valid keys are served as ever.
 *
 * @example
 * const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), counters.addressBlocks, log, Date.now);
 * if (limit.blockedFor(address, now) > 0) refuse();
 * const started = await limit.fail(address, now, { limit: 20, window: 60_000, block: 600_000 });
 */
import type { UnknownKeyPolicy } from '../config/schema.js';
import type { SharedAddressBlocks } from '../counters/counters.js';
import type { Log } from '../log.js';
import type { AddressBlock, BlockInForce, UnknownKeyCount, UnknownKeyLimit } from './unknown-key-limit.js';

export class SharedUnknownKeyLimit implements UnknownKeyCount {
  /** Redis did not answer the last count, and that was said (said again once it answers). */
  private away = false;

  constructor(
    /** This process's copy of the blocks, and its own count while Redis is away. */
    private readonly local: UnknownKeyLimit,
    private readonly shared: SharedAddressBlocks,
    private readonly log: Log,
    clock: () => number,
  ) {
    shared.onChange((event) => {
      if (event.type === 'blocked') local.learn(event.block);
      else if (event.type === 'lifted') local.lift(event.address, clock());
      // Lifts may have been missed: the copy is dropped, and filled again by the next answers.
      else local.clear();
    });
  }

  blockedFor(address: string, now: number): number {
    return this.local.blockedFor(address, now);
  }

  async fail(address: string, now: number, policy: UnknownKeyPolicy): Promise<AddressBlock | undefined> {
    let answer;
    try {
      answer = await this.shared.unknownKey(address, now, policy);
    } catch (error) {
      this.noteAway(error);
      return this.local.fail(address, now, policy);
    }
    this.noteBack();
    if (answer.kind === 'counted') return undefined;
    this.local.learn(answer.block);
    // Begun by another process: this key is refused by the block (blockedFor says so now).
    if (answer.kind === 'blocked') return undefined;
    const { unknownKeys, endsAt } = answer.block;
    return { address, unknownKeys, windowMs: policy.window, blockMs: policy.block, endsAt };
  }

  /** The shared blocks, and this process's own (begun while Redis was away); this process's alone while Redis is away. Unordered. */
  async blocksInForce(now: number): Promise<BlockInForce[]> {
    const local = this.local.blocksInForce(now);
    let shared: BlockInForce[];
    try {
      shared = await this.shared.inForce(now);
    } catch (error) {
      this.noteAway(error);
      return local;
    }
    const listed = new Set(shared.map((block) => block.address));
    // In no order: the admin API's list orders (and pages) them (operations/address-blocks.ts).
    return [...shared, ...local.filter((block) => !listed.has(block.address))];
  }

  /** Lifts the block in Redis (every process drops its copy on the message) and here; fails only if Redis is away and this process held none. */
  async lift(address: string, now: number): Promise<BlockInForce | undefined> {
    const local = this.local.lift(address, now);
    try {
      return (await this.shared.lift(address, now)) ?? local;
    } catch (error) {
      this.noteAway(error);
      if (local !== undefined) return local;
      throw error;
    }
  }

  clear(): void {
    this.local.clear();
  }

  private noteAway(error: unknown): void {
    if (this.away) return;
    this.away = true;
    this.log.warn(
      { err: error instanceof Error ? error.message : String(error) },
      'Redis is unreachable: unknown keys (auth.unknownKeys) are counted by each process on its own until it answers',
    );
  }

  private noteBack(): void {
    if (!this.away) return;
    this.away = false;
    this.log.info('Redis answers again: unknown keys (auth.unknownKeys) are counted for all processes again');
  }
}
