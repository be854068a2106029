/**
 * GET /v1/address-blocks and DELETE /v1/address-blocks/{address}: the client addresses
 * blocked for presenting too many unknown keys (`auth.unknownKeys`), seen and lifted
 * without a reload. With Redis counters the blocks are shared: any process's admin API
 * lists them all and lifts one in every process. With memory counters each process keeps
 * its own: its admin API answers for it alone. The answer's `from` says which it is, and
 * whether Redis was away or refused the command (the list then holds only this process's
 * copies, and a lift reaches only this process).
 *
 * @example
 * // GET /v1/address-blocks
 * // → {"enabled":true,"policy":{"limit":20,"window":"1m","block":"10m"},"from":"shared","blocks":[{"address":"203.0.113.5",…}]}
 * // GET /v1/address-blocks?limit=1000 → the oldest 1,000, and Link: </v1/address-blocks?limit=1000&after=…>; rel="next"
 * // DELETE /v1/address-blocks/2001:db8:0:7::1 → the block of 2001:db8:0:7::/64, lifted, and how far: {"address":"2001:db8:0:7::/64",…,"from":"shared"}
 */
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Runtime } from '../runtime.js';
import { blockedAddressOf, isBlockedAddress, liftAddressBlock, listAddressBlocks, NOT_AN_ADDRESS, placeOfBlock } from '../operations/address-blocks.js';
import type { AdminApp } from './check-routes.js';
import { paged, PageQuery } from './paging.js';
import type { Actor } from '../operations/audit.js';

const Block = z.object({
  address: z.string().describe('The address blocked: an IPv4 address, or an IPv6 /64 (2001:db8:0:7::/64), as its clients share one count'),
  unknownKeys: z.number().int().describe('Unknown keys it had presented within the window when the block began'),
  blockedAt: z.string(),
  blockedUntil: z.string().describe('When the block ends by itself: until then, keys a process does not hold in its key cache are refused from it (too_many_failures)'),
});

/** Where a list came from, or how far a lift reached (BlocksFrom, auth/unknown-key-limit.ts). */
const From = z.enum(['shared', 'this-process', 'this-process-redis-away', 'this-process-redis-refused']);

const AddressBlocks = z.object({
  enabled: z.boolean().describe('Whether the profile sets auth.unknownKeys; false: nothing is counted or blocked, and blocks is empty'),
  policy: z
    .object({ limit: z.number().int(), window: z.string().describe('As the profile writes it: "1m"'), block: z.string().describe('As the profile writes it: "10m"') })
    .nullable()
    .describe('auth.unknownKeys as in effect; null while it is off'),
  from: From
    .nullable()
    .describe(
      'Where blocks comes from. shared: Redis counters, the blocks every process shares: every process\'s (a block a process began on its own while it could not reach Redis is handed to Redis once it can; until then only that process lists it). this-process: memory counters, this process\'s own blocks (each process counts and blocks by itself; ask each one). this-process-redis-away: Redis counters, but Redis does not answer: only the blocks this process holds, so others may be in force; until Redis is back, lifting one of these lifts it in this process alone (a block Redis holds comes back once it answers), and lifting any other answers 503. this-process-redis-refused: the same, but Redis answers, with an error (NOPERM from its ACL, READONLY…): until Redis takes these commands again. null while auth.unknownKeys is off',
    ),
  blocks: z
    .array(Block)
    .describe('The blocks in force, the oldest first (every process\'s with Redis counters; this process\'s with memory counters, or while Redis is away or answers with an error: from says which): all of them, or with ?limit= a page of them (a Link header, rel="next", gives the next page)'),
});

const LiftedBlock = Block.extend({
  from: From.describe(
    'How far the lift reached. shared: Redis counters, in every process (each drops its copy on the Redis message). this-process: memory counters, in this process, which alone held it (each process blocks by itself). this-process-redis-away: Redis counters, but Redis does not answer: in this process alone; other keygate processes may still refuse the address, and a block Redis holds comes back here once it answers (lift it again then). this-process-redis-refused: the same, but Redis answers, with an error (NOPERM from its ACL, READONLY…)',
  ),
}).describe('The block lifted, and how far');

/** `actorOf`: who the audit log names for a request's change (its token's name, the client's address). */
export function registerAddressBlockRoutes(app: AdminApp, rt: Runtime, options: { problem: z.ZodType; actorOf: (request: FastifyRequest) => Actor }): void {
  const { problem: Problem, actorOf } = options;
  app.get(
    '/v1/address-blocks',
    {
      schema: {
        operationId: 'listAddressBlocks',
        tags: ['addressBlocks'],
        summary: 'Client addresses blocked for too many unknown keys (auth.unknownKeys), until when',
        description:
          'With Redis counters, the blocks every keygate process shares (a block a process began on its own while it could not reach Redis is handed to Redis, and so listed here, once that process reaches it again); while Redis does not answer, only the blocks this process holds (from is this-process-redis-away; this-process-redis-refused while Redis answers with an error). With memory counters each process counts and blocks by itself, and this answers for the process whose admin API is asked. With auth.unknownKeys off, enabled is false and the list is empty. Up to 50,000 blocks: ?limit= pages them as the other lists page (blocks holds one page; enabled, policy and from come with each).',
        querystring: z.object(PageQuery).strict(),
        response: { 200: AddressBlocks, 400: Problem },
      },
    },
    async (request, reply) => {
      let answer: Awaited<ReturnType<typeof listAddressBlocks>> | undefined;
      // The page's blocks, read one past the limit (whether another page follows), and the rest of the answer with them.
      const blocks = await paged(
        request,
        reply,
        async (page) => (answer = await listAddressBlocks(rt, page)).blocks,
        placeOfBlock,
        isBlockedAddress,
      );
      return { ...(answer as Awaited<ReturnType<typeof listAddressBlocks>>), blocks };
    },
  );
  app.delete(
    '/v1/address-blocks/:address',
    {
      schema: {
        operationId: 'liftAddressBlock',
        tags: ['addressBlocks'],
        summary: 'Lift the block of a client address (an IPv6 address: its /64); its unknown keys are counted afresh',
        description: 'The address as listed, or any address in a blocked IPv6 /64 (the /64 itself written with %2F for its slash). With Redis counters it is lifted in every process (each drops its copy on the Redis message); with memory counters in this process alone. While Redis does not answer (or answers with an error), a block this process holds is lifted in this process alone, and from says so (this-process-redis-away, this-process-redis-refused); 503 when this process holds no block of it. Audited as address.unblocked, with from. 404 when no block of it is in force (or auth.unknownKeys is off).',
        params: z.object({ address: z.string().refine((text) => blockedAddressOf(text) !== undefined, NOT_AN_ADDRESS) }),
        response: { 200: LiftedBlock, 400: Problem, 404: Problem },
      },
    },
    async (request) => liftAddressBlock(rt, request.params.address, actorOf(request)),
  );
}
