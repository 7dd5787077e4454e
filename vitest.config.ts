import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // Real sockets, threads and processes: forks isolate them best.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
