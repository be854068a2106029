/**
 * Whether a body is an error in a profile's envelope (shared/DESIGN.md, "Dialect"), as the
 * fuzz properties check every 4xx the gateway sends. The shapes are the ones
 * src/dialect/dialect.ts renders; an upstream of the examples answers its own 4xx in its
 * API's envelope too, so the check holds for forwarded answers as well.
 */
import type { Envelope } from '../../src/config/schema.js';

const isText = (value: unknown): value is string => typeof value === 'string' && value !== '';

/** Why `text` is not an error of `envelope` for `status`, or undefined if it is one. */
export function envelopeProblem(envelope: Envelope, status: number, text: string): string | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `not JSON: ${JSON.stringify(text.slice(0, 200))}`;
  }
  const fields = (body ?? {}) as Record<string, unknown>;
  const shaped = (() => {
    switch (envelope) {
      case 'jsonapi': {
        const errors = fields.errors as Record<string, unknown>[] | undefined;
        return Array.isArray(errors) && errors.length > 0 && errors.every((e) => isText(e.code) && e.status === status && isText(e.detail));
      }
      case 'typed': {
        const error = fields.error as Record<string, unknown> | undefined;
        return typeof error === 'object' && error !== null && isText(error.type) && isText(error.code) && isText(error.message);
      }
      case 'message':
        return isText(fields.message);
      case 'error_description':
        return isText(fields.error_description);
      case 'error':
        return isText(fields.error);
      case 'problem':
        return isText(fields.title) && fields.status === status && isText(fields.detail);
    }
  })();
  return shaped ? undefined : `not a ${status} in the ${envelope} envelope: ${text.slice(0, 300)}`;
}
