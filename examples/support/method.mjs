// The method the examples' plain node:http upstreams serve a request as.

/**
 * HEAD is served as GET: Node leaves the body out of the answer to a HEAD request, so
 * the client gets GET's status and headers, as HTTP asks (keygate admits HEAD wherever a
 * route takes GET).
 */
export function servedAs(method = 'GET') {
  return method === 'HEAD' ? 'GET' : method;
}
