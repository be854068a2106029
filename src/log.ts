/**
 * Structured logs (pino). Secrets never reach a log line: request targets are logged
 * with credential query parameters replaced by `[REDACTED]`, headers are not logged at
 * all, and any field that could hold a key or token is censored by path.
 */
import pino, { type Logger } from 'pino';

export type Log = Logger;

export const REDACTED = '[REDACTED]';

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
    options.destination,
  );
}
