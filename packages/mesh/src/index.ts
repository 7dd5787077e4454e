/**
 * @wmesh/mesh: the node runtime (workers in threads, supervised), call routing, result
 * caches, schedules and configuration.
 */

export * from './config-exports.js'
export { createNodeLogger, type NodeLoggerOptions } from './logger.js'
export { MeshNode, type MeshNodeComponents, type MeshNodeEvents } from './node.js'
export type { ScheduleStats } from './scheduler.js'
