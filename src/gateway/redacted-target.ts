/**
 * A request target as logs and errors may show it: credential parameters, parameters
 * named like an API's own secrets, userinfo and anything shaped like a key replaced.
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
export function redactedTarget(rt: { config: Pick<Config, 'auth' | 'log'>; keyFormat: Pick<KeyFormat, 'scrub' | 'scrubBodies'> }, url: string | undefined): string {
  const target = url ?? '/';
  // An origin-form target (`/path?query`, nearly every one) has no userinfo to look for.
  const withoutUserinfo = target.charCodeAt(0) === SLASH ? target : target.replace(USERINFO, `$1${REDACTED}@`);
  // A key written with percent-escapes (`sk%5Flive%5F…`), also escaped again (`%255F`), is
  // a key to whoever decodes it: then the target is logged decoded as far as the key showed.
  const withoutCredentials = withoutCredentialParams(withoutUserinfo, rt.config.auth.credentials, REDACTED);
  return withoutKeys(rt.keyFormat, withoutSecretParams(withoutCredentials, rt.config.log.redactQuery));
}
