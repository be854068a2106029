/**
 * Headers in which an upstream may read another client, scheme, host, path or method than
 * the one keygate judged (frameworks honour them: Symfony `X-Original-URL`, Rails
 * `Client-IP`, method overrides, `Forwarded`): never passed on, from anyone. So are all
 * `X-Forwarded-*` but those keygate writes (`-For`, `-Proto`, `-Host`, and `-Port` as a
 * trusted proxy sent it). A load balancer's own headers would need it to overwrite
 * every one of them, which most do not (an ALB sets three; nginx passes a client's on).
 * None may name an identity header either (`identityHeaders.names`).
 */
export const OVERRIDES_REQUEST: readonly string[] = [
  'forwarded',
  'x-forwarded',
  'x-real-ip',
  'client-ip',
  'true-client-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'x-original-host',
  'x-host',
  'x-original-url',
  'x-rewrite-url',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  // What CDNs and platforms name the client by (frameworks configured for them trust it).
  'cf-connecting-ip',
  'cf-connecting-ipv6',
  'fastly-client-ip',
  'x-proxyuser-ip',
  'x-appengine-user-ip',
  'x-azure-clientip',
  'x-azure-socketip',
  'x-envoy-external-address',
  'x-original-forwarded-for',
  // The path, method or scheme as a proxy in front saw them.
  'x-original-uri',
  'x-envoy-original-path',
  'x-original-method',
  'front-end-https',
  'x-url-scheme',
  'x-scheme',
];
