/**
 * Upstream connections that pass over a `100 Continue` nobody asked for. Some servers (IIS,
 * some Java stacks) send one before every answer, and a client must accept any number of
 * 1xx answers before the final one (RFC 9110 §15.2). undici's HTTP/1.1 parser passes
 * every other 1xx to the handler (the forwarder skips them), but fails the connection on a
 * 100 ("bad response", in Parser.onHeadersComplete of lib/dispatcher/client-h1.js), with
 * no option or handler method to accept it, since it never sends `Expect: 100-continue`.
 * So each upstream socket's `read` (which undici's parser pulls every chunk through)
 * drops a complete `HTTP/1.x 100` head where an answer begins, before the parser sees it.
 *
 * An answer begins only after a request went out: `write` marks the socket as awaiting
 * one, and the first bytes read that are not a 100 head clear the mark, so the rest of an
 * answer (its body) is never looked at. Per chunk read: one flag test; per answer: its
 * status's three digits read (the first bytes compared as well only where they are 100);
 * nothing copied unless a 100 head arrives split.
 */
import type { Socket } from 'node:net';
import { buildConnector } from 'undici';

/** A 100 head longer than undici's default header limit is left to undici (which fails it, as before). */
const MAX_CONTINUE_HEAD = 16 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
/** How a 100 answer's status line begins: a reason phrase after a space, or none. */
const CONTINUE_STARTS = ['HTTP/1.1 100 ', 'HTTP/1.1 100\r', 'HTTP/1.0 100 ', 'HTTP/1.0 100\r'].map((start) => Buffer.from(start, 'latin1'));
const CONTINUE_START_LENGTH = 13;
const DIGIT_0 = 0x30;
const DIGIT_1 = 0x31;

/** Whether `bytes` begins with a 100 answer's status line (`yes`), may once more bytes come (`maybe`), or does not (`no`). */
function continueHead(bytes: Buffer): 'yes' | 'maybe' | 'no' {
  // Nearly every answer is told apart by its status's three digits alone (`HTTP/1.1 200`), in JavaScript.
  if (bytes.length >= 12 && (bytes[9] !== DIGIT_1 || bytes[10] !== DIGIT_0 || bytes[11] !== DIGIT_0)) return 'no';
  const n = Math.min(bytes.length, CONTINUE_START_LENGTH);
  for (const start of CONTINUE_STARTS) if (bytes.compare(start, 0, n, 0, n) === 0) return n < CONTINUE_START_LENGTH ? 'maybe' : 'yes';
  return 'no';
}

/** Makes `socket` drop unasked 100 heads at the start of each answer (see the module comment). */
export function passOverUnaskedContinue(socket: Socket): void {
  const read = socket.read;
  const write = socket.write;
  let awaiting = false;
  /** The start of an answer that may be a 100 head not yet in full. */
  let held: Buffer | null = null;
  // Fixed parameters, not a rest array: one write per request, no array made for it.
  socket.write = function (this: Socket, chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    awaiting = true;
    return (write as (c: unknown, e?: unknown, cb?: unknown) => boolean).call(this, chunk, encoding, callback);
  } as Socket['write'];
  socket.read = function (this: Socket, size?: number): Buffer | null {
    for (;;) {
      const chunk = read.call(this, size) as Buffer | null;
      if (!awaiting || chunk === null) return chunk;
      let bytes = held === null ? chunk : Buffer.concat([held, chunk]);
      held = null;
      for (;;) {
        const kind = continueHead(bytes);
        if (kind === 'no') {
          awaiting = false;
          return bytes;
        }
        const end = kind === 'yes' ? bytes.indexOf(HEAD_END) : -1;
        if (end === -1) {
          if (bytes.length > MAX_CONTINUE_HEAD) {
            awaiting = false;
            return bytes;
          }
          held = bytes;
          break;
        }
        // The 100 head is dropped; what follows may be another, or the answer itself.
        bytes = bytes.subarray(end + HEAD_END.length);
        if (bytes.length === 0) break;
      }
    }
  } as Socket['read'];
}

/** undici's own connector (as a Pool builds it by default), its sockets passing over unasked 100 heads. */
export function continueTolerantConnector(): buildConnector.connector {
  const connect = buildConnector({});
  return (options, callback) =>
    // undici calls back with the error alone when the connection fails.
    connect(options, (...args) => {
      if (args[0] === null) passOverUnaskedContinue(args[1]);
      callback(...args);
    });
}
