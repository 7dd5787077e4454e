import { configDefaults, defineConfig } from 'vitest/config'

/** Scenario 6 loads the machine (5 nodes, about a core for a minute). */
const LOAD_SCENARIO = 'test/reliability/load.test.ts'

export default defineConfig({
  test: {
    // Real sockets, threads and processes: forks isolate them best.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'tests',
          include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, LOAD_SCENARIO],
          sequence: { groupOrder: 0 },
        },
      },
      {
        // Alone and after the rest, so the scenarios that measure timing never share the CPU with it.
        extends: true,
        test: { name: 'load', include: [LOAD_SCENARIO], sequence: { groupOrder: 1 } },
      },
    ],
  },
})
