/**
 * What a request costs the bare proxy (b) and keygate (c) outside the instructions that
 * bench/instructions.js counts: system calls, context switches, bytes through the
 * sockets, and CPU time split into the event loop's and the other threads', user and
 * kernel. The upstream behind each proxy is measured alike (keygate sends it eight more
 * headers). Not part of `npm run bench`; run after `npm run build`.
 *
 *   node bench/syscalls.js [--cases=b,c] [--requests=20000] [--connections=50] [--rounds=2] [--warmup=20000] [--strace]
 *
 * Each round sends `requests` requests to each case in turn (autocannon in this process,
 * as in `npm run bench`) and reads, before and after, /proc/<pid>/io (syscr and syscw:
 * read-like and write-like system calls; rchar and wchar: their bytes), each thread's
 * /proc/<pid>/task/<tid>/status (voluntary and non-voluntary context switches) and
 * /proc/<pid>/task/<tid>/stat (minor page faults, user and system time). These are counts, except the
 * times, which move with the host. The load generator's own CPU per request is printed too
 * (time): the three processes share the machine's cores. With --strace, one more round per case runs under
 * `strace -c -f` attached to every thread of the proxy and of the upstream, and prints
 * the calls per request by system call (strace makes that round several times slower:
 * its times are not printed).
 *
 * Linux only (it reads /proc). Everything listens on 127.0.0.1; every process stops when
 * this one ends.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { keygateProfile, machineInfo, startChild, stop, wholeOption } from './common.js';
import { sendRequests } from './exact-load.js';

const STRACE = '/usr/bin/strace';
/** USER_HZ: the unit of utime/stime in /proc (100 on Linux everywhere in practice). */
const CLOCK_TICKS = 100;
const USAGE = 'usage: node bench/syscalls.js [--cases=b,c] [--requests=20000] [--connections=50] [--rounds=2] [--warmup=20000] [--strace]';

const options = Object.fromEntries(process.argv.slice(2).map((arg) => arg.replace(/^--/, '').split('=')));
if (Object.keys(options).some((name) => !['cases', 'requests', 'connections', 'rounds', 'warmup', 'strace'].includes(name))) stop(USAGE);
if ('strace' in options && options.strace !== undefined) stop(`--strace takes no value\n${USAGE}`);
const cases = (options.cases ?? 'b,c').split(',');
if (cases.length === 0 || cases.some((id) => !['b', 'c', 'd'].includes(id))) stop(`--cases takes b, c and d\n${USAGE}`);
const requests = wholeOption(options, 'requests', 20_000, USAGE);
const connections = wholeOption(options, 'connections', 50, USAGE);
const rounds = wholeOption(options, 'rounds', 2, USAGE);
// Sent to each case first, so each process is past its JIT warm-up when counted.
const warmup = wholeOption(options, 'warmup', 20_000, USAGE);
const withStrace = 'strace' in options;
if (!existsSync('/proc/self/io')) stop('bench/syscalls.js reads /proc/<pid>/io: Linux only');
if (withStrace && !existsSync(STRACE)) stop(`${STRACE} is missing: apt-get install strace`);

const tmp = mkdtempSync(path.join(os.tmpdir(), 'keygate-syscalls-'));
const servers = [];
try {
  const m = machineInfo();
  console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}; load average before: ${m.loadAverageBefore.map((l) => l.toFixed(2)).join(' ')}`);
  // One upstream per case, so each upstream's counters are those of one proxy's traffic.
  const pairs = new Map();
  for (const id of cases) {
    const upstream = await startChild('upstream.js', []);
    servers.push(upstream);
    let proxy;
    if (id === 'b') proxy = await startChild('bare-proxy.js', [upstream.info.url]);
    else {
      const file = path.join(tmp, `${id}.json`);
      writeFileSync(file, JSON.stringify({ ...keygateProfile({ upstreamUrl: upstream.info.url, store: `sqlite:${path.join(tmp, `${id}.db`)}`, counters: 'memory', limits: id === 'd' }), keyCacheTtl: '1h' }));
      proxy = await startChild('keygate.js', [file]);
    }
    servers.push(proxy);
    pairs.set(id, { proxy, upstream });
  }
  for (const [id, { proxy }] of pairs) await sendRequests(id, proxy, warmup, connections);
  console.log(`per request, ${requests} requests per case and round, ${connections} connections, ${rounds} rounds (sums over the rounds):`);
  const totals = new Map(cases.map((id) => [id, { proxy: undefined, upstream: undefined, loadGenerator: 0 }]));
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? cases : [...cases].reverse();
    for (const id of order) {
      const { proxy, upstream } = pairs.get(id);
      const before = { proxy: snapshot(proxy.pid), upstream: snapshot(upstream.pid) };
      const generatorBefore = process.cpuUsage();
      await sendRequests(id, proxy, requests, connections);
      const generator = process.cpuUsage(generatorBefore);
      const sum = totals.get(id);
      sum.loadGenerator += (generator.user + generator.system) / 1e6;
      sum.proxy = add(sum.proxy, difference(snapshot(proxy.pid), before.proxy));
      sum.upstream = add(sum.upstream, difference(snapshot(upstream.pid), before.upstream));
    }
  }
  const n = requests * rounds;
  for (const id of cases) {
    for (const side of ['proxy', 'upstream']) console.log(`  (${id}) ${side.padEnd(8)} ${describe(totals.get(id)[side], n)}`);
    // The three share the machine's cores: what the upstream and the load generator spend is not the proxy's to spend.
    console.log(`  (${id}) load generator (autocannon, this process) CPU µs (time): ${((totals.get(id).loadGenerator * 1e6) / n).toFixed(1)}`);
  }
  if (withStrace) {
    console.log(`under strace -c -f, ${requests} requests per case, calls per request:`);
    for (const id of cases) {
      const { proxy, upstream } = pairs.get(id);
      const traces = [await attach(proxy.pid, path.join(tmp, `${id}-proxy.strace`)), await attach(upstream.pid, path.join(tmp, `${id}-upstream.strace`))];
      await sendRequests(id, proxy, requests, connections);
      const [ofProxy, ofUpstream] = await Promise.all(traces.map((trace) => trace.detach()));
      console.log(`  (${id}) proxy    ${calls(ofProxy, requests)}`);
      console.log(`  (${id}) upstream ${calls(ofUpstream, requests)}`);
    }
  }
} finally {
  await Promise.all(servers.map((server) => server.stop()));
  rmSync(tmp, { recursive: true, force: true });
}

/** The process's counters now: /proc io for the process, status and stat for each thread. */
function snapshot(pid) {
  const io = Object.fromEntries(
    readFileSync(`/proc/${pid}/io`, 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.split(': '))
      .map(([name, value]) => [name, Number(value)]),
  );
  const s = { syscr: io.syscr, syscw: io.syscw, rchar: io.rchar, wchar: io.wchar, voluntary: 0, involuntary: 0, minorFaults: 0, mainUser: 0, mainSystem: 0, otherUser: 0, otherSystem: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let status;
    let stat;
    try {
      status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // a thread that ended meanwhile
    }
    s.voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    s.involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const main = tid === String(pid);
    // Minor page faults: pages the kernel maps on first touch (a heap growing or a freed page reused).
    s.minorFaults += Number(fields[7]);
    s[main ? 'mainUser' : 'otherUser'] += Number(fields[11]) / CLOCK_TICKS;
    s[main ? 'mainSystem' : 'otherSystem'] += Number(fields[12]) / CLOCK_TICKS;
  }
  return s;
}

function difference(after, before) {
  return Object.fromEntries(Object.keys(after).map((name) => [name, after[name] - before[name]]));
}

function add(sum, more) {
  return sum ? Object.fromEntries(Object.keys(more).map((name) => [name, sum[name] + more[name]])) : more;
}

function describe(d, n) {
  const per = (v) => (v / n).toFixed(2);
  const µs = (seconds) => ((seconds * 1e6) / n).toFixed(1);
  return (
    `read-like calls ${per(d.syscr)} (${Math.round(d.rchar / n)} B), write-like ${per(d.syscw)} (${Math.round(d.wchar / n)} B); ` +
    `context switches voluntary ${per(d.voluntary)}, involuntary ${per(d.involuntary)}; minor page faults ${per(d.minorFaults)}; ` +
    `CPU µs (time, not a count): event loop user ${µs(d.mainUser)} system ${µs(d.mainSystem)}, other threads user ${µs(d.otherUser)} system ${µs(d.otherSystem)}`
  );
}

/**
 * strace -c -f on `pid` (with -f, strace attaches every thread of the process and says
 * so in one line); detach() ends it and resolves with its summary.
 */
async function attach(pid, file) {
  const child = spawn(STRACE, ['-c', '-f', '-o', file, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  await new Promise((resolve, reject) => {
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (/attached/.test(stderr)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`strace exited with ${code} before attaching: ${stderr.trim()}`)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    detach: async () => {
      child.kill('SIGINT');
      await exited;
      return readFileSync(file, 'utf8');
    },
  };
}

/** strace -c's table as "name calls/request", the most frequent first. */
function calls(summary, n) {
  const rows = [];
  for (const line of summary.split('\n')) {
    const cols = line.trim().split(/\s+/);
    // % time, seconds, usecs/call, calls, [errors], syscall
    if (cols.length < 5 || !/^\d+\.\d+$/.test(cols[0]) || cols.at(-1) === 'total') continue;
    rows.push({ name: cols.at(-1), calls: Number(cols[3]) });
  }
  rows.sort((a, b) => b.calls - a.calls);
  const total = rows.reduce((sum, row) => sum + row.calls, 0);
  return `${(total / n).toFixed(2)} in all: ${rows
    .filter((row) => row.calls / n >= 0.01)
    .map((row) => `${row.name} ${(row.calls / n).toFixed(2)}`)
    .join(', ')}`;
}
