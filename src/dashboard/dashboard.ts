/** The dashboard listener (members and operators). */
import type { FastifyInstance } from 'fastify';
import type { Runtime } from '../runtime.js';

export async function buildDashboard(_rt: Runtime): Promise<FastifyInstance | undefined> {
  return undefined;
}
