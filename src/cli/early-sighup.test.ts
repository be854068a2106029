import { describe, expect, it } from 'vitest';
import { holdSighup, runsServe, takeSighup } from './early-sighup.js';

/**
 * Waits (up to 10 s) until `count()` is `n`. A signal this process sends itself is
 * dispatched on a later turn of the event loop, which on a loaded host can come well
 * after any fixed pause.
 */
const dispatched = (count: () => number, n = 1) => expect.poll(count, { timeout: 10_000, interval: 5 }).toBe(n);

describe('SIGHUP while keygate serve loads', () => {
  it('is kept instead of ending the process, handed over with the ones after it, and not lost at the hand-over', async () => {
    const before = process.listenerCount('SIGHUP');
    holdSighup();
    // A listener of the test's own beside the held one: both are called in one dispatch.
    let seen = 0;
    const see = () => seen++;
    process.on('SIGHUP', see);
    process.kill(process.pid, 'SIGHUP');
    await dispatched(() => seen);
    process.off('SIGHUP', see);
    let later = 0;
    const handler = () => later++;
    expect(takeSighup(handler)).toBe(true);
    process.kill(process.pid, 'SIGHUP');
    await dispatched(() => later);
    process.off('SIGHUP', handler);

    // Sent while JavaScript is busy (loading modules), and not yet dispatched when serve takes over.
    holdSighup();
    process.kill(process.pid, 'SIGHUP');
    let pending = 0;
    const next = () => pending++;
    takeSighup(next);
    // No listener of the test's own here: it would keep Node watching the signal, which is what is tested.
    await dispatched(() => pending);
    process.off('SIGHUP', next);
    expect(process.listenerCount('SIGHUP')).toBe(before);
  });

  it('is held for keygate serve only, whatever the other words of the command line', () => {
    expect(runsServe(['serve'])).toBe(true);
    expect(runsServe(['--config', 'serve', 'serve'])).toBe(true);
    expect(runsServe(['-c', 'k.yaml', '--json', 'serve'])).toBe(true);
    expect(runsServe(['demo', '--data', 'serve'])).toBe(false);
    expect(runsServe(['accounts', 'create', '--name', 'serve'])).toBe(false);
    expect(runsServe(['--config', 'serve'])).toBe(false);
    expect(runsServe([])).toBe(false);
  });
});
