/**
 * The one rule a member's email address is held to where an address is given for a new
 * member (an invitation, from the dashboard's form, the admin API or the CLI): `local@domain`
 * within RFC 5321's lengths, without spaces, control characters or the characters that
 * only a quoted address may hold (`<b>@x.com` would be listed and audited as if it were
 * one). Members saved before under a looser rule are not checked again: they sign in,
 * are reset, unlocked and removed by the address they have.
 *
 * @example
 *   emailRefusal('ana@acme.test')   // → undefined
 *   emailRefusal('<b>@x.com')       // → 'the email is not an address such as name@example.com (…)'
 */

/** RFC 5321's limits, in bytes: the longest path a mail server takes, less its brackets, and the longest local part. */
export const EMAIL_MAX_BYTES = 254;
export const LOCAL_PART_MAX_BYTES = 64;

/**
 * Before the @: anything but space, a control character, an @ and the characters a
 * mail address must quote (`"(),:;<>[\]`), so `a+tag@`, `o'neil@` and `josé@` are taken.
 * After it: two or more names of letters (any script), digits and hyphens, separated by
 * dots, none beginning or ending with a hyphen.
 */
const LOCAL_PART = /^[^\s\p{Cc}@"(),:;<>[\\\]]+$/u;
const DOMAIN_LABEL = '[\\p{L}\\p{M}\\p{N}](?:[\\p{L}\\p{M}\\p{N}-]*[\\p{L}\\p{M}\\p{N}])?';
const DOMAIN = new RegExp(`^${DOMAIN_LABEL}(?:\\.${DOMAIN_LABEL})+$`, 'u');

/** What an address that breaks no length and has an @ may still be refused for, in one sentence's words. */
export const NOT_AN_ADDRESS = 'not an address such as name@example.com (no spaces; none of " ( ) , : ; < > [ \\ ]; a dot in the domain)';

/**
 * Why `email` (trimmed and lower-cased) is not taken as a new member's address, or
 * undefined: its lengths first, so that nothing longer than 254 bytes is looked at further.
 * No reason repeats the address.
 */
export function emailRefusal(email: string): string | undefined {
  const bytes = Buffer.byteLength(email);
  if (bytes > EMAIL_MAX_BYTES) return `an email address is at most ${EMAIL_MAX_BYTES} bytes (RFC 5321); this one has ${bytes}`;
  const at = email.lastIndexOf('@');
  const localBytes = Buffer.byteLength(email.slice(0, Math.max(at, 0)));
  if (localBytes > LOCAL_PART_MAX_BYTES) return `an email address has at most ${LOCAL_PART_MAX_BYTES} bytes before the @ (RFC 5321); this one has ${localBytes}`;
  // Shown in tables, pages and the audit log: nothing that would show it as another address.
  if (/[\p{Cc}\p{Bidi_Control}]/u.test(email)) return 'an email address cannot contain control characters or text-direction controls';
  if (at < 0) return 'that is not an email address: it has no @';
  if (!LOCAL_PART.test(email.slice(0, at)) || !DOMAIN.test(email.slice(at + 1))) return `the email is ${NOT_AN_ADDRESS}`;
  return undefined;
}

/** Whether `email` is an address the rule takes: where one that is not is better not repeated. */
export function isEmailAddress(email: string): boolean {
  return emailRefusal(email) === undefined;
}
