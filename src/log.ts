/**
 * Structured logs (pino). Secrets never reach a log line: request targets are logged
 * with credential query parameters replaced by `[REDACTED]`, headers are not logged at
 * all, and any field that could hold a key or token is censored by path.
 */
import { performance } from 'node:perf_hooks';
import pino, { type Logger } from 'pino';
import { LOG_BUFFER_BYTES } from './config/schema.js';

export type Log = Logger;

export const REDACTED = '[REDACTED]';

/**
 * For a line that can come with every request (an upstream down, a token guessed): it is
 * written at most once every `ms`, and each time says how many were left out since the
 * last (`moreSinceLast`).
 */
export function oncePer(ms: number): (write: (more: { moreSinceLast?: number }) => void) => void {
  let writtenAt = -Infinity;
  let left = 0;
  return (write) => {
    const now = performance.now();
    if (now - writtenAt < ms) {
      left++;
      return;
    }
    write(left > 0 ? { moreSinceLast: left } : {});
    writtenAt = now;
    left = 0;
  };
}

/** How long a stopping `keygate serve` waits for its log reader to take the lines still kept, at most. */
export const LOG_FLUSH_MS = 5_000;

/**
 * Standard output, written from a bounded queue (pino's sonic-boom, asynchronously, with
 * `maxLength`). A write never waits for the reader: a log reader that stops reading (a
 * stalled log shipper, a full pipe) holds no request. Up to `bufferSize` bytes of lines
 * wait for it; a line past that is dropped, counted (`droppedLines`,
 * keygate_log_lines_dropped_total) and, once the reader has taken everything kept, said in
 * one warning. A stopping process writes what is kept, in order, with `close`.
 *
 * One per process: every log on standard output shares its queue, so lines of two logs
 * come out in the order they were written. Its size is the first one asked for.
 */
class StandardOutput {
  readonly stream: ReturnType<typeof pino.destination>;
  /** Lines dropped since the process started. */
  droppedLines = 0;
  /** Lines dropped since the last warning that said so. */
  private unsaid = 0;
  /** The log that says the drops (the last one made on standard output). */
  sayer: Log | undefined;
  private closing: Promise<boolean> | undefined;

  constructor(readonly bufferSize: number) {
    // Asked for first: Node then makes a pipe or socket on fd 1 non-blocking, so a write the
    // reader has no room for fails with EAGAIN at once (sonic-boom tries again 100 ms later)
    // instead of holding one of libuv's threads until the reader reads.
    void process.stdout;
    this.stream = pino.destination({ dest: 1, sync: false, maxLength: bufferSize });
    // pino writes one line per write: a drop is a line.
    this.stream.on('drop', () => {
      this.droppedLines++;
      this.unsaid++;
    });
    // Everything kept is out: the reader reads again.
    this.stream.on('drain', () => {
      if (this.unsaid === 0) return;
      const dropped = this.unsaid;
      this.unsaid = 0;
      this.sayer?.warn(
        { droppedLines: dropped, droppedLinesTotal: this.droppedLines, bufferSize: this.bufferSize },
        `${dropped} log line(s) dropped: standard output was not read while ${this.bufferSize} bytes of lines waited for it (log.bufferSize); keygate_log_lines_dropped_total counts them`,
      );
    });
  }

  /**
   * Writes every line kept, in order, then ends standard output's log: resolves true once
   * all are out, false if the reader has not taken them within `ms` (they are then given up;
   * a process exits after this). sonic-boom's own exit hook would instead wait for ever on a
   * reader that never reads again, and its `flushSync` skips the write the reader has not
   * taken yet while it writes the ones after it (a gap, lines out of order).
   */
  close(ms: number): Promise<boolean> {
    this.closing ??= new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.stream.destroy();
        resolve(false);
      }, ms);
      this.stream.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
      this.stream.end();
    });
    return this.closing;
  }
}

let standardOutput: StandardOutput | undefined;

/** Standard output's log destination, made on first use with `bufferSize` (bytes). */
function standardOutputOf(bufferSize = LOG_BUFFER_BYTES): StandardOutput {
  standardOutput ??= new StandardOutput(bufferSize);
  return standardOutput;
}

/** Log lines dropped from standard output since the process started (0 if it has written none). */
export function droppedLogLines(): number {
  return standardOutput?.droppedLines ?? 0;
}

/**
 * Writes the log lines standard output still keeps, in order, waiting at most `ms` for its
 * reader; resolves true once all are out (at once if there are none). For a process about
 * to exit: standard output's log takes no line after it.
 */
export function closeStandardOutput(ms: number = LOG_FLUSH_MS): Promise<boolean> {
  return standardOutput?.close(ms) ?? Promise.resolve(true);
}

export function createLog(options: { level: string; destination?: pino.DestinationStream; name?: string; bufferSize?: number }): Log {
  const standard = options.destination === undefined ? standardOutputOf(options.bufferSize) : undefined;
  const log = pino(
    {
      name: options.name ?? 'keygate',
      level: options.level,
      base: undefined,
      redact: {
        paths: [
          'secret',
          'key.secret',
          'token',
          'password',
          'headers.authorization',
          'req.headers.authorization',
          'req.headers.cookie',
          '*.secret',
          '*.password',
          '*.token',
        ],
        censor: REDACTED,
      },
      // Fastify's own request serialization is replaced by our redacting one.
      serializers: { req: () => undefined, res: () => undefined, err: pino.stdSerializers.err },
    },
    options.destination ?? standard?.stream,
  );
  if (standard) standard.sayer = log;
  return log;
}

const LEVEL_WORDS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warning', 50: 'error', 60: 'fatal' };

/**
 * Log lines for a person at a terminal (the CLI): `warning: <message> (err: ..., change: key)`,
 * in the style of the CLI's own `error: ...` lines. Lines are redacted before they get here.
 */
export function terminalDestination(out: NodeJS.WritableStream = process.stderr): pino.DestinationStream {
  return {
    write(line: string) {
      const { level, msg, time: _time, name: _name, ...fields } = JSON.parse(line) as Record<string, unknown>;
      const details = Object.entries(fields).map(([field, value]) => `${field}: ${detail(value)}`);
      out.write(`${LEVEL_WORDS[level as number] ?? 'log'}: ${String(msg ?? '')}${details.length > 0 ? ` (${details.join(', ')})` : ''}\n`);
    },
  };
}

function detail(value: unknown): string {
  if (typeof value === 'string') return value;
  // A serialized error: its message says it.
  if (value !== null && typeof value === 'object' && typeof (value as { message?: unknown }).message === 'string') return (value as { message: string }).message;
  return JSON.stringify(value);
}
