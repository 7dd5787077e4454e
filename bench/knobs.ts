/**
 * How long and how often the benchmarks measure. BENCH_ROUNDS=1 BENCH_WINDOW_MS=300 makes
 * a quick smoke run; the defaults keep `npm run bench` within about four minutes.
 */
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
/** Length of the measured window of each throughput or round-trip figure. */
export const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 1000)
/** Time under load before the window opens (connections warm, code optimised). */
export const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 300)
/** Rounds of a figure further apart than this fraction of its median mark it noisy. */
export const NOISY = 0.25
/** Extra node flags for the two mesh nodes, e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
export const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean)
