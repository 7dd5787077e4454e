/** Internal slots on public objects; not exported from the package root. */
export const kConnection = Symbol('wmesh.connection')
export const kRuntime = Symbol('wmesh.runtime')
