// Child process of test/library-start.test.ts: embeds keygate as an app would (the package's
// entry point, a profile on a SQLite file and memory counters), checks one request with a
// key it issued, prints the result's `allowed` and reason as JSON, and closes.
const [dir] = process.argv.slice(2);
const { createKeygate, parseConfigObject, createAccount, createKey } = await import('../../dist/index.js');
const config = parseConfigObject({
  upstream: { url: 'http://127.0.0.1:9' },
  store: `sqlite:${dir}/library.db`,
  log: { level: 'warn' },
  routes: [{ path: '/rows' }],
});
const gate = await createKeygate({ config, file: 'inline', dir });
const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
const { secret } = await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test');
const result = await gate.check({ method: 'GET', url: '/rows', headers: { authorization: `Bearer ${secret}` } });
if (result.allowed) await result.settle(200);
await gate.close();
console.log(JSON.stringify({ allowed: result.allowed, reason: result.allowed ? undefined : result.reason }));
