/**
 * Containers and clusters, checked without a container engine or a cluster.
 *
 * - Dockerfile: linted (dockerfile-utils), its stages and COPY sources checked
 *   against the repository and .dockerignore, and its final stage rebuilt from
 *   this (built) checkout exactly as its COPY lines say, with production-only
 *   node_modules; then the image's CMD runs switchd with the compose lab's
 *   configuration, as the image's USER when the test runs as root, and the
 *   image's HEALTHCHECK command decides, by its exit code, whether it is up.
 * - compose.yaml: validated against the compose-spec JSON schema (vendored in
 *   test/fixtures/compose-spec), every mount and env_file exists, Prometheus
 *   scrapes the services by name, the agents' tokens are ones switchd accepts.
 * - deploy/k8s: every manifest validated against the Kubernetes and
 *   prometheus-operator schemas (kubernetes-models), unknown fields included,
 *   and the names, labels, ports and probes that tie them together checked.
 *
 * Each validator is also handed broken copies, so one that accepts anything
 * fails here. Nothing is downloaded: `npm prune --offline` only removes.
 */

import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import Ajv from 'ajv'
import { DockerfileParser, type Copy, type Instruction } from 'dockerfile-ast'
import { validate as lintDockerfile } from 'dockerfile-utils'
import WebSocket from 'ws'
import * as YAML from 'yaml'
import { buildConfig } from '../../src/switch/control/config'
import { Namespace } from 'kubernetes-models/v1/Namespace'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Secret } from 'kubernetes-models/v1/Secret'
import { Service } from 'kubernetes-models/v1/Service'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet'
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor'
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor'
import { loadConfig } from '../../src/switch/control/config'
import { networkFromPath } from '../../src/switch/control/networks'
import { checkExposure, hostAllowed } from '../../src/switch/control/exposure'

const ROOT = path.join(__dirname, '..', '..')
const COMPOSE_DIR = path.join(ROOT, 'deploy', 'compose')
const K8S_DIR = path.join(ROOT, 'deploy', 'k8s')

/** Parsed YAML and JSON, walked by path; a wrong path fails the assertion that reads it. */
type Obj = Record<string, any>

function readYaml (file: string): Obj {
  // Compose files use YAML merge keys (<<: *anchor), as Compose itself resolves them.
  const doc = YAML.parseDocument(fs.readFileSync(file, 'utf8'), { merge: true })
  assert.deepEqual(doc.errors, [], file)
  return doc.toJS() as Obj
}

function clone<T> (v: T): T { return JSON.parse(JSON.stringify(v)) as T }

function portOf (hostPort: string): number { return Number(/:(\d+)$/.exec(hostPort)?.[1]) }

function sha256 (text: string): string { return createHash('sha256').update(text).digest('hex') }

/** KEY=VALUE lines of an env file (Compose's env_file), comments and blanks skipped. */
function readEnvFile (file: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim())
    if (m !== null) out[m[1] as string] = m[2] as string
  }
  return out
}

// ---------------------------------------------------------------- Dockerfile

interface Stage { name: string | null, base: string, instructions: Instruction[] }

function stagesOf (text: string): Stage[] {
  const args = new Map<string, string>()
  const stages: Stage[] = []
  for (const i of DockerfileParser.parse(text).getInstructions()) {
    const kw = i.getKeyword()
    if (kw === 'ARG' && stages.length === 0) {
      const [k, v] = (i.getArgumentsContent() ?? '').split('=')
      args.set(k as string, v ?? '')
    } else if (kw === 'FROM') {
      const parts = (i.getArgumentsContent() ?? '').split(/\s+/)
      const base = (parts[0] as string).replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? '')
      stages.push({ name: parts[2] ?? null, base, instructions: [] })
    } else {
      const stage = stages[stages.length - 1]
      assert.ok(stage !== undefined, `${kw} before the first FROM`)
      stage.instructions.push(i)
    }
  }
  return stages
}

function all (stage: Stage, kw: string): Instruction[] { return stage.instructions.filter((i) => i.getKeyword() === kw) }
function last (stage: Stage, kw: string): Instruction | undefined { return all(stage, kw).pop() }

interface CopyLine { from: string | null, sources: string[], dest: string }

function copiesOf (stage: Stage): CopyLine[] {
  return all(stage, 'COPY').map((i) => {
    const flag = (i as Copy).getFromFlag()
    const words = i.getArguments().map((a) => a.getValue())
    return { from: flag?.getValue() ?? null, sources: words.slice(0, -1), dest: words[words.length - 1] as string }
  })
}

/** An exec-form command: CMD ["a", "b"] or HEALTHCHECK … CMD ["a", "b"]. */
function execForm (i: Instruction): string[] {
  const text = (i.getArgumentsContent() ?? '').replace(/^CMD\s+/, '').replace(/\\\n/g, '')
  const argv = JSON.parse(text) as unknown
  assert.ok(Array.isArray(argv) && argv.every((a) => typeof a === 'string'), `${i.getKeyword()} is not in exec form`)
  return argv
}

/** .dockerignore, Docker's way: a pattern matches a path or any of its parents; the last match wins. */
function ignoredByDocker (patterns: string[], rel: string): boolean {
  const parts = rel.split('/')
  let ignored = false
  for (const raw of patterns) {
    const neg = raw.startsWith('!')
    const pat = (neg ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, '')
    const re = new RegExp('^' + pat.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*') + '$')
    for (let n = 1; n <= parts.length; n++) {
      if (re.test(parts.slice(0, n).join('/'))) { ignored = !neg; break }
    }
  }
  return ignored
}

function filesUnder (abs: string): string[] {
  if (!fs.statSync(abs).isDirectory()) return [abs]
  return fs.readdirSync(abs, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name))
}

/** Docker's COPY: a directory's contents go into dest; a file goes to dest, or into it if dest is a directory. */
function dockerCopy (src: string, dest: string, intoDir: boolean): void {
  if (fs.statSync(src).isDirectory()) {
    fs.cpSync(src, dest, { recursive: true, verbatimSymlinks: true })
    return
  }
  const to = intoDir ? path.join(dest, path.basename(src)) : dest
  fs.mkdirSync(path.dirname(to), { recursive: true })
  fs.copyFileSync(src, to)
}

function run (argv: string[], opts: { cwd: string, env: NodeJS.ProcessEnv, uid?: number, gid?: number, timeout: number }): { status: number | null, out: string } {
  const r = spawnSync(argv[0] === 'node' ? process.execPath : argv[0] as string, argv.slice(1), { ...opts, encoding: 'utf8' })
  return { status: r.status, out: `${r.stdout}${r.stderr}${r.error?.message ?? ''}` }
}

describe('containers: Dockerfile', function () {
  const text = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
  const stages = stagesOf(text)
  const final = stages[stages.length - 1] as Stage
  const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))

  it('passes the dockerfile-utils linter, which rejects a misspelled instruction or flag', () => {
    const problems = (t: string): string[] => lintDockerfile(t).map((d) => `${d.range.start.line + 1}: ${d.message}`)
    assert.deepEqual(problems(text), [])
    assert.notDeepEqual(problems(text.replace('\nCOPY bin/', '\nCOPPY bin/')), [])
    assert.notDeepEqual(problems(text.replace('HEALTHCHECK --interval', 'HEALTHCHECK --intervall')), [])
  })

  it('builds in a full stage with npm ci and runs from a slim one as a numeric non-root user', () => {
    assert.ok(stages.length >= 2, 'multi-stage')
    const build = stages.find((s) => s.name === 'build')
    assert.ok(build !== undefined, 'a stage named build')
    const runs = all(build, 'RUN').map((i) => i.getArgumentsContent() ?? '')
    assert.ok(runs.some((r) => /^npm ci\b/.test(r)), runs.join('\n'))
    assert.ok(runs.some((r) => /^npm prune --omit=dev\b/.test(r)), 'only production node_modules leave the build stage')
    assert.match(final.base, /^node:20-bookworm-slim$/)
    assert.equal(all(final, 'RUN').length, 0, 'nothing runs in the final stage: it is only what it copies')
    const user = last(final, 'USER')?.getArgumentsContent() ?? ''
    assert.match(user, /^\d+(:\d+)?$/, 'numeric, so Kubernetes runAsNonRoot can check it')
    assert.notEqual(Number(user.split(':')[0]), 0)
    const health = last(final, 'HEALTHCHECK')
    assert.ok(health !== undefined)
    assert.match(execForm(health).join(' '), /^node -e .*'http:\/\/127\.0\.0\.1:8080\/healthz'/)
    assert.deepEqual(execForm(last(final, 'CMD') as Instruction).slice(0, 2), ['node', 'bin/switchd.js'])
  })

  it('copies into the build stage every input of npm ci, from a context .dockerignore lets through', () => {
    const build = stages.find((s) => s.name === 'build') as Stage
    const copied = copiesOf(build).flatMap((c) => c.sources.map((s) => s.replace(/\/$/, '')))
    const covered = (rel: string): boolean => copied.some((c) => rel === c || rel.startsWith(c + '/'))
    const gyp = JSON.parse(fs.readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8')) as { targets: Array<{ sources: string[] }> }
    const tsBuild = JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8')) as { extends: string, include: string[] }
    const inputs = ['package.json', 'package-lock.json', 'binding.gyp', 'tsconfig.build.json', path.normalize(tsBuild.extends),
      ...gyp.targets.flatMap((t) => t.sources), ...tsBuild.include.map((g) => g.split('/')[0] as string)]
    for (const rel of inputs) assert.ok(covered(rel), `${rel} is not copied into the build stage`)
    for (const stage of stages) {
      for (const c of copiesOf(stage).filter((c) => c.from === null)) {
        for (const src of c.sources) {
          const abs = path.join(ROOT, src)
          assert.ok(fs.existsSync(abs), `COPY ${src}: not in the repository`)
          for (const f of filesUnder(abs)) assert.ok(!ignoredByDocker(ignore, path.relative(ROOT, f)), `COPY ${src}: ${path.relative(ROOT, f)} is excluded by .dockerignore`)
        }
      }
    }
    // Host builds must not leak into the context: the addon and dist/ are built inside.
    for (const rel of ['node_modules', 'dist', 'build', 'prebuilds', '.git', 'test', 'deploy/compose/env/agent-a.env']) {
      assert.ok(ignoredByDocker(ignore, rel), `${rel} should be excluded by .dockerignore`)
    }
  })

  describe('the final stage, rebuilt from this checkout', function () {
    let tmp: string
    let fsRoot: string
    let workdir: string
    let env: NodeJS.ProcessEnv
    let asUser: { uid?: number, gid?: number }
    let switchd: ChildProcess | undefined
    let port = 0

    before(function () {
      const build = stages.find((s) => s.name === 'build') as Stage
      const buildDir = last(build, 'WORKDIR')?.getArgumentsContent() as string
      for (const rel of ['dist/switch/main.js', 'build/Release/tap.node', 'node_modules']) {
        assert.ok(fs.existsSync(path.join(ROOT, rel)), `${rel} is missing: build the checkout first (npm install)`)
      }
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-image-'))
      fs.chmodSync(tmp, 0o755)
      // Node looks for modules in every parent directory: the image's must be the only ones it finds.
      for (let d = path.dirname(tmp); ; d = path.dirname(d)) {
        assert.ok(!fs.existsSync(path.join(d, 'node_modules')), `${d}/node_modules would leak into the simulated image`)
        if (d === path.dirname(d)) break
      }
      // The build stage's node_modules after `npm prune --omit=dev`, made the same way.
      const staged = path.join(tmp, 'build')
      fs.mkdirSync(staged)
      for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(ROOT, f), path.join(staged, f))
      fs.cpSync(path.join(ROOT, 'node_modules'), path.join(staged, 'node_modules'), { recursive: true, verbatimSymlinks: true })
      const prune = run(['npm', 'prune', '--omit=dev', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: staged, env: process.env, timeout: 60_000 })
      assert.equal(prune.status, 0, prune.out)
      fsRoot = path.join(tmp, 'fs')
      workdir = path.join(fsRoot, last(final, 'WORKDIR')?.getArgumentsContent() as string)
      fs.mkdirSync(workdir, { recursive: true })
      for (const c of copiesOf(final)) {
        const dest = path.resolve(workdir, c.dest)
        const intoDir = c.dest.endsWith('/') || c.sources.length > 1
        for (const src of c.sources) {
          let from: string
          if (c.from === null) {
            from = path.join(ROOT, src)
          } else {
            assert.equal(c.from, 'build', `COPY --from=${c.from}: only the build stage is simulated`)
            const rel = path.posix.relative(buildDir, src)
            assert.ok(!rel.startsWith('..'), `COPY --from=build ${src}: outside the build stage's WORKDIR ${buildDir}`)
            from = rel.split('/')[0] === 'node_modules' ? path.join(staged, rel) : path.join(ROOT, rel)
          }
          assert.ok(fs.existsSync(from), `COPY ${c.from === null ? '' : `--from=${c.from} `}${src}: nothing there`)
          dockerCopy(from, dest, intoDir)
        }
      }
      // The compose lab's switchd: its /etc/tapswitch mount and env_file.
      const compose = readYaml(path.join(COMPOSE_DIR, 'compose.yaml'))
      const sw = compose.services.switchd as Obj
      const mount = (sw.volumes as string[]).map((v) => v.split(':')).find((v) => v[1] === '/etc/tapswitch') as string[]
      fs.cpSync(path.resolve(COMPOSE_DIR, mount[0] as string), path.join(fsRoot, 'etc', 'tapswitch'), { recursive: true })
      env = { PATH: process.env.PATH, ...readEnvFile(path.resolve(COMPOSE_DIR, (sw.env_file as string[])[0] as string)) }
      for (const i of all(final, 'ENV')) {
        const [k, v] = (i.getArgumentsContent() ?? '').split('=')
        env[k as string] = v
      }
      const [uid, gid] = (last(final, 'USER')?.getArgumentsContent() ?? '').split(':').map(Number)
      // As root (CI), run as the image's user: the files it needs must be readable by it.
      asUser = process.getuid?.() === 0 ? { uid, gid: gid ?? uid } : {}
    })

    after(async () => {
      if (switchd !== undefined && switchd.exitCode === null && switchd.signalCode === null) {
        switchd.kill('SIGKILL')
        await once(switchd, 'exit')
      }
      if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true })
    })

    it('holds production dependencies only, and the addon loads from where it was copied', () => {
      const mods = path.join(workdir, 'node_modules')
      for (const dev of ['typescript', 'mocha', 'tsx', 'node-gyp', 'yaml']) assert.ok(!fs.existsSync(path.join(mods, dev)), `${dev} is in the image`)
      const deps = Object.keys((JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Obj }).dependencies)
      for (const dep of deps) assert.ok(fs.existsSync(path.join(mods, dep, 'package.json')), `${dep} is missing from the image`)
      const addon = run(['node', '-e', 'if (Object.keys(require("./native")).length === 0) process.exit(3)'],
        { cwd: workdir, env, ...asUser, timeout: 20_000 })
      assert.equal(addon.status, 0, addon.out)
      for (const bin of ['bin/tap-agent.js', 'bin/switchctl.js']) {
        const help = run(['node', bin, '--help'], { cwd: workdir, env, ...asUser, timeout: 20_000 })
        assert.equal(help.status, 0, `${bin} --help: ${help.out}`)
      }
    })

    // The next three share one switchd, as a container's life: started, used, stopped.
    it("runs the image's CMD with the compose lab's configuration, and its HEALTHCHECK passes", async () => {
      // Absolute paths in the CMD are paths inside the image.
      const cmd = execForm(last(final, 'CMD') as Instruction).map((a) => a.startsWith('/') ? path.join(fsRoot, a) : a)
      // Loopback and a free port instead of the configuration's 0.0.0.0:8080.
      switchd = spawn(process.execPath, cmd.slice(1), { cwd: workdir, env: { ...env, SWITCHD_LISTEN: '127.0.0.1:0' }, ...asUser, stdio: ['ignore', 'ignore', 'pipe'] })
      let log = ''
      port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`switchd did not start: ${log}`)) }, 15_000)
        switchd?.stderr?.on('data', (d: Buffer) => {
          log += d.toString()
          const m = /"event":"listening".*"port":(\d+)/.exec(log)
          if (m !== null) { clearTimeout(timer); resolve(Number(m[1])) }
        })
        switchd?.once('exit', (code) => { clearTimeout(timer); reject(new Error(`switchd exited ${String(code)}: ${log}`)) })
      })
      assert.match(log, /"tokens":2\b/, 'the lab configuration has its two agent tokens')
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`)
      assert.equal(ready.status, 200)
      const health = execForm(last(final, 'HEALTHCHECK') as Instruction).map((a) => a.replace('127.0.0.1:8080', `127.0.0.1:${port}`))
      const up = run(health, { cwd: workdir, env, ...asUser, timeout: 10_000 })
      assert.equal(up.status, 0, `HEALTHCHECK failed against a running switchd: ${up.out}`)
    })

    it("accepts the compose agents' tokens and refuses a client without one", async () => {
      assert.ok(port > 0, 'switchd is running')
      const compose = readYaml(path.join(COMPOSE_DIR, 'compose.yaml'))
      for (const name of ['agent-a', 'agent-b']) {
        const svc = compose.services[name] as Obj
        const token = readEnvFile(path.resolve(COMPOSE_DIR, (svc.env_file as string[])[0] as string)).TAP_AGENT_TOKEN as string
        const ws = new WebSocket(`ws://127.0.0.1:${port}${new URL(svc.environment.TAP_AGENT_URL as string).pathname}`, { headers: { authorization: `Bearer ${token}` } })
        ws.on('error', () => {})
        await once(ws, 'open')
        ws.close()
        await once(ws, 'close')
      }
      const anon = new WebSocket(`ws://127.0.0.1:${port}/net/lab`)
      anon.on('error', () => {})
      const [, res] = await once(anon, 'unexpected-response') as [unknown, { statusCode: number }]
      assert.equal(res.statusCode, 401)
      anon.terminate()
    })

    it('fails the HEALTHCHECK once switchd has stopped', async () => {
      assert.ok(switchd !== undefined && port > 0, 'switchd is running')
      const exited = once(switchd, 'exit')
      switchd.kill('SIGTERM')
      const [code] = await exited as [number | null]
      assert.equal(code, 0)
      const health = execForm(last(final, 'HEALTHCHECK') as Instruction).map((a) => a.replace('127.0.0.1:8080', `127.0.0.1:${port}`))
      const down = run(health, { cwd: workdir, env, ...asUser, timeout: 10_000 })
      assert.notEqual(down.status, 0, 'HEALTHCHECK passed with switchd stopped')
    })
  })
})

// ------------------------------------------------------------------- compose

describe('containers: compose', function () {
  const file = path.join(COMPOSE_DIR, 'compose.yaml')
  const compose = readYaml(file)
  const services = compose.services as Record<string, Obj>
  const agents = Object.keys(services).filter((n) => (services[n]?.command as string[] | undefined)?.includes('bin/tap-agent.js'))
  const switchdConfig = path.join(COMPOSE_DIR, 'tapswitch', 'switchd.json')

  /** Bind mounts as [absolute source, target]. */
  function binds (svc: Obj): Array<[string, string]> {
    return ((svc.volumes ?? []) as string[]).map((v) => v.split(':')).filter((v) => /^[./]/.test(v[0] as string))
      .map((v) => [path.resolve(COMPOSE_DIR, v[0] as string), v[1] as string])
  }

  it('is valid under the compose-spec schema, which rejects misspelled keys and wrong types', () => {
    const schema = JSON.parse(fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'compose-spec', 'compose-spec.json'), 'utf8')) as Obj
    const ajv = new Ajv({ allErrors: true, strict: false })
    // The schema names draft-07 by its https URL; Ajv knows the meta-schema by its http one.
    const draft07 = JSON.parse(fs.readFileSync(require.resolve('ajv/dist/refs/json-schema-draft-07.json'), 'utf8')) as Obj
    ajv.addMetaSchema({ ...draft07, $id: schema.$schema as string })
    const check = ajv.compile(schema)
    assert.ok(check(compose), JSON.stringify(check.errors, null, 1))
    const broken: Array<(c: Obj) => void> = [
      (c) => { c.services['agent-a'].cap_ad = c.services['agent-a'].cap_add; delete c.services['agent-a'].cap_add },
      (c) => { c.services.switchd.ports = '127.0.0.1:8080:8080' },
      (c) => { c.services['agent-b'].healthcheck.intervall = '10s' },
      (c) => { c.services.switchd.depends_on = { prometheus: { condition: 'service_up' } } }
    ]
    for (const breakIt of broken) {
      const copy = clone(compose)
      breakIt(copy)
      assert.equal(check(copy), false, `accepted: ${breakIt.toString()}`)
    }
  })

  it('mounts and reads only files that exist, and the dashboard from deploy/grafana itself', () => {
    for (const [name, svc] of Object.entries(services)) {
      for (const [src] of binds(svc)) assert.ok(fs.existsSync(src), `${name}: mount source ${src} is missing`)
      for (const env of (svc.env_file ?? []) as string[]) assert.ok(fs.existsSync(path.resolve(COMPOSE_DIR, env)), `${name}: env_file ${env} is missing`)
      if (svc.build !== undefined) assert.ok(fs.existsSync(path.resolve(COMPOSE_DIR, svc.build.context as string, svc.build.dockerfile as string)), `${name}: no Dockerfile`)
    }
    const dashboard = path.join(ROOT, 'deploy', 'grafana', 'tapswitch.json')
    const mount = binds(services.grafana as Obj).find(([src]) => src === dashboard)
    assert.ok(mount !== undefined, 'Grafana mounts deploy/grafana/tapswitch.json')
    const same = sha256(fs.readFileSync(dashboard, 'utf8'))
    for (const f of fs.readdirSync(COMPOSE_DIR, { recursive: true, encoding: 'utf8' })) {
      const abs = path.join(COMPOSE_DIR, f)
      if (fs.statSync(abs).isFile()) assert.notEqual(sha256(fs.readFileSync(abs, 'utf8')), same, `${f} is a copy of the dashboard`)
    }
    const provider = readYaml(path.join(COMPOSE_DIR, 'grafana', 'provisioning', 'dashboards', 'tapswitch.yaml'))
    assert.equal(provider.providers[0].options.path, path.posix.dirname(mount[1]), 'the provider reads the folder the dashboard is mounted in')
    const targets = binds(services.grafana as Obj).map(([, t]) => t)
    assert.ok(targets.includes('/etc/grafana/provisioning/dashboards') && targets.includes('/etc/grafana/provisioning/datasources'))
    const ds = readYaml(path.join(COMPOSE_DIR, 'grafana', 'provisioning', 'datasources', 'prometheus.yaml'))
    const url = new URL(ds.datasources[0].url as string)
    assert.equal(ds.datasources[0].type, 'prometheus')
    assert.ok(services[url.hostname] !== undefined, `datasource ${url.hostname} is not a service`)
  })

  it('scrapes switchd and every agent by service name, on the ports they serve metrics on', () => {
    const mount = binds(services.prometheus as Obj).find(([, t]) => t === '/etc/prometheus/prometheus.yml')
    assert.ok(mount !== undefined)
    const prom = readYaml(mount[0])
    const targets = (prom.scrape_configs as Obj[]).flatMap((j) => (j.static_configs as Obj[]).flatMap((s) => s.targets as string[]))
    for (const t of targets) assert.ok(services[t.split(':')[0] as string] !== undefined, `scrape target ${t} is not a compose service`)
    const cfg = loadConfig(switchdConfig)
    assert.ok(targets.includes(`switchd:${portOf(cfg.metricsListen ?? cfg.listen)}`), targets.join(', '))
    assert.ok(agents.length >= 2, 'two agents')
    for (const a of agents) assert.ok(targets.includes(`${a}:${portOf(services[a]?.environment.TAP_AGENT_METRICS_LISTEN as string)}`), `${a} is not scraped`)
  })

  it('passes promtool check config (CI has promtool)', function () {
    if (spawnSync('sh', ['-c', 'command -v promtool']).status !== 0) {
      if (process.env.CI === 'true') throw new Error('promtool is missing (Debian package prometheus)')
      this.skip()
    }
    const mount = binds(services.prometheus as Obj).find(([, t]) => t === '/etc/prometheus/prometheus.yml') as [string, string]
    const r = spawnSync('promtool', ['check', 'config', '--syntax-only', mount[0]], { encoding: 'utf8', timeout: 10_000 })
    assert.equal(r.status, 0, r.stdout + r.stderr)
  })

  it('joins the agents to one network of switchd, with the TUN device, NET_ADMIN and tokens switchd holds', () => {
    const cfg = loadConfig(switchdConfig)
    const sw = services.switchd as Obj
    assert.equal(sw.user, undefined, "switchd runs as the image's non-root USER")
    assert.deepEqual(sw.cap_drop, ['ALL'])
    assert.equal(sw.cap_add, undefined)
    assert.ok(binds(sw).some(([src, t]) => t === '/etc/tapswitch' && src === path.dirname(switchdConfig)))
    const subnets = new Set<string>()
    const addresses = new Set<string>()
    for (const a of agents) {
      const svc = services[a] as Obj
      const env = svc.environment as Record<string, string>
      assert.ok((svc.cap_add as string[]).includes('NET_ADMIN'), `${a}: NET_ADMIN`)
      assert.deepEqual(svc.cap_drop, ['ALL'])
      assert.ok((svc.devices as string[]).some((d) => d.split(':')[0] === '/dev/net/tun'), `${a}: /dev/net/tun`)
      assert.ok((svc.security_opt as string[]).includes('no-new-privileges:true'))
      assert.ok(env.TAP_AGENT_USER !== undefined && env.TAP_AGENT_USER !== 'root', `${a}: drops root once the TAP is open`)
      const m = /^(\d+\.\d+\.\d+)\.(\d+)\/24$/.exec(env.TAP_AGENT_ADDRESS ?? '')
      assert.ok(m !== null, `${a}: an IPv4 /24 address`)
      assert.match(m[1] as string, /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/, `${a}: a private range`)
      subnets.add(m[1] as string)
      addresses.add(env.TAP_AGENT_ADDRESS as string)
      const url = new URL(env.TAP_AGENT_URL as string)
      assert.ok(services[url.hostname] === sw, `${a}: connects to the switchd service`)
      assert.ok(hostAllowed(url.host, cfg.allowedHosts), `${a}: switchd answers Host ${url.host} (allowedHosts)`)
      assert.equal(Number(url.port), portOf(cfg.listen))
      const network = networkFromPath(url.pathname) as string
      assert.ok(cfg.networks.has(network), `${a}: network ${network} is not in switchd.json`)
      const token = readEnvFile(path.resolve(COMPOSE_DIR, (svc.env_file as string[])[0] as string)).TAP_AGENT_TOKEN as string
      const grant = cfg.tokens.get(sha256(token))
      assert.ok(grant !== undefined, `${a}: its token is not in switchd's tokens`)
      assert.equal(grant.network, network)
      assert.equal(grant.name, env.TAP_AGENT_NAME)
      assert.match((svc.healthcheck.test as string[]).join(' '), new RegExp(`127\\.0\\.0\\.1:${portOf(env.TAP_AGENT_METRICS_LISTEN as string)}/healthz`))
    }
    assert.equal(subnets.size, 1, 'one subnet, so they can ping each other')
    // With client tokens, switchd starts only with its admin token (env/switchd.env).
    const admin = readEnvFile(path.resolve(COMPOSE_DIR, (sw.env_file as string[])[0] as string)).SWITCHD_ADMIN_TOKEN
    checkExposure(loadConfig(switchdConfig, { adminToken: admin }), '0.0.0.0')
    assert.equal(addresses.size, agents.length, 'distinct addresses')
    const ping = services.ping as Obj
    assert.ok(ping.network_mode === `service:${agents[0] as string}`)
  })
})

// ---------------------------------------------------------------- Kubernetes

type ModelCtor = new (data: Obj) => { validate: () => void, toJSON: () => Obj }
const MODELS: Record<string, ModelCtor> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/DaemonSet': DaemonSet,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor as unknown as ModelCtor,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor as unknown as ModelCtor
}

/**
 * The schema's complaints about `doc`, plus the fields it does not know.
 * kubernetes-models' validators do not reject unknown fields, so a typo in an
 * optional field (readinesProbe) would pass; but they read every field they
 * know, so a field they never read is one the schema does not have.
 */
function manifestProblems (doc: Obj): string[] {
  const Model = MODELS[`${doc.apiVersion as string}/${doc.kind as string}`]
  if (Model === undefined) return [`no schema for ${doc.apiVersion as string} ${doc.kind as string}`]
  const problems: string[] = []
  try { new Model(doc).validate() } catch (err) { problems.push((err as Error).message) }
  const read = new WeakMap<object, Set<string | symbol>>()
  const track = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v
    const seen = new Set<string | symbol>()
    read.set(v, seen)
    return new Proxy(v, { get (t, k, r) { seen.add(k); return track(Reflect.get(t, k, r)) } })
  }
  const data = clone(doc)
  try { Model.prototype.validate.call(track(data)) } catch { /* reported above */ }
  const walk = (v: unknown, at: string): void => {
    if (v === null || typeof v !== 'object') return
    for (const [k, child] of Object.entries(v)) {
      if (Array.isArray(v)) walk(child, `${at}[${k}]`)
      else if (read.get(v)?.has(k) !== true) problems.push(`${doc.kind as string}${at}.${k}: unknown field`)
      else walk(child, `${at}.${k}`)
    }
  }
  walk(data, '')
  return problems
}

function matches (selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v)
}

describe('containers: Kubernetes manifests', function () {
  const kustomization = readYaml(path.join(K8S_DIR, 'kustomization.yaml'))
  const files = fs.readdirSync(K8S_DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  const docs: Obj[] = files.flatMap((f) => YAML.parseAllDocuments(fs.readFileSync(path.join(K8S_DIR, f), 'utf8')).map((d) => {
    assert.deepEqual(d.errors, [], f)
    return { ...(d.toJS() as Obj), _file: f }
  }))
  const one = (kind: string, name: string): Obj => {
    const d = docs.find((x) => x.kind === kind && x.metadata.name === name)
    assert.ok(d !== undefined, `${kind} ${name} is missing`)
    return d
  }
  const strip = (d: Obj): Obj => { const { _file: _, ...rest } = d; return rest }
  const deployment = one('Deployment', 'switchd')
  const daemonset = one('DaemonSet', 'tap-agent')
  const containerOf = (w: Obj): Obj => w.spec.template.spec.containers[0] as Obj
  const portNamed = (c: Obj, p: string | number): Obj | undefined => (c.ports as Obj[]).find((x) => x.name === p || x.containerPort === p)

  it('applies every manifest through kustomization.yaml, except the example Secrets', () => {
    assert.deepEqual([...kustomization.resources as string[]].sort(), files.filter((f) => f !== 'secrets.example.yaml').sort())
    const images = (kustomization.images as Obj[]).map((i) => i.name as string)
    for (const w of [deployment, daemonset]) assert.ok(images.includes(containerOf(w).image as string), `${w.kind as string}: image not set by kustomization`)
  })

  it('validates every document against the Kubernetes and prometheus-operator schemas', () => {
    for (const d of docs) assert.deepEqual(manifestProblems(strip(d)), [], `${d._file as string}: ${d.kind as string} ${d.metadata?.name as string}`)
  })

  it('rejects broken copies: a misspelled field, a string for an integer, an unknown optional field', () => {
    const broken: Array<[Obj, (d: Obj) => void]> = [
      [deployment, (d) => { d.spec.template.spec.contaniers = d.spec.template.spec.containers; delete d.spec.template.spec.containers }],
      [daemonset, (d) => { d.spec.template.spec.containers[0].ports[0].containerPort = '9101' }],
      [deployment, (d) => { d.spec.replicas = 'three' }],
      [deployment, (d) => { const c = d.spec.template.spec.containers[0]; c.readinesProbe = c.readinessProbe; delete c.readinessProbe }],
      [one('ServiceMonitor', 'switchd'), (d) => { d.spec.endpoints[0].intervall = '15s' }],
      [one('Ingress', 'switchd'), (d) => { d.spec.rules[0].http.paths[0].backend.service.prot = { name: 'ws' } }]
    ]
    for (const [doc, breakIt] of broken) {
      const copy = clone(strip(doc))
      breakIt(copy)
      assert.notDeepEqual(manifestProblems(copy), [], `accepted: ${breakIt.toString()}`)
    }
  })

  it('wires the Service, probes, Ingress and monitors to ports and labels that exist', () => {
    const c = containerOf(deployment)
    const podLabels = deployment.spec.template.metadata.labels as Record<string, string>
    assert.ok(matches(deployment.spec.selector.matchLabels as Record<string, string>, podLabels))
    const svc = one('Service', 'switchd')
    assert.ok(matches(svc.spec.selector as Record<string, string>, podLabels), 'the Service selects the switchd pods')
    for (const p of svc.spec.ports as Obj[]) assert.ok(portNamed(c, p.targetPort as string) !== undefined, `Service port ${p.name as string}: no such container port`)
    assert.equal(c.readinessProbe.httpGet.path, '/readyz')
    assert.equal(c.livenessProbe.httpGet.path, '/healthz')
    for (const probe of [c.readinessProbe, c.livenessProbe] as Obj[]) assert.ok(portNamed(c, probe.httpGet.port as string) !== undefined)
    const ingress = one('Ingress', 'switchd')
    for (const rule of ingress.spec.rules as Obj[]) {
      for (const p of rule.http.paths as Obj[]) {
        const backend = one('Service', p.backend.service.name as string)
        assert.equal(backend.metadata.namespace, ingress.metadata.namespace)
        assert.ok((backend.spec.ports as Obj[]).some((sp) => sp.name === p.backend.service.port.name), 'backend port')
      }
    }
    const sm = one('ServiceMonitor', 'switchd')
    assert.ok(matches(sm.spec.selector.matchLabels as Record<string, string>, svc.metadata.labels as Record<string, string>))
    assert.ok((svc.spec.ports as Obj[]).some((sp) => sp.name === sm.spec.endpoints[0].port))
    const pm = one('PodMonitor', 'tap-agent')
    assert.ok(matches(pm.spec.selector.matchLabels as Record<string, string>, daemonset.spec.template.metadata.labels as Record<string, string>))
    assert.ok(portNamed(containerOf(daemonset), pm.spec.podMetricsEndpoints[0].port as string) !== undefined)
    assert.equal(containerOf(daemonset).livenessProbe.httpGet.port, pm.spec.podMetricsEndpoints[0].port)
  })

  it('gives switchd a configuration it accepts, on the ports its container declares', () => {
    // The projected volume: the ConfigMap's and the Secret's keys side by side in /etc/tapswitch.
    const sources = deployment.spec.template.spec.volumes[0].projected.sources as Obj[]
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-k8s-'))
    try {
      for (const s of sources) {
        const data = s.configMap !== undefined ? one('ConfigMap', s.configMap.name as string).data : one('Secret', s.secret.name as string).stringData
        for (const [k, v] of Object.entries(data as Record<string, string>)) fs.writeFileSync(path.join(dir, k), v)
      }
      const mountPath = containerOf(deployment).volumeMounts[0].mountPath as string
      assert.equal(mountPath, '/etc/tapswitch', "the image's CMD reads /etc/tapswitch/switchd.json")
      const cfg = loadConfig(path.join(dir, 'switchd.json'))
      const c = containerOf(deployment)
      assert.equal(portOf(cfg.listen), portNamed(c, 'ws')?.containerPort)
      assert.equal(portOf(cfg.metricsListen as string), portNamed(c, 'metrics')?.containerPort)
      assert.ok(cfg.tokens.size > 0, 'tokens: switchd listens beyond loopback')
      // The admin token comes from the Secret switchd-admin; switchd does not start without it.
      const adminRef = (c.env as Obj[]).find((e) => e.name === 'SWITCHD_ADMIN_TOKEN')?.valueFrom?.secretKeyRef as Obj | undefined
      assert.ok(adminRef !== undefined && adminRef.optional !== true, 'SWITCHD_ADMIN_TOKEN from a required Secret')
      assert.throws(() => { checkExposure(cfg, '0.0.0.0') }, { code: 'TSW_ERR_CONFIG' })
      checkExposure(loadConfig(path.join(dir, 'switchd.json'), { adminToken: 'x'.repeat(32) }), '0.0.0.0')
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
    for (const w of [deployment, daemonset]) {
      for (const e of containerOf(w).env as Obj[]) {
        const ref = e.valueFrom?.secretKeyRef as Obj | undefined
        if (ref === undefined || ref.optional === true) continue
        const secret = docs.find((d) => d.kind === 'Secret' && d.metadata.name === ref.name && d.metadata.namespace === w.metadata.namespace)
        assert.ok(secret?.stringData?.[ref.key as string] !== undefined, `${w.kind as string}: Secret ${ref.name as string} key ${ref.key as string} is not in secrets.example.yaml`)
      }
    }
  })

  it('hashes each network path to one instance, with WebSocket timeouts, and exposes nothing else', () => {
    const ingress = one('Ingress', 'switchd')
    const a = ingress.metadata.annotations as Record<string, string>
    assert.equal(a['nginx.ingress.kubernetes.io/upstream-hash-by'], '$uri')
    assert.ok(Number(a['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 3600)
    assert.ok(Number(a['nginx.ingress.kubernetes.io/proxy-send-timeout']) >= 3600)
    const target = a['nginx.ingress.kubernetes.io/rewrite-target'] as string
    // What ingress-nginx does with a request path: match (case-insensitively, from the start), rewrite, hash $uri.
    const route = (uri: string): string | undefined => {
      for (const p of ingress.spec.rules[0].http.paths as Obj[]) {
        const m = new RegExp('^' + (p.path as string), 'i').exec(uri)
        if (m !== null) return target.replace(/\$(\d)/g, (_, n: string) => m[Number(n)] ?? '')
      }
      return undefined
    }
    assert.equal(route('/net/lab'), '/net/lab')
    assert.equal(route('/net/lab/'), '/net/lab', 'one hash key for /net/lab and /net/lab/')
    assert.equal(networkFromPath(route('/net/lab') as string), 'lab')
    assert.equal(networkFromPath(route('/net/default') as string), 'default')
    for (const inside of ['/api/v1/ports', '/metrics', '/healthz', '/net/lab/extra']) assert.equal(route(inside), undefined, `${inside} is exposed`)
  })

  it('drains a terminating replica: readiness on /readyz, a preStop wait inside a grace period that covers the drain; a headless Service lists every replica for the fleet', () => {
    const pod = deployment.spec.template.spec as Obj
    const c = containerOf(deployment)
    assert.equal(c.readinessProbe.httpGet.path, '/readyz', 'a draining replica (503) leaves the endpoints')
    const wait = Number((c.lifecycle.preStop.exec.command as string[]).join(' ').match(/^sleep (\d+)$/)?.[1])
    assert.ok(wait > 0, 'preStop waits for the Ingress to learn the pod is going')
    // The drain: 2 s for the ports' close handshakes (closeTimeout), then the shutdown's own 2 s, and slack.
    assert.ok(Number(pod.terminationGracePeriodSeconds) >= wait + 2 + 2 + 10, 'the grace period covers preStop and the drain')
    const fleet = one('Service', 'switchd-fleet')
    assert.equal(fleet.spec.clusterIP, 'None', 'headless: one A record per pod (--fleet dns://…)')
    assert.equal(fleet.spec.publishNotReadyAddresses, true, 'a starting or draining replica is still a peer')
    assert.ok(matches(fleet.spec.selector as Record<string, string>, deployment.spec.template.metadata.labels as Record<string, string>))
    assert.ok((fleet.spec.ports as Obj[]).every((p) => portNamed(c, p.targetPort as string) !== undefined))
    // The pods are one fleet: the peer list is the headless Service, the credential a Secret in the config volume.
    const env = Object.fromEntries((c.env as Obj[]).map((e) => [e.name as string, e.value as string | undefined]))
    const fleetPort = (fleet.spec.ports as Obj[])[0]?.port as number
    assert.equal(env.SWITCHD_FLEET, `dns://switchd-fleet.${fleet.metadata.namespace as string}.svc.cluster.local:${fleetPort}`)
    const tokenFile = env.SWITCHD_FLEET_TOKEN_FILE as string
    assert.equal(path.dirname(tokenFile), (c.volumeMounts as Obj[]).find((m) => m.name === 'config')?.mountPath, 'the fleet token in the config volume')
    const sources = (pod.volumes as Obj[]).find((v) => v.name === 'config')?.projected.sources as Obj[]
    assert.ok(sources.some((x) => x.secret?.name === 'switchd-fleet'), 'the config volume projects the Secret switchd-fleet')
    const secret = one('Secret', 'switchd-fleet')
    const placeholder = (secret.stringData as Record<string, string>)[path.basename(tokenFile)]
    assert.ok(placeholder !== undefined, `secrets.example.yaml: switchd-fleet has ${path.basename(tokenFile)}`)
    // attack: the example is public, so its placeholder must not work as a credential: switchd refuses it.
    assert.throws(() => buildConfig({}, 'test', { replica: 'r1', fleet: 'http://127.0.0.1:1', fleetToken: placeholder }), /fewer than 32/)
    const sm = one('ServiceMonitor', 'switchd')
    assert.equal(matches(sm.spec.selector.matchLabels as Record<string, string>, fleet.metadata.labels as Record<string, string>), false, 'scraped once, through the switchd Service')
    const policy = one('NetworkPolicy', 'switchd')
    assert.ok((policy.spec.ingress as Obj[]).some((r) => (r.from as Obj[]).some((f) => f.podSelector !== undefined && matches(f.podSelector.matchLabels as Record<string, string>, deployment.spec.template.metadata.labels as Record<string, string>)) &&
      (r.ports as Obj[]).some((p) => p.port === portNamed(c, 'ws')?.containerPort)), 'replicas reach each other (the mesh)')
  })

  it('runs switchd non-root and restricted, and the agent on the host network with only NET_ADMIN and the TUN device', () => {
    const dockerUser = /^USER\s+(\d+)/m.exec(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))?.[1]
    const pod = deployment.spec.template.spec as Obj
    assert.equal(pod.securityContext.runAsNonRoot, true)
    assert.equal(String(pod.securityContext.runAsUser), dockerUser)
    assert.deepEqual(containerOf(deployment).securityContext.capabilities.drop, ['ALL'])
    assert.equal(containerOf(deployment).securityContext.allowPrivilegeEscalation, false)
    const ns = (name: string): Obj => one('Namespace', name)
    assert.equal(ns(deployment.metadata.namespace as string).metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted')
    assert.equal(ns(daemonset.metadata.namespace as string).metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged')
    const agentPod = daemonset.spec.template.spec as Obj
    const agent = containerOf(daemonset)
    assert.equal(agentPod.hostNetwork, true)
    assert.deepEqual(agent.securityContext.capabilities.add, ['NET_ADMIN', 'SETUID', 'SETGID'])
    assert.deepEqual(agent.securityContext.capabilities.drop, ['ALL'])
    assert.equal(agent.securityContext.allowPrivilegeEscalation, false)
    assert.equal(agent.securityContext.privileged, undefined)
    const env = Object.fromEntries((agent.env as Obj[]).map((e) => [e.name, e.value]))
    assert.ok(env.TAP_AGENT_USER !== undefined && env.TAP_AGENT_USER !== 'root', 'drops root once the TAP is open')
    assert.match(env.TAP_AGENT_URL as string, /^wss:\/\/[^/]+\/net\/[^/]+$/)
    assert.equal(new URL(env.TAP_AGENT_URL as string).host, one('Ingress', 'switchd').spec.rules[0].host, 'through the Ingress')
    const tun = (agentPod.volumes as Obj[]).find((v) => v.hostPath?.path === '/dev/net/tun')
    assert.ok(tun !== undefined && tun.hostPath.type === 'CharDevice')
    assert.ok((agent.volumeMounts as Obj[]).some((m) => m.name === tun.name && m.mountPath === '/dev/net/tun'))
  })
})
