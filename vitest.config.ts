import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
    // Many tests start keygate as a process (serve, the CLI, several at once), each a second
    // or so on a quiet host; on a loaded one a CLI run took 12 s and tests of six or more
    // runs went past 60 s. The limit is there to end a test that hangs, not to time one.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Two cores: files run two at a time; multi-process and browser tests are heavy.
    maxWorkers: 2,
    pool: 'forks',
    reporters: ['default'],
  },
});
