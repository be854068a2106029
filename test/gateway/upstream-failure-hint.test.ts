/**
 * The warning `upstream request failed` says what the failure means for upstream.url, as
 * `keygate check` does: an https:// URL to a plain-HTTP upstream ("wrong version number"),
 * an http:// one to an upstream that closes the connection unanswered (one serving TLS),
 * nothing listening. A new operator who started `serve` without `check` reads it there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { refusedUrl, startUnansweringServer, type UnansweringServer } from '../support/refused.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

const PROFILE = { keys: { prefix: { live: 'sk_live_' } }, errors: { envelope: 'error' as const } };

type Line = Record<string, unknown>;

/** The 502 a client gets through a keygate whose upstream.url is `url`, and keygate's warning about it. */
async function failedThrough(url: string, name: string): Promise<{ status: number; body: unknown; warning: Line | undefined }> {
  const kg: TestKeygate = await startKeygate({ ...PROFILE, upstream: { url } }, { dir: tempDir(name) });
  try {
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    const { secret } = await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live' }, 'test');
    const response = await kg.call('/v1/items', { headers: { Authorization: `Bearer ${secret}` } });
    const body: unknown = await response.json();
    const warning = kg.logs.lines.map((text) => JSON.parse(text) as Line).find((line) => line.msg === 'upstream request failed');
    return { status: response.status, body, warning };
  } finally {
    await kg.close();
  }
}

describe('the warning for a failed upstream request says what upstream.url should be', () => {
  let plain: TestUpstream;
  /** Takes connections and closes each as its request comes, unanswered (as a TLS server does with plain HTTP). */
  let closer: UnansweringServer;
  beforeAll(async () => {
    plain = await startTestUpstream();
    closer = await startUnansweringServer();
  });
  afterAll(async () => {
    await plain?.close();
    await closer?.close();
  });

  it('https:// to an upstream that serves plain HTTP: it does not speak TLS, upstream.url is http://', async () => {
    const url = plain.url.replace('http://', 'https://');
    const { status, body, warning } = await failedThrough(url, 'upstream-hint-https');
    expect([status, body]).toEqual([502, { error: 'The upstream service is unavailable.' }]);
    expect(warning).toMatchObject({ level: 40, error: { code: 'ERR_SSL_WRONG_VERSION_NUMBER' }, hint: 'the upstream does not speak TLS; if it serves plain HTTP, upstream.url is http://, not https://' });
  });

  it('http:// to an upstream that closes the connection unanswered: check the port; one that serves TLS is https://', async () => {
    const { url } = closer;
    const { status, warning } = await failedThrough(url, 'upstream-hint-closed');
    expect(status).toBe(502);
    expect(warning).toMatchObject({ hint: "the upstream closed the connection without an HTTP answer: check upstream.url is the API's own port; one that serves TLS is https://, not http://" });
  });

  it('nothing listening: names the address and says to check that the upstream runs', async () => {
    const url = await refusedUrl();
    const { status, warning } = await failedThrough(url, 'upstream-hint-refused');
    expect(status).toBe(502);
    expect(warning).toMatchObject({ error: { code: 'ECONNREFUSED' }, hint: `nothing listens at ${new URL(url).host}: check upstream.url and that the upstream is running` });
  });

  it('an upstream that answers: no warning at all', async () => {
    const kg = await startKeygate({ ...PROFILE, upstream: { url: plain.url } }, { dir: tempDir('upstream-hint-ok') });
    try {
      const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
      const { secret } = await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live' }, 'test');
      const response = await kg.call('/v1/items', { headers: { Authorization: `Bearer ${secret}` } });
      expect(response.status).toBe(200);
      await response.text();
      expect(kg.logs.lines.map((text) => (JSON.parse(text) as Line).msg)).not.toContain('upstream request failed');
    } finally {
      await kg.close();
    }
  });
});
