/**
 * CPU time per request of the bare proxy (b) and keygate (c, d): what each process spent,
 * user and system, on all its threads (/proc/<pid>/stat), over the same number of
 * requests at the same concurrency, the cases taking turns round by round. Not part of
 * `npm run bench`; run after `npm run build`.
 *
 *   node bench/cpu.js [--cases=b,c,d] [--requests=40000] [--connections=50] [--rounds=6]
 *
 * Unlike req/s in `npm run bench`, where the load generator and the upstream share the
 * machine's cores with the process measured (so a dearer proxy loses less throughput
 * than it costs), this is the process's own cost, kernel included (socket reads and
 * writes: a large part of a proxy's). Unlike `instructions.js`, it counts real time:
 * cache misses, runtime calls and the kernel, not only instructions of the event loop.
 * On a machine shared with others it moves from round to round; the cases' figures
 * over all rounds, and their ratios, hold up better. The load comes from autocannon in
 * this process, as in `npm run bench`, which keeps each proxy saturated (a proxy below
 * saturation handles fewer requests per event-loop turn and spends more CPU on each).
 *
 * Linux only (it reads /proc). Everything listens on 127.0.0.1; every process stops when
 * this one ends.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cpuSeconds, keygateProfile, machineInfo, startChild, stop, wholeOption } from './common.js';
import { sendRequests } from './exact-load.js';

const WARMUP_REQUESTS = 20_000;
const USAGE = 'usage: node bench/cpu.js [--cases=b,c,d] [--requests=40000] [--connections=50] [--rounds=6]';

const options = Object.fromEntries(process.argv.slice(2).map((arg) => arg.replace(/^--/, '').split('=')));
if (Object.keys(options).some((name) => !['cases', 'requests', 'connections', 'rounds'].includes(name))) stop(USAGE);
const cases = (options.cases ?? 'b,c,d').split(',');
if (cases.length === 0 || cases.some((id) => !['b', 'c', 'd'].includes(id))) stop(`--cases takes b, c and d\n${USAGE}`);
const requests = wholeOption(options, 'requests', 40_000, USAGE);
const connections = wholeOption(options, 'connections', 50, USAGE);
if (cpuSeconds(process.pid) === undefined) stop('bench/cpu.js reads /proc/<pid>/stat: Linux only');
const rounds = wholeOption(options, 'rounds', 6, USAGE);

const tmp = mkdtempSync(path.join(os.tmpdir(), 'keygate-cpu-'));
const servers = [];
try {
  const upstream = await startChild('upstream.js', []);
  servers.push(upstream);
  const proxies = new Map();
  for (const id of cases) {
    if (id === 'b') proxies.set(id, await startChild('bare-proxy.js', [upstream.info.url]));
    else {
      const file = path.join(tmp, `${id}.json`);
      writeFileSync(file, JSON.stringify(keygateProfile({ upstreamUrl: upstream.info.url, store: `sqlite:${path.join(tmp, `${id}.db`)}`, counters: 'memory', limits: id === 'd' })));
      proxies.set(id, await startChild('keygate.js', [file]));
    }
    servers.push(proxies.get(id));
  }
  const m = machineInfo();
  console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}; load average before: ${m.loadAverageBefore.map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`CPU time per request (user + system, all threads): ${requests} requests per case and round, ${connections} connections, ${rounds} rounds`);
  for (const [id, proxy] of proxies) await sendRequests(id, proxy, WARMUP_REQUESTS, connections);
  const spent = new Map(cases.map((id) => [id, []]));
  for (let round = 1; round <= rounds; round++) {
    // Every other round in reverse, so a slow spell lands on every case alike.
    const order = round % 2 === 1 ? cases : [...cases].reverse();
    for (const id of order) {
      const proxy = proxies.get(id);
      const before = cpuSeconds(proxy.pid);
      await sendRequests(id, proxy, requests, connections);
      spent.get(id).push(((cpuSeconds(proxy.pid) - before) * 1e6) / requests);
    }
    console.log(`  round ${round}: ${cases.map((id) => `(${id}) ${spent.get(id)[round - 1].toFixed(1)} µs`).join('  ')}`);
  }
  const mean = (id) => spent.get(id).reduce((a, b) => a + b, 0) / rounds;
  console.log(`over all rounds: ${cases.map((id) => `(${id}) ${mean(id).toFixed(1)} µs`).join('  ')}`);
  const ratio = (x, y) => {
    if (!cases.includes(x) || !cases.includes(y)) return;
    const perRound = spent.get(x).map((value, i) => (spent.get(y)[i] / value).toFixed(2));
    console.log(`  ${y}'s CPU / ${x}'s (what ${x}/${y} in req/s would be if the proxy were the only bottleneck) = ${(mean(y) / mean(x)).toFixed(3)}  [${perRound.join(', ')}]`);
  };
  ratio('c', 'b');
  ratio('d', 'c');
} finally {
  await Promise.all(servers.map((server) => server.stop()));
  rmSync(tmp, { recursive: true, force: true });
}
