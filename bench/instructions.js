/**
 * Instructions per request, counted with callgrind: the figures in bench/README.md
 * ("Where keygate's cost lies"). Not part of `npm run bench`: it needs valgrind
 * (`apt-get install valgrind`) and a build (`npm run build`), and takes a few minutes
 * per case.
 *
 *   node bench/instructions.js <b|c|d|e|l> [--warmup=20000] [--requests=5000] [--dump=<file>] [--cache-sim [--ll-kib=1024]] [--of=proxy|upstream]
 *   node bench/instructions.js authorize [--requests=300000]
 *
 * b, c, d, e, l: the bare proxy or keygate (the profiles of `npm run bench`; l's log lines go
 *   to a pipe this process reads and discards) runs under
 *   callgrind with counting off; this process sends `warmup` requests one at a time,
 *   then counts the next `requests` and reports the main thread's instructions per
 *   request (and, apart, the other threads': libuv's pool, V8's compiler and GC helpers). One at a time, so batching does not blur the figure; the store flush is
 *   turned down to once in 10 minutes and the key cache kept for an hour, so neither
 *   lands in the counted window.
 * e: PostgreSQL in a database created for the run and dropped after, Redis counters under
 *   a prefix of the run's own whose keys are deleted after (bench/redis-case.js, as
 *   `npm run bench` does; KEYGATE_BENCH_POSTGRES_URL and KEYGATE_BENCH_REDIS_URL point
 *   elsewhere). One request at a time, each admission is its own Redis batch (one round
 *   trip per request); under load the admissions that arrive while a batch is on its way
 *   share the next one, so this is (e)'s cost per request with no batching at all.
 *   --dump keeps the counted window's callgrind dump, for `callgrind_annotate <file>`
 *   (V8's builtins and Node's C++ are named in it; JIT-compiled JavaScript is not), and
 *   beside it `<file>.map`, V8's map of its compiled code (`--perf-basic-prof`), with
 *   which `node bench/annotate.js <file>` names the JavaScript functions too.
 * --cache-sim: callgrind simulates the caches too (`--cache-sim=yes`), and the misses per
 *   request are printed beside the instructions: what the instruction count cannot see of
 *   a larger working set. Sizes are given, not read from this VM (whose CPUID reports a
 *   512 MB direct-mapped L3): I1 and D1 32 KiB 8-way, as on AMD Zen, and a last level (LL)
 *   of --ll-kib (1024 by default: Zen's private L2 per core; what misses it goes to the L3
 *   the neighbours share, or to memory). Only two levels can be simulated. The simulation
 *   is about twice as slow, and V8's collections (some timed) take far more of the window
 *   than in a plain count: read the collector's misses apart (bench/README.md).
 * --of=upstream: counts the upstream (bench/upstream.js) instead, with the proxy of the
 *   case running normally in front of it: what the headers a proxy adds cost the API
 *   behind it (keygate's eight X-Keygate-* and X-Forwarded-* headers in (c)).
 * authorize: `pipeline.authorize` for a cached key in a loop, in one process with
 *   `--single-threaded`; the count of a long run minus that of a short one.
 *
 * Everything listens on 127.0.0.1; every process stops when this one ends.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from 'undici';
import { keygateProfile, REQUEST_PATH, startChild as startServer } from './common.js';
import { openRedisCaseBackends } from './redis-case.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const VALGRIND = '/usr/bin/valgrind';
/** V8's generic path for symbol-keyed literal fields: present only in the slow mode (bench/README.md). */
const SLOW_MODE_MARK = 'Runtime_DefineKeyedOwnPropertyInLiteral';
/**
 * V8 writes /tmp/perf-<pid>.map, where each compiled function lies. Its own log goes to
 * /dev/null (else an isolate-*.log in the working directory; with --no-logfile-per-isolate
 * as well, V8 printed it to stdout, into the run's output).
 */
const CODE_MAP_FLAGS = ['--perf-basic-prof', '--logfile=/dev/null'];

const USAGE =
  'usage: node bench/instructions.js <b|c|d|e|l|authorize> [--warmup=N] [--requests=N] [--dump=<file>] [--cache-sim [--ll-kib=N]] [--of=proxy|upstream]\n' +
  '  e (PostgreSQL + Redis): one request at a time, so each is its own Redis batch (under load, batches are shared)';
const [which, ...rest] = process.argv.slice(2);
const options = Object.fromEntries(rest.map((arg) => arg.replace(/^--/, '').split('=')));
const warmup = count('warmup', 20_000);
const requests = count('requests', which === 'authorize' ? 300_000 : 5_000);
if (!['b', 'c', 'd', 'e', 'l', 'authorize'].includes(which) || Object.keys(options).some((name) => !['warmup', 'requests', 'dump', 'cache-sim', 'll-kib', 'of'].includes(name))) stop(USAGE);
if ('cache-sim' in options && options['cache-sim'] !== undefined) stop(`--cache-sim takes no value\n${USAGE}`);
const cacheSim = 'cache-sim' in options;
const llKiB = options['ll-kib'] === undefined ? 1024 : Number(options['ll-kib']);
if (!Number.isInteger(llKiB) || llKiB < 64 || (llKiB & (llKiB - 1)) !== 0 || ('ll-kib' in options && !cacheSim)) stop(`--ll-kib must be a power of two, at least 64, with --cache-sim\n${USAGE}`);
/** callgrind's cache simulation, sizes as described at the top. */
const CACHE_SIM_FLAGS = ['--cache-sim=yes', '--I1=32768,8,64', '--D1=32768,8,64', `--LL=${llKiB * 1024},16,64`];
const counted = options.of ?? 'proxy';
if (!['proxy', 'upstream'].includes(counted) || (counted === 'upstream' && which === 'authorize')) stop(`--of must be proxy or upstream (not with authorize)\n${USAGE}`);
if ('dump' in options && !options.dump) stop(`--dump needs a file name: --dump=<file>\n${USAGE}`);
if (!existsSync(path.join(BENCH_DIR, '..', 'dist', 'serve.js'))) stop('dist/ is missing: run `npm run build` first');
try {
  execFileSync(VALGRIND, ['--version'], { stdio: 'ignore' });
} catch {
  stop(`${VALGRIND} is missing: apt-get install valgrind`);
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'keygate-instructions-'));
try {
  if (which === 'authorize') await countAuthorize(requests);
  else await countProxy(which, warmup, requests);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

function count(name, fallback) {
  const value = options[name] === undefined ? fallback : Number(options[name]);
  if (!Number.isInteger(value) || value < 1) stop(`--${name} must be a whole number of requests, at least 1\n${USAGE}`);
  return value;
}

function stop(message) {
  console.error(message);
  process.exit(2);
}

async function countProxy(kind, warmup, requests) {
  let backends;
  if (kind === 'e') {
    backends = await openRedisCaseBackends();
    if (backends.skipped) {
      console.error(`(e) cannot run: ${backends.skipped}`);
      process.exitCode = 2;
      return;
    }
  }
  const upstream = await startChild('upstream.js', [], counted === 'upstream');
  const proxyCounted = counted === 'proxy';
  let proxy;
  try {
    if (kind === 'b') proxy = await startChild('bare-proxy.js', [upstream.info.url], proxyCounted);
    else {
      const file = path.join(tmp, 'profile.yaml');
      const stores = backends ? { store: backends.store, counters: backends.counters } : { store: `sqlite:${path.join(tmp, 'keygate.db')}`, counters: 'memory' };
      const profile = keygateProfile({ upstreamUrl: upstream.info.url, ...stores, limits: kind === 'd' || kind === 'e' });
      // The key stays cached through the count. With the default 30 s, which the warm-up
      // outlasts under callgrind, the first lookup after it took the store's path at the
      // start of the counted window: V8 then deoptimized the gateway's request handler
      // and the pipeline, and part of the window ran unoptimized (about 4,000
      // instructions per request more). Real runs pay for that once per 30 s, not per request.
      writeFileSync(file, JSON.stringify({ ...profile, keyCacheTtl: '1h', ...(kind === 'l' ? { log: { level: 'info', requests: true } } : {}) }));
      // bench/keygate.js's count of Redis traffic (for run.js) stays out of what is counted.
      proxy = await startChild('keygate.js', [file], proxyCounted, { KEYGATE_BENCH_FLUSH_MS: '600000', KEYGATE_BENCH_REDIS_TRAFFIC: 'off' }, kind === 'l');
    }
    const client = new Client(proxy.info.url, { pipelining: 1 });
    const authorization = `Bearer ${proxy.info.secret ?? `kg_live_${'x'.repeat(30)}`}`;
    const send = async (n) => {
      for (let i = 0; i < n; i++) {
        const response = await client.request({ path: REQUEST_PATH, method: 'GET', headers: { authorization } });
        await response.body.dump();
        if (response.statusCode !== 200) throw new Error(`(${kind}) answered ${response.statusCode}`);
      }
    };
    const target = proxyCounted ? proxy : upstream;
    const what = proxyCounted ? `(${kind})` : `the upstream behind (${kind})`;
    console.log(`${what}: ${warmup} requests of warm-up under callgrind${cacheSim ? ' (caches simulated)' : ''} ...`);
    await send(warmup);
    execFileSync('callgrind_control', ['--instr=on', String(target.pid)], { stdio: 'ignore' });
    await send(requests);
    execFileSync('callgrind_control', ['--instr=off', String(target.pid)], { stdio: 'ignore' });
    execFileSync('callgrind_control', ['--dump', String(target.pid)], { stdio: 'ignore' });
    await client.close();
    // The dump holds one file per thread; thread 1 is the event loop.
    const main = readdirSync(tmp).filter((f) => /^callgrind\.out\.\d+\.1-01$/.test(f));
    if (main.length !== 1) throw new Error(`expected one main-thread dump in ${tmp}, found ${main.length}`);
    const file = path.join(tmp, main[0]);
    const total = totalOf(file);
    if (options.dump) {
      copyFileSync(file, options.dump);
      copyFileSync(`/tmp/perf-${target.pid}.map`, `${options.dump}.map`);
      rmSync(`/tmp/perf-${target.pid}.map`, { force: true });
      writeFileSync(`${options.dump}.json`, JSON.stringify({ case: proxyCounted ? kind : `${kind}-upstream`, requests }));
      console.log(`${what} callgrind dump of the counted window: ${options.dump} (by function: node bench/annotate.js ${options.dump})`);
    }
    // The slow mode's mark, in instructions per request (its own cost, a fraction of what the mode adds).
    const annotated = execFileSync('callgrind_annotate', ['--threshold=100', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
    const markLine = annotated.split('\n').find((line) => line.includes(SLOW_MODE_MARK));
    const mark = markLine ? Number(markLine.trim().split(/\s+/)[0].replace(/,/g, '')) / requests : 0;
    const slow = mark > 100 ? `; ${SLOW_MODE_MARK} at ${fmt(mark)} per request: this process is in V8's slow mode (bench/README.md), run again` : '';
    console.log(`${what} ${fmt(total / requests)} instructions per request (main thread, ${requests} requests)${slow}`);
    if (cacheSim) console.log(`${what} per request (LL ${llKiB} KiB): ${cacheMisses(file, requests)}`);
    // The other threads (libuv's pool, V8's compiler and GC helpers), which the figure above leaves out.
    const others = readdirSync(tmp).filter((f) => /^callgrind\.out\.\d+\.\d+-\d+$/.test(f) && f !== main[0]);
    const otherTotal = others.reduce((sum, f) => sum + (Number(/^totals: (\d+)/m.exec(readFileSync(path.join(tmp, f), 'utf8'))?.[1]) || 0), 0);
    console.log(`${what} other threads (${others.length}): ${fmt(otherTotal / requests)} instructions per request`);
  } finally {
    await proxy?.stop();
    await upstream.stop();
    await backends?.close();
  }
}

async function countAuthorize(requests) {
  const short = Math.max(1, Math.round(requests / 3));
  const file = path.join(tmp, 'profile.yaml');
  const profile = keygateProfile({ upstreamUrl: 'http://127.0.0.1:9', store: `sqlite:${path.join(tmp, 'verify.db')}`, counters: 'memory', limits: false });
  writeFileSync(file, JSON.stringify({ ...profile, keyCacheTtl: '1h' }));
  const run = (n) => {
    const out = path.join(tmp, `authorize.${n}.out`);
    rmSync(path.join(tmp, 'verify.db'), { force: true });
    execFileSync(VALGRIND, ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, '--single-threaded', path.join(BENCH_DIR, 'verify.js'), file, '--authorize', String(n)], { stdio: 'ignore' });
    return totalOf(out);
  };
  console.log(`pipeline.authorize, ${short} and ${short + requests} calls under callgrind ...`);
  const perCall = (run(short + requests) - run(short)) / requests;
  console.log(`pipeline.authorize of a cached key: ${fmt(perCall)} instructions per call`);
}

/**
 * Cache misses per request from a dump made with --cache-sim=yes: first-level
 * instruction (I1) and data (D1: reads + writes) misses, and last-level (LL) misses,
 * which go to memory. Also data accesses, to set the misses against.
 */
function cacheMisses(file, requests) {
  const text = readFileSync(file, 'utf8');
  const events = /^events: (.+)$/m.exec(text)?.[1].trim().split(/\s+/);
  const totals = /^totals: (.+)$/m.exec(text)?.[1].trim().split(/\s+/).map(Number);
  if (!events || !totals) throw new Error(`no events or totals in ${file}`);
  const of = (name) => totals[events.indexOf(name)] ?? 0;
  const per = (n) => fmt(n / requests);
  return [
    `data reads ${per(of('Dr'))}, writes ${per(of('Dw'))}`,
    `I1 misses ${per(of('I1mr'))}`,
    `D1 misses ${per(of('D1mr') + of('D1mw'))} (reads ${per(of('D1mr'))}, writes ${per(of('D1mw'))})`,
    `LL misses ${per(of('ILmr') + of('DLmr') + of('DLmw'))} (instructions ${per(of('ILmr'))}, data ${per(of('DLmr') + of('DLmw'))})`,
  ].join('; ');
}

/** The instruction total of a callgrind dump. */
function totalOf(file) {
  const total = Number(/^totals: (\d+)/m.exec(readFileSync(file, 'utf8'))?.[1]);
  if (!Number.isFinite(total)) throw new Error(`no instruction total in ${file}`);
  return total;
}

/** A bench server; under callgrind (counting off until turned on) when asked. */
function startChild(script, args, underCallgrind, env = {}, discardStdout = false) {
  // Under valgrind everything is ~50 times slower: every server lives an hour, not the
  // runner's 10 minutes.
  const lifetime = { env: { ...process.env, KEYGATE_BENCH_LIFETIME_MS: String(60 * 60_000), ...env } };
  if (!underCallgrind) return startServer(script, args, { ...lifetime, discardStdout });
  return startServer(script, args, {
    ...lifetime,
    discardStdout,
    execPath: VALGRIND,
    execArgv: ['--quiet', '--tool=callgrind', ...(cacheSim ? CACHE_SIM_FLAGS : []), '--separate-threads=yes', '--instr-atstart=no', `--callgrind-out-file=${path.join(tmp, 'callgrind.out.%p')}`, process.execPath, ...(options.dump ? CODE_MAP_FLAGS : [])],
    // valgrind is slow to start a Node process: minutes, not seconds.
    startTimeoutMs: 5 * 60_000,
  });
}

function fmt(n) {
  return Math.round(n).toLocaleString('en-US');
}
