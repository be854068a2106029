/**
 * The examples' upstreams answer HEAD as GET, without the body: keygate admits HEAD
 * wherever a route takes GET, and a user who copies an upstream copies this too. Each
 * upstream is started on its own, on loopback, and asked as keygate would forward.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';

/** Each example, and a GET its upstream serves to an account keygate names. */
const EXAMPLES: [name: string, path: string][] = [
  ['ranksy', '/api/v1/apps'],
  ['ranktracker', '/v1/domains'],
  ['seranking-data', '/v1/domain/overview?domain=seranking.com&source=us'],
  ['seranking-project', '/sites'],
  ['trakkr', '/get-brands'],
];

describe("the examples' upstreams", () => {
  const servers: Server[] = [];

  afterAll(async () => {
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
  });

  for (const [name, path] of EXAMPLES) {
    it(`${name}: HEAD ${path} answers as GET does, without the body`, async () => {
      const { createUpstream } = (await import(`../${name}/upstream.mjs`)) as { createUpstream(): Server };
      const server = createUpstream();
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
      const headers = { 'x-keygate-account': 'acc_example', 'x-keygate-mode': 'live', 'x-keygate-scopes': '*' };
      const get = await fetch(url, { headers });
      const getBody = await get.text();
      expect(get.status, getBody).toBe(200);
      const head = await fetch(url, { method: 'HEAD', headers });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-type')).toBe(get.headers.get('content-type'));
      expect(await head.text()).toBe('');
    });
  }
});
