/**
 * The examples' upstreams answer HEAD as GET, without the body: keygate admits HEAD
 * wherever a route takes GET, and a user who copies an upstream copies this too. Each
 * upstream is started on its own, on loopback, and asked as keygate would forward.
 */
import type { Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';

/** Each example, and a GET its upstream serves to an account keygate names. */
const EXAMPLES: [name: string, path: string][] = [
  ['ranksy', '/api/v1/apps'],
  ['ranktracker', '/v1/domains'],
  ['seranking-data', '/v1/domain/overview?domain=seranking.com&source=us'],
  ['seranking-project', '/sites'],
  ['trakkr', '/get-brands'],
];

/** The whole answer to `HEAD path`, read until the upstream closes the connection. */
function rawHead(server: Server, path: string, headers: Record<string, string>): Promise<string> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(text));
    const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
    socket.write(`HEAD ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${lines}Connection: close\r\n\r\n`);
  });
}

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
      // Over a raw socket (fetch hides any body a HEAD answer would carry): GET's status
      // and Content-Type, and nothing after the blank line that ends the head.
      const answer = await rawHead(server, path, headers);
      const [head, body] = answer.split('\r\n\r\n') as [string, string];
      expect(head).toMatch(/^HTTP\/1\.1 200 /);
      expect(head.toLowerCase()).toContain(`content-type: ${get.headers.get('content-type')}`);
      expect(body).toBe('');
    });
  }
});
