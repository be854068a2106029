import { describe, expect, it } from 'vitest';
import { holdSighup, runsServe, takeSighup } from './early-sighup.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 50));

describe('SIGHUP while keygate serve loads', () => {
  it('is kept instead of ending the process, handed over with the ones after it, and not lost at the hand-over', async () => {
    const before = process.listenerCount('SIGHUP');
    holdSighup();
    process.kill(process.pid, 'SIGHUP');
    await tick();
    let later = 0;
    const handler = () => later++;
    expect(takeSighup(handler)).toBe(true);
    process.kill(process.pid, 'SIGHUP');
    await tick();
    expect(later).toBe(1);
    process.off('SIGHUP', handler);

    // Sent while JavaScript is busy (loading modules), and not yet dispatched when serve takes over.
    holdSighup();
    process.kill(process.pid, 'SIGHUP');
    let pending = 0;
    const next = () => pending++;
    takeSighup(next);
    await tick();
    expect(pending).toBe(1);
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
