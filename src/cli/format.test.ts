import { describe, expect, it } from 'vitest';
import { table } from './format.js';

describe('CLI tables', () => {
  it('show control characters in a cell as escapes, so a name cannot forge a row or move the terminal', () => {
    const out = table([{ id: 'key_1', name: 'prod\u001b[2K\rkey_FAKE\ninjected' }], ['id', 'name']);
    expect(out.split('\n')).toEqual(['ID     NAME', 'key_1  prod\\u001b[2K\\u000dkey_FAKE\\u000ainjected']);
  });
});
