/** Options every keygate listener shares: our logger, no per-request noise, lenient routing. */
import { LogController, type FastifyBaseLogger, type FastifyServerOptions } from 'fastify';
import type { Log } from './log.js';

/** What every listener has, with or without a Fastify logger. */
export const LISTENER_OPTIONS = {
  requestIdHeader: false,
  return503OnClosing: true,
  routerOptions: { maxParamLength: 2048, ignoreTrailingSlash: true },
} as const satisfies FastifyServerOptions;

export function listenerOptions(log: Log, component: string): FastifyServerOptions & { loggerInstance: FastifyBaseLogger } {
  return {
    ...LISTENER_OPTIONS,
    loggerInstance: log.child({ component }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  };
}
