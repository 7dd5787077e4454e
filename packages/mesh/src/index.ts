/**
 * @wmesh/mesh: the node runtime (workers in threads, supervised), call routing, result
 * caches, schedules and configuration.
 */

export { type ConnectMeshOptions, connectMesh, MeshClient } from './client.js'
export * from './config-exports.js'
export { createNodeLogger, type NodeLoggerOptions } from './logger.js'
export type { MeshEvents } from './mesh-types.js'
export { MeshNode, type MeshNodeComponents } from './node.js'
export type { ScheduleStats } from './scheduler.js'
