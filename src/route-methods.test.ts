import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { recordRouteMethods, routerPath } from './route-methods.js';

describe('the methods routes take at a path', () => {
  it('lists them for fixed and parametrised paths, with a trailing slash, a query or escapes, and none for a path no route has', async () => {
    const app = Fastify();
    const methodsAt = recordRouteMethods(app);
    const noop = async () => ({});
    app.get('/v1/keys', noop);
    app.post('/v1/keys', noop);
    app.post('/v1/keys/:id/revoke', noop);
    app.get('/v1/keys/:id', noop);
    app.delete('/v1/keys/:id', noop);
    await app.ready();
    // Fastify adds HEAD to a GET route.
    expect(methodsAt('/v1/keys')).toEqual(['GET', 'HEAD', 'POST']);
    expect(methodsAt('/v1/keys/?limit=5')).toEqual(['GET', 'HEAD', 'POST']);
    expect(methodsAt('/v1/%6Beys')).toEqual(['GET', 'HEAD', 'POST']);
    expect(methodsAt('/v1/keys/key_1')).toEqual(['DELETE', 'GET', 'HEAD']);
    expect(methodsAt('/v1/keys/key_1/revoke')).toEqual(['POST']);
    expect(methodsAt('/v1/keys/key_1/x')).toEqual([]);
    expect(methodsAt('/v1/%zz')).toEqual([]);
    await app.close();
  });

  it('reads a path as the router does', () => {
    expect(routerPath('/health/?x=1')).toBe('/health');
    expect(routerPath('/')).toBe('/');
  });
});
