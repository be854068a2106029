/**
 * The Lua scripts behind the Redis counters. Each runs atomically inside Redis, so a
 * request's block check, all of its rate-limit windows and its meter reservation are
 * one step (one EVALSHA, one round trip) that no other process can interleave with.
 *
 * Data layout (every key carries the configured prefix `P`):
 *   P w:<window id>   sorted set: one member per admission, scored by its time (ms).
 *                     Only the newest `limit` members are kept: an exact sliding log.
 *   P b:<subject id>  hash: violations (comma-separated times), level, until, lastEnd.
 *   P m:<meter>       hash: used (committed units), reserved (units of requests in flight).
 *   P r:<meter>       sorted set: reservations in flight, scored by when they lapse, so
 *                     a process that dies mid-request cannot hold units forever.
 *
 * Times are the `now` each gateway passes in (its clock, milliseconds), never Redis's
 * clock: tests can drive the clock, and a window is judged on one time axis. Redis key
 * expiry (PEXPIRE) is only garbage collection and is given generous slack.
 *
 * Scripts return strings only: Redis would truncate Lua numbers to integers, and meter
 * amounts may be fractional.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** A script run by EVALSHA; sent with EVAL once if Redis does not know it (after a restart). */
export class Script {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(client: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

/**
 * Runs one script for many callers in one pipelined write: calls made during the same
 * turn of the event loop leave together (settles of concurrent requests, say), which
 * spares a socket write and read per call.
 */
export class ScriptBatch {
  private queue: { keys: readonly string[]; args: readonly (string | number)[]; resolve: (value: unknown) => void; reject: (error: unknown) => void }[] = [];
  private scheduled = false;

  constructor(
    private readonly script: Script,
    private readonly client: Redis,
  ) {}

  run(keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.queue.push({ keys, args, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    const pipeline = this.client.pipeline();
    for (const call of batch) pipeline.evalsha(this.script.sha, call.keys.length, ...call.keys, ...call.args);
    let results: [Error | null, unknown][];
    try {
      results = ((await pipeline.exec()) ?? []) as [Error | null, unknown][];
    } catch (error) {
      for (const call of batch) call.reject(error);
      return;
    }
    batch.forEach((call, i) => {
      const [error, value] = results[i] ?? [new Error('no reply'), undefined];
      // Redis restarted and forgot the script: this call alone goes again, with EVAL.
      if (error?.message.startsWith('NOSCRIPT')) this.script.run(this.client, call.keys, call.args).then(call.resolve, call.reject);
      else if (error) call.reject(error);
      else call.resolve(value);
    });
  }
}

/** Shared Lua helpers: number formatting that survives the trip as a string. */
const PRELUDE = `
local function fmt(n) return string.format('%.17g', n) end
`;

/**
 * admit: block check, every window (all or none), then the reservation.
 *
 * KEYS: [1] block hash, [2] meter hash, [3] reservations, [4..] one sorted set per window
 * ARGV: [1] now, [2] admission id (unique), [3] has block '1'/'0',
 *       [4..9] block after, within, duration, factor, max, forgetAfter,
 *       [10] has charge '1'/'0', [11..14] amount, limit, overage '1'/'0', reservation ttl,
 *       [15] window and block expiry slack ms, [16] meter ttl ms,
 *       [17..] limit and windowMs of each window
 * Returns: { status, detail, remaining1, reset1, remaining2, reset2, ... } where status is
 *   'ok' (detail = reservation id or ''), 'blocked' / 'rate_limited' (detail = retry
 *   after ms), 'funds' (detail = used), or 'missing' (the meter has no balance in Redis:
 *   seed it from the store and ask again; nothing was recorded).
 */
export const ADMIT = new Script(`${PRELUDE}
local now = tonumber(ARGV[1])
local id = ARGV[2]
local hasBlock = ARGV[3] == '1'
local hasCharge = ARGV[10] == '1'
local slack = tonumber(ARGV[15])
local meterTtl = ARGV[16]
local blockKey, meterKey, reservationsKey = KEYS[1], KEYS[2], KEYS[3]
local windowCount = #KEYS - 3

-- Checked first so that a retry after seeding sees a request that left no trace.
if hasCharge and redis.call('EXISTS', meterKey) == 0 then return { 'missing' } end

local function window(i)
  return KEYS[3 + i], tonumber(ARGV[15 + 2 * i]), tonumber(ARGV[16 + 2 * i])
end

-- Admissions inside (now - windowMs, now]; later ones (another host's clock) count too.
local function cutoff(windowMs) return '(' .. fmt(now - windowMs) end

local function reply(status, detail)
  local out = { status, detail }
  for i = 1, windowCount do
    local key, limit, windowMs = window(i)
    local from = cutoff(windowMs)
    local count = redis.call('ZCOUNT', key, from, '+inf')
    local reset = 0
    if count > 0 then
      local oldest = redis.call('ZRANGEBYSCORE', key, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      reset = math.max(0, tonumber(oldest[2]) + windowMs - now)
    end
    out[#out + 1] = fmt(math.max(0, limit - count))
    out[#out + 1] = fmt(reset)
  end
  return out
end

-- The block state lives until its level would be forgotten anyway.
local function keepBlock(lastEnd, within, forgetAfter)
  local ttl = within
  if lastEnd then ttl = math.max(ttl, lastEnd + forgetAfter - now) end
  redis.call('PEXPIRE', blockKey, math.ceil(ttl + slack))
end

-- Same rules as the memory counters: 'after' violations within 'within' start a block
-- of duration * factor^level (capped at max); the level resets after forgetAfter.
local function recordViolation()
  local after, within, duration = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  local factor, max, forgetAfter = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
  local state = redis.call('HMGET', blockKey, 'violations', 'level', 'lastEnd')
  local kept = {}
  if state[1] then
    for t in string.gmatch(state[1], '[^,]+') do
      if tonumber(t) > now - within then kept[#kept + 1] = t end
    end
  end
  kept[#kept + 1] = fmt(now)
  local level = tonumber(state[2]) or 0
  local lastEnd = tonumber(state[3])
  if #kept < after then
    redis.call('HSET', blockKey, 'violations', table.concat(kept, ','))
    keepBlock(lastEnd, within, forgetAfter)
    return 0
  end
  if lastEnd == nil or now - lastEnd > forgetAfter then level = 0 end
  local length = math.min(max, math.floor(duration * factor ^ level + 0.5))
  local untilMs = now + length
  redis.call('HSET', blockKey, 'violations', '', 'level', level + 1, 'until', fmt(untilMs), 'lastEnd', fmt(untilMs))
  keepBlock(untilMs, within, forgetAfter)
  return length
end

-- 6. A block in force refuses before any window is looked at.
if hasBlock then
  local untilMs = tonumber(redis.call('HGET', blockKey, 'until'))
  if untilMs and untilMs > now then return reply('blocked', fmt(untilMs - now)) end
end

-- 6. Every window must have room; the longest wait decides Retry-After.
local wait = 0
for i = 1, windowCount do
  local key, limit, windowMs = window(i)
  local from = cutoff(windowMs)
  local count = redis.call('ZCOUNT', key, from, '+inf')
  if count >= limit then
    -- The (count - limit + 1)-th oldest admission in the window must leave it first.
    local entry = redis.call('ZRANGEBYSCORE', key, from, '+inf', 'WITHSCORES', 'LIMIT', count - limit, 1)
    wait = math.max(wait, math.max(1, tonumber(entry[2]) + windowMs - now))
  end
end
if wait > 0 then
  if hasBlock then
    local blockedFor = recordViolation()
    if blockedFor > 0 then return reply('blocked', fmt(blockedFor)) end
  end
  return reply('rate_limited', fmt(wait))
end

-- 7. Reserve the cost: used + reserved + amount must fit the limit unless overage is on.
local reservation = ''
if hasCharge then
  local amount, limit, overage, ttl = tonumber(ARGV[11]), tonumber(ARGV[12]), ARGV[13] == '1', tonumber(ARGV[14])
  local lapsed = redis.call('ZRANGEBYSCORE', reservationsKey, '-inf', fmt(now))
  if #lapsed > 0 then
    local sum = 0
    for _, member in ipairs(lapsed) do sum = sum + tonumber(string.match(member, '|([^|]+)$')) end
    redis.call('ZREMRANGEBYSCORE', reservationsKey, '-inf', fmt(now))
    local left = tonumber(redis.call('HINCRBYFLOAT', meterKey, 'reserved', fmt(-sum)))
    if left < 1e-9 then redis.call('HSET', meterKey, 'reserved', '0') end
  end
  local balance = redis.call('HMGET', meterKey, 'used', 'reserved')
  local used, reserved = tonumber(balance[1]) or 0, tonumber(balance[2]) or 0
  if not overage and used + reserved + amount > limit then return reply('funds', fmt(used)) end
  redis.call('HINCRBYFLOAT', meterKey, 'reserved', ARGV[11])
  reservation = id .. '|' .. ARGV[11]
  redis.call('ZADD', reservationsKey, fmt(now + ttl), reservation)
  redis.call('PEXPIRE', reservationsKey, meterTtl)
end

-- Only now, with everything passed, does the request count against its windows.
for i = 1, windowCount do
  local key, limit, windowMs = window(i)
  redis.call('ZADD', key, fmt(now), id)
  redis.call('ZREMRANGEBYRANK', key, 0, -(limit + 1))
  redis.call('PEXPIRE', key, math.ceil(windowMs + slack))
end
return reply('ok', reservation)
`);

/**
 * settle: release a reservation (if it is still held) and commit the actual units.
 *
 * KEYS: [1] meter hash, [2] reservations
 * ARGV: [1] reservation id or '', [2] reserved amount, [3] actual units, [4] meter ttl ms
 * Returns 'ok', or 'missing' when the meter has no balance in Redis (seed, then retry).
 */
export const SETTLE = new Script(`${PRELUDE}
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if ARGV[1] ~= '' and redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  local left = tonumber(redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', fmt(-tonumber(ARGV[2]))))
  if left < 1e-9 then redis.call('HSET', KEYS[1], 'reserved', '0') end
end
if tonumber(ARGV[3]) > 0 then
  redis.call('HINCRBYFLOAT', KEYS[1], 'used', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 'ok'
`);

/**
 * seed: give a meter its balance from the store. Usage only grows within a period, so
 * the balance becomes the larger of what Redis holds and what the store says.
 *
 * KEYS: [1] meter hash.  ARGV: [1] used according to the store, [2] meter ttl ms.
 */
export const SEED = new Script(`${PRELUDE}
local held = tonumber(redis.call('HGET', KEYS[1], 'used'))
if held == nil or held < tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'used', ARGV[1]) end
if held == nil then redis.call('HSETNX', KEYS[1], 'reserved', '0') end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 'ok'
`);
