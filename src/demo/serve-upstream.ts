/**
 * The bundled demo API on its own, as the profile `keygate demo` writes starts it
 * (`upstream.spawn`), so `keygate serve --config data/demo/keygate.yaml` serves the demo
 * without `keygate demo` running: it listens on 127.0.0.1 at the port keygate tells it in
 * PORT, and stops on SIGTERM or SIGINT.
 */
import { buildDemoUpstream } from './upstream.js';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port < 1 || port > 65_535) {
  process.stderr.write('the demo API is started by keygate (upstream.spawn), which sets PORT\n');
  process.exit(1);
}
const upstream = buildDemoUpstream();
await upstream.listen({ host: '127.0.0.1', port });
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => void upstream.close().then(() => process.exit(0)));
}
