/**
 * Instructions per request by function, from a dump of `bench/instructions.js --dump`:
 * callgrind names V8's builtins and Node's C++ itself; JIT-compiled JavaScript it shows
 * as bare addresses, which are looked up here in V8's code map kept beside the dump
 * (`<dump>.map`), so `processHeader`, `extractCredential` or a regular expression get
 * their own line. A function compiled more than once (interpreted, baseline, optimized)
 * is one line.
 *
 *   node bench/annotate.js <dump> [--vs=<other dump>] [--min=100] [--event=Ir]
 *
 * With --vs, each function's count in <dump> minus its count in the other: where one
 * case's extra instructions go (e.g. keygate (c) against the bare proxy (b)).
 * --event counts another of the dump's events instead of instructions (Ir): with a dump
 * made with `instructions.js --cache-sim`, I1mr (first-level instruction cache misses),
 * D1mr and D1mw (data, reads and writes), ILmr, DLmr and DLmw (last level).
 * Needs valgrind's `callgrind_annotate`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

const USAGE = 'usage: node bench/annotate.js <dump> [--vs=<other dump>] [--min=N] [--event=Ir|I1mr|D1mr|D1mw|ILmr|DLmr|DLmw]';
const [file, ...rest] = process.argv.slice(2);
const options = Object.fromEntries(rest.map((arg) => arg.replace(/^--/, '').split('=')));
const min = options.min === undefined ? 100 : Number(options.min);
if (!file || file.startsWith('--') || Object.keys(options).some((name) => !['vs', 'min', 'event'].includes(name)) || !(min >= 0)) stop(USAGE);
const event = options.event ?? 'Ir';
if (!/^[A-Za-z0-9]+$/.test(event)) stop(USAGE);
const counted = event === 'Ir' ? 'instructions' : `${event} events`;

const main = byFunction(file);
const other = options.vs ? byFunction(options.vs) : undefined;
const rows = [...new Set([...main.costs.keys(), ...(other?.costs.keys() ?? [])])]
  .map((name) => {
    const cost = main.costs.get(name) ?? 0;
    return { name, cost, delta: other ? cost - (other.costs.get(name) ?? 0) : cost };
  })
  .filter((row) => Math.abs(row.delta) >= min)
  .sort((a, b) => b.delta - a.delta);

if (other) {
  console.log(`${counted} per request: (${main.kind}) ${fmt(main.total)} − (${other.kind}) ${fmt(other.total)} = ${signed(main.total - other.total)}; functions that differ by at least ${min}:`);
  console.log(`${'difference'.padStart(10)} ${`(${other.kind})`.padStart(9)} ${`(${main.kind})`.padStart(9)}  function`);
  for (const row of rows) console.log(`${signed(row.delta).padStart(10)} ${fmt(row.cost - row.delta).padStart(9)} ${fmt(row.cost).padStart(9)}  ${row.name}`);
} else {
  console.log(`(${main.kind}) ${fmt(main.total)} ${counted} per request; functions with at least ${min} (self):`);
  for (const row of rows) console.log(`${fmt(row.cost).padStart(9)}  ${row.name}`);
}

/** Self instructions per request by function name, and the total. */
function byFunction(dump) {
  for (const needed of [dump, `${dump}.map`, `${dump}.json`]) if (!existsSync(needed)) stop(`${needed} is missing: make the dump with node bench/instructions.js <case> --dump=${dump}`);
  const { case: kind, requests } = JSON.parse(readFileSync(`${dump}.json`, 'utf8'));
  const code = codeMap(`${dump}.map`);
  let annotated;
  try {
    annotated = execFileSync('callgrind_annotate', ['--threshold=100', `--show=${event}`, `--sort=${event}`, dump], { encoding: 'utf8', maxBuffer: 1 << 28 });
  } catch (error) {
    stop(`callgrind_annotate failed (${error.message}): it comes with valgrind`);
  }
  const costs = new Map();
  let total = 0;
  for (const line of annotated.split('\n')) {
    const match = /^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$/.exec(line);
    if (!match) continue;
    const count = Number(match[1].replaceAll(',', '')) / requests;
    if (match[2].startsWith('PROGRAM TOTALS')) {
      total = count;
      continue;
    }
    const name = functionName(match[2], code);
    costs.set(name, (costs.get(name) ?? 0) + count);
  }
  return { kind, total, costs };
}

/** V8's code map: [start, end, name], in the order V8 wrote them (a later entry replaces an earlier one at the same place). */
function codeMap(mapFile) {
  return readFileSync(mapFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [start, size, ...name] = line.split(' ');
      return [parseInt(start, 16), parseInt(start, 16) + parseInt(size, 16), name.join(' ')];
    });
}

function functionName(symbol, code) {
  const address = /^\?\?\?:0x([0-9a-f]+)/.exec(symbol);
  if (!address) return symbol.replace(/^\?\?\?:/, '').replace(/ \[[^\]]*\]$/, '');
  const at = parseInt(address[1], 16);
  let name;
  for (const [start, end, entry] of code) if (start <= at && at < end) name = entry;
  if (name === undefined) return 'unknown code (WebAssembly: undici\'s HTTP parser, or code V8 has freed)';
  // Tier marks (`*` optimized, `^` baseline, `~` interpreted) dropped: one line per function.
  return name.replace(/^JS:[*^~+]?/, 'JS:').replace(/file:\/\//, '').replace(process.cwd() + '/', '');
}

function fmt(n) {
  return Math.round(n).toLocaleString('en-US');
}

function signed(n) {
  return `${n >= 0 ? '+' : '−'}${fmt(Math.abs(n))}`;
}

function stop(message) {
  console.error(message);
  process.exit(2);
}
