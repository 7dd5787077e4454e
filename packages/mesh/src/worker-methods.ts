import { Worker, type WorkerClass } from '@wmesh/core'

/** Methods every worker has that are lifecycle or plumbing, never remote-callable. */
const RESERVED = new Set(['constructor', 'create', 'onStop'])

/**
 * The methods other workers and clients may call: functions defined by the worker's own
 * classes (not by `Worker`), not starting with `_`, not lifecycle hooks, not accessors.
 */
export function publicMethods(WorkerClass: WorkerClass): string[] {
  const methods = new Set<string>()
  for (let proto = WorkerClass.prototype; proto && proto !== Worker.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (RESERVED.has(name) || name.startsWith('_')) continue
      const descriptor = Object.getOwnPropertyDescriptor(proto, name)
      if (descriptor && typeof descriptor.value === 'function') methods.add(name)
    }
  }
  return [...methods].sort()
}
