/**
 * Module resolution hooks registered in each worker thread: bare `@wmesh/*` imports in
 * user worker modules resolve to the node's own packages.
 */
let mapping: Record<string, string> = {}

export function initialize(data: Record<string, string>): void {
  mapping = data
}

interface ResolveContext {
  parentURL?: string
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<{ url: string }>

export async function resolve(
  specifier: string,
  context: ResolveContext,
  next: NextResolve,
): Promise<{ url: string; shortCircuit?: boolean }> {
  const url = mapping[specifier]
  if (url) return { url, shortCircuit: true }
  return next(specifier, context)
}
