import { describe, expect, it } from 'vitest';
import { keyEnd, table, until, when } from './format.js';

describe('CLI tables', () => {
  it('show control characters in a cell as escapes, so a name cannot forge a row or move the terminal', () => {
    const out = table([{ id: 'key_1', name: 'prod\u001b[2K\rkey_FAKE\ninjected' }], ['id', 'name']);
    expect(out.split('\n')).toEqual(['ID     NAME', 'key_1  prod\\u001b[2K\\u000dkey_FAKE\\u000ainjected']);
  });
});

describe('CLI times', () => {
  it('give the end of something in force to the second, rounded up, and other times to the minute', () => {
    const ms = Date.UTC(2026, 11, 2, 20, 26, 47, 500);
    expect(until(ms)).toBe('2026-12-02 20:26:48Z');
    expect(until(Date.UTC(2026, 11, 2, 20, 26, 47))).toBe('2026-12-02 20:26:47Z');
    expect(when(ms)).toBe('2026-12-02 20:26Z');
  });

  it('give when a key stops working to the second, rounded up while it is to come (at the second shown it has stopped, as the refusals say it), truncated once past', () => {
    const before = Date.UTC(2026, 11, 2, 20, 0, 0);
    expect(keyEnd(Date.UTC(2026, 11, 2, 20, 26, 47, 333), before)).toBe('2026-12-02 20:26:48Z');
    expect(keyEnd(Date.UTC(2026, 11, 2, 20, 26, 47, 999), before)).toBe('2026-12-02 20:26:48Z');
    expect(keyEnd(Date.UTC(2026, 11, 2, 20, 26, 47), before)).toBe('2026-12-02 20:26:47Z');
    // Past: when it expired, never after.
    const after = Date.UTC(2026, 11, 2, 21, 0, 0);
    expect(keyEnd(Date.UTC(2026, 11, 2, 20, 26, 47, 333), after)).toBe('2026-12-02 20:26:47Z');
  });
});
