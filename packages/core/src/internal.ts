/**
 * Internals shared with sibling packages (@wmesh/mesh). Not part of the public API:
 * anything here may change without notice.
 */

export { MAX_TIMER_MS } from './address.js'
export { resolveCodec } from './codec.js'
export { Connection, type ConnectionComponents } from './connection.js'
export { waitWithDeadline } from './deadline.js'
export { writeFrameHeader } from './frame-decoder.js'
export { OutboundQueue } from './outbound-queue.js'
export { WorkerRuntime } from './runtime.js'
export { kConnection, kRuntime } from './symbols.js'
export { TimerSet } from './timers.js'
