import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: files run two at a time; multi-process and browser tests are heavy.
    maxWorkers: 2,
    pool: 'forks',
    reporters: ['default'],
  },
});
