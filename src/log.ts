/**
 * Structured logs (pino). Secrets never reach a log line: request targets are logged
 * with credential query parameters replaced by `[REDACTED]`, headers are not logged at
 * all, and any field that could hold a key or token is censored by path.
 */
import { performance } from 'node:perf_hooks';
import pino, { type Logger } from 'pino';

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

/**
 * Standard output, written synchronously: each line is out before the call that logs it
 * returns. pino's default writes from a queue instead, and a process that exits (a stop, a
 * failed start) while a write is under way left that write behind: with a log reader
 * slower than keygate (a busy journald, a full pipe) lines went missing, or came out after
 * later ones. `logger.flush(cb)` does not wait for such a write (its callback comes at once
 * with pino's default destination). The cost is the one `console.log` has on a pipe: a
 * reader that stops reading holds the process.
 */
function standardOutput(): pino.DestinationStream {
  return pino.destination({ dest: 1, sync: true });
}

export function createLog(options: { level: string; destination?: pino.DestinationStream; name?: string }): Log {
  return pino(
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
    options.destination ?? standardOutput(),
  );
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
