/**
 * HTTP as bytes on a socket of its own: for requests no client library would send
 * (malformed heads, odd framing) and answers compared byte for byte.
 */
import { connect } from 'node:net';

/** Sends `bytes` and returns everything received until the server closes the connection (latin1: one character a byte). */
export function rawAll(url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    let text = '';
    socket.setTimeout(5_000, () => reject(new Error(`not closed within 5 s; received: ${text}`)));
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(text));
    socket.write(bytes);
  });
}
