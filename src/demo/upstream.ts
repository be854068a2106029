/**
 * The bundled demo upstream: a small data API whose resources belong to accounts. It
 * trusts the identity headers keygate adds (it listens on loopback only), so another
 * account's project is a 404, exactly as the reference APIs behave.
 *
 *   GET  /v1/projects             the calling account's projects
 *   GET  /v1/projects/:id         one project (404 if another account's)
 *   POST /v1/projects             create one (JSON body {"name"})
 *   GET  /v1/rankings?limit=N     N ranking records, count in X-Record-Count
 *   GET  /v1/echo                 the request as the upstream saw it (for checking what keygate forwards)
 */
import Fastify, { type FastifyInstance } from 'fastify';

interface Project {
  id: string;
  name: string;
  createdAt: string;
}

export interface DemoUpstreamOptions {
  /** Header carrying the account id (keygate's identity header). */
  accountHeader?: string;
}

export function buildDemoUpstream(options: DemoUpstreamOptions = {}): FastifyInstance {
  const accountHeader = (options.accountHeader ?? 'X-Keygate-Account').toLowerCase();
  const projects = new Map<string, Project[]>();
  const app = Fastify({ logger: false });

  const accountOf = (headers: Record<string, unknown>): string | undefined => {
    const value = headers[accountHeader];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const projectsOf = (account: string): Project[] => {
    let list = projects.get(account);
    if (!list) {
      // Every account starts with two projects, made when it first asks for them.
      const suffix = account.slice(-6);
      const createdAt = new Date().toISOString();
      list = [
        { id: `prj_${suffix}_1`, name: 'example.com', createdAt },
        { id: `prj_${suffix}_2`, name: 'shop.example.com', createdAt },
      ];
      projects.set(account, list);
    }
    return list;
  };

  app.addHook('onRequest', async (request, reply) => {
    if (!accountOf(request.headers)) return reply.code(401).send({ error: 'no account header: call me through keygate' });
  });

  app.get('/v1/projects', async (request) => ({ data: projectsOf(accountOf(request.headers) as string) }));

  app.get<{ Params: { id: string } }>('/v1/projects/:id', async (request, reply) => {
    const project = projectsOf(accountOf(request.headers) as string).find((p) => p.id === request.params.id);
    // In the demo profile's envelope (RFC 9457), so the client sees one error shape.
    if (!project) return reply.code(404).type('application/problem+json').send({ type: 'about:blank', title: 'Not Found', status: 404, detail: `No project ${request.params.id}.` });
    return { data: project };
  });

  app.post<{ Body: { name?: unknown } }>('/v1/projects', async (request, reply) => {
    const name = typeof request.body?.name === 'string' ? request.body.name.trim() : '';
    if (name === '') return reply.code(400).send({ error: 'name is required' });
    const list = projectsOf(accountOf(request.headers) as string);
    const project = { id: `prj_${Date.now().toString(36)}${list.length}`, name, createdAt: new Date().toISOString() };
    list.push(project);
    return reply.code(201).send({ data: project });
  });

  app.get<{ Querystring: { limit?: string } }>('/v1/rankings', async (request, reply) => {
    const limit = Math.min(1000, Math.max(0, Number.parseInt(request.query.limit ?? '10', 10) || 0));
    const data = Array.from({ length: limit }, (_, i) => ({ keyword: `keyword ${i + 1}`, position: (i % 100) + 1 }));
    return reply.header('x-record-count', String(limit)).send({ data });
  });

  app.all('/v1/echo', async (request) => ({ method: request.method, url: request.url, headers: request.headers, body: request.body ?? null }));

  return app;
}
