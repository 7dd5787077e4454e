import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ExitCode } from '@wmesh/cli'
import { parseNodeConfig } from '@wmesh/mesh'
import { beforeAll, describe, expect, it } from 'vitest'
import { type ConfigSurface, loadConfigSurface } from '../scripts/config-reference.js'
import {
  checkCommand,
  checkNodeEnvironment,
  cliInvocations,
  composeMs,
  deployFiles,
  dockerEnv,
  hostOf,
  parseDockerfile,
  parseEnvFile,
  parseUnitEnvironment,
  portOf,
  readDeploy,
  repoRoot,
  shellWords,
  systemdMs,
  UnitFile,
  yamlDocuments,
} from './fixtures/deploy/deploy-files.js'

// Every file under deploy/ is parsed, and every `wmesh` command line, WMESH_* variable and
// port it uses is checked against the CLI's own argument parser and the config schema
// (scripts/config-reference.ts finds both from the code). The lab tests run them.

/** `wmesh start` gives a stopping node this long beyond shutdownTimeout (STOP_GRACE_MS in start.ts). */
const STOP_GRACE_MS = 5000
/** mDNS (RFC 6762). */
const MDNS_PORT = 5353

const checkedFiles = [
  'README.md',
  'docker/Dockerfile',
  'docker/Dockerfile.dockerignore',
  'docker/compose.host.yaml',
  'docker/compose.yaml',
  'kubernetes/configmap.yaml',
  'kubernetes/kustomization.yaml',
  'kubernetes/poddisruptionbudget.yaml',
  'kubernetes/service.yaml',
  'kubernetes/statefulset.yaml',
  'systemd/wmesh.config.json',
  'systemd/wmesh.env',
  'systemd/wmesh.service',
]

let surface: ConfigSurface
const listenPort = () => portOf(surface.defaults.listen)
const cliVersion = (
  JSON.parse(readFileSync(join(repoRoot, 'packages/cli/package.json'), 'utf8')) as { version: string }
).version

beforeAll(async () => {
  surface = await loadConfigSurface()
})

/** The shell command lines in the ```sh blocks of a Markdown text, continuation lines joined. */
function shellBlocks(markdown: string): string[][] {
  const commands: string[][] = []
  for (const [, block] of markdown.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of (block as string).replace(/\\\n/g, ' ').split('\n')) {
      const words = shellWords(line)
      let command: string[] = []
      for (const word of [...words, ';']) {
        if ([';', '&&', '||', '|'].includes(word)) {
          if (command.length > 0) commands.push(command)
          command = []
        } else command.push(word)
      }
    }
  }
  return commands
}

/** Ports written as `N/tcp` or `N/udp` anywhere in a text. */
function mentionedPorts(text: string): string[] {
  return [...new Set([...text.matchAll(/\b(\d{2,5})\/(tcp|udp)\b/gi)].map((m) => `${m[1]}/${m[2]?.toLowerCase()}`))]
}

describe('deploy/', () => {
  it('holds only files these tests check', () => {
    expect(deployFiles(), 'a new file under deploy/ needs a check in test/deploy-files.test.ts').toEqual(checkedFiles)
  })

  it('mentions no port but the link port (tcp) and mDNS (udp)', () => {
    for (const file of checkedFiles) {
      for (const port of mentionedPorts(readDeploy(file))) {
        expect([`${listenPort()}/tcp`, `${MDNS_PORT}/udp`], `${file} mentions ${port}`).toContain(port)
      }
    }
  })

  it('every wmesh command line in the sh blocks of both READMEs is one the CLI accepts', () => {
    const texts = { 'deploy/README.md': readDeploy('README.md'), 'README.md': runningOnSeveralMachines() }
    let found = 0
    for (const [file, text] of Object.entries(texts)) {
      for (const command of shellBlocks(text)) {
        for (const args of cliInvocations(command)) {
          found++
          const problems = checkCommand(surface, ['wmesh', ...args])
          expect(problems, `${file}: ${command.join(' ')}`).toEqual([])
        }
      }
    }
    expect(found).toBeGreaterThanOrEqual(5)
  })

  it('deploy/README.md creates the Secret the StatefulSet mounts, with the key it reads', () => {
    const text = readDeploy('README.md')
    const create = shellBlocks(text).find((c) => c.includes('kubectl') && c.includes('secret'))
    expect(create, 'a `kubectl create secret` line').toBeDefined()
    const { secretName, key } = kubernetesSecret()
    expect(create).toContain(secretName)
    expect(create?.some((w) => w.startsWith(`--from-file=${key}=`))).toBe(true)
  })
})

/** The README section this issue adds. */
function runningOnSeveralMachines(): string {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8')
  const start = readme.indexOf('## Running on several machines')
  expect(start, 'README.md has a "Running on several machines" section').toBeGreaterThan(0)
  return readme.slice(start, readme.indexOf('\n## ', start + 1))
}

describe('README "Running on several machines"', () => {
  it('comes just before "Calling workers" and states the guarantees plainly', () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8')
    const headings = [...readme.matchAll(/^## (.+)$/gm)].map((m) => m[1])
    expect(headings[headings.indexOf('Running on several machines') + 1]).toBe('Calling workers')
    const section = runningOnSeveralMachines()
    for (const claim of [
      /at most once, in order per link/,
      /NodeDownError/,
      /eventually consistent/,
      /within about 2 s/,
      /Duplicate node names can co-exist only during a partition/,
      /newer\s+incarnation wins/,
      /`heartbeatTimeout` \(3 s\)/,
      /`shutdownTimeout` \(10 s\)/,
    ]) {
      expect(section).toMatch(claim)
    }
  })

  it('quotes the defaults the code has', () => {
    const section = runningOnSeveralMachines()
    expect(section).toContain(`**${listenPort()}/tcp**`)
    expect(section).toContain(`**${MDNS_PORT}/udp**`)
    expect(section).toContain(`(${surface.defaults.heartbeatTimeout / 1000} s)`)
    expect(section).toContain(`\`shutdownTimeout\` (${surface.defaults.shutdownTimeout / 1000} s)`)
    for (const key of ['listen', 'advertise', 'interface', 'heartbeatTimeout', 'shutdownTimeout']) {
      expect(surface.keys.some((k) => k.path === key)).toBe(true)
    }
  })
})

describe('systemd/wmesh.service', () => {
  const unit = () => new UnitFile(readDeploy('systemd/wmesh.service'))
  const config = () => parseNodeConfig(JSON.parse(readDeploy('systemd/wmesh.config.json')), 'wmesh.config.json')

  it('runs `wmesh start` with flags the CLI has, from the repository path it installs to', () => {
    const execStart = unit().get('Service', 'ExecStart') as string
    const argv = shellWords(execStart)
    expect(argv[0]).toBe('/usr/bin/node')
    expect(argv[1]).toBe('/opt/wmesh/packages/cli/bin/wmesh.js')
    expect(existsSync(join(repoRoot, 'packages/cli/bin/wmesh.js'))).toBe(true)
    expect(argv[2]).toBe('start')
    expect(checkCommand(surface, argv)).toEqual([])
  })

  it('sets only variables a node reads, with values it accepts', async () => {
    const env = parseUnitEnvironment(unit().all('Service', 'Environment'))
    expect(await checkNodeEnvironment(surface, env)).toEqual([])
    const example = parseEnvFile(readDeploy('systemd/wmesh.env'), { commented: true })
    expect(Object.keys(example).length).toBeGreaterThan(0)
    expect(await checkNodeEnvironment(surface, example)).toEqual([])
    expect(unit().get('Service', 'EnvironmentFile')).toBe('-/etc/wmesh/wmesh.env')
  })

  it('reads a config that the schema accepts, listening on the default link port', () => {
    const execStart = shellWords(unit().get('Service', 'ExecStart') as string)
    expect(execStart[execStart.indexOf('--config') + 1]).toBe('/etc/wmesh/wmesh.config.json')
    expect(portOf(config().listen)).toBe(listenPort())
  })

  it('is hardened: own user, no new privileges, read-only system, state directory, no capabilities', () => {
    const u = unit()
    expect(u.get('Service', 'User')).toBe('wmesh')
    expect(u.get('Service', 'NoNewPrivileges')).toBe('yes')
    expect(u.get('Service', 'ProtectSystem')).toBe('strict')
    expect(u.get('Service', 'ProtectHome')).toBe('yes')
    expect(u.get('Service', 'PrivateTmp')).toBe('yes')
    expect(u.get('Service', 'StateDirectory')).toBe('wmesh')
    expect(u.get('Service', 'WorkingDirectory')).toBe('/var/lib/wmesh')
    expect(u.get('Service', 'CapabilityBoundingSet')).toBe('')
    expect(u.get('Service', 'LoadCredential')).toBe('secret:/etc/wmesh/secret')
    expect(u.get('Service', 'ExecStart')).toContain('--secret-file %d/secret')
  })

  it('stops gracefully on SIGTERM with a timeout beyond shutdownTimeout, restarts on failure but not on bad config', () => {
    const u = unit()
    expect(u.get('Service', 'KillSignal')).toBe('SIGTERM')
    expect(systemdMs(u.get('Service', 'TimeoutStopSec') as string)).toBeGreaterThan(
      config().shutdownTimeout + STOP_GRACE_MS,
    )
    expect(u.get('Service', 'Restart')).toBe('on-failure')
    const noRestart = (u.get('Service', 'RestartPreventExitStatus') as string).split(/\s+/).map(Number)
    expect(noRestart.sort()).toEqual([ExitCode.usage, ExitCode.config].sort())
  })
})

/** The Dockerfile's stages. */
const dockerfile = () => parseDockerfile(readDeploy('docker/Dockerfile'))
const runtime = () => dockerfile().at(-1)?.instructions ?? []
const instruction = (keyword: string) => runtime().filter((i) => i.keyword === keyword)
/** ENTRYPOINT and CMD of the image, in exec form. */
const imageEntrypoint = () => instruction('ENTRYPOINT').at(-1)?.json ?? []
const imageCmd = () => instruction('CMD').at(-1)?.json ?? []

/** Maps a path inside the image (/opt/wmesh/...) to this repository. */
function repoPathOf(imagePath: string): string {
  expect(imagePath.startsWith('/opt/wmesh/')).toBe(true)
  return join(repoRoot, imagePath.slice('/opt/wmesh/'.length))
}

/** A minimal .dockerignore matcher: `**` any directories, `*` within one name, a match covers what is below. */
function ignored(patterns: string[], path: string): boolean {
  let result = false
  for (const raw of patterns) {
    const negate = raw.startsWith('!')
    const pattern = raw.replace(/^!/, '').replace(/\/$/, '')
    const regex = new RegExp(
      `^${pattern
        .split('/')
        .map((part) =>
          part === '**' ? '(?:.*/)?' : `${part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}/`,
        )
        .join('')
        .replace(/\/$/, '')}(?:/.*)?$`,
    )
    if (regex.test(path)) result = !negate
  }
  return result
}

describe('docker/Dockerfile', () => {
  it('builds in stages from Node.js 20: compile with dev dependencies, run with production ones', () => {
    const stages = dockerfile()
    expect(stages.length).toBeGreaterThanOrEqual(2)
    for (const stage of stages) expect(stage.from).toMatch(/^node:20[-.]/)
    const runs = (stage: (typeof stages)[number]) =>
      stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.rest)
    const build = stages.find((s) => runs(s).some((r) => r.includes('tsc -b')))
    expect(build, 'a stage that runs tsc -b').toBeDefined()
    const deps = stages.find((s) => runs(s).some((r) => /npm ci\b.*--omit=dev/.test(r)))
    expect(deps, 'a stage that installs production dependencies only').toBeDefined()
    // The runtime stage installs nothing and takes only built files and production modules.
    expect(runs(stages.at(-1) as (typeof stages)[number]).some((r) => /npm (ci|install)/.test(r))).toBe(false)
    for (const copy of instruction('COPY')) {
      const from = copy.flags.from
      expect(from, `runtime COPY at line ${copy.line} copies from a build stage`).toBeDefined()
      const [source] = copy.rest.split(/\s+/) as [string]
      if (source.includes('node_modules')) expect(from).toBe(deps?.name)
      else expect(source).toMatch(/\/(dist|bin)\/$|\/package\.json$/)
    }
  })

  it('copies sources that exist and that its ignore file lets through, but no build output or secret', () => {
    const patterns = readDeploy('docker/Dockerfile.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
    for (const stage of dockerfile()) {
      for (const copy of stage.instructions.filter((i) => i.keyword === 'COPY' && !i.flags.from)) {
        const sources = copy.rest.split(/\s+/).slice(0, -1)
        for (const source of sources) {
          expect(existsSync(join(repoRoot, source)), `COPY ${source} (line ${copy.line})`).toBe(true)
          expect(ignored(patterns, source.replace(/\/$/, '')), `COPY ${source} is in the ignore file`).toBe(false)
        }
      }
    }
    for (const kept of ['packages/mesh/src/index.ts', 'packages/cli/bin/wmesh.js', 'package-lock.json']) {
      expect(ignored(patterns, kept), kept).toBe(false)
    }
    for (const dropped of ['node_modules/zod', 'packages/mesh/dist/index.js', 'examples/cluster/.wmesh.secret']) {
      expect(ignored(patterns, dropped), dropped).toBe(true)
    }
  })

  it('runs `wmesh start` as an unprivileged numeric user that it creates', () => {
    const user = instruction('USER').at(-1)?.rest ?? ''
    const [uid, gid] = user.split(':').map(Number) as [number, number]
    expect(uid).toBeGreaterThan(0)
    expect(gid).toBeGreaterThan(0)
    expect(instruction('RUN').some((r) => r.rest.includes(`--uid ${uid}`) && r.rest.includes(`--gid ${gid}`))).toBe(
      true,
    )
    expect(imageEntrypoint().slice(0, 2)).toEqual(['node', '/opt/wmesh/packages/cli/bin/wmesh.js'])
    expect(existsSync(repoPathOf(imageEntrypoint()[1] as string))).toBe(true)
    expect(checkCommand(surface, [...imageEntrypoint(), ...imageCmd()])).toEqual([])
    expect(imageCmd()).toEqual(['start'])
  })

  it('exposes the link port and mDNS, stops on SIGTERM, sets only variables a node reads', async () => {
    const exposed = instruction('EXPOSE').flatMap((i) => i.rest.split(/\s+/))
    expect(exposed.sort()).toEqual([`${listenPort()}/tcp`, `${MDNS_PORT}/udp`].sort())
    expect(instruction('STOPSIGNAL').at(-1)?.rest).toBe('SIGTERM')
    const env = Object.assign({}, ...instruction('ENV').map(dockerEnv)) as Record<string, string>
    expect(env.NODE_ENV).toBe('production')
    expect(await checkNodeEnvironment(surface, env)).toEqual([])
  })

  it('checks health with the CLI against its own link port, within the check timeout', () => {
    const [check] = instruction('HEALTHCHECK')
    expect(check?.json, 'an exec-form HEALTHCHECK').toBeDefined()
    const argv = check?.json ?? []
    expect(checkCommand(surface, argv)).toEqual([])
    const [args] = cliInvocations(argv) as [string[]]
    expect(args[0]).toBe('nodes')
    const join = args[args.indexOf('--join') + 1] as string
    expect(hostOf(join)).toBe('127.0.0.1')
    expect(portOf(join)).toBe(listenPort())
    const connectTimeout = Number(args[args.indexOf('--connect-timeout') + 1])
    expect(composeMs(check?.flags.timeout ?? '30s')).toBeGreaterThan(connectTimeout)
  })
})

interface ComposeService {
  image?: string
  build?: { context: string; dockerfile: string }
  entrypoint?: string[]
  command?: string[]
  environment?: Record<string, string>
  ports?: string[]
  volumes?: string[]
  hostname?: string
  network_mode?: string
  stop_grace_period?: string
  init?: boolean
}

function compose(file: string): Record<string, ComposeService> {
  const [doc] = yamlDocuments(readDeploy(file), file) as [{ services: Record<string, ComposeService> }]
  return doc.services
}

describe.each(['docker/compose.yaml', 'docker/compose.host.yaml'])('%s', (file) => {
  const nodes = () => Object.entries(compose(file)).filter(([, s]) => !s.entrypoint)

  it('parses, and builds every image from deploy/docker/Dockerfile at the repository root, tagged with the version', () => {
    for (const [name, service] of Object.entries(compose(file))) {
      expect(service.image, name).toBe(`wmesh:${cliVersion}`)
      expect(join(repoRoot, 'deploy/docker', service.build?.context ?? '')).toBe(repoRoot.replace(/\/$/, ''))
      expect(service.build?.dockerfile).toBe('deploy/docker/Dockerfile')
    }
    expect(nodes().length).toBeGreaterThan(0)
  })

  it('runs wmesh commands the CLI accepts', () => {
    for (const [name, service] of Object.entries(compose(file))) {
      const argv = [...(service.entrypoint ?? imageEntrypoint()), ...(service.command ?? imageCmd())]
      expect(checkCommand(surface, argv), name).toEqual([])
    }
  })

  it('gives nodes only variables they read, with values they accept, and files inside their volumes', async () => {
    for (const [name, service] of nodes()) {
      const env = service.environment ?? {}
      expect(await checkNodeEnvironment(surface, env), name).toEqual([])
      const mounts = (service.volumes ?? []).map((v) => v.split(':')[1] as string)
      for (const variable of ['WMESH_CONFIG', 'WMESH_SECRET_FILE']) {
        const path = env[variable]
        if (path)
          expect(
            mounts.some((m) => path.startsWith(`${m}/`)),
            `${name} ${variable}=${path}`,
          ).toBe(true)
      }
    }
  })

  it('stops nodes gracefully: SIGTERM, and a grace period beyond shutdownTimeout', () => {
    for (const [name, service] of nodes()) {
      expect(composeMs(service.stop_grace_period ?? '10s'), name).toBeGreaterThan(
        surface.defaults.shutdownTimeout + STOP_GRACE_MS,
      )
      expect(service.init, `${name}: an init as PID 1 forwards SIGTERM and reaps`).toBe(true)
    }
  })

  it('reaches the other nodes: seeds are service names at the link port, or host networking with mDNS', () => {
    const services = compose(file)
    for (const [name, service] of nodes()) {
      const env = service.environment ?? {}
      if (service.network_mode === 'host') {
        expect(env.WMESH_MDNS ?? 'true').not.toMatch(/^(0|false|no|off)$/)
        continue
      }
      expect(env.WMESH_MDNS, `${name}: mDNS does not leave a bridge network`).toMatch(/^(0|false|no|off)$/)
      const seeds = (env.WMESH_JOIN ?? '').split(',').filter(Boolean)
      expect(seeds.length, name).toBeGreaterThan(1)
      for (const seed of seeds) {
        expect(Object.keys(services)).toContain(hostOf(seed))
        expect(portOf(seed)).toBe(listenPort())
      }
      for (const port of service.ports ?? []) expect(portOf(port.replace(/\/tcp$/, ''))).toBe(listenPort())
    }
  })
})

interface K8sObject {
  apiVersion: string
  kind: string
  metadata: { name: string; labels?: Record<string, string> }
  // biome-ignore lint/suspicious/noExplicitAny: manifests are checked field by field below
  spec?: any
  data?: Record<string, string>
  resources?: string[]
}

const k8sFiles = ['configmap.yaml', 'service.yaml', 'statefulset.yaml', 'poddisruptionbudget.yaml']

function k8sObjects(): K8sObject[] {
  return k8sFiles.flatMap((f) => yamlDocuments(readDeploy(`kubernetes/${f}`), f) as K8sObject[])
}

function k8s(kind: string, name?: string): K8sObject {
  const found = k8sObjects().find((o) => o.kind === kind && (name === undefined || o.metadata.name === name))
  if (!found) throw new Error(`no ${kind} ${name ?? ''} in deploy/kubernetes`)
  return found
}

function k8sContainer() {
  const containers = k8s('StatefulSet').spec.template.spec.containers as Array<{
    name: string
    args?: string[]
    command?: string[]
    env: Array<{ name: string; value?: string; valueFrom?: unknown }>
    ports: Array<{ name: string; containerPort: number; protocol?: string }>
    readinessProbe: { exec?: { command: string[] }; timeoutSeconds?: number }
    livenessProbe: { tcpSocket?: { port: string | number }; exec?: { command: string[] } }
    resources: { requests?: Record<string, string>; limits?: Record<string, string> }
    volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>
    securityContext: Record<string, unknown>
  }>
  expect(containers).toHaveLength(1)
  return containers[0] as NonNullable<(typeof containers)[0]>
}

function k8sEnv(): Record<string, string> {
  return Object.fromEntries(k8sContainer().env.map((e) => [e.name, e.value ?? 'wmesh-0']))
}

/** The Secret the StatefulSet mounts and the key WMESH_SECRET_FILE reads from it. */
function kubernetesSecret(): { secretName: string; key: string } {
  const container = k8sContainer()
  const path = k8sEnv().WMESH_SECRET_FILE as string
  const mount = container.volumeMounts.find((m) => path.startsWith(`${m.mountPath}/`))
  const volume = (
    k8s('StatefulSet').spec.template.spec.volumes as Array<{ name: string; secret?: { secretName: string } }>
  ).find((v) => v.name === mount?.name)
  expect(volume?.secret, `${path} lies in a Secret volume`).toBeDefined()
  return { secretName: volume?.secret?.secretName as string, key: path.slice((mount?.mountPath.length ?? 0) + 1) }
}

/** The node configuration the ConfigMap holds. */
function k8sConfig() {
  const path = k8sEnv().WMESH_CONFIG as string
  const mount = k8sContainer().volumeMounts.find((m) => path.startsWith(`${m.mountPath}/`))
  const volume = (
    k8s('StatefulSet').spec.template.spec.volumes as Array<{ name: string; configMap?: { name: string } }>
  ).find((v) => v.name === mount?.name)
  const map = k8s('ConfigMap', volume?.configMap?.name)
  const text = map.data?.[path.slice((mount?.mountPath.length ?? 0) + 1)]
  expect(text, `${path} is a key of ConfigMap ${map.metadata.name}`).toBeDefined()
  return parseNodeConfig(JSON.parse(text as string), `ConfigMap ${map.metadata.name}`)
}

describe('kubernetes/', () => {
  it('parses as YAML into named objects, all listed in kustomization.yaml', () => {
    const [kustomization] = yamlDocuments(readDeploy('kubernetes/kustomization.yaml'), 'kustomization.yaml') as [
      K8sObject,
    ]
    expect(kustomization.resources?.sort()).toEqual([...k8sFiles].sort())
    for (const object of k8sObjects()) {
      expect(object.apiVersion).toBeTruthy()
      expect(object.metadata.name).toMatch(/^[a-z0-9-]+$/)
    }
    expect(
      k8sObjects()
        .map((o) => o.kind)
        .sort(),
    ).toEqual(['ConfigMap', 'ConfigMap', 'PodDisruptionBudget', 'Service', 'Service', 'StatefulSet'].sort())
  })

  it('StatefulSet: the image`s `wmesh start`, variables a node reads, TLS and workers from ConfigMaps', async () => {
    const container = k8sContainer()
    const pod = k8s('StatefulSet').spec.template.spec
    expect(container.command, 'the image entrypoint runs').toBeUndefined()
    expect(pod.containers[0].image).toBe(`wmesh:${cliVersion}`)
    expect(checkCommand(surface, [...imageEntrypoint(), ...(container.args ?? imageCmd())])).toEqual([])
    expect(container.args).toEqual(['start'])
    expect(await checkNodeEnvironment(surface, k8sEnv())).toEqual([])
    const name = container.env.find((e) => e.name === 'WMESH_NAME')
    expect(name?.valueFrom).toEqual({ fieldRef: { fieldPath: 'metadata.name' } })
    expect(k8sConfig().tls).toBe(true)
    const workers = container.volumeMounts.find((m) => m.mountPath === k8sEnv().WMESH_WORKERS)
    expect(workers, 'WMESH_WORKERS is a mounted volume').toBeDefined()
  })

  it('finds peers through the headless Service, which publishes pods before they are ready', () => {
    const statefulSet = k8s('StatefulSet')
    const headless = k8s('Service', statefulSet.spec.serviceName)
    expect(headless.spec.clusterIP).toBe('None')
    expect(headless.spec.publishNotReadyAddresses).toBe(true)
    const seed = k8sEnv().WMESH_JOIN as string
    expect(hostOf(seed)).toBe(headless.metadata.name)
    const [port] = headless.spec.ports as Array<{ port: number; targetPort: string }>
    expect(portOf(seed)).toBe(port?.port)
    expect(k8sEnv().WMESH_MDNS).toMatch(/^(0|false|no|off)$/)
  })

  it('every port is the link port: container, Services, probes', () => {
    const container = k8sContainer()
    const link = container.ports.find((p) => p.name === 'link')
    expect(link?.containerPort).toBe(portOf(k8sConfig().listen))
    expect(link?.containerPort).toBe(listenPort())
    for (const service of k8sObjects().filter((o) => o.kind === 'Service')) {
      for (const port of service.spec.ports as Array<{ port: number; targetPort: string | number }>) {
        expect(port.port).toBe(listenPort())
        expect(container.ports.some((p) => p.name === port.targetPort || p.containerPort === port.targetPort)).toBe(
          true,
        )
      }
    }
    const liveness = container.livenessProbe.tcpSocket?.port
    expect(container.ports.some((p) => p.name === liveness || p.containerPort === liveness)).toBe(true)
  })

  it('readiness runs `wmesh nodes` against its own node, within the probe timeout', () => {
    const probe = k8sContainer().readinessProbe
    const argv = probe.exec?.command ?? []
    expect(checkCommand(surface, argv)).toEqual([])
    const [args] = cliInvocations(argv) as [string[]]
    expect(args[0]).toBe('nodes')
    const join = args[args.indexOf('--join') + 1] as string
    expect(`${hostOf(join)}:${portOf(join)}`).toBe(`127.0.0.1:${listenPort()}`)
    expect(Number(args[args.indexOf('--connect-timeout') + 1])).toBeLessThan((probe.timeoutSeconds ?? 1) * 1000)
  })

  it('stops within terminationGracePeriodSeconds, runs unprivileged as the image user, with limits', () => {
    const pod = k8s('StatefulSet').spec.template.spec
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(k8sConfig().shutdownTimeout + STOP_GRACE_MS)
    const user = (instruction('USER').at(-1)?.rest ?? '').split(':').map(Number)
    expect(pod.securityContext.runAsNonRoot).toBe(true)
    expect([pod.securityContext.runAsUser, pod.securityContext.runAsGroup]).toEqual(user)
    const container = k8sContainer()
    expect(container.securityContext.allowPrivilegeEscalation).toBe(false)
    expect(container.resources.limits?.memory).toBeTruthy()
    expect(container.resources.limits?.cpu).toBeTruthy()
    expect(container.resources.requests?.memory).toBeTruthy()
    expect(container.resources.requests?.cpu).toBeTruthy()
    expect(kubernetesSecret().secretName).toBe('wmesh-secret')
  })

  it('selectors of the Services and the PodDisruptionBudget match the pods', () => {
    const labels = k8s('StatefulSet').spec.template.metadata.labels as Record<string, string>
    const selects = (selector: Record<string, string>) =>
      Object.entries(selector).every(([k, v]) => labels[k] === v) && Object.keys(selector).length > 0
    expect(selects(k8s('StatefulSet').spec.selector.matchLabels)).toBe(true)
    for (const service of k8sObjects().filter((o) => o.kind === 'Service'))
      expect(selects(service.spec.selector)).toBe(true)
    const pdb = k8s('PodDisruptionBudget')
    expect(selects(pdb.spec.selector.matchLabels)).toBe(true)
    expect(pdb.spec.maxUnavailable).toBe(1)
  })
})
