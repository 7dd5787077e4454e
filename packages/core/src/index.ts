/**
 * @wmesh/core: workers with an event loop of their own, TCP handlers in the style of
 * BackgrounDRb (`connect`, `startServer`), timers, and the msgpack frame codec.
 */

export {
  type ByteSink,
  type Codec,
  type CodecName,
  msgpackCodec,
  packValue,
  rawCodec,
  type StreamDecoder,
  unpackFrame,
} from './codec.js'
export type { ConnectionOptions, PeerAddress } from './connection.js'
export type { WaitOptions } from './deadline.js'
export * from './errors.js'
export { DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_BYTES, FrameDecoder, type FrameDecoderInit } from './frame-decoder.js'
export { type CloseOptions, Handler, type HandlerClass } from './handler.js'
export { createDefaultLogger } from './logger.js'
export type {
  CallOptions,
  CallOutcome,
  Mesh,
  NewWorkerOptions,
  NodeInfo,
  ResolveServiceOptions,
  ResultCache,
  ServiceInfo,
  WorkerInfo,
  WorkerRef,
  WorkerSelector,
} from './mesh-api.js'
export { DEFAULT_HIGH_WATER_MARK, DEFAULT_MAX_QUEUED_BYTES } from './outbound-queue.js'
export { ServerHandle, type ServerOptions } from './server.js'
export { type StartWorkerOptions, startWorker, type WorkerHandle } from './start-worker.js'
export { Timer } from './timers.js'
export { type ConnectOptions, Worker, type WorkerClass, workerNameOf } from './worker.js'
