/**
 * What a failure to reach the upstream most likely says about `upstream.url`. OpenSSL's
 * "wrong version number" and undici's "other side closed" do not say that the URL's scheme
 * is the wrong one; `keygate check` says so, and the gateway's `upstream request failed`
 * warning says it too (its `hint`), for an operator who started `serve` without `check`.
 */

/** Error codes of a TLS handshake that failed (certificates, protocol). */
export const TLS_FAILURE = /CERT|SELF_SIGNED|UNABLE_TO_(?:GET|VERIFY)|^ERR_TLS_|^ERR_SSL_|^EPROTO$/;

/** OpenSSL's words for a server that answered a TLS hello with something else (plain HTTP). */
export const NOT_TLS = /wrong version number|packet length too long|unknown protocol|http request/i;

/** Codes of a connection the upstream closed with no HTTP answer (undici's, then Node's). */
const CLOSED_UNANSWERED = new Set(['UND_ERR_SOCKET', 'ECONNRESET']);

/**
 * The likely cause of a failed upstream request, in the operator's terms, or undefined
 * where the error says it plainly enough (a timeout) or nothing more can be guessed.
 * Pure: `url` is `upstream.url`, `code` and `message` the error's.
 */
export function upstreamFailureHint(url: string, code: string | undefined, message: string): string | undefined {
  const target = new URL(url);
  const tls = target.protocol === 'https:';
  const address = target.port ? target.host : `${target.host}:${tls ? 443 : 80}`;
  if (code === 'ECONNREFUSED') return `nothing listens at ${address}: check upstream.url and that the upstream is running`;
  if (tls && NOT_TLS.test(message)) return 'the upstream does not speak TLS; if it serves plain HTTP, upstream.url is http://, not https://';
  if (tls && code !== undefined && TLS_FAILURE.test(code)) return `the TLS handshake failed: the upstream's certificate must be one this machine trusts, for ${target.hostname} (NODE_EXTRA_CA_CERTS names a private CA's)`;
  if (!tls && code !== undefined && CLOSED_UNANSWERED.has(code)) return `the upstream closed the connection without an HTTP answer: check upstream.url is the API's own port; one that serves TLS is https://, not http://`;
  return undefined;
}
