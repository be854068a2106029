/**
 * The Lua scripts behind the Redis counters. Each runs atomically inside Redis, so a
 * request's block check, all of its rate-limit windows and its meter reservation are
 * one step (one EVALSHA, one round trip) that no other process can interleave with.
 * The requests of one moment share that step: `ScriptBatcher` sends them as one call.
 *
 * Data layout (every key carries the configured prefix `P`):
 *   P w:<window id>   sorted set: one member per admission, scored by its time (ms);
 *                     members older than the window are dropped: an exact sliding log
 *                     in O(admissions in one window) memory, at most O(limit).
 *   P b:<subject id>  hash: violations (comma-separated times), level, until, lastEnd.
 *   P m:<meter>       hash: used (committed units), reserved (units of requests in flight).
 *   P r:<meter>       sorted set: reservations in flight, scored by when they lapse, so
 *                     a process that dies mid-request cannot hold units forever.
 *
 * Times are the `now` each gateway passes in (its clock, milliseconds), never Redis's
 * clock: tests can drive the clock, and a window is judged on one time axis. Redis key
 * expiry (PEXPIRE) is only garbage collection and is given generous slack.
 *
 * Amounts go back as strings (Redis would truncate a Lua number to an integer, and
 * meter amounts may be fractional); whole milliseconds and counts go back as numbers.
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

/** Calls per EVALSHA at most (Lua's unpack has a limit; a longer queue becomes several commands). */
const MAX_BATCH = 256;

/** A script whose callers are batched, with the values every batch of it shares. */
export interface BatchedScript {
  script: Script;
  shared: readonly (string | number)[];
}

interface Call {
  keys: readonly string[];
  args: readonly (string | number)[];
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/**
 * Runs batch scripts for many callers: the calls made during the same turn of the event
 * loop (the admissions of concurrent requests, the settles of others) leave together,
 * one EVALSHA per script, all of them in one pipelined write. Inside Redis a batch
 * script works through its calls in order, reading each key it needs once and writing
 * each key once at the end, so a batch of requests on the same key and meter costs
 * Redis little more than one request.
 *
 * Wire format of one EVALSHA: KEYS are every call's keys in order; ARGV is the batch's
 * shared values, then the number of calls, then for each call its key count, argument
 * count and arguments. The reply is one reply per call, in order.
 */
export class ScriptBatcher {
  private queues = new Map<BatchedScript, Call[]>();
  private scheduled = false;

  constructor(private readonly client: Redis) {}

  run(batched: BatchedScript, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let queue = this.queues.get(batched);
      if (!queue) {
        queue = [];
        this.queues.set(batched, queue);
      }
      queue.push({ keys, args, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    const queues = this.queues;
    this.queues = new Map();
    this.scheduled = false;
    const batches: { batched: BatchedScript; calls: Call[]; keys: string[]; args: (string | number)[] }[] = [];
    for (const [batched, queue] of queues) {
      for (let i = 0; i < queue.length; i += MAX_BATCH) {
        const calls = queue.slice(i, i + MAX_BATCH);
        const keys: string[] = [];
        const args: (string | number)[] = [...batched.shared, calls.length];
        for (const call of calls) {
          for (const key of call.keys) keys.push(key);
          args.push(call.keys.length, call.args.length);
          for (const arg of call.args) args.push(arg);
        }
        batches.push({ batched, calls, keys, args });
      }
    }
    let results: [Error | null, unknown][];
    try {
      const pipeline = this.client.pipeline();
      for (const { batched, keys, args } of batches) pipeline.evalsha(batched.script.sha, keys.length, ...keys, ...args);
      results = ((await pipeline.exec()) ?? []) as [Error | null, unknown][];
    } catch (error) {
      for (const { calls } of batches) for (const call of calls) call.reject(error);
      return;
    }
    await Promise.all(
      batches.map(async ({ batched, calls, keys, args }, i) => {
        let [error, replies] = results[i] ?? [new Error('no reply'), undefined];
        // Redis restarted and forgot the script: this batch goes again, with EVAL.
        if (error?.message.startsWith('NOSCRIPT')) {
          try {
            [error, replies] = [null, await batched.script.run(this.client, keys, args)];
          } catch (retried) {
            error = retried instanceof Error ? retried : new Error(String(retried));
          }
        }
        if (!error && (!Array.isArray(replies) || replies.length !== calls.length)) {
          error = new Error(`the batch script answered ${Array.isArray(replies) ? replies.length : typeof replies} replies for ${calls.length} calls`);
        }
        if (error) for (const call of calls) call.reject(error);
        else calls.forEach((call, j) => call.resolve((replies as unknown[])[j]));
      }),
    );
  }
}

/**
 * Shared Lua: number formatting that survives the trip as a string (for amounts, which
 * may be fractional; whole milliseconds and counts go back as Lua numbers), and the loop
 * that hands each call of a batch the offsets of its KEYS and ARGV.
 */
const PRELUDE = `
local function fmt(n) return string.format('%.17g', n) end
-- Calls handle(k, a, nk, na) per call: its keys are KEYS[k + 1 .. k + nk], its
-- arguments ARGV[a + 1 .. a + na]. Returns the replies in order.
local function eachCall(firstArg, handle)
  local calls = tonumber(ARGV[firstArg])
  local k, a = 0, firstArg + 1
  local replies = {}
  for c = 1, calls do
    local nk, na = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    replies[c] = handle(k, a + 1, nk, na)
    k = k + nk
    a = a + 2 + na
  end
  return replies
end
`;

/**
 * admit, for a batch of requests: per request the block check, every window (all or
 * none), then the reservation; one reply per request.
 *
 * Shared ARGV: reservation ttl ms, window and block expiry slack ms, meter ttl ms.
 * Per request KEYS: [block hash if it has a block], [meter hash, reservations if it has
 *   a charge], then one sorted set per window.
 * Per request ARGV: [1] now, [2] admission id (unique), [3] has block, [4] has charge,
 *   [5] amount, [6] limit, [7] overage ('1'/'0'), [8..13] block after, within,
 *   duration, factor, max, forgetAfter (if it has a block), then limit and windowMs of
 *   each window.
 * Returns per request: { status, detail, remaining1, reset1, remaining2, reset2, ... }
 *   where status is 'ok' (detail = reservation member or ''), 'blocked' /
 *   'rate_limited' (detail = retry after ms), 'funds' (detail = used), or 'missing'
 *   (the meter has no balance in Redis: seed it from the store and ask again; nothing
 *   was recorded for this request).
 *
 * Each window and meter is read once per batch and written once at its end; requests
 * later in the batch see what earlier ones recorded. The whole batch is judged, and
 * recorded, at the latest of its requests' times: the moment it leaves for Redis.
 */
export const ADMIT = new Script(`${PRELUDE}
local reservationTtl, slack, meterTtl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local windows, windowOrder = {}, {}
local meters, meterOrder = {}, {}

-- The batch is judged at one time, the latest its requests give: the moment it left the
-- gateway for Redis. (Within a batch times differ by a few milliseconds at most.)
local now = -math.huge
eachCall(4, function(k, a) now = math.max(now, tonumber(ARGV[a + 1])) end)
local nowText, lapseText = tostring(now), tostring(now + reservationTtl)

-- The window at \`now\`: how many admissions it holds (this batch's included) and the
-- oldest. Read from Redis once per batch.
local function windowAt(key, limit, windowMs)
  local w = windows[key]
  if not w then
    local from = '(' .. (now - windowMs)
    w = { key = key, limit = limit, windowMs = windowMs, from = from, ids = {} }
    w.held = redis.call('ZCOUNT', key, from, '+inf')
    if w.held > 0 then w.oldest = tonumber(redis.call('ZRANGEBYSCORE', key, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2]) end
    windows[key] = w
    windowOrder[#windowOrder + 1] = w
  end
  return w, w.held + #w.ids, w.oldest or (#w.ids > 0 and now or nil)
end

-- The (position)-th oldest admission in the window: Redis's first, then this batch's (all at \`now\`).
local function nthOldest(w, position)
  if position > w.held then return now end
  return tonumber(redis.call('ZRANGEBYSCORE', w.key, w.from, '+inf', 'WITHSCORES', 'LIMIT', position - 1, 1)[2])
end

local function meterState(meterKey, reservationsKey)
  local m = meters[meterKey]
  if not m then
    local balance = redis.call('HMGET', meterKey, 'used', 'reserved')
    m = { key = meterKey, reservationsKey = reservationsKey, exists = balance[1] ~= false, used = tonumber(balance[1]) or 0, reserved = tonumber(balance[2]) or 0, added = {}, changed = false }
    meters[meterKey] = m
    meterOrder[#meterOrder + 1] = m
  end
  return m
end

-- Reservations whose process never settled them stop holding units. Looked for only
-- when a request does not fit: until then they change no answer.
local function releaseLapsed(m)
  local lapsed = redis.call('ZRANGEBYSCORE', m.reservationsKey, '-inf', now)
  if #lapsed == 0 then return end
  local sum = 0
  for _, member in ipairs(lapsed) do sum = sum + tonumber(string.match(member, '|([^|]+)$')) end
  redis.call('ZREMRANGEBYSCORE', m.reservationsKey, '-inf', now)
  m.reserved = m.reserved - sum
  if m.reserved < 1e-9 then m.reserved = 0 end
  m.changed = true
end

-- The block state lives until its level would be forgotten anyway.
local function keepBlock(blockKey, lastEnd, within, forgetAfter)
  local ttl = within
  if lastEnd then ttl = math.max(ttl, lastEnd + forgetAfter - now) end
  redis.call('PEXPIRE', blockKey, math.ceil(ttl + slack))
end

-- Same rules as the memory counters: 'after' violations within 'within' start a block
-- of duration * factor^level (capped at max); the level resets after forgetAfter.
local function recordViolation(blockKey, a)
  local after, within, duration = tonumber(ARGV[a + 8]), tonumber(ARGV[a + 9]), tonumber(ARGV[a + 10])
  local factor, max, forgetAfter = tonumber(ARGV[a + 11]), tonumber(ARGV[a + 12]), tonumber(ARGV[a + 13])
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
    keepBlock(blockKey, lastEnd, within, forgetAfter)
    return 0
  end
  if lastEnd == nil or now - lastEnd > forgetAfter then level = 0 end
  local length = math.min(max, math.floor(duration * factor ^ level + 0.5))
  local untilMs = now + length
  redis.call('HSET', blockKey, 'violations', '', 'level', level + 1, 'until', fmt(untilMs), 'lastEnd', fmt(untilMs))
  keepBlock(blockKey, untilMs, within, forgetAfter)
  return length
end

local function admit(k, a, nk)
  local id = ARGV[a + 2]
  local hasBlock, hasCharge = ARGV[a + 3] == '1', ARGV[a + 4] == '1'
  local blockKey, meter
  if hasBlock then
    k = k + 1
    blockKey = KEYS[k]
    nk = nk - 1
  end
  -- Checked first so that a retry after seeding sees a request that left no trace.
  if hasCharge then
    meter = meterState(KEYS[k + 1], KEYS[k + 2])
    k = k + 2
    nk = nk - 2
    if not meter.exists then return { 'missing' } end
  end
  local firstWindowArg = a + (hasBlock and 14 or 8)
  local spans = {}
  for i = 1, nk do
    local j = firstWindowArg + 2 * (i - 1)
    local w, count, oldest = windowAt(KEYS[k + i], tonumber(ARGV[j]), tonumber(ARGV[j + 1]))
    spans[i] = { w = w, count = count, oldest = oldest }
  end

  local function reply(status, detail)
    local out = { status, detail }
    for _, span in ipairs(spans) do
      local reset = 0
      if span.oldest then reset = math.max(0, span.oldest + span.w.windowMs - now) end
      out[#out + 1] = math.max(0, span.w.limit - span.count)
      out[#out + 1] = reset
    end
    return out
  end

  -- 6. A block in force refuses before any window is looked at.
  if hasBlock then
    local untilMs = tonumber(redis.call('HGET', blockKey, 'until'))
    if untilMs and untilMs > now then return reply('blocked', untilMs - now) end
  end

  -- 6. Every window must have room; the longest wait decides Retry-After.
  local wait = 0
  for _, span in ipairs(spans) do
    local w = span.w
    if span.count >= w.limit then
      -- The (count - limit + 1)-th oldest admission in the window must leave it first.
      local leaves = nthOldest(w, span.count - w.limit + 1)
      wait = math.max(wait, math.max(1, leaves + w.windowMs - now))
    end
  end
  if wait > 0 then
    if hasBlock then
      local blockedFor = recordViolation(blockKey, a)
      if blockedFor > 0 then return reply('blocked', blockedFor) end
    end
    return reply('rate_limited', wait)
  end

  -- 7. Reserve the cost: used + reserved + amount must fit the limit unless overage is on.
  local reservation = ''
  if hasCharge then
    local amount, limit, overage = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]), ARGV[a + 7] == '1'
    if not overage and meter.used + meter.reserved + amount > limit then
      releaseLapsed(meter)
      if meter.used + meter.reserved + amount > limit then return reply('funds', fmt(meter.used)) end
    end
    meter.reserved = meter.reserved + amount
    meter.changed = true
    reservation = id .. '|' .. ARGV[a + 5]
    meter.added[#meter.added + 1] = lapseText
    meter.added[#meter.added + 1] = reservation
  end

  -- Only now, with everything passed, does the request count against its windows.
  for _, span in ipairs(spans) do
    span.w.ids[#span.w.ids + 1] = id
    span.count = span.count + 1
    if not span.oldest then span.oldest = now end
  end
  return reply('ok', reservation)
end

local replies = eachCall(4, admit)

-- Each window and meter written once.
for _, w in ipairs(windowOrder) do
  if #w.ids > 0 then
    local members = {}
    for i, id in ipairs(w.ids) do
      members[2 * i - 1] = nowText
      members[2 * i] = id
    end
    redis.call('ZADD', w.key, unpack(members))
    -- Admissions that have left the window decide nothing any more.
    redis.call('ZREMRANGEBYSCORE', w.key, '-inf', now - w.windowMs)
    redis.call('PEXPIRE', w.key, math.ceil(w.windowMs + slack))
  end
end
for _, m in ipairs(meterOrder) do
  if m.changed then redis.call('HSET', m.key, 'reserved', fmt(m.reserved)) end
  if #m.added > 0 then
    redis.call('ZADD', m.reservationsKey, unpack(m.added))
    redis.call('PEXPIRE', m.reservationsKey, meterTtl)
  end
end
return replies
`);

/**
 * settle, for a batch of reservations: release each (if still held) and commit the
 * actual units; one reply per call.
 *
 * Shared ARGV: meter ttl ms.
 * Per call KEYS: [1] meter hash, [2] reservations. ARGV: [1] reservation member or '',
 *   [2] actual units.
 * Returns per call 'ok', or 'missing' when the meter has no balance in Redis and units
 * are to be committed (seed it from the store, then settle again).
 *
 * The releases and commits of one meter are applied together: one read of which
 * reservations are still held, one write of each balance.
 */
export const SETTLE = new Script(`${PRELUDE}
local meterTtl = ARGV[1]
local meters, order = {}, {}
local calls = {}
eachCall(2, function(k, a)
  local key = KEYS[k + 1]
  local m = meters[key]
  if not m then
    m = { key = key, reservationsKey = KEYS[k + 2], members = {}, commit = 0 }
    meters[key] = m
    order[#order + 1] = m
  end
  if ARGV[a + 1] ~= '' then m.members[#m.members + 1] = ARGV[a + 1] end
  local actual = tonumber(ARGV[a + 2])
  if actual > 0 then m.commit = m.commit + actual end
  calls[#calls + 1] = { m = m, actual = actual }
end)

for _, m in ipairs(order) do
  m.exists = redis.call('EXISTS', m.key) == 1
  -- Redis lost the meter, and its reservations with it: nothing left to release.
  if m.exists then
    if #m.members > 0 then
      local scores = redis.call('ZMSCORE', m.reservationsKey, unpack(m.members))
      local held, released = {}, 0
      for i, member in ipairs(m.members) do
        if scores[i] then
          held[#held + 1] = member
          released = released + tonumber(string.match(member, '|([^|]+)$'))
        end
      end
      if #held > 0 then
        redis.call('ZREM', m.reservationsKey, unpack(held))
        local left = tonumber(redis.call('HINCRBYFLOAT', m.key, 'reserved', fmt(-released)))
        if left < 1e-9 then redis.call('HSET', m.key, 'reserved', '0') end
      end
    end
    if m.commit > 0 then
      redis.call('HINCRBYFLOAT', m.key, 'used', fmt(m.commit))
      redis.call('PEXPIRE', m.key, meterTtl)
    end
  end
end

local replies = {}
for i, call in ipairs(calls) do
  replies[i] = (call.m.exists or call.actual <= 0) and 'ok' or 'missing'
end
return replies
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
