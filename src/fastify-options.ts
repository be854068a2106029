/** Options every keygate listener shares: our logger, no per-request noise, lenient routing. */
import { LogController, type FastifyBaseLogger, type FastifyServerOptions } from 'fastify';
import type { Log } from './log.js';

export function listenerOptions(log: Log, component: string): FastifyServerOptions & { loggerInstance: FastifyBaseLogger } {
  return {
    loggerInstance: log.child({ component }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 2048, ignoreTrailingSlash: true },
  };
}
