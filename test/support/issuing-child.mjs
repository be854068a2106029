// Child process of test/sqlite-issuing.test.ts: opens the SQLite store, says it is ready,
// and on "go" issues a key for the account the way keygate does (inside issuingKeysOf):
// it reads the account's keys, waits, and writes one only if there was none. Reports
// what it read and whether it wrote, or the error.
import { randomBytes } from 'node:crypto';
import { openSqliteStore } from '../../dist/store/sqlite/sqlite-database.js';

const [file, accountId, name] = process.argv.slice(2);
const store = openSqliteStore(file);
process.send({ type: 'ready' });
process.once('message', async () => {
  try {
    const outcome = await store.issuingKeysOf(accountId, async (locked) => {
      const read = (await locked.listKeys({ accountId })).length;
      // Long enough for every other process to be inside its own attempt by now.
      await new Promise((resolve) => setTimeout(resolve, 300));
      if (read > 0) return { read, wrote: false };
      await locked.insertKey({
        id: `key_${name}`,
        hash: randomBytes(32).toString('hex'),
        hint: 'kg_live_…abcd',
        name,
        accountId,
        mode: 'live',
        scopes: [],
        createdAt: Date.now(),
        lastUsedAt: null,
        expiresAt: null,
        revokedAt: null,
        createdBy: 'test',
        rotatedFrom: null,
      });
      return { read, wrote: true };
    });
    process.send({ type: 'done', ...outcome });
  } catch (error) {
    process.send({ type: 'done', error: String(error) });
  } finally {
    await store.close();
    process.disconnect();
  }
});
