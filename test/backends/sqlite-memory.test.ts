/** The shared backend suites on the embedded default: a SQLite file and memory counters. */
import path from 'node:path';
import { describeStore } from './store.suite.js';
import { describeCounters } from './counters.suite.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-database.js';
import { MemoryCounters } from '../../src/counters/memory/memory-counters.js';
import { tempDir } from '../support/temp.js';

const dir = tempDir('keygate-backends');

describeStore('SQLite', {
  async open() {
    const store = openSqliteStore(path.join(dir, 'store.db'));
    await store.migrate();
    return { store, teardown: () => store.close() };
  },
});

describeCounters('memory', {
  async open() {
    const counters = new MemoryCounters();
    return { counters, teardown: () => counters.close() };
  },
});
