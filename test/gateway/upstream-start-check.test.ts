/**
 * At start-up, after its listeners are up, serve asks the upstream once (HEAD /, as
 * `keygate check` does) and logs one warning, with the hint the gateway's `upstream request
 * failed` warning gives, when it cannot be reached: otherwise a new operator reads "status
 * ok" and then meets a 502 on every request. Nothing when it answers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { refusedUrl, startUnansweringServer, type UnansweringServer } from '../support/refused.js';

type Line = Record<string, unknown> & { msg: string };

const TRIED = 'checked once, at start-up';

const linesOf = (kg: TestKeygate): Line[] => kg.logs.lines.map((text) => JSON.parse(text) as Line);

/** The start-up warning about the upstream at `url`, once logged, and every line logged until then. */
async function startWarning(url: string, name: string): Promise<{ warning: Line; lines: Line[] }> {
  const kg = await startKeygate({ upstream: { url } }, { dir: tempDir(name) });
  try {
    await expect.poll(() => linesOf(kg).filter((line) => line.msg.includes(TRIED)).length, { timeout: 15_000 }).toBe(1);
    const lines = linesOf(kg);
    return { warning: lines.find((line) => line.msg.includes(TRIED)) as Line, lines };
  } finally {
    await kg.close();
  }
}

describe('serve tries the upstream once at start-up', () => {
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

  it('https:// to an upstream that serves plain HTTP: one warning after "status ok", saying upstream.url is http://', async () => {
    const url = plain.url.replace('http://', 'https://');
    const { host } = new URL(url);
    const { warning, lines } = await startWarning(url, 'upstream-start-https');
    // Serving, and said so first: the upstream may come later.
    expect(lines.findIndex((line) => line.msg.startsWith('keygate is serving'))).toBeLessThan(lines.indexOf(warning));
    expect(lines.find((line) => line.msg.startsWith('keygate is serving'))).toMatchObject({ status: 'ok' });
    expect(warning).toMatchObject({ level: 40, upstream: `${url}/`, hint: 'the upstream does not speak TLS; if it serves plain HTTP, upstream.url is http://, not https://' });
    expect(warning.msg).toBe(`the upstream at ${host} took the connection but could not be asked (${TRIED}): the upstream does not speak TLS; if it serves plain HTTP, upstream.url is http://, not https://; requests are answered upstream_unavailable until it can`);
  });

  it('http:// to an upstream that closes the connection unanswered: check the port; one that serves TLS is https://', async () => {
    const { url } = closer;
    const { warning } = await startWarning(url, 'upstream-start-closed');
    expect(warning).toMatchObject({ level: 40, hint: "the upstream closed the connection without an HTTP answer: check upstream.url is the API's own port; one that serves TLS is https://, not http://" });
  });

  it('nothing listening: the upstream accepts no connections, and nothing listens there', async () => {
    const url = await refusedUrl();
    const { host } = new URL(url);
    const { warning } = await startWarning(url, 'upstream-start-refused');
    expect(warning).toMatchObject({ level: 40, error: { code: 'ECONNREFUSED' }, hint: `nothing listens at ${host}: check upstream.url and that the upstream is running` });
    expect(warning.msg).toBe(`the upstream accepts no connections at ${host} (${TRIED}): nothing listens at ${host}: check upstream.url and that the upstream is running; requests are answered upstream_unavailable until it does`);
  });

  it('an upstream that answers: asked HEAD / once, and no warning', async () => {
    const kg = await startKeygate({ upstream: { url: plain.url } }, { dir: tempDir('upstream-start-answers') });
    try {
      const asked = () => plain.tried.filter((r) => r.method === 'HEAD' && r.url === '/');
      await expect.poll(() => asked().length, { timeout: 15_000 }).toBe(1);
      // Its answer read: a request through the gateway is answered after it.
      expect((await kg.call('/anything')).status).toBe(401);
    } finally {
      await kg.close();
    }
    expect(linesOf(kg).filter((line) => line.msg.includes(TRIED) || line.level === 40)).toEqual([]);
  });
});
