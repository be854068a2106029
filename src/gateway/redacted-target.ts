/**
 * A request target as logs and errors may show it: credential parameters, parameters
 * named like an API's own secrets, userinfo, anything shaped like a key and the admin
 * API's tokens replaced.
 */
import type { Config } from '../config/schema.js';
import type { KeyFormat } from '../keys/format.js';
import { withoutKeys } from '../keys/redact.js';
import { withoutCredentialParams } from '../auth/credential.js';
import { withoutSecretParams } from './secret-params.js';
import { REDACTED } from '../log.js';

/** `scheme://user:password@` at the start of an absolute-form target (one keygate refused). */
const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i;
const SLASH = 0x2f;

/**
 * The request target as it may appear in logs: credential parameters replaced, and so are
 * the values of parameters named like a secret (`password`, `access_token`, the profile's
 * `log.redactQuery`) and anything else shaped like a key (one sent in a path segment or a
 * parameter keygate does not read keys from).
 */
export function redactedTarget(rt: { config: Pick<Config, 'auth' | 'log'>; keyFormat: Pick<KeyFormat, 'scrub' | 'scrubBodies'>; adminTokens?: readonly string[] }, url: string | undefined): string {
  const target = url ?? '/';
  // An origin-form target (`/path?query`, nearly every one) has no userinfo to look for.
  const withoutUserinfo = target.charCodeAt(0) === SLASH ? target : target.replace(USERINFO, `$1${REDACTED}@`);
  // A key written with percent-escapes (`sk%5Flive%5F…`), also escaped again (`%255F`), is
  // a key to whoever decodes it: then the target is logged decoded as far as the key showed.
  const withoutCredentials = withoutCredentialParams(withoutUserinfo, rt.config.auth.credentials, REDACTED);
  const redacted = withoutKeys(rt.keyFormat, withoutSecretParams(withoutCredentials, rt.config.log.redactQuery));
  // An operator's token has no shape or parameter of its own: only its value tells it.
  return rt.adminTokens !== undefined && rt.adminTokens.length > 0 ? withoutAdminTokens(redacted, rt.adminTokens) : redacted;
}

/** At most this many rounds of decoding: a token escaped twice (`%252D`) is still found, and no target makes it loop. */
const MAX_DECODES = 3;

/** Each run of `%XX` escapes decoded where it spells UTF-8; the rest as it is (a bare `%` is no escape). */
function decodedEscapes(text: string): string {
  return text.replace(/(?:%[0-9a-f]{2})+/gi, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

/**
 * A target (already redacted as the gateway's is) with every admin and read-only token in
 * it replaced: an operator's token is no key and has no parameter name of its own, so
 * only its own value tells it, in a query value (`?q=<token>`) or a path segment of a
 * script that put it in the address rather than the header. One written with escapes is
 * logged decoded as far as the token showed, as the gateway logs a key so written.
 */
export function withoutAdminTokens(target: string, tokens: readonly string[]): string {
  const replaced = (text: string) => tokens.reduce((out, token) => (token === '' ? out : out.replaceAll(token, REDACTED)), text);
  let out = replaced(target);
  let decoded = out;
  for (let round = 0; round < MAX_DECODES && decoded.includes('%'); round++) {
    decoded = decodedEscapes(decoded);
    if (tokens.some((token) => token !== '' && decoded.includes(token))) out = replaced(decoded);
  }
  return out;
}

