/**
 * `node bench/memory.js` (also the last case, (m), of `npm run bench`): what keygate holds
 * in memory for each key in use. One keygate process (SQLite, memory counters, the two
 * rate-limit windows and the per-request cost of case (d)) with many accounts and keys;
 * every key sends a few requests over real HTTP, and the process's memory after full
 * collections is compared before and after. What a key in use costs: its entry in the key
 * cache (record and account), its windows' admission times, its account's balance and
 * usage counts, and whatever else the gateway keeps per key or account.
 *
 *   node bench/memory.js [--accounts=1000] [--keysPerAccount=10] [--requests=3] [--connections=10]
 *
 * A second pass of the same requests shows whether memory keeps growing with traffic
 * (it should not, beyond the newer admission times the hour-long window holds).
 * Everything is on 127.0.0.1; both servers are child processes that stop when the run ends.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { keygateProfile, REQUEST_PATH, startChild } from './common.js';

const DEFAULTS = { accounts: 1000, keysPerAccount: 10, requests: 3, connections: 10 };
/** Beyond this many in use, the key cache drops the least recently set (src/keys/key-cache.ts). */
const KEY_CACHE_BOUND = 100_000;
/** The usage recorder writes to the store every second: a pass's counts are in the store after this. */
const AFTER_FLUSH_MS = 1_500;

/**
 * Runs the measurement and prints it; returns the figures. `settings` as DEFAULTS.
 * `children` (optional) holds the processes while they run, for a caller's clean-up.
 */
export async function measureMemory(settings = {}, children = undefined) {
  const s = { ...DEFAULTS, ...settings };
  const keys = s.accounts * s.keysPerAccount;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'keygate-bench-memory-'));
  const started = [];
  try {
    const upstream = await startChild('upstream.js', [], { name: 'upstream', children });
    started.push(upstream);
    const profile = keygateProfile({ upstreamUrl: upstream.info.url, store: `sqlite:${path.join(tmp, 'm.db')}`, counters: 'memory', limits: true });
    const profileFile = path.join(tmp, 'm.json');
    writeFileSync(profileFile, JSON.stringify(profile));
    console.log(`(m) memory per key in use: ${fmt(s.accounts)} accounts × ${fmt(s.keysPerAccount)} keys, ${s.requests} requests per key and pass, 2 rate-limit windows + a cost per request (as (d))`);
    const creating = Date.now();
    // The keys of a tenth more accounts are used first, apart: JIT code and the caches that
    // fill once (routes, plans) are then in place before the process is measured idle.
    const warmAccounts = Math.max(1, Math.ceil(s.accounts / 10));
    const keygate = await startChild('memory-server.js', [profileFile, String(s.accounts + warmAccounts), String(s.keysPerAccount)], {
      name: 'keygate (m)',
      execArgv: ['--expose-gc'],
      children,
      // Issuing a key hashes it and writes it (and its audit entry) to SQLite: about 10,000 a second here.
      startTimeoutMs: 60_000 + keys * 2,
    });
    started.push(keygate);
    const { url } = keygate.info;
    const warmKeys = keygate.info.secrets.slice(0, warmAccounts * s.keysPerAccount);
    const secrets = keygate.info.secrets.slice(warmKeys.length);
    console.log(`    ${fmt(keygate.info.secrets.length)} keys issued in ${((Date.now() - creating) / 1000).toFixed(1)} s; ${fmt(warmKeys.length)} of them used first, to warm up`);

    const memory = async () => {
      const { rss, heapUsed, external, arrayBuffers } = await keygate.request('memory');
      return { rss, heapUsed, external, arrayBuffers };
    };
    const warmUp = await pass(url, warmKeys, s);
    await sleep(AFTER_FLUSH_MS);
    const idle = await memory();
    const firstPass = await pass(url, secrets, s);
    await sleep(AFTER_FLUSH_MS);
    const inUse = await memory();
    const secondPass = await pass(url, secrets, s);
    await sleep(AFTER_FLUSH_MS);
    const again = await memory();

    const perKey = (from, to, field) => (to[field] - from[field]) / keys;
    const result = {
      settings: s,
      keys,
      idle,
      inUse,
      again,
      passes: [warmUp, firstPass, secondPass],
      heapBytesPerKey: perKey(idle, inUse, 'heapUsed'),
      rssBytesPerKey: perKey(idle, inUse, 'rss'),
      heapBytesPerKeySecondPass: perKey(inUse, again, 'heapUsed'),
    };
    printMemory(result);
    return result;
  } finally {
    for (const child of started.reverse()) await child.stop().catch((error) => console.warn(`cleanup: ${error.message}`));
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Every key sends `requests` requests; answers are counted by status. */
async function pass(url, secrets, { requests, connections }) {
  const pool = new Pool(url, { connections, pipelining: 1 });
  const statuses = new Map();
  const started = Date.now();
  let next = 0;
  const total = secrets.length * requests;
  const worker = async () => {
    while (next < total) {
      const secret = secrets[next++ % secrets.length];
      const { statusCode, body } = await pool.request({ method: 'GET', path: REQUEST_PATH, headers: { authorization: `Bearer ${secret}` } });
      await body.dump();
      statuses.set(statusCode, (statuses.get(statusCode) ?? 0) + 1);
    }
  };
  try {
    await Promise.all(Array.from({ length: connections }, worker));
  } finally {
    await pool.close();
  }
  return { requests: total, seconds: (Date.now() - started) / 1000, statuses: Object.fromEntries(statuses) };
}

function printMemory(r) {
  const line = (label, m) => console.log(`    ${label.padEnd(34)} heap ${mib(m.heapUsed)}  rss ${mib(m.rss)}  external ${mib(m.external)}`);
  line(`warmed up, keys not used yet`, r.idle);
  line(`every key used (${fmt(r.passes[1].requests)} requests)`, r.inUse);
  line(`again (${fmt(r.passes[2].requests)} requests)`, r.again);
  const refused = r.passes.flatMap((p) => Object.entries(p.statuses).filter(([status]) => status !== '200'));
  if (refused.length > 0) console.log(`    NOT every request answered 200: ${refused.map(([status, n]) => `${fmt(n)} × ${status}`).join(', ')}: the figures are not of keys in use`);
  console.log(`    per key in use: heap ${fmt(Math.round(r.heapBytesPerKey))} bytes, rss ${fmt(Math.round(r.rssBytesPerKey))} bytes`);
  console.log(`    second pass: heap ${signed(Math.round(r.heapBytesPerKeySecondPass))} bytes per key (the hour-long window holds ${r.settings.requests} more admission times, 8 bytes each)`);
  console.log(`    so ${fmt(KEY_CACHE_BOUND)} keys in use (the key cache's bound) hold about ${fmt(Math.round((r.heapBytesPerKey * KEY_CACHE_BOUND) / 2 ** 20))} MiB of heap`);
}

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1).padStart(7)} MiB`;
const fmt = (n) => n.toLocaleString('en-US');
const signed = (n) => (n >= 0 ? `+${fmt(n)}` : fmt(n));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function parseArgs(argv) {
  const out = {};
  for (const arg of argv) {
    const match = /^--(\w+)=(\d+)$/.exec(arg);
    if (!match || !(match[1] in DEFAULTS) || !(Number(match[2]) > 0)) throw new Error(`unknown or bad option ${arg}: use ${Object.keys(DEFAULTS).map((k) => `--${k}=N`).join(' ')}`);
    out[match[1]] = Number(match[2]);
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  measureMemory(parseArgs(process.argv.slice(2))).catch((error) => {
    console.error(`bench/memory.js failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  });
}
