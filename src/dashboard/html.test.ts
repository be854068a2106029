import { describe, expect, it } from 'vitest';
import { escapeHtml, html } from './html.js';

describe('escapeHtml', () => {
  it('escapes markup, so user text is shown, never run', () => {
    expect(escapeHtml(`<script>alert("x" & 'y')</script>`)).toBe('&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;');
  });

  it('shows control characters other than tab and line breaks as U+FFFD', () => {
    expect(escapeHtml('a\u0000b\u0007c\u001b[31md\u000be\u000cf\u007fg\u0085h\u009fi')).toBe('a\uFFFDb\uFFFDc\uFFFD[31md\uFFFDe\uFFFDf\uFFFDg\uFFFDh\uFFFDi');
    expect(escapeHtml('tab\there\nline\r\nend')).toBe('tab\there\nline\r\nend');
  });

  it('leaves other text, and markup the code itself wrote, as it is', () => {
    expect(escapeHtml('Ünïcödé “quotes” — 🔑 \u00a0')).toBe('Ünïcödé “quotes” — 🔑 \u00a0');
    expect(html`<input value="${'ada\u0000@acme.example'}">`.value).toBe('<input value="ada\uFFFD@acme.example">');
  });
});
