/**
 * The operator's page of client addresses blocked for presenting too many unknown keys
 * (`auth.unknownKeys`): each block in force with its address (an IPv6 /64 as one), the
 * unknown keys counted, when it began and when it ends, a page at a time in the admin
 * API's order (oldest first), and a Lift button. Read and lifted by the operations
 * GET and DELETE /v1/address-blocks use (listAddressBlocks, liftAddressBlock: audited as
 * `address.unblocked`, the operator as actor), so both say the same. With memory
 * counters each process keeps its own blocks, and the page says it shows those of the
 * process that answered it; with Redis counters while Redis does not answer (or answers
 * with an error), it says the list holds only this process's copies, and why. None of
 * this exists for members.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { BlocksFrom } from '../../auth/unknown-key-limit.js';
import { CountersRefusedError, CountersUnavailableError } from '../../counters/counters.js';
import { blockedAddressOf, isBlockedAddress, liftAddressBlock, listAddressBlocks, placeOfBlock } from '../../operations/address-blocks.js';
import { cursorOf, placeOf } from '../../operations/cursor.js';
import { OperationError, OPERATION_STATUS } from '../../operations/errors.js';
import { actorOf, csrfField, field, operatorOf, queryValue, redirect, setNotice, type Dashboard, type Notice } from '../context.js';
import { noticeBox, sendPage } from '../layout.js';
import { html } from '../html.js';
import { number, plural, sentence, untilInTable, whenInTable } from '../format.js';

/** Where the page is (the operator's navigation links it: layout.ts). */
const ADDRESS_BLOCKS_PATH = '/address-blocks';
/** Blocks on one page of the list (an attack may block thousands of addresses). */
export const BLOCKS_PER_PAGE = 100;
/** The Lift form's field: the address as listed. */
const ADDRESS_FIELD = 'address';
/** What the intro says of whose blocks the list holds, by where it came from. */
const SHARING: Record<BlocksFrom, string> = {
  shared: 'Every keygate process shares these blocks (Redis counters): lifting one lifts it in all of them.',
  'this-process': 'Each keygate process counts and blocks by itself (memory counters): this page shows and lifts the blocks of the process that answered it; another process’s, through its own admin API.',
  'this-process-redis-away': 'Keygate processes share these blocks through the counters (Redis) while Redis answers.',
  'this-process-redis-refused': 'Keygate processes share these blocks through the counters (Redis) while Redis takes their commands.',
};
/** What a lift does, where the intro can say it of every lift: while Redis does not answer, THIS_PROCESS_ONLY says what Lift does instead. */
const LIFTING = 'Lifting a block serves the address again and counts its unknown keys afresh.';
/**
 * While Redis does not answer, or answers with an error: why, and when that ends (`until`,
 * `back`), for the notice above the list (a lift then reaches no other process: liftAddressBlock).
 */
const THIS_PROCESS_ONLY: Partial<Record<BlocksFrom, { why: string; until: string; back: string }>> = {
  'this-process-redis-away': { why: 'The counters (Redis) do not answer', until: 'Until Redis is back', back: 'once it answers' },
  'this-process-redis-refused': { why: 'The counters (Redis) answer with an error', until: 'Until Redis takes commands again', back: 'once it does' },
};

/** Said above the list while Redis does not answer or answers with an error; undefined otherwise. */
function thisProcessNotice(from: BlocksFrom | null): string | undefined {
  const only = from === null ? undefined : THIS_PROCESS_ONLY[from];
  if (only === undefined) return undefined;
  return `${only.why}, so this list shows only the blocks this keygate process holds: others may be in force. ${only.until}, Lift ends a block in this process alone (one Redis holds comes back ${only.back}), and a block not listed here cannot be lifted.`;
}

/** What a lift says it did: everywhere it reached, or (Redis away or refusing) this process alone, and what that leaves. */
function liftedText(address: string, from: BlocksFrom): string {
  if (from === 'this-process-redis-away')
    return `The block of ${address} is lifted in this keygate process only: the counters (Redis) do not answer, so other keygate processes may still refuse the address, and a block Redis holds comes back once it answers (lift it again then).`;
  if (from === 'this-process-redis-refused')
    return `The block of ${address} is lifted in this keygate process only: the counters (Redis) answer with an error, so other keygate processes may still refuse the address, and a block Redis holds comes back once Redis takes commands again (lift it again then).`;
  return `The block of ${address} is lifted: its requests are served again, and its unknown keys counted afresh.`;
}

export function registerAddressBlockPage(app: FastifyInstance, dash: Dashboard): void {
  const { rt } = dash;

  app.get(ADDRESS_BLOCKS_PATH, async (request, reply) => {
    operatorOf(request);
    return sendBlocks(request, reply);
  });

  app.post(`${ADDRESS_BLOCKS_PATH}/lift`, async (request, reply) => {
    operatorOf(request);
    const typed = field(request.body, ADDRESS_FIELD);
    // Only an address as the list gives them (a hand-edited form may send anything): not repeated back otherwise.
    const address = blockedAddressOf(typed);
    if (address === undefined) return sendBlocks(request, reply, { kind: 'error', text: 'The form did not name a blocked address as this page lists them. Lift a block with its own button.' }, 400);
    try {
      const lifted = await liftAddressBlock(rt, address, actorOf(dash, request));
      // Lifted in this process alone (Redis away or refusing): a warning, as the lift is not what it is when Redis answers.
      setNotice(dash, reply, { kind: THIS_PROCESS_ONLY[lifted.from] !== undefined ? 'warning' : 'success', text: liftedText(lifted.address, lifted.from) });
      return redirect(reply, ADDRESS_BLOCKS_PATH);
    } catch (error) {
      // Ended, or lifted by someone else meanwhile (Back, a second operator): nothing to lift.
      if (error instanceof OperationError && error.kind === 'not_found') {
        setNotice(dash, reply, { kind: 'info', text: `Nothing changed: ${address} is not blocked now (its block ended, or was lifted already).` });
        return redirect(reply, ADDRESS_BLOCKS_PATH);
      }
      if (error instanceof OperationError) return sendBlocks(request, reply, { kind: 'error', text: sentence(error.message) }, OPERATION_STATUS[error.kind]);
      // Redis away (or refusing), and this process holds no block of the address: it cannot be lifted now, by anyone.
      if (error instanceof CountersRefusedError)
        return sendBlocks(request, reply, { kind: 'error', text: `The block of ${address} cannot be lifted now: the counters (Redis) answer with an error. Try again once Redis takes commands again.` }, 503);
      if (error instanceof CountersUnavailableError) return sendBlocks(request, reply, { kind: 'error', text: `The block of ${address} cannot be lifted now: the counters (Redis) do not answer. Try again once they are back.` }, 503);
      throw error;
    }
  });

  async function sendBlocks(request: FastifyRequest, reply: FastifyReply, notice?: Notice, status = 200): Promise<FastifyReply> {
    const cursor = queryValue(request.query, 'after');
    // One past the page: whether another follows.
    const listed = await listAddressBlocks(rt, { limit: BLOCKS_PER_PAGE + 1, ...(cursor !== undefined ? { after: placeOf(cursor, isBlockedAddress) } : {}) });
    const blocks = listed.blocks.slice(0, BLOCKS_PER_PAGE);
    const last = blocks[blocks.length - 1];
    const next = listed.blocks.length > BLOCKS_PER_PAGE && last ? cursorOf(placeOfBlock(last)) : undefined;
    const policy = listed.policy;
    const intro = policy
      ? html`<p>A client address that presents ${plural(policy.limit, 'unknown key')} within ${policy.window} is refused for ${policy.block} (<code>auth.unknownKeys</code>), but for keys in use. Oldest first, ${BLOCKS_PER_PAGE} to a page. ${SHARING[listed.from ?? 'this-process']}${thisProcessNotice(listed.from) === undefined ? ` ${LIFTING}` : ''}</p>`
      : html`<p>Unknown keys are not counted and no address is blocked: <code>auth.unknownKeys</code> is off in this profile.</p>`;
    // Redis away or refusing: the list is this process's copies alone, so it must not pass for all of them.
    const alone = thisProcessNotice(listed.from);
    const away = alone === undefined ? '' : noticeBox({ kind: 'warning', text: alone });
    const empty = cursor !== undefined
      ? html`<div class="empty"><p><strong>No more blocks.</strong></p><p><a href="${ADDRESS_BLOCKS_PATH}">Back to the first page</a></p></div>`
      : html`<div class="empty"><p><strong>No address is blocked now.</strong></p></div>`;
    const pager =
      cursor !== undefined || next !== undefined
        ? html`<nav class="pager" aria-label="Pages of address blocks">${cursor !== undefined ? html`<a href="${ADDRESS_BLOCKS_PATH}">First page</a>` : ''}${next !== undefined ? html`<a href="${ADDRESS_BLOCKS_PATH}?after=${next}" rel="next">Next ${BLOCKS_PER_PAGE} blocks</a>` : ''}</nav>`
        : '';
    const body = html`<h1 id="address-blocks">Address blocks</h1>
${intro}
${away}
${policy === null
  ? ''
  : blocks.length === 0
    ? empty
    : html`<div class="table-wrap"><table class="data cards" aria-labelledby="address-blocks">
  <thead><tr><th scope="col">Address</th><th scope="col" class="num">Unknown keys</th><th scope="col">Began (UTC)</th><th scope="col">Ends (UTC)</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
  <tbody>${blocks.map(
    (block) => html`<tr>
    <td data-label="Address"><code>${block.address}</code></td>
    <td data-label="Unknown keys" class="num">${number(block.unknownKeys)}</td>
    <td data-label="Began (UTC)">${whenInTable(Date.parse(block.blockedAt))}</td>
    <td data-label="Ends (UTC)">${untilInTable(Date.parse(block.blockedUntil))}</td>
    <td data-label=""><form method="post" action="${ADDRESS_BLOCKS_PATH}/lift" class="inline-form">${csrfField(request)}<input type="hidden" name="${ADDRESS_FIELD}" value="${block.address}"><button type="submit" class="secondary small" aria-label="Lift the block of ${block.address}">Lift</button></form></td>
  </tr>`,
  )}</tbody></table></div>`}
${pager}`;
    return sendPage(dash, request, reply, { title: 'Address blocks', body, status, ...(notice ? { notice } : {}) });
  }
}
