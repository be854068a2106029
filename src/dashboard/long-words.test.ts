import { describe, expect, it } from 'vitest';
import { html } from './html.js';
import { breakable, LONG_WORD, prose } from './long-words.js';

describe('breakable', () => {
  it('marks a word of LONG_WORD characters or more, and leaves shorter words and the spaces between as they are', () => {
    const long = 'z'.repeat(LONG_WORD);
    expect(breakable(`short ${'y'.repeat(LONG_WORD - 1)}  ${long}\tend`).value).toBe(`short ${'y'.repeat(LONG_WORD - 1)}  <span class="long-word">${long}</span>\tend`);
  });

  it('escapes what it marks, so a long word of markup is shown, never run', () => {
    expect(breakable('<script>'.repeat(5)).value).toBe(`<span class="long-word">${'&lt;script&gt;'.repeat(5)}</span>`);
  });

  it('counts characters as a reader does: an ampersand is one, not the five of its escape', () => {
    const word = 'R&D&'.repeat(LONG_WORD).slice(0, LONG_WORD - 1);
    expect(breakable(word).value).toBe(word.replaceAll('&', '&amp;'));
  });
});

describe('prose', () => {
  it('finds a word across its literal parts and values (a name with its quotes), and keeps Html as it is', () => {
    const name = 'x'.repeat(LONG_WORD - 2);
    expect(prose`“${name}” ${html`<code>rk_live_…x4Qz</code>`}, live`.value).toBe(`<span class="long-word">“${name}”</span> <code>rk_live_…x4Qz</code>, live`);
    expect(prose`${['a', 'b'.repeat(LONG_WORD - 1), html`<b>!</b>`, 1, null, false]} & more`.value).toBe(`<span class="long-word">a${'b'.repeat(LONG_WORD - 1)}</span><b>!</b>1 &amp; more`);
  });
});
