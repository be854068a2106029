/**
 * Where the bare proxy's (b) and keygate's (c) CPU time per request goes, by kind of code:
 * the kernel, Node's own binary (V8's builtins and runtime, Node's C++, llhttp), JavaScript
 * compiled by V8 (keygate's, Fastify's, undici's, Node's own library), the C library and
 * the vDSO (clock reads); and, per function, what (c) spends more than (b). Sampled with
 * `perf record -e cpu-clock` (a software clock: hardware counters are not offered on this
 * VM) while the same number of requests goes through each, with V8's map of its compiled
 * code (`--perf-basic-prof`) naming the JavaScript. Not part of `npm run bench`: it needs
 * Linux's `perf` (Debian's linux-perf) and a build (`npm run build`).
 *
 *   node bench/cpu-split.js [--requests=150000] [--connections=50] [--top=30]
 *
 * The process under test is bound to the second core and autocannon and the upstream to
 * the first, as `npm run bench` does (bench/README.md, "Where each process runs"), where
 * taskset and 2 cores are there. Unlike instructions.js, this counts time: cache misses,
 * the kernel's part of each socket read and write, the collector's threads. Samples are
 * 0.5 ms apart: a function below about 0.05 µs a request is within the noise, and V8
 * reuses the code space of functions it dropped, so a function named once in the map may
 * show where another now runs (a few hundredths of a µs).
 *
 * Everything listens on 127.0.0.1; every process stops when this one ends.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cpuSeconds, keygateProfile, machineInfo, startChild, stop, wholeOption } from './common.js';
import { sendRequests } from './exact-load.js';

const USAGE = 'usage: node bench/cpu-split.js [--requests=150000] [--connections=50] [--top=30]';
const WARMUP_REQUESTS = 20_000;
/** perf's sampling rate (Hz): one sample every 0.5 ms of CPU time. */
const SAMPLE_HZ = 2000;

const options = Object.fromEntries(process.argv.slice(2).map((arg) => arg.replace(/^--/, '').split('=')));
if (Object.keys(options).some((name) => !['requests', 'connections', 'top'].includes(name))) stop(USAGE);
const requests = wholeOption(options, 'requests', 150_000, USAGE);
const connections = wholeOption(options, 'connections', 50, USAGE);
const top = wholeOption(options, 'top', 30, USAGE);
try {
  execFileSync('perf', ['--version'], { stdio: 'ignore' });
} catch {
  stop("bench/cpu-split.js samples with Linux's perf, which is not here (Debian: apt-get install linux-perf)");
}

/** Binds a process (all its threads) to one core; false where taskset is missing or refuses. */
function pin(pid, core) {
  try {
    execFileSync('taskset', ['-a', '-cp', String(core), String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** µs per request by (kind of code, function), from `perf report` of one recording. */
function splitOf(file) {
  const report = (...args) => execFileSync('perf', ['report', '-i', file, '--stdio', '--no-children', '-g', 'none', ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const total = Number(/Event count \(approx\.\): (\d+)/.exec(report())?.[1] ?? 0) / 1000; // ns → µs
  const bySymbol = new Map();
  for (const line of report('--sort', 'dso,sym').split('\n')) {
    const match = /^\s*([\d.]+)%\s+(\S+(?: tid \d+)?)\s+\[.\]\s+(.*?)\s*$/.exec(line);
    if (!match) continue;
    const kind = kindOf(match[2]);
    const key = `${kind}\t${match[3]}`;
    bySymbol.set(key, (bySymbol.get(key) ?? 0) + (Number(match[1]) * total) / 100 / requests);
  }
  const byKind = new Map();
  for (const [key, us] of bySymbol) {
    const kind = key.split('\t')[0];
    byKind.set(kind, (byKind.get(kind) ?? 0) + us);
  }
  return { total: total / requests, byKind, bySymbol };
}

/** The kind of code a perf DSO is. */
function kindOf(dso) {
  if (dso.startsWith('[kernel')) return 'kernel';
  if (dso.startsWith('[JIT]')) return 'JavaScript (compiled)';
  if (dso === 'node') return "Node's binary";
  if (dso.startsWith('libc')) return 'C library';
  if (dso === '[vdso]') return 'vDSO (clock)';
  return 'other';
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'keygate-cpu-split-'));
const servers = [];
try {
  const upstream = await startChild('upstream.js', []);
  servers.push(upstream);
  const pinned = os.cpus().length >= 2 && pin(process.pid, 0) && pin(upstream.pid, 0);
  const m = machineInfo();
  console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}; load average before: ${m.loadAverageBefore.map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`${requests} requests per case after ${WARMUP_REQUESTS} of warm-up, ${connections} connections; ${pinned ? 'the proxy on the second core, autocannon and the upstream on the first' : 'every process on every core'}; perf at ${SAMPLE_HZ} Hz`);
  const profile = path.join(tmp, 'c.json');
  writeFileSync(profile, JSON.stringify(keygateProfile({ upstreamUrl: upstream.info.url, store: `sqlite:${path.join(tmp, 'c.db')}`, counters: 'memory', limits: false })));
  const splits = new Map();
  for (const id of ['b', 'c']) {
    // V8's own log to /dev/null: else an isolate-*.log is left in the working directory.
    const execArgv = ['--perf-basic-prof', '--logfile=/dev/null'];
    const proxy = id === 'b' ? await startChild('bare-proxy.js', [upstream.info.url], { execArgv }) : await startChild('keygate.js', [profile], { execArgv });
    servers.push(proxy);
    if (pinned) pin(proxy.pid, 1);
    await sendRequests(id, proxy, WARMUP_REQUESTS, connections);
    const file = path.join(tmp, `${id}.data`);
    const perf = spawn('perf', ['record', '-e', 'cpu-clock', '-F', String(SAMPLE_HZ), '-o', file, '-p', String(proxy.pid)], { stdio: 'ignore' });
    // perf takes a moment to attach; the requests are counted from here.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const cpuBefore = cpuSeconds(proxy.pid);
    await sendRequests(id, proxy, requests, connections);
    const cpuUs = ((cpuSeconds(proxy.pid) - cpuBefore) * 1e6) / requests;
    perf.kill('SIGINT');
    await new Promise((resolve) => perf.once('exit', resolve));
    await proxy.stop();
    splits.set(id, { ...splitOf(file), cpuUs });
    // V8's map of the process's compiled code, which perf report has read: not left in /tmp.
    rmSync(path.join(os.tmpdir(), `perf-${proxy.pid}.map`), { force: true });
  }
  const b = splits.get('b');
  const c = splits.get('c');
  const us = (value) => value.toFixed(2).padStart(7);
  console.log(`\nCPU µs per request (/proc, all threads): (b) ${b.cpuUs.toFixed(1)}, (c) ${c.cpuUs.toFixed(1)}; (b)/(c) = ${(b.cpuUs / c.cpuUs).toFixed(3)}`);
  console.log(`sampled µs per request:                 (b) ${b.total.toFixed(1)}, (c) ${c.total.toFixed(1)}; (b)/(c) = ${(b.total / c.total).toFixed(3)}\n`);
  console.log('    (b)     (c)   (c)−(b)  kind of code');
  const kinds = [...new Set([...b.byKind.keys(), ...c.byKind.keys()])].sort((x, y) => (c.byKind.get(y) ?? 0) - (c.byKind.get(x) ?? 0));
  for (const kind of kinds) console.log(`${us(b.byKind.get(kind) ?? 0)} ${us(c.byKind.get(kind) ?? 0)}  ${(((c.byKind.get(kind) ?? 0) - (b.byKind.get(kind) ?? 0)) >= 0 ? '+' : '')}${((c.byKind.get(kind) ?? 0) - (b.byKind.get(kind) ?? 0)).toFixed(2).padStart(6)}  ${kind}`);
  console.log(`\nthe ${top} functions that differ most, µs per request:`);
  console.log('    (b)     (c)   (c)−(b)  kind of code: function');
  const symbols = [...new Set([...b.bySymbol.keys(), ...c.bySymbol.keys()])];
  const difference = (key) => (c.bySymbol.get(key) ?? 0) - (b.bySymbol.get(key) ?? 0);
  for (const key of symbols.sort((x, y) => Math.abs(difference(y)) - Math.abs(difference(x))).slice(0, top)) {
    const [kind, symbol] = key.split('\t');
    console.log(`${us(b.bySymbol.get(key) ?? 0)} ${us(c.bySymbol.get(key) ?? 0)}  ${difference(key) >= 0 ? '+' : ''}${difference(key).toFixed(2).padStart(6)}  ${kind}: ${symbol.slice(0, 110)}`);
  }
} finally {
  await Promise.all(servers.map((server) => server.stop()));
  rmSync(tmp, { recursive: true, force: true });
}
