import { describe, expect, it } from 'vitest';
import { isCanonicalPath } from './request-path.js';

describe('isCanonicalPath', () => {
  it('accepts ordinary and percent-encoded paths', () => {
    for (const path of ['/', '/v1/domains', '/v1/apps/01JN4/metrics/mrr', '/v1/q/a%20b', '/sites/', '/v1/x.json', '/v1/.well-known', '/v1/q/100%25', '/v1/q/%25off', '/v1/q/%25', '/v1/q/%25zz', '/v1/q/%%zz', '/v1/keywords/100%25Beef', '/v1/q/50%25add', '/v1/q/%25DE', '/v1/q/%25e9', '/v1/q/%C3%A9t%C3%A9', '/v1/users/%40me', '/v1/reports%3Aexport', '/v1/q/a%3Fb', '/v1/q/a%2Bb']) {
      expect(isCanonicalPath(path), path).toBe(true);
    }
  });

  it('refuses every path a URL parser would rewrite', () => {
    for (const path of ['/v1/projects/x\\..\\..\\rankings', '/v1/a\\b', '/v1/../admin', '/v1/./x', '/v1/%2e%2e/admin', '/v1/%2E%2e/admin', '/v1/x/..', '//evil.example/x', '/v1//admin/users', '/v1/x//']) {
      expect(isCanonicalPath(path), path).toBe(false);
    }
  });

  it('refuses encoded slashes, backslashes, semicolons and control characters, which an upstream that decodes the path reads as another path', () => {
    for (const path of ['/v1/admin%3Bx/users', '/v1/admin%3bx', '/v1/admin%2Fusers', '/v1/admin%2fusers', '/v1/x/..%2Fadmin/users', '/v1/x/%2E%2E%2Fadmin/users', '/v1/a%5Cb', '/v1/a%00.json', '/v1/a%0A', '/v1/a%1f', '/v1/a%7F', '/v1/admin%252Fusers', '/v1/admin%25252fusers', '/v1/a%25%32%46b', '/v1/a%C2%85b', '/v1/x/%252e%252e/admin', '/v1/x/%25252E%25252E']) {
      expect(isCanonicalPath(path), path).toBe(false);
    }
  });

  it('refuses a path encoded twice, which an upstream that decodes twice reads as another path than the one matched', () => {
    for (const path of ['/v1/%2561dmin/x', '/v1/%2541', '/v1/q/100%2525', '/v1/%%34%31dmin', '/v1/%25%36%31dmin', '/v1/a%25C2%2585b']) {
      expect(isCanonicalPath(path), path).toBe(false);
    }
  });
});
