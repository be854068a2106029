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

  it('give when a key stops working to the second, truncated: at 20:26:47.333 it is no longer working, so never shown as working until :48', () => {
    expect(keyEnd(Date.UTC(2026, 11, 2, 20, 26, 47, 333))).toBe('2026-12-02 20:26:47Z');
    expect(keyEnd(Date.UTC(2026, 11, 2, 20, 26, 47, 999))).toBe('2026-12-02 20:26:47Z');
    expect(keyEnd(Date.UTC(2026, 11, 2, 20, 26, 47))).toBe('2026-12-02 20:26:47Z');
  });
});
