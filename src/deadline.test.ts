/** Waiting on a backend no longer than a deadline. */
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { DeadlineError, withDeadline } from './deadline.js';

/** Keeps the event loop busy, as a long GC pause or a starved CPU would. */
function busyFor(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until);
}

describe('withDeadline', () => {
  it('gives up when no answer comes in time, naming what did not answer', async () => {
    await expect(withDeadline(new Promise(() => undefined), 20)).rejects.toThrow(new DeadlineError('Redis', 20));
    await expect(withDeadline(new Promise(() => undefined), 20, { what: 'the store' })).rejects.toThrow('the store did not answer within 20 ms');
  });

  it('reads an answer that arrived while the process was busy instead of calling it a timeout', async () => {
    // The answer is written, the deadline starts, and the process is busy past the
    // deadline before it can read the answer. (The deadline starts only once the answer
    // is on its way: on a loaded machine the question alone may take longer than 20 ms.)
    let answered: Promise<string> | undefined;
    let reply: Promise<string> | undefined;
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.on('data', () => {
        socket.write('pong');
        answered = withDeadline(reply!, 20);
        busyFor(100);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client: Socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    await new Promise((resolve) => client.once('connect', resolve));
    try {
      reply = new Promise<string>((resolve) => client.once('data', (data) => resolve(data.toString())));
      client.write('ping');
      await reply;
      await expect(answered).resolves.toBe('pong');
    } finally {
      client.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('hands a result that came too late to onLate', async () => {
    const late: string[] = [];
    // Answered only once the deadline has passed: a timer for the answer could fire in the
    // same turn as the deadline's when the process is held up (a loaded machine), and be
    // read in time.
    let answer!: (value: string) => void;
    const slow = new Promise<string>((resolve) => (answer = resolve));
    await expect(withDeadline(slow, 10, { onLate: (value) => late.push(value) })).rejects.toBeInstanceOf(DeadlineError);
    answer('reserved');
    await slow;
    expect(late).toEqual(['reserved']);
  });
});
