/** An address where connections are refused, whatever other tests listen on meanwhile. */
import { createServer, type AddressInfo } from 'node:net';

/**
 * `<scheme>://127.0.0.2:<port>`. Servers in the tests listen on 127.0.0.1 only, so
 * nothing answers on 127.0.0.2 and a connection there is refused. A port of 127.0.0.1
 * that was free a moment ago is not enough: the system can hand it to the next server
 * another test file starts, and the "unreachable" upstream then answers (it did once).
 * The port is one that was free, so that a wildcard listener is unlikely to hold it.
 */
export async function refusedUrl(scheme = 'http'): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', resolve);
  });
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return `${scheme}://127.0.0.2:${port}`;
}

/** A server that takes connections and closes each as its request comes, unanswered (as a TLS server does with plain HTTP). */
export interface UnansweringServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  close(): Promise<void>;
}

export async function startUnansweringServer(): Promise<UnansweringServer> {
  const server = createServer((socket) => socket.once('data', () => socket.destroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
