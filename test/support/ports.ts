/**
 * Ports for servers that must listen on a port named in advance: a profile's upstream.url
 * that `upstream.spawn` starts, a redis-server or TCP proxy started again on its port.
 *
 * A port of 127.0.0.1 that was free a moment ago is not enough: the system hands out
 * ports from its ephemeral range (Linux: 32768-60999) to every server another test file
 * starts on port 0 meanwhile, and one of them could take it before the named server
 * listens (or while it is stopped). These ports come from outside that range, so no
 * `listen(0)` and no outgoing connection ever gets one; each vitest worker draws from a
 * block of its own (VITEST_POOL_ID), so two test files running at once never pick the
 * same. KEYGATE_TEST_PORTS=<low>-<high> moves the range (default 20000-29999).
 */
import { createServer, type Server } from 'node:net';

const [LOW, HIGH] = (process.env.KEYGATE_TEST_PORTS ?? '20000-29999').split('-').map(Number) as [number, number];
const BLOCKS = 10;

function listenOn(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/** `n` different ports, free now, that no server started on port 0 can take meanwhile. */
export async function namedPorts(n: number): Promise<number[]> {
  const size = Math.floor((HIGH - LOW + 1) / BLOCKS);
  const first = LOW + ((Number(process.env.VITEST_POOL_ID ?? 1) - 1) % BLOCKS) * size;
  const held: Server[] = [];
  const ports: number[] = [];
  try {
    for (let tries = 0; ports.length < n; tries++) {
      if (tries > 10 * size) throw new Error(`no free port in ${first}-${first + size - 1} (KEYGATE_TEST_PORTS)`);
      const port = first + Math.floor(Math.random() * size);
      if (ports.includes(port)) continue;
      // Held until all are chosen: the same port is not drawn twice.
      const server = await listenOn(port);
      if (!server) continue;
      held.push(server);
      ports.push(port);
    }
  } finally {
    await Promise.all(held.map((server) => new Promise((resolve) => server.close(resolve))));
  }
  return ports;
}

export async function namedPort(): Promise<number> {
  return (await namedPorts(1))[0] as number;
}
