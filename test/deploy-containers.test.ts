import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  composeMs,
  dockerEnv,
  parseDockerfile,
  readDeploy,
  repoRoot,
  yamlDocuments,
} from './fixtures/deploy/deploy-files.js'
import {
  eventually,
  type LabProcess,
  labHostsFile,
  mapPaths,
  type RunSpec,
  runIn,
  spawnIn,
} from './fixtures/deploy/lab-run.js'
import { createLab, type Lab, type LabHost, requireRoot } from './lab/netns.js'

// No container engine or Kubernetes runs here, so these tests do what they would do with
// the files: the image's entrypoint, environment and healthcheck (deploy/docker/Dockerfile)
// with the compose services' and the StatefulSet's commands, variables and volumes, run
// on hosts of the network-namespace lab. Paths inside the image map to this repository,
// volumes to directories of the test, and service names resolve through each host's
// /etc/hosts (a headless Service name to every pod).

/** What the runtime stage of the Dockerfile sets up. */
const image = (() => {
  const runtime = parseDockerfile(readDeploy('docker/Dockerfile')).at(-1)?.instructions ?? []
  const last = (keyword: string) => runtime.filter((i) => i.keyword === keyword).at(-1)
  return {
    entrypoint: last('ENTRYPOINT')?.json ?? [],
    cmd: last('CMD')?.json ?? [],
    healthcheck: last('HEALTHCHECK')?.json ?? [],
    env: Object.assign({}, ...runtime.filter((i) => i.keyword === 'ENV').map(dockerEnv)) as Record<string, string>,
    workdir: last('WORKDIR')?.rest ?? '/',
  }
})()

interface Container {
  entrypoint?: string[]
  command?: string[]
  env: Record<string, string>
  /** Container path -> directory of the test. */
  mounts: Array<[string, string]>
  /** The container's own directory for the image's WORKDIR. */
  workdir: string
}

/** The command and environment a container of the image would run, paths mapped. */
function containerSpec(container: Container, argv?: string[]): RunSpec {
  const mapping = [
    ['/opt/wmesh', repoRoot.replace(/\/$/, '')],
    [image.workdir, container.workdir],
    ...container.mounts,
  ] as const
  const words = argv ?? [...(container.entrypoint ?? image.entrypoint), ...(container.command ?? image.cmd)]
  const env = { ...image.env, ...container.env }
  return {
    argv: words.map((w) => mapPaths(w, mapping)),
    env: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, mapPaths(v, mapping)])),
    cwd: container.workdir,
  }
}

/** Node rows from `wmesh nodes --json`, once `count` nodes are up. */
async function nodesUp(host: LabHost, spec: RunSpec, count: number) {
  return eventually(async () => {
    const { code, stdout, stderr } = await runIn(host, spec)
    if (code !== 0) throw new Error(`exit ${code}: ${stderr.trim()}`)
    const rows = JSON.parse(stdout) as Array<{ name: string; id: string; status: string }>
    return rows.length === count && rows.every((r) => r.status === 'up') ? rows : undefined
  }, `${count} nodes up, seen from ${host.name}`)
}

interface ComposeService {
  entrypoint?: string[]
  command?: string[]
  environment?: Record<string, string>
  volumes?: string[]
  hostname?: string
  stop_grace_period?: string
}

describe('docker/compose.yaml, its services on three namespaced hosts', () => {
  const [doc] = yamlDocuments(readDeploy('docker/compose.yaml'), 'compose.yaml') as [
    { services: Record<string, ComposeService> },
  ]
  const init = doc.services.init as ComposeService
  const nodeServices = Object.entries(doc.services).filter(([name]) => name !== 'init')
  const root = mkdtempSync(join(tmpdir(), 'wmesh-compose-'))
  let lab: Lab
  let dropHosts = () => {}
  const nodes: LabProcess[] = []

  /** The container for `service`, with its named volumes in `root`. */
  const container = (name: string, service: ComposeService): Container => {
    const workdir = join(root, `workdir-${name}-${randomBytes(2).toString('hex')}`)
    mkdirSync(workdir)
    const mounts = (service.volumes ?? []).map((v): [string, string] => {
      const [volume, path] = v.split(':') as [string, string]
      mkdirSync(join(root, volume), { recursive: true })
      return [path, join(root, volume)]
    })
    return { entrypoint: service.entrypoint, command: service.command, env: service.environment ?? {}, mounts, workdir }
  }
  const hostOf = (i: number) => lab.hosts[i] as LabHost

  beforeAll(async () => {
    requireRoot()
    lab = await createLab({ hosts: nodeServices.length })
    dropHosts = labHostsFile(
      lab,
      nodeServices.map(([name], i) => [name, hostOf(i).ip]),
    )
    // `depends_on: init: service_completed_successfully`: init first, to completion.
    const first = await runIn(hostOf(0), containerSpec(container('init', init)))
    expect(first.code, first.stderr).toBe(0)
    nodeServices.forEach(([name, service], i) => {
      nodes.push(spawnIn(hostOf(i), containerSpec(container(name, service))))
    })
    await Promise.all(
      nodeServices.map(([name], i) => nodes[i]?.waitFor((l) => l.msg === `node ${name} running`, 'the node running')),
    )
  }, 60_000)

  afterAll(async () => {
    await lab?.destroy()
    dropHosts()
    rmSync(root, { recursive: true, force: true })
  })

  it('init wrote a config and a 0600 secret into the shared volume, once', async () => {
    const secret = join(root, 'cluster/wmesh.secret')
    expect(statSync(secret).mode & 0o777).toBe(0o600)
    const before = readFileSync(secret, 'utf8')
    const again = await runIn(hostOf(0), containerSpec(container('init', init)))
    expect(again.code, again.stderr).toBe(0)
    expect(readFileSync(secret, 'utf8')).toBe(before)
  })

  it('the image healthcheck passes in every container once the three have joined by service name', async () => {
    for (const [i, [name, service]] of nodeServices.entries()) {
      const rows = await nodesUp(hostOf(i), containerSpec(container(name, service), image.healthcheck), 3)
      expect(rows.map((r) => r.name)).toEqual(['wmesh-1', 'wmesh-2', 'wmesh-3'])
    }
  }, 60_000)

  it('`docker compose exec wmesh-1 wmesh call ... --node wmesh-3` reaches the worker init wrote', async () => {
    const [name, service] = nodeServices[0] as [string, ComposeService]
    const argv = ['node', '/opt/wmesh/packages/cli/bin/wmesh.js', 'call', 'hello_worker', 'hello', '"docker"']
    const answer = await runIn(hostOf(0), containerSpec(container(name, service), [...argv, '--node', 'wmesh-3']))
    expect(answer.stderr).toBe('')
    expect(JSON.parse(answer.stdout)).toBe('hello, docker')
  })

  it('`docker compose stop`: SIGTERM, exit 0 within stop_grace_period', async () => {
    for (const [i, [, service]] of nodeServices.entries()) {
      const node = nodes[i] as LabProcess
      const started = Date.now()
      node.child.kill('SIGTERM')
      expect(await node.exited).toBe(0)
      expect(Date.now() - started).toBeLessThan(composeMs(service.stop_grace_period ?? '10s'))
    }
  }, 60_000)
})

interface K8sContainer {
  args?: string[]
  command?: string[]
  env: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>
  ports: Array<{ name: string; containerPort: number }>
  readinessProbe: { exec: { command: string[] } }
  livenessProbe: { tcpSocket: { port: string | number } }
  volumeMounts: Array<{ name: string; mountPath: string }>
}

interface K8sVolume {
  name: string
  configMap?: { name: string }
  secret?: { secretName: string; defaultMode?: number }
  emptyDir?: object
}

describe('kubernetes/ StatefulSet, its pods on three namespaced hosts', () => {
  const objects = ['configmap.yaml', 'service.yaml', 'statefulset.yaml'].flatMap(
    (f) => yamlDocuments(readDeploy(`kubernetes/${f}`), f),
    // biome-ignore lint/suspicious/noExplicitAny: manifests, read field by field below
  ) as Array<{ kind: string; metadata: { name: string }; data?: Record<string, string>; spec: any }>
  const statefulSet = objects.find((o) => o.kind === 'StatefulSet')
  const pod = statefulSet?.spec.template.spec as {
    containers: K8sContainer[]
    volumes: K8sVolume[]
    terminationGracePeriodSeconds: number
  }
  const spec = pod.containers[0] as K8sContainer
  const replicas = statefulSet?.spec.replicas as number
  const podNames = Array.from({ length: replicas }, (_, i) => `${statefulSet?.metadata.name}-${i}`)
  const root = mkdtempSync(join(tmpdir(), 'wmesh-k8s-'))
  const secret = `${randomBytes(32).toString('hex')}\n`
  let lab: Lab
  let dropHosts = () => {}
  const pods: LabProcess[] = []

  /** A pod's container: its volumes written out, its variables resolved (fieldRef metadata.name). */
  const container = (i: number): Container => {
    const dir = join(root, podNames[i] as string)
    const mounts = spec.volumeMounts.map((mount): [string, string] => {
      const volume = pod.volumes.find((v) => v.name === mount.name) as K8sVolume
      const path = join(dir, volume.name)
      mkdirSync(path, { recursive: true })
      if (volume.configMap) {
        const map = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === volume.configMap?.name)
        for (const [file, text] of Object.entries(map?.data ?? {})) writeFileSync(join(path, file), text)
      }
      if (volume.secret) {
        // kubectl create secret ... --from-file=secret=...: one key, `secret`.
        writeFileSync(join(path, 'secret'), secret)
        chmodSync(join(path, 'secret'), volume.secret.defaultMode ?? 0o644)
      }
      return [mount.mountPath, path]
    })
    mkdirSync(join(dir, 'workdir'), { recursive: true })
    const env = Object.fromEntries(
      spec.env.map((e) => {
        if (e.value !== undefined) return [e.name, e.value]
        expect(e.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name')
        return [e.name, podNames[i] as string]
      }),
    )
    return { entrypoint: spec.command, command: spec.args, env, mounts, workdir: join(dir, 'workdir') }
  }
  const hostOf = (i: number) => lab.hosts[i] as LabHost
  const readiness = (i: number) => containerSpec(container(i), spec.readinessProbe.exec.command)
  const startPod = (i: number) => {
    pods[i] = spawnIn(hostOf(i), containerSpec(container(i)))
    return (pods[i] as LabProcess).waitFor((l) => l.msg === `node ${podNames[i]} running`, 'the node running')
  }

  beforeAll(async () => {
    requireRoot()
    lab = await createLab({ hosts: replicas })
    // The headless Service's name resolves to every pod (publishNotReadyAddresses: true).
    const headless = statefulSet?.spec.serviceName as string
    dropHosts = labHostsFile(
      lab,
      lab.hosts.map((h) => [headless, h.ip]),
    )
    await Promise.all(podNames.map((_, i) => startPod(i)))
  }, 60_000)

  afterAll(async () => {
    await lab?.destroy()
    dropHosts()
    rmSync(root, { recursive: true, force: true })
  })

  it('pods find each other through the headless Service name, and the readiness probe passes in each', async () => {
    for (const i of podNames.keys()) {
      const rows = await nodesUp(hostOf(i), readiness(i), replicas)
      expect(rows.map((r) => r.name)).toEqual(podNames)
    }
  }, 60_000)

  it('the liveness probe`s port accepts connections', async () => {
    const port = spec.ports.find(
      (p) => p.name === spec.livenessProbe.tcpSocket.port || p.containerPort === spec.livenessProbe.tcpSocket.port,
    )?.containerPort
    const script = `require('net').connect(${port}, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => process.exit(1))`
    const result = await runIn(hostOf(0), { argv: [process.execPath, '-e', script], env: {}, cwd: root })
    expect(result.code).toBe(0)
  })

  it('links use TLS, and the ConfigMap`s worker runs with its instances on every pod', async () => {
    const c = container(0)
    // A client that does not know about TLS (no config): the node refuses it.
    const plain = await runIn(
      hostOf(0),
      containerSpec({ ...c, env: { WMESH_SECRET_FILE: c.env.WMESH_SECRET_FILE as string } }, [
        ...spec.readinessProbe.exec.command,
      ]),
    )
    expect(plain.code).not.toBe(0)
    expect(plain.stderr).toMatch(/handshake/)
    const withTls = await runIn(
      hostOf(0),
      containerSpec({ ...c, env: { WMESH_SECRET_FILE: c.env.WMESH_SECRET_FILE as string } }, [
        ...spec.readinessProbe.exec.command,
        '--tls',
      ]),
    )
    expect(withTls.code, withTls.stderr).toBe(0)
    const cli = ['node', '/opt/wmesh/packages/cli/bin/wmesh.js']
    const workers = await runIn(hostOf(0), containerSpec(c, [...cli, 'workers', '--json']))
    expect(workers.stderr).toBe('')
    const rows = JSON.parse(workers.stdout) as Array<{ name: string; node: string; state: string }>
    const config = JSON.parse(
      objects.find((o) => o.kind === 'ConfigMap' && o.data?.['wmesh.config.json'])?.data?.['wmesh.config.json'] ?? '{}',
    ) as { workers: { hello_worker: { instances: number } } }
    for (const name of podNames) {
      expect(rows.filter((r) => r.name === 'hello_worker' && r.node === name && r.state === 'running')).toHaveLength(
        config.workers.hello_worker.instances,
      )
    }
    const answer = await runIn(
      hostOf(0),
      containerSpec(c, [...cli, 'call', 'hello_worker', 'hello', '"k8s"', '--node', podNames[2] as string]),
    )
    expect(answer.stderr).toBe('')
    expect(JSON.parse(answer.stdout)).toBe(`hello, k8s, from ${podNames[2]}`)
  })

  it('a rolling update: each pod in turn stops on SIGTERM with exit 0 in time, returns as a new incarnation, and is ready again', async () => {
    const grace = pod.terminationGracePeriodSeconds * 1000
    // A StatefulSet's RollingUpdate replaces the highest ordinal first.
    for (const i of [...podNames.keys()].reverse()) {
      const before = await nodesUp(hostOf(i), readiness(i), replicas)
      const old = before.find((r) => r.name === podNames[i])?.id
      const node = pods[i] as LabProcess
      const started = Date.now()
      node.child.kill('SIGTERM')
      expect(await node.exited).toBe(0)
      expect(Date.now() - started).toBeLessThan(grace)
      await startPod(i)
      const after = await eventually(async () => {
        const rows = await nodesUp(hostOf(i), readiness(i), replicas)
        const id = rows.find((r) => r.name === podNames[i])?.id
        return id !== undefined && id !== old ? rows : undefined
      }, `${podNames[i]} back as a new incarnation`)
      expect(after.map((r) => r.name)).toEqual(podNames)
    }
  }, 120_000)
})
