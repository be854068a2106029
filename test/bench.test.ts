/**
 * `npm run bench` runs and prints what bench/README.md says it prints. A short run of the
 * cases that need no PostgreSQL or Redis: the figures are whatever this machine gives
 * (timing never decides a test); what is checked is that every case answered every
 * request with a 200 through a real gateway, and that each line a reader looks for is
 * there with a number in it.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from './support/temp.js';

const run = promisify(execFile);
const NUMBER = String.raw`[\d,]+(?:\.\d+)?`;

describe('npm run bench', () => {
  const results = tempDir('bench');

  it('measures (v), (b), (c) and (d) and prints their figures and ratios', async () => {
    const args = ['bench/run.js', '--only=v,b,c,d', '--rounds=1', '--duration=1', '--warmup=1', '--rewarm=0', '--connections=5', '--verifySeconds=1', '--pairs=2', '--pairSeconds=1'];
    const { stdout } = await run(process.execPath, args, { env: { ...process.env, KEYGATE_BENCH_RESULTS_DIR: results }, timeout: 150_000 });

    for (const id of ['b', 'c', 'd']) {
      const line = stdout.split('\n').find((l) => l.trimStart().startsWith(`(${id}) `) && l.includes('req/s') && l.includes('errors'));
      expect(line, `a figures line for (${id})`).toBeDefined();
      expect(line).toMatch(new RegExp(`\\(${id}\\)\\s+${NUMBER} req/s`));
      expect(line).toMatch(/errors 0 {2}timeouts 0 {2}non-2xx 0/);
      // How much of the machine's CPU went unused while the case ran (Linux: /proc/stat), and
      // with the process under test on a core of its own (the default here), how busy that core was.
      expect(line).toMatch(/machine idle \d{1,3}% {2}its core busy \d{1,3}%$/);
    }
    expect(stdout).toMatch(/machine idle while each case was measured \(all cores; .*\): \(b\) \d{1,3}%, \(c\) \d{1,3}%, \(d\) \d{1,3}%\n/);
    // The ratio over all rounds, each round's (one here) and their median, not judged: the pairs are.
    expect(stdout).toMatch(new RegExp(`c/b = ${NUMBER} +\\[${NUMBER}; median ${NUMBER}\\]\n`));
    expect(stdout).toMatch(new RegExp(`d/c = ${NUMBER} +\\[${NUMBER}; median ${NUMBER}\\]\n`));
    // Each pair's figures, then the pairs' median with its spread, judged against the target.
    expect(stdout).toMatch(new RegExp(`pair 2: \\(b\\) ${NUMBER}, \\(c\\) ${NUMBER} req/s: ${NUMBER}`));
    expect(stdout).toMatch(new RegExp(`c/b: median ${NUMBER} \\(quartiles ${NUMBER}–${NUMBER}; [0-2] of 2 pairs ≥ 0\\.85\\) +target ≥ 0\\.85: (met|NOT met)`));
    expect(stdout).toMatch(new RegExp(`d/c: median ${NUMBER} \\(quartiles ${NUMBER}–${NUMBER}; [0-2] of 2 pairs ≥ 0\\.9\\) +target ≥ 0\\.9: (met|NOT met)`));
    expect(stdout).toMatch(new RegExp(`in CPU time per request, \\(b\\)'s over \\(c\\)'s: median ${NUMBER}\n`));
    expect(stdout).toMatch(/\(b\)'s core busy \d{1,3}%–\d{1,3}% in its halves/);
    expect(stdout).toMatch(/note: the process under test runs on CPU \d+ alone; the load generator \(autocannon, this process\) and the upstream share CPU \d+\./);
    expect(stdout).toMatch(new RegExp(`verification \\(v\\): ${NUMBER}/s on one core`));

    const saved = JSON.parse(readFileSync(path.join(results, 'latest.json'), 'utf8'));
    expect(Object.keys(saved.cases).sort()).toEqual(['b', 'c', 'd']);
    for (const id of ['b', 'c', 'd']) {
      expect(saved.cases[id].requestsPerSecond, id).toBeGreaterThan(0);
      expect(saved.cases[id].non2xx, id).toBe(0);
      expect(saved.cases[id].machineIdle, id).toBeGreaterThanOrEqual(0);
      expect(saved.cases[id].machineIdle, id).toBeLessThanOrEqual(1);
    }
    expect(saved.verification.failed).toBe(0);
    for (const name of ['c/b', 'd/c']) {
      expect(saved.pairs[name].ratios, name).toHaveLength(2);
      expect(saved.pairs[name].failed, name).toBe(0);
      expect(typeof saved.pairs[name].met, name).toBe('boolean');
    }
  }, 180_000);

  it('with --pairs=0 judges the ratio over all rounds; with --shared every process shares every core', async () => {
    const args = ['bench/run.js', '--only=b,c', '--rounds=1', '--duration=1', '--warmup=1', '--rewarm=0', '--connections=5', '--pairs=0', '--shared'];
    const { stdout } = await run(process.execPath, args, { env: { ...process.env, KEYGATE_BENCH_RESULTS_DIR: results }, timeout: 150_000 });
    expect(stdout).toMatch(new RegExp(`c/b = ${NUMBER} +\\[${NUMBER}; median ${NUMBER}\\] +target ≥ 0\\.85: (met|NOT met)`));
    expect(stdout).not.toContain('adjacent pairs');
    expect(stdout).toContain('share these 2 cores, so every figure includes that contention');
    expect(stdout).not.toContain('its core busy');
  }, 180_000);

  it('bench/cpu.js measures each proxy\'s own CPU per request and prints the ratio', async () => {
    const args = ['bench/cpu.js', '--cases=b,c', '--requests=300', '--rounds=2', '--connections=5'];
    const { stdout } = await run(process.execPath, args, { timeout: 150_000 });
    const rounds = stdout.split('\n').filter((l) => /^ {2}round \d+:/.test(l));
    expect(rounds).toHaveLength(2);
    for (const line of rounds) expect(line).toMatch(new RegExp(`\\(b\\) ${NUMBER} µs {2}\\(c\\) ${NUMBER} µs`));
    expect(stdout).toMatch(new RegExp(`over all rounds: \\(b\\) ${NUMBER} µs {2}\\(c\\) ${NUMBER} µs`));
    expect(stdout).toMatch(new RegExp(`b's CPU / c's .* = ${NUMBER} +\\[${NUMBER}, ${NUMBER}\\]`));
  }, 180_000);

  it('bench/syscalls.js counts system calls, context switches and bytes per request of each proxy and its upstream', async () => {
    // Without --strace: strace is not among what the project installs (the bench says so when asked for it and it is missing).
    const args = ['bench/syscalls.js', '--cases=b,c', '--requests=300', '--rounds=1', '--connections=5', '--warmup=300'];
    const { stdout } = await run(process.execPath, args, { timeout: 150_000 });
    for (const id of ['b', 'c']) {
      for (const side of ['proxy', 'upstream']) {
        const line = stdout.split('\n').find((l) => l.startsWith(`  (${id}) ${side} `) && l.includes('read-like'));
        expect(line, `/proc counts of (${id}) ${side}`).toMatch(
          new RegExp(`read-like calls ${NUMBER} \\(${NUMBER} B\\), write-like ${NUMBER} \\(${NUMBER} B\\); context switches voluntary ${NUMBER}, involuntary ${NUMBER}; minor page faults ${NUMBER}; CPU µs .*event loop user ${NUMBER} system ${NUMBER}, other threads user ${NUMBER} system ${NUMBER}`),
        );
        // Every request is read from a socket and answered on one: at least one of each.
        expect(Number(/write-like ([\d.]+)/.exec(line ?? '')?.[1])).toBeGreaterThanOrEqual(1);
      }
      expect(stdout).toMatch(new RegExp(`\\(${id}\\) load generator \\(autocannon, this process\\) CPU µs \\(time\\): ${NUMBER}`));
    }
  }, 180_000);

  it('bench/memory.js measures the heap a key in use holds, every request answered 200', async () => {
    const args = ['bench/memory.js', '--accounts=20', '--keysPerAccount=5', '--requests=2', '--connections=4'];
    const { stdout } = await run(process.execPath, args, { timeout: 150_000 });
    expect(stdout).toMatch(/110 keys issued in [\d.]+ s; 10 of them used first, to warm up/);
    for (const label of ['warmed up, keys not used yet', 'every key used (200 requests)', 'again (200 requests)']) {
      expect(stdout).toMatch(new RegExp(`${label.replace(/[()]/g, '\\$&')} +heap +${NUMBER} MiB +rss +${NUMBER} MiB`));
    }
    expect(stdout).not.toContain('NOT every request answered 200');
    expect(stdout).toMatch(new RegExp(`per key in use: heap -?${NUMBER} bytes, rss -?${NUMBER} bytes`));
    expect(stdout).toMatch(/second pass: heap [+-][\d,]+ bytes per key/);
  }, 180_000);
});
