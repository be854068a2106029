/**
 * `npm run bench`: keygate's throughput and latency against a bare proxy on the same
 * stack, and the in-process key verification rate. See bench/README.md for the cases
 * and how to read the figures.
 *
 *   node bench/run.js [--duration=10] [--rounds=3] [--warmup=5] [--rewarm=1] [--connections=50]
 *                     [--pairs=10] [--pairSeconds=3]
 *                     [--rate=0] [--verifySeconds=5] [--only=v,a,p,b,c,d,e,m] [--profile] [--save] [--shared]
 *
 * --pairs=N  after the rounds, each ratio with a target (c/b, d/c, e/c) is measured again in
 *            N adjacent pairs of --pairSeconds per case, and judged by their median
 *            (measurePairs says why); --pairs=0 judges the ratio over all rounds instead.
 *
 * (l), keygate (c) with a log line per request, runs only when --only names it.
 *
 * --profile  runs the bare proxy and keygate processes under `node --cpu-prof`
 *            (bench/results/profiles/<case>-<run pid>.cpuprofile)
 * --rate=N   offer N requests/s in total instead of as many as the case answers (to
 *            compare CPU per request at the same load, e.g. while profiling)
 * --save     also writes bench/results/<date>.json (<date>-2.json, ... if that exists)
 * --shared   lets every process share every core, as the bench did until 2026-12-07.
 *            By default (on 2 cores or more, with util-linux's `taskset`) the process under
 *            test has a core of its own (CPU 1) and the load generator and the upstream share
 *            the other (CPU 0): on 2 cores, three processes scheduled freely made a pair's
 *            ratio swing from 0.6 to 1.2 within minutes. Each round then prints how much of
 *            its core the process under test used: a ratio means the gateway's cost only
 *            while that process, not the load generator, is the one short of CPU.
 *
 * Everything is on 127.0.0.1. Every server is a child process that stops when the run
 * ends (or by itself after 10 minutes); the load generator (autocannon) runs in this
 * process. The cases run in rounds, back to back, each for a fixed time after a warm-up.
 */
import { execFileSync, fork } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import Redis from 'ioredis';
import { cpuSeconds, keygateProfile, machineInfo, machineTicks, REQUEST_PATH, startChild as startServer, UPSTREAM_BODY } from './common.js';
import { measureMemory } from './memory.js';
import { openRedisCaseBackends, REDIS_UNAVAILABLE, REDIS_URL } from './redis-case.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
/** Where results go; the test that runs the bench briefly points it elsewhere. */
const RESULTS_DIR = process.env.KEYGATE_BENCH_RESULTS_DIR ?? path.join(BENCH_DIR, 'results');

const TARGETS = { cOverB: 0.85, dOverC: 0.9, eOverC: 0.75, verificationsPerSecond: 500_000 };
/** The ratios with a target: name, numerator case, denominator case. */
const JUDGED = [
  ['c/b', 'c', 'b'],
  ['d/c', 'd', 'c'],
  ['e/c', 'e', 'c'],
];
/** Warm-up before each half of a pair (discarded): the connections are opened afresh. */
const PAIR_WARMUP_SECONDS = 0.5;
/** The cores of the load generator and upstream, and of the process under test (unless --shared): the first two this process may use. */
let LOAD_CORE = 0;
let TESTED_CORE = 1;
/** Below this share of its core, a pinned process under test was waiting for the load generator. */
const SATURATED = 0.9;

const options = parseArgs(process.argv.slice(2));
const children = new Set();
/** (e)'s database and a client that can list its backends (see postgresCpuSeconds), once (e) is up. */
let benchDatabase;

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (error) => {
    console.error(`bench failed: ${error instanceof Error ? error.stack : String(error)}`);
    await stopAll();
    process.exitCode = 1;
  },
);

async function main() {
  options.pin = !options.shared && pinnable();
  if (options.pin) pinProcess(process.pid, LOAD_CORE); // the upstream, forked later, inherits it
  const machine = { ...machineInfo(), loadAverageAfterRound: [] };
  printMachine(machine);
  const results = { date: new Date().toISOString(), machine, settings: { ...options, only: [...options.only], path: REQUEST_PATH }, cases: {}, verification: undefined, ratios: {}, notes: [] };
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'keygate-bench-'));
  const profileDir = path.join(RESULTS_DIR, 'profiles');
  if (options.profile) mkdirSync(profileDir, { recursive: true });
  const profiled = (id) => (options.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${id}-${process.pid}.cpuprofile`] : []);
  const cleanups = [];

  try {
    // (v) first, while nothing else runs on the machine's cores.
    if (options.only.has('v')) {
      const file = writeProfile(tmp, 'verify', { ...keygateProfile({ upstreamUrl: 'http://127.0.0.1:9', store: `sqlite:${path.join(tmp, 'verify.db')}`, counters: 'memory', limits: false }), keyCacheTtl: '1h' });
      console.log('(v) in-process verification of a cached key (shape check + hash + cache lookup by digest), one core ...');
      const v = await runVerification(file);
      results.verification = v;
      console.log(`    ${fmt(v.verificationsPerSecond)} verifications/s over ${v.seconds.toFixed(1)} s (${v.failed} failed)\n`);
    }

    // Every server starts first and stays up (idle when not measured), so the rounds
    // below can alternate between cases: drift in the machine's speed then shows up in
    // every case alike instead of in whichever case ran during it.
    const upstream = await startChild('upstream', 'upstream.js', []);
    cleanups.push(() => upstream.stop());
    // (a) and (b) carry a credential-shaped header too, so every case sends the same bytes.
    const stubCredential = { authorization: `Bearer kg_live_${'x'.repeat(30)}` };
    const targets = [];

    if (options.only.has('a')) {
      targets.push({ id: 'a', title: 'upstream reached directly', url: upstream.info.url, headers: stubCredential, pid: upstream.pid });
    }
    if (options.only.has('p')) {
      const replyFrom = await startChild('reply-from proxy', 'reply-from-proxy.js', [upstream.info.url], profiled('p'));
      cleanups.push(() => replyFrom.stop());
      targets.push({ id: 'p', title: 'Fastify + @fastify/reply-from proxy, no checks', url: replyFrom.info.url, headers: stubCredential, pid: replyFrom.pid });
    }
    if (options.only.has('b')) {
      const bare = await startChild('bare proxy', 'bare-proxy.js', [upstream.info.url], profiled('b'));
      cleanups.push(() => bare.stop());
      targets.push({ id: 'b', title: "bare proxy (keygate's stack: Fastify + undici dispatch), no checks", url: bare.info.url, headers: stubCredential, pid: bare.pid });
    }
    const startKeygate = async (id, title, profile, { discardStdout = false } = {}) => {
      const kg = await startChild(`keygate (${id})`, 'keygate.js', [writeProfile(tmp, id, profile)], profiled(id), { discardStdout });
      cleanups.push(() => kg.stop());
      console.log(`(${id}) keygate: store ${kg.info.store}, counters ${kg.info.counters}, log level ${kg.info.logLevel}, log.requests ${kg.info.logRequests}`);
      targets.push({ id, title, url: kg.info.url, headers: { authorization: `Bearer ${kg.info.secret}` }, child: kg, pid: kg.pid });
    };
    if (options.only.has('c')) {
      const profile = keygateProfile({ upstreamUrl: upstream.info.url, store: `sqlite:${path.join(tmp, 'c.db')}`, counters: 'memory', limits: false });
      await startKeygate('c', 'keygate, SQLite + memory counters, valid cached key', profile);
    }
    if (options.only.has('l')) {
      // As (c), with its request log on: one JSON line per request on stdout, a pipe read here and discarded.
      const profile = { ...keygateProfile({ upstreamUrl: upstream.info.url, store: `sqlite:${path.join(tmp, 'l.db')}`, counters: 'memory', limits: false }), log: { level: 'info', requests: true } };
      await startKeygate('l', 'keygate as (c), log.requests on, stdout a pipe', profile, { discardStdout: true });
    }
    if (options.only.has('d')) {
      const profile = keygateProfile({ upstreamUrl: upstream.info.url, store: `sqlite:${path.join(tmp, 'd.db')}`, counters: 'memory', limits: true });
      await startKeygate('d', 'keygate, SQLite + memory, 2 rate-limit windows + cost', profile);
    }
    if (options.only.has('e')) {
      const skipped = await startRedisCase(upstream.info.url, startKeygate, cleanups);
      if (skipped) {
        const note = `(e) skipped: ${skipped}`;
        console.log(note);
        results.notes.push(note);
        results.cases.e = { skipped };
      }
    }
    console.log('');

    for (const target of targets) await sanityCheck(target);
    const rounds = new Map(targets.map((t) => [t.id, []]));
    for (let round = 1; round <= options.rounds; round++) {
      // Each round in a different order, so no case always follows the same one.
      const order = round % 2 === 1 ? targets : [...targets].reverse();
      console.log(`round ${round} of ${options.rounds}`);
      for (const target of order) rounds.get(target.id).push(await measureRound(target, round === 1 ? options.warmup : options.rewarm));
      results.machine.loadAverageAfterRound.push(os.loadavg()[0]);
      console.log('');
    }
    for (const target of targets) results.cases[target.id] = aggregate(target, rounds.get(target.id));
    if (options.pairs > 0) results.pairs = await measurePairs(targets);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error) => console.warn(`cleanup: ${error.message}`));
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }

  results.machine.loadAverageAfter = os.loadavg();
  // (m) last, alone: memory is measured with every other server stopped (bench/memory.js).
  if (options.only.has('m')) {
    console.log('');
    results.memory = await measureMemory({}, children);
    console.log('');
  }
  const code = printSummary(results);
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(path.join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nresults written to ${path.relative(process.cwd(), path.join(RESULTS_DIR, 'latest.json'))}`);
  if (options.save) {
    // A second run on the same day is kept beside the first (<date>-2.json, ...), never over it.
    const day = results.date.slice(0, 10);
    let dated = path.join(RESULTS_DIR, `${day}.json`);
    for (let n = 2; existsSync(dated); n++) dated = path.join(RESULTS_DIR, `${day}-${n}.json`);
    writeFileSync(dated, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`and to ${path.relative(process.cwd(), dated)}`);
  }
  if (options.profile) console.log(`CPU profiles of the bare proxy and keygate processes: ${path.relative(process.cwd(), profileDir)}/<case>-${process.pid}.cpuprofile`);
  return code;
}

/**
 * (e): PostgreSQL store in a database created for this run, Redis counters under a prefix
 * of its own (both removed at the end: bench/redis-case.js). Returns why it is skipped,
 * or undefined once its keygate is up.
 */
async function startRedisCase(upstreamUrl, startKeygate, cleanups) {
  const backends = await openRedisCaseBackends();
  if (backends.skipped) return backends.skipped;
  benchDatabase = { admin: backends.admin, database: backends.database };
  // Registered first, so it runs after keygate (e) has stopped.
  cleanups.push(backends.close);
  const profile = keygateProfile({ upstreamUrl, store: backends.store, counters: backends.counters, limits: true });
  try {
    await startKeygate('e', 'keygate, PostgreSQL + Redis, same limits + cost as (d)', profile);
    return undefined;
  } catch (error) {
    if (REDIS_UNAVAILABLE.test(error.message)) return 'Redis counters backend not available in this build';
    throw error;
  }
}

/** One request before any load: the case must answer 200 with the upstream's body. */
async function sanityCheck({ id, url, headers }) {
  const response = await fetch(`${url}${REQUEST_PATH}`, { headers });
  const body = await response.text();
  if (response.status !== 200 || body !== UPSTREAM_BODY) throw new Error(`(${id}) sanity request got ${response.status} ${body.slice(0, 200)}`);
}

/**
 * The judged ratios, measured in adjacent pairs: the two cases of a ratio run back to back
 * for `pairSeconds` each (after a short warm-up), the order alternating from pair to pair,
 * `pairs` times. On a host whose speed drifts by 2x within minutes (bench/README.md), a
 * pair's two halves are seconds apart and see nearly the same host, while a round's cases
 * are up to a minute apart; the median of the pairs' ratios is then what one slow stretch
 * cannot move. Each pair's ratio is printed, so the spread is there to read.
 */
async function measurePairs(targets) {
  const byId = new Map(targets.map((t) => [t.id, t]));
  const pairs = {};
  for (const [name, num, den] of JUDGED) {
    const a = byId.get(num);
    const b = byId.get(den);
    if (!a || !b) continue;
    console.log(`pairs for ${name}: ${options.pairs} × (${den}) and (${num}) back to back, ${options.pairSeconds} s each after ${PAIR_WARMUP_SECONDS} s of warm-up, order alternating`);
    const ratios = [];
    const coreShares = [];
    const cpuRatios = [];
    let failed = 0;
    for (let i = 0; i < options.pairs; i++) {
      const order = i % 2 === 0 ? [b, a] : [a, b];
      const measuredPair = new Map();
      for (const target of order) measuredPair.set(target.id, await measureRound(target, PAIR_WARMUP_SECONDS, options.pairSeconds, { quiet: true }));
      const x = measuredPair.get(num);
      const y = measuredPair.get(den);
      failed += x.errors + x.timeouts + x.non2xx + y.errors + y.timeouts + y.non2xx;
      ratios.push(x.requestsPerSecond / y.requestsPerSecond);
      const busy = options.pin ? ` (cores busy ${percent(y.coreShare)}, ${percent(x.coreShare)})` : '';
      coreShares.push([y.coreShare, x.coreShare]);
      // The same ratio counted in CPU time: (den)'s CPU per request over (num)'s.
      if (x.cpuMicrosPerRequest && y.cpuMicrosPerRequest) cpuRatios.push(y.cpuMicrosPerRequest / x.cpuMicrosPerRequest);
      console.log(`  pair ${i + 1}: (${den}) ${fmt(y.requestsPerSecond)}, (${num}) ${fmt(x.requestsPerSecond)} req/s: ${(x.requestsPerSecond / y.requestsPerSecond).toFixed(2)}${busy}`);
    }
    pairs[name] = { ratios, median: median(ratios), quartiles: [quantile(ratios, 0.25), quantile(ratios, 0.75)], failed, seconds: options.pairSeconds, coreShares, cpuRatio: cpuRatios.length > 0 ? median(cpuRatios) : undefined };
  }
  console.log('');
  return pairs;
}

/** One round of one case: warm-up (discarded), then the measured run. */
async function measureRound({ id, url, headers, child, pid }, warmupSeconds, seconds = options.duration, { quiet = false } = {}) {
  const target = `${url}${REQUEST_PATH}`;
  if (warmupSeconds > 0) await load(target, headers, warmupSeconds);
  const redisBefore = !quiet && child?.info.counters === 'redis' ? await redisSnapshot(child) : undefined;
  const postgresBefore = redisBefore ? await postgresCpuSeconds() : undefined;
  const cpuBefore = cpuSeconds(pid);
  const machineBefore = machineTicks();
  const r = await load(target, headers, seconds);
  const machineAfter = machineTicks();
  const cpuAfter = cpuSeconds(pid);
  const postgresAfter = postgresBefore ? await postgresCpuSeconds() : undefined;
  const redisAfter = redisBefore ? await redisSnapshot(child) : undefined;
  const round = {
    requestsPerSecond: r.requests.total / r.duration,
    requests: r.requests.total,
    seconds: r.duration,
    latencyMs: { mean: r.latency.mean, p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
    errors: r.errors,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
    // CPU time of the process under test per request: steadier than req/s on a busy machine.
    cpuMicrosPerRequest: cpuBefore !== undefined && cpuAfter !== undefined ? ((cpuAfter - cpuBefore) * 1e6) / Math.max(1, r.requests.total) : undefined,
    // The share of one core the process under test used: near 1 when it, not the load
    // generator or the upstream, is what bounds the rate.
    coreShare: cpuBefore !== undefined && cpuAfter !== undefined ? (cpuAfter - cpuBefore) / r.duration : undefined,
  };
  // The share of the machine's CPU time (all cores) that went unused while the case ran:
  // a case that leaves more of it idle than another is waiting (on Redis, say), not short of CPU.
  if (machineBefore && machineAfter && machineAfter.total > machineBefore.total) round.machineIdle = (machineAfter.idle - machineBefore.idle) / (machineAfter.total - machineBefore.total);
  if (redisBefore && redisAfter) round.redis = redisDiff(redisBefore, redisAfter);
  if (postgresBefore && postgresAfter) round.postgres = { cpuSeconds: postgresDiff(postgresBefore, postgresAfter), backends: postgresAfter.size };
  if (quiet) return round;
  console.log(
    `  (${id}) ${fmt(round.requestsPerSecond).padStart(7)} req/s  p50 ${ms(round.latencyMs.p50)}  p99 ${ms(round.latencyMs.p99)}  errors ${round.errors}  timeouts ${round.timeouts}  non-2xx ${round.non2xx}  cpu ${micros(round.cpuMicrosPerRequest)}/req` +
      (round.machineIdle === undefined ? '' : `  machine idle ${percent(round.machineIdle)}`) +
      (options.pin && round.coreShare !== undefined && id !== 'a' ? `  its core busy ${percent(round.coreShare)}` : ''),
  );
  return round;
}

/** A case over all its rounds: requests/s over the whole measured time, latencies as the median round's. */
function aggregate({ id, title }, rounds) {
  const requests = sum(rounds.map((r) => r.requests));
  const seconds = sum(rounds.map((r) => r.seconds));
  const result = {
    title,
    requestsPerSecond: requests / seconds,
    requests,
    seconds,
    latencyMs: { p50: median(rounds.map((r) => r.latencyMs.p50)), p99: median(rounds.map((r) => r.latencyMs.p99)), max: Math.max(...rounds.map((r) => r.latencyMs.max)) },
    errors: sum(rounds.map((r) => r.errors)),
    timeouts: sum(rounds.map((r) => r.timeouts)),
    non2xx: sum(rounds.map((r) => r.non2xx)),
    cpuMicrosPerRequest: rounds.every((r) => r.cpuMicrosPerRequest !== undefined) ? sum(rounds.map((r) => r.cpuMicrosPerRequest * r.requests)) / requests : undefined,
    machineIdle: rounds.every((r) => r.machineIdle !== undefined) ? sum(rounds.map((r) => r.machineIdle * r.seconds)) / seconds : undefined,
    rounds,
  };
  if (rounds.every((r) => r.postgres)) {
    result.postgres = {
      // The PostgreSQL backends' own CPU time per request, on a local server: it shares the cores too.
      serverCpuMicrosPerRequest: (sum(rounds.map((r) => r.postgres.cpuSeconds)) * 1e6) / requests,
      backends: Math.max(...rounds.map((r) => r.postgres.backends)),
    };
  }
  if (rounds.every((r) => r.redis)) {
    const total = (field) => sum(rounds.map((r) => r.redis[field]));
    const byCommand = {};
    for (const r of rounds) for (const [name, calls] of Object.entries(r.redis.serverCommands)) byCommand[name] = (byCommand[name] ?? 0) + calls;
    const serverCommandsPerRequest = Object.fromEntries(
      Object.entries(byCommand)
        .sort((x, y) => y[1] - x[1])
        .map(([name, calls]) => [name, calls / requests]),
    );
    result.redis = {
      requests,
      roundTripsPerRequest: total('roundTrips') / requests,
      commandsPerRequest: total('commands') / requests,
      serverCommandsPerRequest,
      clientsConnected: Math.max(...rounds.map((r) => r.redis.connectedClients)),
      // Redis's own CPU time (all its threads) per request: it shares the machine's cores.
      serverCpuMicrosPerRequest: (total('cpuSeconds') * 1e6) / requests,
    };
  }
  void id;
  return result;
}

function load(url, headers, seconds) {
  return autocannon({ url, connections: options.connections, pipelining: 1, duration: seconds, headers, timeout: 10, ...(options.rate ? { overallRate: options.rate } : {}) });
}

/** Redis traffic counted in the keygate process, and Redis's own command counts. */
async function redisSnapshot(child) {
  const client = await child.request('redis-traffic');
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const stats = await redis.info('commandstats');
    const clients = await redis.info('clients');
    const cpu = await redis.info('cpu');
    const cpuField = (name) => Number(new RegExp(`${name}:([0-9.]+)`).exec(cpu)?.[1] ?? 0);
    const calls = {};
    for (const line of stats.split('\n')) {
      const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
      if (m && m[1] !== 'info') calls[m[1]] = Number(m[2]);
    }
    const connected = Number(/connected_clients:(\d+)/.exec(clients)?.[1] ?? 0);
    return { client, serverCalls: calls, connectedClients: connected, cpuSeconds: cpuField('used_cpu_user') + cpuField('used_cpu_sys') };
  } finally {
    redis.disconnect();
  }
}

/**
 * CPU seconds so far of each PostgreSQL backend connected to (e)'s database, by pid
 * (/proc: only for a server on this machine; undefined where none can be read).
 */
async function postgresCpuSeconds() {
  if (!benchDatabase) return undefined;
  const { rows } = await benchDatabase.admin.query('SELECT pid FROM pg_stat_activity WHERE datname = $1', [benchDatabase.database]);
  const seconds = new Map();
  for (const { pid } of rows) {
    const spent = cpuSeconds(pid);
    if (spent !== undefined) seconds.set(pid, spent);
  }
  return seconds.size > 0 ? seconds : undefined;
}

/** What the backends spent between two readings (one that connected meanwhile, all of its time). */
function postgresDiff(before, after) {
  let spent = 0;
  for (const [pid, seconds] of after) spent += seconds - (before.get(pid) ?? 0);
  return spent;
}

function redisDiff(before, after) {
  const serverCommands = {};
  for (const [name, calls] of Object.entries(after.serverCalls)) {
    const added = calls - (before.serverCalls[name] ?? 0);
    if (added > 0) serverCommands[name] = added;
  }
  return {
    commands: after.client.commands - before.client.commands,
    roundTrips: after.client.roundTrips - before.client.roundTrips,
    serverCommands,
    connectedClients: after.connectedClients,
    cpuSeconds: after.cpuSeconds - before.cpuSeconds,
  };
}

async function runVerification(file) {
  const child = fork(path.join(BENCH_DIR, 'verify.js'), [file, String(1000), String(options.verifySeconds * 1000)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  try {
    return await new Promise((resolve, reject) => {
      child.on('message', (message) => {
        if (message.type === 'result') resolve(message);
        else if (message.type === 'error') reject(new Error(`(v): ${message.message}`));
      });
      child.once('exit', (code) => reject(new Error(`(v) exited with ${code} before reporting`)));
    });
  } finally {
    children.delete(child);
  }
}

/** A bench server, stopped with the others if the run fails. */
async function startChild(name, script, args, execArgv = [], { discardStdout = false } = {}) {
  const child = await startServer(script, args, { name, execArgv, children, discardStdout });
  if (options.pin && name !== 'upstream') pinProcess(child.pid, TESTED_CORE);
  return child;
}

/** Whether the process under test can have a core of its own: 2 cores or more, and taskset; says why not. */
function pinnable() {
  if (os.cpus().length < 2) {
    console.log('layout: every process shares the one core (a core of its own for the process under test needs 2)');
    return false;
  }
  let allowed;
  try {
    // "pid 123's current affinity list: 0,1" (or "0-3,6"): the cores this process may use.
    allowed = cpuList(execFileSync('taskset', ['-cp', String(process.pid)], { encoding: 'utf8' }).split(':').pop());
  } catch {
    console.log("layout: every process shares every core (util-linux's taskset, which gives the process under test a core of its own, is not here)");
    return false;
  }
  if (allowed.length < 2) {
    console.log(`layout: every process shares the one core this process may use (CPU ${allowed.join(', ')})`);
    return false;
  }
  [LOAD_CORE, TESTED_CORE] = allowed;
  return true;
}

/** The cores of a CPU list as taskset prints it ("0,2-3"), in order. */
function cpuList(text) {
  return text
    .trim()
    .split(',')
    .flatMap((part) => {
      const [from, to = from] = part.split('-').map(Number);
      return Array.from({ length: to - from + 1 }, (_, i) => from + i);
    })
    .filter(Number.isInteger);
}

/** Binds every thread of `pid` (and the threads it starts later) to one core. */
function pinProcess(pid, core) {
  try {
    execFileSync('taskset', ['-a', '-cp', String(core), String(pid)], { stdio: 'ignore' });
  } catch (error) {
    throw new Error(`taskset could not bind process ${pid} to CPU ${core} (run with --shared to leave every process on every core): ${error instanceof Error ? error.message : String(error)}`);
  }
}

async function stopAll() {
  for (const child of [...children]) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    children.delete(child);
  }
}

function writeProfile(dir, id, profile) {
  // JSON is YAML: the file keygate reads is the object printed here.
  const file = path.join(dir, `${id}.keygate.yaml`);
  writeFileSync(file, `${JSON.stringify(profile, null, 2)}\n`);
  return file;
}

function printMachine(m) {
  console.log('keygate bench');
  console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}`);
  console.log(`load average before the run: ${m.loadAverageBefore.map((l) => l.toFixed(2)).join(' ')}`);
  console.log(
    `settings: ${options.connections} connections, pipelining 1, GET ${REQUEST_PATH}, all on 127.0.0.1; ${options.rounds} rounds, each case ${options.duration} s measured per round after a warm-up (${options.warmup} s in round 1, ${options.rewarm} s after); then ${options.pairs} pairs per judged ratio, ${options.pairSeconds} s per case`,
  );
  console.log(
    options.pin
      ? `note: the process under test runs on CPU ${TESTED_CORE} alone; the load generator (autocannon, this process) and the upstream share CPU ${LOAD_CORE}.`
      : `note: the load generator (autocannon, this process), the process under test and the upstream (each its own process) share these ${m.cores} cores, so every figure includes that contention.`,
  );
  console.log('');
}

function printSummary(results) {
  const { cases, verification } = results;
  const measured = (id) => (cases[id] && !cases[id].skipped ? cases[id] : undefined);
  console.log(`summary (${options.rounds} rounds × ${options.duration} s per case; req/s over all rounds, p50/p99 of the median round)`);
  console.log(`  ${'case'.padEnd(58)} ${'req/s'.padStart(7)} ${'p50'.padStart(9)} ${'p99'.padStart(9)} ${'errors'.padStart(7)} ${'non-2xx'.padStart(7)} ${'cpu/req'.padStart(8)}   req/s per round`);
  for (const [id, c] of Object.entries(cases)) {
    if (c.skipped) {
      console.log(`  (${id}) skipped: ${c.skipped}`);
      continue;
    }
    console.log(
      `  (${id}) ${c.title.padEnd(54)} ${fmt(c.requestsPerSecond).padStart(7)} ${ms(c.latencyMs.p50).padStart(9)} ${ms(c.latencyMs.p99).padStart(9)} ${String(c.errors + c.timeouts).padStart(7)} ${String(c.non2xx).padStart(7)} ${micros(c.cpuMicrosPerRequest).padStart(8)}   ${c.rounds.map((r) => fmt(r.requestsPerSecond)).join(', ')}`,
    );
  }
  const pairs = results.pairs ?? {};
  console.log(`ratios of requests/s over the rounds (each round's in brackets, then their median)${Object.keys(pairs).length > 0 ? '; judged in pairs, below' : ''}`);
  const ratio = (name, num, den, target) => {
    const a = measured(num);
    const b = measured(den);
    if (!a || !b) {
      console.log(`  ${name}: not measured`);
      return;
    }
    // A case with failed requests did not measure what it claims: its ratio judges nothing.
    const failed = [[num, a], [den, b]].filter(([, c]) => c.errors + c.timeouts + c.non2xx > 0);
    if (failed.length > 0) {
      const why = failed.map(([id, c]) => `(${id}) had ${fmt(c.errors + c.timeouts + c.non2xx)} failed requests (errors, timeouts, non-2xx)`).join(', ');
      console.log(`  ${name}: not judged: ${why}`);
      results.ratios[name] = { invalid: why };
      return;
    }
    const value = a.requestsPerSecond / b.requestsPerSecond;
    const perRound = a.rounds.map((r, i) => r.requestsPerSecond / b.rounds[i].requestsPerSecond);
    const medianOfRounds = median(perRound);
    const paired = pairs[name];
    // With pairs, they alone are judged (see measurePairs); without (--pairs=0), the ratio over all rounds.
    const judgedHere = target !== undefined && !paired;
    const judged = target === undefined ? '(reference, no target)' : paired ? '' : `target ≥ ${target}: ${value >= target ? 'met' : 'NOT met'}`;
    results.ratios[name] = judgedHere ? { value, perRound, medianOfRounds, target, met: value >= target } : { value, perRound, medianOfRounds };
    console.log(`  ${name} = ${value.toFixed(3)}  [${perRound.map((x) => x.toFixed(2)).join(', ')}; median ${medianOfRounds.toFixed(2)}]  ${judged}`.trimEnd());
  };
  ratio('c/b', 'c', 'b', TARGETS.cOverB);
  ratio('c/p', 'c', 'p', undefined);
  ratio('l/c', 'l', 'c', undefined);
  ratio('d/c', 'd', 'c', TARGETS.dOverC);
  ratio('e/c', 'e', 'c', TARGETS.eOverC);
  ratio('e/d', 'e', 'd', undefined);
  const targetOf = { 'c/b': TARGETS.cOverB, 'd/c': TARGETS.dOverC, 'e/c': TARGETS.eOverC };
  if (Object.keys(pairs).length > 0) {
    console.log(`ratios of requests/s in adjacent pairs (${options.pairs} pairs × ${options.pairSeconds} s per case, back to back, order alternating): judged by the median`);
    for (const [name, p] of Object.entries(pairs)) {
      const target = targetOf[name];
      const range = `quartiles ${p.quartiles.map((x) => x.toFixed(2)).join('–')}; ${p.ratios.filter((x) => x >= target).length} of ${p.ratios.length} pairs ≥ ${target}`;
      if (p.failed > 0) {
        p.invalid = `${fmt(p.failed)} failed requests (errors, timeouts, non-2xx) in its pairs`;
        console.log(`  ${name}: median ${p.median.toFixed(3)} (${range})  not judged: ${p.invalid}`);
        continue;
      }
      p.target = target;
      p.met = p.median >= target;
      console.log(`  ${name}: median ${p.median.toFixed(3)} (${range})  target ≥ ${target}: ${p.met ? 'met' : 'NOT met'}`);
      const [den, num] = [name.slice(2), name.slice(0, 1)];
      if (p.cpuRatio !== undefined) console.log(`      in CPU time per request, (${den})'s over (${num})'s: median ${p.cpuRatio.toFixed(3)}`);
      if (options.pin) {
        const shares = p.coreShares.map(([denShare]) => denShare).filter((share) => share !== undefined);
        const least = Math.min(...shares);
        console.log(
          `      (${den})'s core busy ${percent(least)}–${percent(Math.max(...shares))} in its halves` +
            (median(shares) < SATURATED ? `: under ${percent(SATURATED)}, so (${den}) waited on the load generator and the ratio is higher than the gateways' costs alone: read the CPU-time one` : ''),
        );
      }
    }
  }
  if (verification) {
    const met = verification.verificationsPerSecond >= TARGETS.verificationsPerSecond;
    results.verification.target = TARGETS.verificationsPerSecond;
    results.verification.met = met;
    console.log(`verification (v): ${fmt(verification.verificationsPerSecond)}/s on one core  target ≥ ${fmt(TARGETS.verificationsPerSecond)}: ${met ? 'met' : 'NOT met'}`);
  }
  if (results.memory) console.log(`memory (m): ${fmt(results.memory.heapBytesPerKey)} bytes of heap per key in use (${fmt(results.memory.keys)} keys; no target)`);
  const e = cases.e;
  if (e?.redis) {
    const server = Object.entries(e.redis.serverCommandsPerRequest);
    console.log(`Redis per request (e): ${e.redis.roundTripsPerRequest.toFixed(3)} round trips, ${e.redis.commandsPerRequest.toFixed(3)} commands (counted in the keygate process); Redis's own CPU ${micros(e.redis.serverCpuMicrosPerRequest)}/req`);
    console.log(
      `  Redis's INFO commandstats per request, commands run inside Lua scripts included (and any other client's: up to ${e.redis.clientsConnected} clients were connected): ` +
        `${sum(server.map(([, n]) => n)).toFixed(2)} = ${server.map(([name, n]) => `${name} ${n.toFixed(2)}`).join(', ')}`,
    );
  } else if (e?.skipped) console.log(`Redis round trips per request (e): not measured (${e.skipped})`);
  if (e?.postgres) console.log(`PostgreSQL per request (e): its backends' own CPU ${micros(e.postgres.serverCpuMicrosPerRequest)}/req (${e.postgres.backends} connected to the run's database)`);
  const idle = Object.entries(results.cases).filter(([, c]) => c.machineIdle !== undefined);
  if (idle.length > 0) console.log(`machine idle while each case was measured (all cores; more idle than another case: waiting, not short of CPU): ${idle.map(([id, c]) => `(${id}) ${percent(c.machineIdle)}`).join(', ')}`);
  const { loadAverageBefore, loadAverageAfter, loadAverageAfterRound, cores } = results.machine;
  console.log(
    `load average (1, 5, 15 min) before the run: ${loadAverageBefore.map((l) => l.toFixed(2)).join(' ')}; after each round (1 min): ${loadAverageAfterRound.map((l) => l.toFixed(2)).join(', ')}; after: ${loadAverageAfter.map((l) => l.toFixed(2)).join(' ')}`,
  );
  // The bench itself keeps about 3 processes busy; more than that is someone else.
  if (loadAverageBefore[0] > 1 || Math.max(...loadAverageAfterRound) > 3.5) {
    const note = `note: this ${cores}-core machine was not otherwise idle (load averages above; the bench itself accounts for about 2-3): req/s may be lower and noisier than on a quiet machine; ratios and cpu/req hold up better`;
    results.notes.push(note);
    console.log(note);
  }
  // Figures never fail the run: only a broken bench does.
  return 0;
}

function parseArgs(argv) {
  const out = { duration: 10, warmup: 5, rewarm: 1, rounds: 3, pairs: 10, pairSeconds: 3, connections: 50, rate: 0, verifySeconds: 5, only: new Set(['v', 'a', 'p', 'b', 'c', 'd', 'e', 'm']), profile: false, save: false, shared: false, pin: false };
  const numeric = new Set(['duration', 'warmup', 'rewarm', 'rounds', 'pairs', 'pairSeconds', 'connections', 'rate', 'verifySeconds']);
  for (const arg of argv) {
    const [name, value] = arg.replace(/^--/, '').split('=');
    if (numeric.has(name) && Number.isFinite(Number(value))) out[name] = Number(value);
    else if (name === 'only') out.only = new Set(String(value).split(','));
    else if (name === 'profile') out.profile = true;
    else if (name === 'save') out.save = true;
    else if (name === 'shared') out.shared = true;
    else throw new Error(`unknown option ${arg} (see bench/run.js)`);
  }
  return out;
}

function sum(values) {
  return values.reduce((a, b) => a + b, 0);
}

/** The q-quantile by linear interpolation between the sorted values (q 0.25: the lower quartile). */
function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const low = Math.floor(at);
  return sorted[low] + (sorted[Math.min(low + 1, sorted.length - 1)] - sorted[low]) * (at - low);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}


function micros(n) {
  return n === undefined ? 'n/a' : `${Math.round(n)} µs`;
}

function percent(share) {
  return `${Math.round(share * 100)}%`;
}

function fmt(n) {
  return Math.round(n).toLocaleString('en-US');
}

function ms(n) {
  return `${Number(n).toFixed(n < 10 ? 2 : 1)} ms`;
}
