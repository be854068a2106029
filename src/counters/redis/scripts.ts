/**
 * The Lua scripts behind the Redis counters. Each runs atomically inside Redis, so a
 * request's block check, all of its rate-limit windows and its meter reservation are
 * one step (one EVALSHA, one round trip) that no other process can interleave with.
 * The requests of one moment share that step: `ScriptBatcher` sends them as one call.
 *
 * The data layout is described with ADMIT below.
 *
 * Times are the `now` each gateway passes in (its clock, milliseconds), never Redis's
 * clock: tests can drive the clock, and a window is judged on one time axis. Redis key
 * expiry (PEXPIRE) is only garbage collection and is given generous slack.
 *
 * Amounts go back as strings (Redis would truncate a Lua number to an integer, and
 * meter amounts may be fractional); whole milliseconds and counts go back as numbers.
 */
import { performance } from 'node:perf_hooks';
import { createHash } from 'node:crypto';
import { Command, type Pipeline, type Redis } from 'ioredis';
import { DeadlineError } from '../../deadline.js';

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

  /**
   * `run` as one command, EVAL with the source, whatever Redis holds: what the client sends
   * after it on the connection is carried out after it. `run`'s EVAL, sent once Redis has
   * refused the EVALSHA (NOSCRIPT: a script never run there, or run before a restart), is
   * carried out after whatever was sent meanwhile. For a rare script whose order matters.
   */
  runInOrder(client: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    return client.eval(this.source, keys.length, ...keys, ...args);
  }
}

/** Entries per EVALSHA at most (Lua's unpack has a limit; a longer queue becomes several commands). */
const MAX_BATCH = 256;

/**
 * Separates the values a batch sends in one ARGV string (see ScriptBatcher): ioredis's
 * work per argument (about 800 instructions, bench/README.md) is paid for a few strings
 * instead of every value. No value sent this way holds it: numbers (digits, `.`, `e`,
 * `+`, `-`), flags and batch ids (base64url, `:` and `.`). Key names, which hold a
 * configured prefix, go in KEYS.
 */
const FIELD_SEPARATOR = ' ';

/**
 * Values as one ARGV string, which the scripts split back into them (`fields` in Lua, ''
 * kept as ''). Made once for values that do not change (an entry's, a script's shared).
 * An empty value among others is carried (a settle's batch id is '' when it has none);
 * alone it is refused: it joins to '', which ScriptBatcher sends as no values at all.
 */
export function joinFields(values: readonly (string | number)[]): string {
  for (const value of values) {
    if (typeof value === 'string' && value.includes(FIELD_SEPARATOR)) throw new Error(`a batched script's value holds its field separator: ${JSON.stringify(value)}`);
  }
  if (values.length === 1 && values[0] === '') throw new Error(`a batched script's one value is empty: it would be sent as no value at all`);
  return values.join(FIELD_SEPARATOR);
}

/** A script whose callers are batched, with the values every batch of it shares. */
export interface BatchedScript {
  script: Script;
  /** Keys every batch names, first in KEYS (the process's journal). */
  keys: readonly string[];
  /** The values every batch's header begins with, joined (joinFields). */
  shared: string;
  /**
   * Calls that may wait up to this many ms for the next batch instead of causing one
   * (settles: nobody waits on them, and riding along with the next admissions spares
   * a round trip). Without it, a call leaves as soon as it can.
   */
  maxWaitMs?: number;
  /**
   * Callers give up after this many ms (from the batch's first call) with a
   * DeadlineError; a reply that comes later goes to the call's `late` handler instead.
   */
  deadlineMs?: number;
  /**
   * Asked as each command of this script is made: the value it returns is sent after
   * `shared` (the admissions' journal: whether the batch keeps the records of those before it).
   */
  sending?: (batchId: string) => string | number;
  /** Told once a command's outcome is known: answered (no error), or failed with `error`. */
  answered?: (batchId: string, error: unknown) => void;
}

/** What one caller gets back: its entry's reply, and its place among the entry's callers. */
export interface EntryReply {
  reply: unknown;
  index: number;
}

/** One caller of a batched script. */
export interface BatchCall {
  resolve(value: EntryReply): void;
  /** `sent`: the id of the batch that carried the call, once it was handed to the connection. */
  reject(error: unknown, sent?: string): void;
  /** Gets the reply instead, when it came after the caller gave up (to undo what it did). */
  late: ((value: EntryReply) => void) | undefined;
  /**
   * Told when the command that carried the call got no answer (the connection closed, or
   * the command timed out), whether or not the caller was given up on: Redis may have
   * carried it out, or may yet. `entry`: the call's entry's place in the command, from 0.
   */
  lost?: (sent: string, entry: number) => void;
}

/** Identical calls of one batch: sent once, with how many callers they stand for. */
interface Entry {
  keys: readonly string[];
  /** Its arguments, joined (joinFields). */
  fields: string;
  calls: BatchCall[];
}

interface Queue {
  entries: Map<string, Entry>;
  /** The latest `now` of the queued calls: the batch is judged at that time. */
  now: number;
}

/** Calls that leave together, in one pipelined write. */
class Batch {
  readonly queues = new Map<BatchedScript, Queue>();
  /** Some call wants to leave as soon as it can (not only calls that may wait). */
  eager = false;
  /** Callers with a deadline were given up on: their replies go to `late`. */
  expired = false;
  /** The replies have been handed out. */
  done = false;
  deadline: NodeJS.Timeout | undefined;
  /** Makes a batch of calls that may wait eager at the latest. */
  wait: NodeJS.Timeout | undefined;
}

/** Batches sent to Redis and answered (or failed), and the seconds they took in all: for /metrics. */
export interface RoundTrips {
  count: number;
  seconds: number;
}

/**
 * Runs batch scripts for many callers: concurrent calls (the admissions of concurrent
 * requests, the settles of others) leave together, one EVALSHA per script, all of them
 * in one pipelined write. One batch is on its way at a time: calls made meanwhile leave
 * together as soon as it is answered, so the busier the gateway, the more requests share
 * a round trip, and a quiet gateway sends each call at the end of its turn of the event
 * loop. Calls that may wait (settles) leave with the next batch, or after `maxWaitMs`.
 *
 * Calls with the same signature (the same key, route and cost, say) are one entry: its
 * keys and arguments are sent once with the number of callers, and inside Redis the
 * entry's requests are decided one after the other with no further reads or writes. A
 * burst on one key therefore costs Redis about as much as one request.
 *
 * Wire format of one EVALSHA: KEYS are the script's own keys (`keys`), then every
 * entry's keys in order. ARGV[1] is the batch's header: the script's shared values, then
 * the value `sending` gives (for a script that has it), the batch's `now` and a batch id
 * unique across processes. Then one ARGV per entry: its key count, its number of callers,
 * then its arguments. Each of these is one string, its values separated by
 * FIELD_SEPARATOR (ioredis's cost is per argument: a one-request batch sends 2 ARGV
 * strings instead of about 20 values). The reply is one reply per entry, in order; each
 * caller receives its entry's reply and its index among the entry's callers.
 */
export class ScriptBatcher {
  /** Every batch's round trip so far. */
  readonly roundTrips: RoundTrips = { count: 0, seconds: 0 };
  /** The calls that leave next. */
  private pending: Batch | undefined;
  /** A batch is on its way (or was, until its deadline). */
  private inFlight = false;
  private scheduled = false;
  private sequence = 0;
  /**
   * Counts the client's connections: a batch id names its connection and its place on it
   * (`<token>:<connection>.<sequence>`, base 36), and Redis carries out one connection's
   * commands in the order they were sent (see batchPlace).
   */
  private connection = 0;

  constructor(
    private readonly client: Redis,
    /** Makes batch ids unique across processes. */
    private readonly token: string,
    /** A batch that gets no answer holds back the next one this long at most. */
    private readonly holdBackMs: number,
  ) {
    client.on('ready', () => {
      this.connection += 1;
    });
  }

  run(
    batched: BatchedScript,
    signature: string,
    keys: readonly string[],
    fields: string,
    now = 0,
    late?: (value: EntryReply) => void,
  ): Promise<EntryReply> {
    return new Promise((resolve, reject) => this.post(batched, signature, keys, fields, now, { resolve, reject, late }));
  }

  /**
   * `run` for a caller that brings its own callbacks instead of wanting a promise.
   * `fields`: the entry's arguments, joined (joinFields).
   */
  post(batched: BatchedScript, signature: string, keys: readonly string[], fields: string, now: number, call: BatchCall): void {
    const batch = (this.pending ??= new Batch());
    let queue = batch.queues.get(batched);
    if (!queue) {
      queue = { entries: new Map(), now };
      batch.queues.set(batched, queue);
    } else if (now > queue.now) queue.now = now;
    let entry = queue.entries.get(signature);
    if (!entry) {
      entry = { keys, fields, calls: [] };
      queue.entries.set(signature, entry);
    }
    entry.calls.push(call);
    const { deadlineMs, maxWaitMs } = batched;
    if (deadlineMs !== undefined) batch.deadline ??= setTimeout(() => this.expire(batch, deadlineMs), deadlineMs);
    if (batch.eager) return;
    if (maxWaitMs === undefined) {
      batch.eager = true;
      this.schedule();
    } else {
      batch.wait ??= setTimeout(() => {
        batch.eager = true;
        this.schedule();
      }, maxWaitMs);
    }
  }

  /** Sends the pending batch at the end of this turn, unless one is on its way. */
  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.send();
    });
  }

  private send(): void {
    const batch = this.pending;
    if (!batch?.eager || this.inFlight) return;
    this.pending = undefined;
    clearTimeout(batch.wait);
    if (batch.queues.size === 0) return;
    this.inFlight = true;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(holdBack);
      this.inFlight = false;
      if (this.pending?.eager) this.schedule();
    };
    // A batch that gets no answer holds back the next one no longer than this.
    const holdBack = setTimeout(release, this.holdBackMs);
    void this.exec(batch).finally(release);
  }

  /** The batch's deadline passed: its callers with a deadline are given up on. */
  private expire(batch: Batch, ms: number): void {
    // One more turn first: a reply that arrived while the process was busy (a long GC
    // pause, a starved CPU) is read instead of being taken for a timeout.
    setImmediate(() => {
      if (batch.done) return;
      // Not sent yet (the batch ahead of it got no answer): its calls with a deadline
      // never will be, and calls that join it later get a deadline of their own.
      const sent = batch !== this.pending;
      for (const [batched, queue] of batch.queues) {
        if (batched.deadlineMs === undefined) continue;
        const error = new DeadlineError('Redis', ms);
        for (const entry of queue.entries.values()) for (const call of entry.calls) call.reject(error);
        if (!sent) batch.queues.delete(batched);
      }
      if (sent) batch.expired = true;
      else batch.deadline = undefined;
    });
  }

  private async exec(batch: Batch): Promise<void> {
    const commands: { batched: BatchedScript; entries: Entry[]; keys: string[]; args: string[]; batchId: string }[] = [];
    for (const [batched, queue] of batch.queues) {
      const all = [...queue.entries.values()];
      for (let i = 0; i < all.length; i += MAX_BATCH) {
        const entries = all.slice(i, i + MAX_BATCH);
        const keys: string[] = [...batched.keys];
        const batchId = `${this.token}:${this.connection.toString(36)}.${(this.sequence++).toString(36)}`;
        let header = batched.shared === '' ? '' : batched.shared + FIELD_SEPARATOR;
        if (batched.sending) header += `${batched.sending(batchId)}${FIELD_SEPARATOR}`;
        const args: string[] = [`${header}${queue.now}${FIELD_SEPARATOR}${batchId}`];
        for (const entry of entries) {
          for (const key of entry.keys) keys.push(key);
          const counts = `${entry.keys.length}${FIELD_SEPARATOR}${entry.calls.length}`;
          args.push(entry.fields === '' ? counts : `${counts}${FIELD_SEPARATOR}${entry.fields}`);
        }
        commands.push({ batched, entries, keys, args, batchId });
      }
    }
    let results: [Error | null, unknown][] | undefined;
    let failure: unknown;
    const sentAt = performance.now();
    try {
      if (commands.length === 1) {
        // One command (the usual batch): sent as it is, without a pipeline's bookkeeping.
        const { batched, keys, args } = commands[0] as (typeof commands)[0];
        const sent = this.client.sendCommand(evalsha(this.client, batched.script.sha, keys, args)) as Promise<unknown>;
        try {
          results = [[null, await sent]];
        } catch (error) {
          results = [[error as Error, undefined]];
        }
      } else {
        // A Pipeline, though typed as the commands' chain only.
        const pipeline = this.client.pipeline() as unknown as Pipeline;
        for (const { batched, keys, args } of commands) pipeline.sendCommand(evalsha(this.client, batched.script.sha, keys, args));
        results = ((await pipeline.exec()) ?? []) as [Error | null, unknown][];
      }
    } catch (error) {
      failure = error;
    }
    this.roundTrips.count += 1;
    this.roundTrips.seconds += (performance.now() - sentAt) / 1000;
    // The usual batch, one command answered, is handed out at once; a command that must go
    // again (NOSCRIPT) or several are waited for together.
    const answers =
      commands.length === 1
        ? [await answerOf(commands[0] as (typeof commands)[0], results ? results[0] : undefined, failure, this.client)]
        : await Promise.all(commands.map((command, i) => answerOf(command, results ? results[i] : undefined, failure, this.client)));
    batch.done = true;
    clearTimeout(batch.deadline);
    for (const { batched, entries, error, replies, batchId } of answers) {
      const givenUp = batch.expired && batched.deadlineMs !== undefined;
      for (let j = 0; j < entries.length; j++) {
        const calls = (entries[j] as Entry).calls;
        for (let index = 0; index < calls.length; index++) {
          const call = calls[index] as BatchCall;
          if (error) {
            if (!givenUp) call.reject(error, batchId);
            call.lost?.(batchId, j);
          } else if (givenUp) call.late?.({ reply: replies[j], index });
          else call.resolve({ reply: replies[j], index });
        }
      }
      batched.answered?.(batchId, error);
    }
  }
}

/**
 * EVALSHA as `client.evalsha(sha, keys.length, ...keys, ...args)` makes it (replies as
 * strings), with its argument list handed over as it is: ioredis's Command flattens the
 * list it is built with (`Array.prototype.flat`), which V8 runs on its generic path, one
 * runtime call per argument: about 38,000 instructions for the 30 arguments a
 * one-request admission batch had before its values were joined (bench/README.md). Only a client with a `keyPrefix` (a
 * parameter of the Redis URL to ioredis; keygate's own is `prefix`) has its keys made
 * by the constructor, which prefixes the arguments it is given. The list must be
 * flat, and of strings and numbers only (as every caller's is).
 */
function evalsha(client: Redis, sha: string, keys: readonly string[], args: readonly (string | number)[]): Command {
  const { keyPrefix, showFriendlyErrorStack } = client.options;
  const options = { replyEncoding: 'utf8' as const, keyPrefix, errorStack: showFriendlyErrorStack ? new Error() : undefined };
  if (keyPrefix) return new Command('evalsha', [sha, keys.length, ...keys, ...args], options);
  const command = new Command('evalsha', [], options);
  // As the constructor leaves its arguments: strings (it turns the others into strings).
  const all: string[] = [sha, String(keys.length)];
  for (const key of keys) all.push(key);
  for (const arg of args) all.push(typeof arg === 'string' ? arg : String(arg));
  command.args = all;
  return command;
}

/** One command of a batch as it was sent, and what Redis answered to it. */
interface CommandAnswer {
  batched: BatchedScript;
  entries: Entry[];
  error: unknown;
  replies: unknown[];
  batchId: string;
}

/**
 * A command's answer (`result`, or `failure` for the whole batch; neither: no reply): a
 * promise only when Redis had forgotten the script and the command goes again, with EVAL.
 */
function answerOf(
  { batched, entries, keys, args, batchId }: { batched: BatchedScript; entries: Entry[]; keys: string[]; args: string[]; batchId: string },
  result: [Error | null, unknown] | undefined,
  failure: unknown,
  client: Redis,
): CommandAnswer | Promise<CommandAnswer> {
  const [error, replies] = result ?? (failure === undefined ? [new Error('no reply'), undefined] : [failure, undefined]);
  if (error instanceof Error && error.message.startsWith('NOSCRIPT')) {
    return batched.script.run(client, keys, args).then(
      (again) => checkedAnswer(batched, entries, null, again, batchId),
      (retried: unknown) => checkedAnswer(batched, entries, retried, undefined, batchId),
    );
  }
  return checkedAnswer(batched, entries, error, replies, batchId);
}

/** An answer with one reply per entry, else an error that says how many came. */
function checkedAnswer(batched: BatchedScript, entries: Entry[], error: unknown, replies: unknown, batchId: string): CommandAnswer {
  if (!error && (!Array.isArray(replies) || replies.length !== entries.length)) {
    error = new Error(`the batch script answered ${Array.isArray(replies) ? replies.length : typeof replies} replies for ${entries.length} entries`);
  }
  return { batched, entries, error, replies: replies as unknown[], batchId };
}

/** A batch id's connection and its place on it (see ScriptBatcher.connection). */
export function batchPlace(batchId: string): { connection: string; sequence: number } | undefined {
  const match = /:([0-9a-z]+)\.([0-9a-z]+)$/.exec(batchId);
  return match ? { connection: match[1] as string, sequence: Number.parseInt(match[2] as string, 36) } : undefined;
}

/**
 * Shared Lua: number formatting that survives the trip as a string (for amounts, which
 * may be fractional; whole milliseconds and counts go back as Lua numbers), the split of
 * an ARGV string into its values (joinFields), the loop that hands each entry of a batch
 * the offset of its KEYS and its arguments, and the admission count a window log member
 * carries.
 */
const PRELUDE = `
local function fmt(n) return string.format('%.17g', n) end
-- The values of one ARGV string, in order ('' kept as '').
local function fields(text)
  local list, n = {}, 0
  for value in string.gmatch(text .. '${FIELD_SEPARATOR}', '([^${FIELD_SEPARATOR}]*)${FIELD_SEPARATOR}') do
    n = n + 1
    list[n] = value
  end
  return list
end
-- handle(k, args, nk) for each entry of the batch (ARGV[2] on; ARGV[1] is its header):
-- its keys are KEYS[k + 1 .. k + nk] (the script's own ownKeys keys come first), args[1]
-- is nk, args[2] how many callers it stands for, args[3 ..] its arguments. Returns the
-- replies in order.
local function eachEntry(ownKeys, handle)
  local k = ownKeys
  local replies = {}
  for e = 2, #ARGV do
    local args = fields(ARGV[e])
    local nk = tonumber(args[1])
    replies[e - 1] = handle(k, args, nk)
    k = k + nk
  end
  return replies
end
-- Lists longer than this are handed to a command in slices (Lua's unpack has a limit).
local SLICE = 1000
local function eachSlice(list, handle)
  for i = 1, #list, SLICE do handle(unpack(list, i, math.min(i + SLICE - 1, #list))) end
end
`;

/**
 * admit, for a batch: per request the block check, every window (all or none), then the
 * reservation; one reply per entry (identical requests).
 *
 * As ScriptBatcher sends it (each ARGV one string of values, see joinFields):
 * KEYS[1]: the process's journal (the hash SETTLE notes its places in).
 * Header (ARGV[1]): [1] reservation ttl ms, [2] window and block expiry slack ms, [3] meter
 *   ttl ms, [4] the journal's ttl ms, [5] whether this batch's record keeps those before
 *   it on its connection ('1') or replaces them ('0'), [6] now, [7] batch id.
 * Per entry KEYS: [block hash if it has a block], [meter hash, held reservations hash,
 *   their lapse times if it has a charge], then per window its log and its count.
 * Per entry (ARGV[2] on): [1] its key count, [2] requests, [3] has block, [4] charge: '0'
 *   none, '1' reserve, '2' charge now (a final amount: added to used, nothing held),
 *   [5] amount, [6] limit, [7] overage ('1'), none ('0'), or none but admitted while
 *   anything is left ('2': the meter's admit: untilZero; a final amount that does not
 *   fit is reserved instead, and the entry's reservation id says so), [8..13] block
 *   after, within, duration, factor, max, forgetAfter (if it has a block), then limit and
 *   windowMs of each window.
 * Returns per entry: -1 alone when the meter has no balance in Redis (seed it from the
 *   store and ask again; nothing was recorded), else { admitted, reservation id or ''
 *   (in an entry charged now: set when its last admitted request was reserved instead),
 *   remaining1, reset1, ... as the first admitted request saw them (zeros if none was),
 *   then per refused request: status, detail, remaining1, reset1, ... }. The admitted
 *   requests are always the first ones (once one is refused, the rest are too); the
 *   i-th admitted (from 0) has i fewer remaining. Status is 'blocked' / 'rate_limited'
 *   (detail = retry after ms), 'block_started' for the one request whose refusal starts a
 *   block (detail = { block length ms, escalation (1 for a first block), index from 0 of
 *   the window with the longest wait, when the block ends, retry after ms }) or 'funds'
 *   (detail = used). A blocked request's retry after is the block's time left, or the
 *   longest wait of its windows if that is longer.
 *
 * Data layout (every key carries the configured prefix P):
 *   P wl:<window id>  sorted set, the window's log: one member per batch that was admitted
 *                     into the window, '<batch id>:<admissions>', scored by the batch's
 *                     time (ms). Members that have left the window are dropped.
 *   P wn:<window id>  the number of admissions the log holds.
 *   P b:<subject id>  hash: violations (comma-separated times), level, until, lastEnd.
 *   P m:<meter>       hash: used (committed units), reserved (units of requests in flight),
 *                     returned (units given back in all, for the store: see mergeUsage).
 *   P rh:<meter>      hash: batch id → units its requests still hold.
 *   P rl:<meter>      sorted set: batch id scored by when its reservations lapse, so a
 *                     process that dies mid-request cannot hold units forever.
 *   P restored:blocks set once this Redis has been given the store's blocks (RESTORE_BLOCK):
 *                     missing, Redis lost its data (or is new), and they are put back.
 *   P added:<row id>  set once the units of a saved row (pending_units) are added to its
 *                     meter (ADD_SAVED_UNITS): the row is not added again.
 *   P sj:<process>    hash (the journal): 'a:<connection>' → records of the admission
 *                     batches on that connection that charged at admission,
 *                     '<place>:<entry>=<requests charged>,...' (entries from 0), joined
 *                     by ';'. A process whose answer was lost reads it to give back what
 *                     such a batch charged: one write per batch that charged, none for others.
 *
 * Each window, block and meter is read once per batch and written once at its end;
 * requests later in the batch see what earlier ones recorded. The whole batch is judged,
 * and recorded, at one time: the latest of its requests' times.
 */
export const ADMIT = new Script(`${PRELUDE}
local header = fields(ARGV[1])
local reservationTtl, slack, meterTtl = tonumber(header[1]), tonumber(header[2]), header[3]
local journal, journalTtl, keepBefore = KEYS[1], tonumber(header[4]), header[5] == '1'
local nowText, batchId = header[6], header[7]
local now = tonumber(nowText)
local lapseText = fmt(now + reservationTtl)
local windows, windowOrder = {}, {}
local meters, meterOrder = {}, {}
local blocks = {}
-- '<entry>=<requests charged at admission>' for the entries that charged some.
local chargedNow, entryIndex = {}, -1

local function countOf(member) return tonumber(string.match(member, ':(%d+)$')) end

-- A window at \`now\`: what has left it is dropped, and what it holds is counted (this
-- batch's admissions are added as they happen). Read from Redis once per batch.
local function windowAt(key, countKey, limit, windowMs)
  local w = windows[key]
  if w then return w end
  local cutoff = now - windowMs
  local held = tonumber(redis.call('GET', countKey))
  local gone = redis.call('ZRANGEBYSCORE', key, '-inf', cutoff)
  local changed = #gone > 0
  if changed then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
    if held then for _, member in ipairs(gone) do held = held - countOf(member) end end
  end
  if held == nil then
    -- The count is gone (or never was): count the log itself.
    held = 0
    for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do held = held + countOf(member) end
    changed = true
  end
  w = { key = key, countKey = countKey, limit = limit, windowMs = windowMs, held = held, added = 0, changed = changed }
  if held > 0 then w.oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]) end
  windows[key] = w
  windowOrder[#windowOrder + 1] = w
  return w
end

-- The time of the (position)-th oldest admission in the window: the log's first, then
-- this batch's (all at \`now\`). Walked only for a refusal, usually one member deep.
local function nthOldest(w, position)
  if position > w.held then return now end
  local seen, offset = 0, 0
  while true do
    local page = redis.call('ZRANGE', w.key, offset, offset + 63, 'WITHSCORES')
    if #page == 0 then return now end
    for i = 1, #page, 2 do
      seen = seen + countOf(page[i])
      if seen >= position then return tonumber(page[i + 1]) end
    end
    offset = offset + 64
  end
end

local function meterState(meterKey, heldKey, lapseKey)
  local m = meters[meterKey]
  if not m then
    local balance = redis.call('HMGET', meterKey, 'used', 'reserved')
    m = { key = meterKey, heldKey = heldKey, lapseKey = lapseKey, exists = balance[1] ~= false, used = tonumber(balance[1]) or 0, reserved = tonumber(balance[2]) or 0, added = 0, charged = 0, changed = false }
    meters[meterKey] = m
    meterOrder[#meterOrder + 1] = m
  end
  return m
end

-- Reservations whose process never settled them stop holding units. Looked for only
-- when a request does not fit: until then they change no answer.
local function releaseLapsed(m)
  local lapsed = redis.call('ZRANGEBYSCORE', m.lapseKey, '-inf', now)
  if #lapsed == 0 then return end
  local sum = 0
  eachSlice(lapsed, function(...)
    for _, units in ipairs(redis.call('HMGET', m.heldKey, ...)) do
      if units then sum = sum + tonumber(units) end
    end
    redis.call('HDEL', m.heldKey, ...)
  end)
  redis.call('ZREMRANGEBYSCORE', m.lapseKey, '-inf', now)
  m.reserved = m.reserved - sum
  if m.reserved < 1e-9 then m.reserved = 0 end
  m.changed = true
end

-- Whether the amount fits the meter's limit, once lapsed reservations are let go; within
-- 1e-9 of it is within it (a sum of fractional costs may end a hair over: 0.2 + 0.1), as
-- the memory counters judge it.
local function fits(m, amount, limit)
  if m.used + m.reserved + amount - limit <= 1e-9 then return true end
  releaseLapsed(m)
  return m.used + m.reserved + amount - limit <= 1e-9
end

-- Whether anything of the limit is left, once lapsed reservations are let go (a sum of
-- fractional costs may stop a hair short of it: that is nothing left).
local function hasLeft(m, limit)
  if limit - (m.used + m.reserved) > 1e-9 then return true end
  releaseLapsed(m)
  return limit - (m.used + m.reserved) > 1e-9
end

-- When the subject's block ends (nil if none), read once per batch.
local function blockUntil(blockKey)
  local untilMs = blocks[blockKey]
  if untilMs == nil then
    untilMs = tonumber(redis.call('HGET', blockKey, 'until')) or false
    blocks[blockKey] = untilMs
  end
  return untilMs or nil
end

-- The block state lives until its level would be forgotten anyway.
local function keepBlock(blockKey, lastEnd, within, forgetAfter)
  local ttl = within
  if lastEnd then ttl = math.max(ttl, lastEnd + forgetAfter - now) end
  redis.call('PEXPIRE', blockKey, math.ceil(ttl + slack))
end

-- Same rules as the memory counters: 'after' violations within 'within' start a block
-- of duration * factor^level (capped at max); the level resets after forgetAfter.
-- The policy is args[p .. p + 5]. Returns the block's length (0: none started) and
-- its escalation (1 for a first block).
local function recordViolation(blockKey, args, p)
  local after, within, duration = tonumber(args[p]), tonumber(args[p + 1]), tonumber(args[p + 2])
  local factor, max, forgetAfter = tonumber(args[p + 3]), tonumber(args[p + 4]), tonumber(args[p + 5])
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
  blocks[blockKey] = untilMs
  return length, level + 1
end

local function admit(k, args, nk)
  entryIndex = entryIndex + 1
  local charges = 0
  local requests = tonumber(args[2])
  local hasBlock, hasCharge, chargeNow = args[3] == '1', args[4] ~= '0', args[4] == '2'
  local amount, limit, overage, untilZero = tonumber(args[5]), tonumber(args[6]), args[7] == '1', args[7] == '2'
  local blockKey, meter
  if hasBlock then
    k = k + 1
    blockKey = KEYS[k]
    nk = nk - 1
  end
  -- Checked first so that a retry after seeding sees requests that left no trace.
  if hasCharge then
    meter = meterState(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3])
    k = k + 3
    nk = nk - 3
    if not meter.exists then return { -1 } end
  end
  local firstWindowArg = hasBlock and 14 or 8
  local spans = {}
  for i = 1, nk / 2 do
    local j = firstWindowArg + 2 * (i - 1)
    spans[i] = windowAt(KEYS[k + 2 * i - 1], KEYS[k + 2 * i], tonumber(args[j]), tonumber(args[j + 1]))
  end

  -- Each window's remaining admissions and reset time, appended to \`out\`: when its
  -- oldest admission leaves it, or, holding more than its limit (one lowered below what
  -- it holds), when enough have left for one more to fit (the RateLimit field's t).
  local function windowStates(out)
    for _, w in ipairs(spans) do
      local count = w.held + w.added
      local leaving = w.oldest or (w.added > 0 and now or nil)
      if count > w.limit then leaving = nthOldest(w, count - w.limit + 1) end
      out[#out + 1] = math.max(0, w.limit - count)
      out[#out + 1] = leaving and math.max(0, leaving + w.windowMs - now) or 0
    end
  end
  local out = { 0, '' }
  local refusals = {}
  local function refuse(status, detail)
    refusals[#refusals + 1] = status
    refusals[#refusals + 1] = detail
    windowStates(refusals)
  end

  -- 6. Every window must have room; the longest wait decides Retry-After.
  -- worst: the window with the longest wait, named if this refusal starts a block.
  local function longestWait()
    local wait, worst = 0, 0
    for i, w in ipairs(spans) do
      local count = w.held + w.added
      if count >= w.limit then
        -- The (count - limit + 1)-th oldest admission in the window must leave it first.
        local leaves = nthOldest(w, count - w.limit + 1)
        local waitHere = math.max(1, leaves + w.windowMs - now)
        if waitHere > wait then wait, worst = waitHere, i end
      end
    end
    return wait, worst
  end

  local admitted = 0
  local wait, worst
  for _ = 1, requests do
    -- The windows change only when a request is admitted.
    if wait == nil then wait, worst = longestWait() end
    -- 6. A block in force refuses whatever room the windows have. Its Retry-After is when
    -- a retry can be admitted: the block's end, or later if a window is still full then.
    local untilMs = hasBlock and blockUntil(blockKey)
    if untilMs and untilMs > now then
      refuse('blocked', math.max(untilMs - now, wait))
    else
      -- 7. Reserve the cost: used + reserved + amount must fit the limit unless overage is on
      -- (with untilZero, something must be left: that request is reserved, and its settle
      -- stops the charge at the limit).
      local fitsNow = wait == 0 and (not hasCharge or overage or fits(meter, amount, limit))
      if wait > 0 then
        local blockedFor, escalation = 0, 0
        if hasBlock then blockedFor, escalation = recordViolation(blockKey, args, 8) end
        if blockedFor > 0 then refuse('block_started', { blockedFor, escalation, worst - 1, now + blockedFor, math.max(blockedFor, wait) })
        else refuse('rate_limited', wait) end
      elseif not fitsNow and not (untilZero and hasLeft(meter, limit)) then
        refuse('funds', fmt(meter.used))
      else
        -- Only now, with everything passed, does the request count.
        if chargeNow and fitsNow then
          meter.used = meter.used + amount
          meter.charged = meter.charged + amount
          charges = charges + 1
        elseif hasCharge then
          -- A reservation (in an entry charged now: the last one admitted, which reaches zero).
          meter.reserved = meter.reserved + amount
          meter.added = meter.added + amount
          meter.changed = true
          out[2] = batchId
        end
        for _, w in ipairs(spans) do w.added = w.added + 1 end
        wait = nil
        admitted = admitted + 1
        if admitted == 1 then windowStates(out) end
      end
    end
  end
  out[1] = admitted
  if charges > 0 then chargedNow[#chargedNow + 1] = entryIndex .. '=' .. charges end
  if admitted == 0 then for _ = 1, 2 * #spans do out[#out + 1] = 0 end end
  for _, value in ipairs(refusals) do out[#out + 1] = value end
  return out
end

local replies = eachEntry(1, admit)

-- Each window and meter written once.
for _, w in ipairs(windowOrder) do
  if w.added > 0 then redis.call('ZADD', w.key, nowText, batchId .. ':' .. w.added) end
  if w.added > 0 or w.changed then
    local ttl = math.ceil(w.windowMs + slack)
    redis.call('SET', w.countKey, w.held + w.added, 'PX', ttl)
    redis.call('PEXPIRE', w.key, ttl)
  end
end
for _, m in ipairs(meterOrder) do
  if m.changed then redis.call('HSET', m.key, 'reserved', fmt(m.reserved)) end
  if m.charged > 0 then
    redis.call('HINCRBYFLOAT', m.key, 'used', fmt(m.charged))
    redis.call('PEXPIRE', m.key, meterTtl)
  end
  if m.added > 0 then
    redis.call('HSET', m.heldKey, batchId, fmt(m.added))
    redis.call('ZADD', m.lapseKey, lapseText, batchId)
    redis.call('PEXPIRE', m.heldKey, meterTtl)
    redis.call('PEXPIRE', m.lapseKey, meterTtl)
  end
end

-- What this batch charged at admission, in the journal, written last (a script that failed
-- part way is not taken as done): a process whose answer was lost
-- (the connection closed under it, or Redis ran it after the command timed out) gives
-- it back (its request was refused, or admitted without Redis and charged there).
local connection, place = string.match(batchId, ':([%w]+)%.([%w]+)$')
if connection and #chargedNow > 0 then
  local field = 'a:' .. connection
  local record = place .. ':' .. table.concat(chargedNow, ',')
  if keepBefore then
    local before = redis.call('HGET', journal, field)
    if before then record = before .. ';' .. record end
  end
  redis.call('HSET', journal, field, record)
  -- Renewed only now and then: one write per batch.
  if redis.call('PTTL', journal) < journalTtl / 2 then redis.call('PEXPIRE', journal, journalTtl) end
end
return replies
`);

/**
 * settle, for a batch of settles: release each request's reservation (if its batch
 * still holds units) and commit the actual units; one reply per entry.
 *
 * As ScriptBatcher sends it (each ARGV one string of values, see joinFields):
 * KEYS[1]: the process's journal (a hash: connection → the place on it of the last
 *   settle batch carried out, from the batch id; kept for journal ttl ms).
 * Header (ARGV[1]): [1] meter ttl ms, [2] journal ttl ms, [3] the batcher's now (unused),
 *   [4] batch id.
 * Per entry KEYS: [1] meter hash, [2] held reservations hash, [3] their lapse times.
 *   Per entry (ARGV[2] on): [1] its key count, [2] requests, [3] the batch id of their
 *   reservations or '', [4] units each reserved, [5] actual units each (negative: a
 *   charge made at admission given back; the balance never goes below zero), [6] the
 *   most usage may reach by this commit, or -1 for no cap (a capped entry is always one
 *   request).
 * Returns per entry 'ok', the units committed for a capped entry, or 'missing' when the
 * meter has no balance in Redis and units are to be committed or given back (seed it
 * from the store, then settle again).
 *
 * The releases and uncapped commits of one meter are applied together: one read of what
 * each batch still holds, one write of each balance; capped commits follow, in order.
 */
export const SETTLE = new Script(`${PRELUDE}
local header = fields(ARGV[1])
local meterTtl, journal, journalTtl, batchId = header[1], KEYS[1], header[2], header[4]
local meters, order = {}, {}
local entries = {}
eachEntry(1, function(k, args)
  local key = KEYS[k + 1]
  local m = meters[key]
  if not m then
    m = { key = key, heldKey = KEYS[k + 2], lapseKey = KEYS[k + 3], batches = {}, release = {}, commit = 0, returned = 0, capped = {} }
    meters[key] = m
    order[#order + 1] = m
  end
  local requests, batch = tonumber(args[2]), args[3]
  local reserved, actual = tonumber(args[4]), tonumber(args[5])
  if batch ~= '' then
    if not m.release[batch] then
      m.batches[#m.batches + 1] = batch
      m.release[batch] = 0
    end
    m.release[batch] = m.release[batch] + reserved * requests
  end
  local entry = { m = m, actual = actual, cap = tonumber(args[6]) }
  if entry.cap >= 0 and actual > 0 then m.capped[#m.capped + 1] = entry
  elseif actual ~= 0 then
    m.commit = m.commit + actual * requests
    if actual < 0 then m.returned = m.returned - actual * requests end
  end
  entries[#entries + 1] = entry
end)

for _, m in ipairs(order) do
  m.exists = redis.call('EXISTS', m.key) == 1
  -- Redis lost the meter, and its reservations with it: nothing left to release.
  if m.exists then
    if #m.batches > 0 then
      local released, emptied = 0, {}
      local held = redis.call('HMGET', m.heldKey, unpack(m.batches))
      for i, batch in ipairs(m.batches) do
        local units = tonumber(held[i])
        if units then
          local release = m.release[batch]
          released = released + math.min(units, release)
          if units - release < 1e-9 then emptied[#emptied + 1] = batch
          else redis.call('HSET', m.heldKey, batch, fmt(units - release)) end
        end
      end
      if #emptied > 0 then
        redis.call('HDEL', m.heldKey, unpack(emptied))
        redis.call('ZREM', m.lapseKey, unpack(emptied))
      end
      if released > 0 then
        local left = tonumber(redis.call('HINCRBYFLOAT', m.key, 'reserved', fmt(-released)))
        if left < 1e-9 then redis.call('HSET', m.key, 'reserved', '0') end
      end
    end
    if m.commit ~= 0 then
      -- A charge given back never takes the balance below zero.
      local used = tonumber(redis.call('HINCRBYFLOAT', m.key, 'used', fmt(m.commit)))
      if used < 1e-9 and m.commit < 0 then redis.call('HSET', m.key, 'used', '0') end
      if m.returned > 0 then redis.call('HINCRBYFLOAT', m.key, 'returned', fmt(m.returned)) end
      redis.call('PEXPIRE', m.key, meterTtl)
    end
    -- Up to the cap and no further: a plan without overage is not billed beyond its limit.
    for _, entry in ipairs(m.capped) do
      local used = tonumber(redis.call('HGET', m.key, 'used')) or 0
      local units = math.min(entry.actual, math.max(0, entry.cap - used))
      if units > 0 then
        redis.call('HINCRBYFLOAT', m.key, 'used', fmt(units))
        redis.call('PEXPIRE', m.key, meterTtl)
      end
      entry.committed = units
    end
  end
end

-- Carried out, written last (a script that failed part way is not taken as done): a
-- process whose answer was lost (the connection closed under it) reads this before
-- sending the units again, so they are not counted twice.
local connection, place = string.match(batchId, ':([%w]+)%.([%w]+)$')
if connection then
  redis.call('HSET', journal, connection, place)
  redis.call('PEXPIRE', journal, journalTtl)
end

local replies = {}
for i, entry in ipairs(entries) do
  if not entry.m.exists and entry.actual ~= 0 then replies[i] = 'missing'
  elseif entry.committed then replies[i] = fmt(entry.committed)
  else replies[i] = 'ok' end
end
return replies
`);

/**
 * seed: give a meter its balance from the store. Charges and give-backs only grow within
 * a period, so the balance becomes the merge of what Redis holds and what the store says
 * (mergeUsage: the larger of each, used the difference).
 *
 * KEYS: [1] meter hash.  ARGV: [1] used according to the store, [2] meter ttl ms,
 *   [3] units given back according to the store.
 */
export const SEED = new Script(`${PRELUDE}
local held = redis.call('HMGET', KEYS[1], 'used', 'returned')
local heldUsed, heldReturned = tonumber(held[1]), tonumber(held[2]) or 0
local storedUsed, storedReturned = tonumber(ARGV[1]), tonumber(ARGV[3]) or 0
if heldUsed == nil then
  redis.call('HSET', KEYS[1], 'used', fmt(storedUsed), 'returned', fmt(storedReturned))
  redis.call('HSETNX', KEYS[1], 'reserved', '0')
elseif storedUsed + storedReturned >= heldUsed + heldReturned and storedReturned >= heldReturned then
  redis.call('HSET', KEYS[1], 'used', ARGV[1], 'returned', fmt(storedReturned))
elseif not (heldUsed + heldReturned >= storedUsed + storedReturned and heldReturned >= storedReturned) then
  local returned = math.max(heldReturned, storedReturned)
  local charged = math.max(heldUsed + heldReturned, storedUsed + storedReturned)
  redis.call('HSET', KEYS[1], 'used', fmt(charged - returned), 'returned', fmt(returned))
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 'ok'
`);

/**
 * add saved units: the rows of pending_units (units a process that stopped during an
 * outage saved in the store), each added to its meter at most once, however many times
 * it is sent: by two processes that read it at once, or again after a process was killed
 * between this and the row's removal from the store. A row's mark, written with its
 * units, says it was added; a row whose mark is there is not added again. The mark lives
 * `mark ttl` (days): the row leaves the store within a round trip of this, unless a
 * process is killed or the store fails meanwhile, and the next take (within a minute of a
 * process reaching both) removes it. A row of 0 units adds nothing and needs no mark: its
 * meter's balance is what is wanted (a balance the stopped process could not write).
 *
 * KEYS: per row [meter hash, the row's mark].  ARGV: [1] meter ttl ms, [2] mark ttl ms,
 *   then per row its units (negative: given back).
 * Returns per row { state, used, returned } (the meter's balance after it; '' when
 *   missing): 'added'; 'marked' (added before: not again); 'balance' (0 units); 'missing'
 *   when the meter has no balance in Redis (nothing was recorded: seed it from the store,
 *   then send the row again).
 */
export const ADD_SAVED_UNITS = new Script(`${PRELUDE}
local meterTtl, markTtl = ARGV[1], ARGV[2]
local states, meters, order, marks = {}, {}, {}, {}
for i = 1, #KEYS / 2 do
  local meter, mark = KEYS[2 * i - 1], KEYS[2 * i]
  local units = tonumber(ARGV[i + 2])
  if units ~= 0 and redis.call('EXISTS', mark) == 1 then states[i] = 'marked'
  elseif redis.call('EXISTS', meter) == 0 then states[i] = 'missing'
  elseif units == 0 then states[i] = 'balance'
  else
    states[i] = 'added'
    local m = meters[meter]
    if not m then
      m = { commit = 0, returned = 0 }
      meters[meter] = m
      order[#order + 1] = meter
    end
    m.commit = m.commit + units
    if units < 0 then m.returned = m.returned - units end
    marks[#marks + 1] = mark
  end
end
-- The rows of one meter together, as SETTLE adds uncapped commits (whatever order they
-- came in): a charge given back never takes the balance below zero.
for _, meter in ipairs(order) do
  local m = meters[meter]
  local used = tonumber(redis.call('HINCRBYFLOAT', meter, 'used', fmt(m.commit)))
  if used < 1e-9 and m.commit < 0 then redis.call('HSET', meter, 'used', '0') end
  if m.returned > 0 then redis.call('HINCRBYFLOAT', meter, 'returned', fmt(m.returned)) end
  redis.call('PEXPIRE', meter, meterTtl)
end
-- Written last (a script that failed part way has marked nothing added).
for _, mark in ipairs(marks) do redis.call('SET', mark, '1', 'PX', markTtl) end
local replies = {}
for i = 1, #KEYS / 2 do
  local held = redis.call('HMGET', KEYS[2 * i - 1], 'used', 'returned')
  replies[i] = { states[i], held[1] or '', held[2] or '' }
end
return replies
`);

/**
 * restore block: put a block the store kept back into Redis (start-up, or a Redis that
 * lost its data). A block Redis does not hold is written as stored. One it holds was
 * made since (Redis is newer) and keeps its violations; only where the store's is later
 * (requests refused in the moment before the store's blocks were put back started a
 * block afresh) are its level, end and last end raised to the store's, never lowered.
 *
 * KEYS: [1] block hash.  ARGV: [1] violations (comma-separated ms), [2] level, [3] when
 *   the block ends (0: none), [4] when the last one ended ('' for none), [5] how long the
 *   state is kept (ms).
 * Returns 1 if it wrote anything, else 0.
 */
export const RESTORE_BLOCK = new Script(`${PRELUDE}
local level, untilMs, lastEnd, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'violations', ARGV[1], 'level', level)
  if untilMs > 0 then redis.call('HSET', KEYS[1], 'until', fmt(untilMs)) end
  if lastEnd then redis.call('HSET', KEYS[1], 'lastEnd', fmt(lastEnd)) end
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
local held = redis.call('HMGET', KEYS[1], 'level', 'until', 'lastEnd')
local changed = 0
if level > (tonumber(held[1]) or 0) then
  redis.call('HSET', KEYS[1], 'level', level)
  changed = 1
end
if untilMs > (tonumber(held[2]) or 0) then
  redis.call('HSET', KEYS[1], 'until', fmt(untilMs))
  changed = 1
end
if lastEnd and (not tonumber(held[3]) or lastEnd > tonumber(held[3])) then
  redis.call('HSET', KEYS[1], 'lastEnd', fmt(lastEnd))
  changed = 1
end
if changed == 1 and redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return changed
`);

/**
 * One more unknown key from a client address (`auth.unknownKeys`, shared by every
 * process). An address blocked already is answered with its block and not counted.
 * Otherwise the key's time joins the address's list (the times within the window, oldest
 * first; fewer than the limit); at the limit, the list goes and a block begins: its hash,
 * its place in the set of blocks (scored by its end; those ended, and past the most
 * blocks held the ones ending first, are dropped), and a message on the channel so that
 * every process refuses the address before its next lookup.
 *
 * Memory stays bounded: a list lives `window` (plus slack) after its last time, a block
 * hash `block` (plus slack), the set as long as its longest block.
 *
 * KEYS: [1] the address's times (list), [2] its block (hash), [3] the set of blocks.
 * ARGV: [1] now, [2] window ms, [3] limit, [4] block ms, [5] expiry slack ms, [6] the
 *   address, [7] most blocks held, [8] the channel, [9] the prefix of block hashes (the
 *   address follows it; the hashes of blocks dropped past the most held are named here,
 *   not in KEYS, since which ones is known only here: one Redis, not Cluster).
 * Returns {0, count} when counted, {1, unknownKeys, startedAt, endsAt} for a block in
 * force (not counted), {2, unknownKeys, startedAt, endsAt} for the block this key began.
 */
export const UNKNOWN_KEY = new Script(`${PRELUDE}
local now, window, limit, blockMs, slack = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local held = redis.call('HMGET', KEYS[2], 'unknownKeys', 'startedAt', 'endsAt')
local heldEnd = tonumber(held[3])
if heldEnd and heldEnd > now then return {1, tonumber(held[1]), tonumber(held[2]), heldEnd} end
local cutoff = now - window
while true do
  local first = tonumber(redis.call('LINDEX', KEYS[1], 0))
  if not first or first > cutoff then break end
  redis.call('LPOP', KEYS[1])
end
local count = redis.call('RPUSH', KEYS[1], ARGV[1])
if count < limit then
  redis.call('PEXPIRE', KEYS[1], window + slack)
  return {0, count}
end
redis.call('DEL', KEYS[1])
local endsAt = now + blockMs
redis.call('HSET', KEYS[2], 'unknownKeys', count, 'startedAt', ARGV[1], 'endsAt', fmt(endsAt))
redis.call('PEXPIRE', KEYS[2], blockMs + slack)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZADD', KEYS[3], fmt(endsAt), ARGV[6])
local over = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[7])
if over > 0 then
  for _, address in ipairs(redis.call('ZRANGE', KEYS[3], 0, over - 1)) do redis.call('DEL', ARGV[9] .. address) end
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, over - 1)
end
if redis.call('PTTL', KEYS[3]) < blockMs + slack then redis.call('PEXPIRE', KEYS[3], blockMs + slack) end
redis.call('PUBLISH', ARGV[8], cjson.encode({type = 'address_blocked', address = ARGV[6], unknownKeys = count, startedAt = ARGV[1], endsAt = fmt(endsAt)}))
return {2, count, now, endsAt}
`);

/**
 * The address blocks in force (see UNKNOWN_KEY), those ended dropped on the way.
 *
 * KEYS: [1] the set of blocks.  ARGV: [1] now, [2] the prefix of block hashes (each
 * listed block's hash is named here, not in KEYS: one Redis, not Cluster).
 * Returns address, unknownKeys, startedAt, endsAt for each, flat, the one ending first first.
 */
export const ADDRESS_BLOCKS = new Script(`${PRELUDE}
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {}
for _, address in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local held = redis.call('HMGET', ARGV[2] .. address, 'unknownKeys', 'startedAt', 'endsAt')
  if tonumber(held[3]) and tonumber(held[3]) > now then
    out[#out + 1] = address
    out[#out + 1] = tonumber(held[1])
    out[#out + 1] = tonumber(held[2])
    out[#out + 1] = tonumber(held[3])
  end
end
return out
`);

/**
 * Lifts an address's block (see UNKNOWN_KEY; a block's start emptied its count, so its
 * next unknown key is counted afresh), and tells every process (which drop their copy
 * of it) whether or not one was in force here. An address not blocked keeps its count.
 *
 * KEYS: [1] its block, [2] the set of blocks.
 * ARGV: [1] now, [2] the address, [3] the channel.
 * Returns {unknownKeys, startedAt, endsAt} of the block lifted, or {} when none was in force.
 */
export const LIFT_ADDRESS_BLOCK = new Script(`${PRELUDE}
local now = tonumber(ARGV[1])
local held = redis.call('HMGET', KEYS[1], 'unknownKeys', 'startedAt', 'endsAt')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], cjson.encode({type = 'address_unblocked', address = ARGV[2]}))
if tonumber(held[3]) and tonumber(held[3]) > now then return {tonumber(held[1]), tonumber(held[2]), tonumber(held[3])} end
return {}
`);

/**
 * Takes blocks processes began on their own while Redis was away (see UNKNOWN_KEY: each
 * counted alone then, and Redis never held these) into Redis, so that every process
 * refuses and lists them: each written as UNKNOWN_KEY writes a block it began (its count
 * emptied, its hash, its place in the set) and announced on the channel likewise. A
 * block Redis holds for the address that ends no sooner stays as it is (never shortened);
 * one given that has ended is skipped.
 *
 * Memory stays bounded as with UNKNOWN_KEY: a hash lives until its end (plus slack), the
 * set as long as its longest block, past the most blocks held the ones ending first go.
 *
 * KEYS: [1] the set of blocks.
 * ARGV: [1] now, [2] expiry slack ms, [3] most blocks held, [4] the channel, [5] the
 *   prefix of block hashes, [6] the prefix of count lists (the address follows each: the
 *   keys are named here, not in KEYS, since the blocks are many: one Redis, not Cluster),
 *   then from [7] each block as four: address, unknownKeys, startedAt, endsAt.
 * Returns address, unknownKeys, startedAt, endsAt, flat, of the block Redis holds once
 * done for each address given (the one given, or the longer one it held); none for
 * those ended, nor for those the most blocks held left out (the trim is done before the
 * answer and the announcements: both say what Redis holds).
 */
export const SHARE_ADDRESS_BLOCKS = new Script(`${PRELUDE}
local now, slack = tonumber(ARGV[1]), tonumber(ARGV[2])
-- Each address given that Redis holds a block for: {address, unknownKeys, startedAt, endsAt, written here}.
local held = {}
local longest = 0
for i = 7, #ARGV - 3, 4 do
  local address, unknownKeys, startedAt, endsAt = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local hash = ARGV[5] .. address
  local before = redis.call('HMGET', hash, 'unknownKeys', 'startedAt', 'endsAt')
  local heldEnd = tonumber(before[3])
  if heldEnd and heldEnd > now and heldEnd >= endsAt then
    held[#held + 1] = {address, tonumber(before[1]), tonumber(before[2]), heldEnd, false}
  elseif endsAt > now then
    redis.call('DEL', ARGV[6] .. address)
    redis.call('HSET', hash, 'unknownKeys', unknownKeys, 'startedAt', fmt(startedAt), 'endsAt', fmt(endsAt))
    redis.call('PEXPIRE', hash, math.ceil(endsAt - now + slack))
    redis.call('ZADD', KEYS[1], fmt(endsAt), address)
    if endsAt - now > longest then longest = endsAt - now end
    held[#held + 1] = {address, unknownKeys, startedAt, endsAt, true}
  end
end
if longest > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
  if over > 0 then
    for _, address in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do redis.call('DEL', ARGV[5] .. address) end
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
  end
  if redis.call('PTTL', KEYS[1]) < longest + slack then redis.call('PEXPIRE', KEYS[1], math.ceil(longest + slack)) end
end
local out = {}
for _, block in ipairs(held) do
  local address, unknownKeys, startedAt, endsAt, written = unpack(block)
  if redis.call('ZSCORE', KEYS[1], address) then
    if written then redis.call('PUBLISH', ARGV[4], cjson.encode({type = 'address_blocked', address = address, unknownKeys = unknownKeys, startedAt = fmt(startedAt), endsAt = fmt(endsAt)})) end
    out[#out + 1] = address
    out[#out + 1] = unknownKeys
    out[#out + 1] = startedAt
    out[#out + 1] = endsAt
  end
end
return out
`);
