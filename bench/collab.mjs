// Collaboration benchmark: Demiurge's gateway side by side with the Node reference server
// (@y/websocket-server 0.1.1, in-memory, no durability) in the same run, driven by the same
// load generators: bench/collab_load.rs for the fan-out (hundreds of raw y-websocket clients on
// one thread), Node's `ws` and `yjs` (from tests/peers) for joins and appends.
//
//   node bench/collab.mjs PATH_TO_DEMIURGE PATH_TO_COLLAB_LOAD [fanout_seconds]
//
// Prints a table: fan-out latency and server CPU (200 clients, 1 update/s each), the largest
// client count with p99 < 50 ms, initial sync of a 10,000-node project, durable appends/s.
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const here = path.dirname(fileURLToPath(import.meta.url))
const peers = path.join(here, '..', 'tests', 'peers')
const require = createRequire(path.join(peers, 'package.json'))
const Y = require('yjs')
const WebSocket = require('ws')
const encoding = require('lib0/encoding')
const decoding = require('lib0/decoding')
const syncProtocol = require('y-protocols/sync')

const [binary, loadgen, fanoutSecsArg] = process.argv.slice(2)
if (!loadgen) { console.error('usage: node bench/collab.mjs PATH_TO_DEMIURGE PATH_TO_COLLAB_LOAD [fanout_seconds]'); process.exit(2) }
const FANOUT_SECS = Number(fanoutSecsArg || 60)
// How many clients time deliveries (an even sample of the room; all of it when smaller).
const OBSERVERS = Number(process.env.OBSERVERS || 100)
// CAPACITY_STEPS=a,b,c: the capacity steps to run (all of them), instead of the rising series.
// BENCH_PIN=1: each server gets CPU 0 alone and the load generator CPU 1 (bench/collab.sh
// runs it under taskset), so neither starves the other; otherwise all share every CPU.
const PIN = process.env.BENCH_PIN === '1'
const pinned = (cmd, args) => PIN ? ['taskset', ['-c', '0', cmd, ...args]] : [cmd, args]
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const now = () => performance.timeOrigin + performance.now()

const freePort = () => new Promise((r) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)) }) })
const cpuSeconds = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(f[11]) + Number(f[12])) / 100 // utime + stime, in clock ticks of 1/100 s
}
const rssMiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024
const waitOk = async (url) => { for (let i = 0; i < 300; i++) { try { if ((await fetch(url)).ok) return } catch {} await sleep(100) } throw new Error(`${url} never answered`) }

// ---- the two servers -------------------------------------------------------------------
async function startDemiurge () {
  const port = await freePort()
  const data = mkdtempSync(path.join(tmpdir(), 'demiurge-bench-'))
  const child = spawn(...pinned(binary, ['serve']), {
    env: {
      PATH: process.env.PATH,
      DEMIURGE_SERVER__DATA_DIR: data,
      DEMIURGE_EDGE__HTTP: `127.0.0.1:${port}`,
      DEMIURGE_DNS__LISTEN: '',
      DEMIURGE_VPN__LISTEN: '',
      DEMIURGE_LOG__LEVEL: 'warn',
      DEMIURGE_AUTH__LOGIN_RATE: '1000000/1s',
      DEMIURGE_GATEWAY__MAX_CLIENTS_PER_PROJECT: '100000',
      // Every load client uses the one bench token.
      DEMIURGE_GATEWAY__MAX_SOCKETS_PER_USER: '100000',
      // Settings to try (DEMIURGE_GATEWAY__BROADCAST_INTERVAL=0s, ...) pass through.
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('DEMIURGE_'))),
    },
    stdio: 'ignore',
  })
  const base = `http://127.0.0.1:${port}`
  await waitOk(base + '/readyz')
  const post = async (p, body, token) => {
    const r = await fetch(base + p, { method: 'POST', headers: { 'content-type': 'application/json', origin: base, ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) })
    return { status: r.status, body: await r.json().catch(() => null), headers: r.headers }
  }
  // The new server's first account claims it with the setup code it made.
  const setupCode = readFileSync(path.join(data, 'setup-code'), 'utf8').trim()
  const signup = await post('/api/v1/auth/signup', { username: 'bench', email: 'bench@example.test', password: 'benchmark password', setup_code: setupCode })
  const cookie = signup.headers.get('set-cookie').split(';')[0]
  const tok = await fetch(base + '/api/v1/me/tokens', { method: 'POST', headers: { 'content-type': 'application/json', origin: base, cookie }, body: JSON.stringify({ name: 'bench' }) })
  const token = (await tok.json()).token
  const org = (await post('/api/v1/orgs', { name: 'Bench' }, token)).body.id
  const project = async (name) => (await post(`/api/v1/orgs/${org}/projects`, { name }, token)).body.id
  return {
    name: 'demiurge', pid: child.pid, child, base, token, post,
    room: async (name) => { const id = await project(name); return { id, url: `ws://127.0.0.1:${port}/api/v1/projects/${id}/collab?token=${token}` } },
  }
}

async function startNode () {
  const port = await freePort()
  const child = spawn(...pinned(process.execPath, [path.join(peers, 'node_modules/@y/websocket-server/src/server.js')]), {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port) }, stdio: 'ignore', cwd: peers,
  })
  for (let i = 0; i < 100; i++) { try { await new Promise((r, j) => { const w = new WebSocket(`ws://127.0.0.1:${port}/probe`); w.on('open', () => { w.close(); r() }); w.on('error', j) }); break } catch { await sleep(100) } }
  return { name: 'node', pid: child.pid, child, room: async (name) => ({ id: name, url: `ws://127.0.0.1:${port}/${name}` }) }
}

// ---- the protocol, by hand ---------------------------------------------------------------
const updateMessage = (update) => { const e = encoding.createEncoder(); encoding.writeVarUint(e, 0); syncProtocol.writeUpdate(e, update); return encoding.toUint8Array(e) }
const step1Message = (doc) => { const e = encoding.createEncoder(); encoding.writeVarUint(e, 0); syncProtocol.writeSyncStep1(e, doc); return encoding.toUint8Array(e) }
const open = (url) => new Promise((resolve, reject) => { const ws = new WebSocket(url); ws.binaryType = 'nodebuffer'; ws.on('open', () => resolve(ws)); ws.on('error', reject) })

function percentile (sorted, p) { return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN }

// n clients in one room (the Rust load generator, bench/collab_load.rs, on its own thread),
// each sending one small update per second for `secs`: delivery latency of everyone's updates
// to an even sample of OBSERVERS clients, and server CPU.
async function fanout (server, n, secs) {
  const room = await server.room(`fanout-${n}-${Date.now()}`)
  const gen = spawn(loadgen, [room.url, String(n), String(secs), String(Math.min(n, OBSERVERS))], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = []
  let wake = null
  let buf = ''
  gen.stdout.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\n')) >= 0) { lines.push(buf.slice(0, i)); buf = buf.slice(i + 1); if (wake) wake() } })
  const exited = new Promise((resolve) => gen.on('exit', resolve))
  const line = async () => { while (!lines.length) { const code = await Promise.race([new Promise((r) => { wake = r }), exited.then((c) => ({ exited: c }))]); if (code?.exited !== undefined && !lines.length) throw new Error(`the load generator stopped (${code.exited})`) } return lines.shift() }
  if ((await line()) !== 'ready') throw new Error('the load generator did not connect')
  await sleep(500)
  const cpu0 = cpuSeconds(server.pid); const gen0 = cpuSeconds(gen.pid); const t0 = now()
  gen.stdin.write('go\n')
  const r = JSON.parse(await line())
  const wall = (now() - t0) / 1000
  const cpu = cpuSeconds(server.pid) - cpu0
  const genCpu = cpuSeconds(gen.pid) - gen0
  const rss = rssMiB(server.pid)
  await exited
  await sleep(500)
  return { n, ...r, cpuPerSec: cpu / wall, loadgenCpu: genCpu / wall, rss }
}

// The largest client count (of a rising series) that still gets p99 < 50 ms and every update.
async function capacity (server, secs) {
  let best = 0
  const steps = []
  // CAPACITY_STEPS=1500,1500,1500 runs those steps, every one (to see how a count varies).
  const chosen = process.env.CAPACITY_STEPS?.split(',').map(Number)
  const held = (r) => r.p99 < 50 && r.delivered >= 0.99 * r.expected && r.dropped === 0
  const report = (r, note) => console.error(`  ${server.name} ${r.n} clients${note}: p99 ${r.p99.toFixed(1)} ms, p99.9 ${r.p999.toFixed(1)} ms, max ${r.max.toFixed(1)} ms, delivered ${(100 * r.delivered / Math.max(1, r.expected)).toFixed(1)}%, ${r.dropped} dropped, server CPU ${r.cpuPerSec.toFixed(2)}, load generator CPU ${r.loadgenCpu.toFixed(2)}`)
  for (const n of chosen ?? [200, 300, 400, 550, 700, 1000, 1500, 2000, 3000]) {
    let r = await fanout(server, n, secs)
    report(r, '')
    // A step missed once is run again, for either server: a 10 s window can catch a passing
    // stall of the machine (once 64 ms at 1500 clients, where five runs of that step alone gave
    // 38-39 ms); a count the server cannot hold misses twice.
    if (!held(r) && !chosen) {
      r = await fanout(server, n, secs)
      report(r, ' (again)')
    }
    steps.push(r)
    if (!held(r) && !chosen) break
    best = n
  }
  return { best, steps }
}

// Initial sync of a 10,000-node project: open, send sync step 1, wait for step 2.
async function join (server, url, times = 30) {
  const ms = []
  for (let i = 0; i < times; i++) {
    const t0 = now()
    const ws = await open(url)
    const got = new Promise((resolve) => ws.on('message', (data) => {
      const d = decoding.createDecoder(new Uint8Array(data))
      if (decoding.readVarUint(d) === 0 && decoding.readVarUint(d) === 1) resolve(data.length)
    }))
    ws.send(step1Message(new Y.Doc()))
    const size = await got
    ms.push(now() - t0)
    ws.terminate()
    if (size < 10000) throw new Error(`${server.name}: the joined document is too small (${size} bytes)`)
  }
  ms.sort((a, b) => a - b)
  return { p50: percentile(ms, 0.5), p90: percentile(ms, 0.9) }
}

async function seedGraph (dem, nodeServer) {
  const room = await dem.room('join')
  const nodes = 10000
  let next = 0
  const worker = async () => {
    while (next < nodes) {
      const i = next++
      const r = await dem.post(`/api/v1/projects/${room.id}/events`, { type: 'core-graph:add-node', id: `n${i}`, kind: 'note', x: i % 100 * 200, y: Math.floor(i / 100) * 120, data: { title: `Node ${i}` } }, dem.token)
      if (r.status !== 200) throw new Error(`seeding: ${r.status} ${JSON.stringify(r.body)}`)
    }
  }
  await Promise.all([...Array(16)].map(worker))
  // The same document for the Node server: synced from Demiurge, then pushed there.
  const doc = new Y.Doc()
  const ws = await open(room.url)
  await new Promise((resolve) => ws.on('message', (data) => {
    const d = decoding.createDecoder(new Uint8Array(data))
    if (decoding.readVarUint(d) === 0 && decoding.readVarUint(d) === 1) { Y.applyUpdate(doc, decoding.readVarUint8Array(d)); resolve() }
  }).send(step1Message(new Y.Doc())))
  ws.terminate()
  if (doc.getMap('nodes').size !== nodes) throw new Error(`seeded ${doc.getMap('nodes').size} nodes`)
  const nroom = await nodeServer.room('join')
  const nws = await open(nroom.url)
  nws.send(updateMessage(Y.encodeStateAsUpdate(doc)))
  await sleep(1500)
  nws.terminate()
  return { dem: room.url, node: nroom.url, bytes: Y.encodeStateAsUpdate(doc).length }
}

// Durable appends: writers send as fast as the socket takes; the server's own counter of
// committed rows says how many were stored.
async function appends (dem, secs = 10) {
  const metric = async (name) => { const t = await (await fetch(dem.base + '/metrics')).text(); return Number(new RegExp(`^${name} (\\S+)`, 'm').exec(t)?.[1] || 0) }
  const room = await dem.room('appends')
  const writers = []
  for (let i = 0; i < 20; i++) {
    const ws = await open(room.url)
    const doc = new Y.Doc()
    doc.on('update', (u) => ws.send(updateMessage(u)))
    const text = new Y.Text(); doc.getMap('texts').set(`w${i}`, text)
    writers.push({ ws, text })
  }
  const rows0 = await metric('demiurge_collab_append_batch_size_sum'); const commits0 = await metric('demiurge_collab_append_batch_size_count')
  const t0 = now(); let stop = false
  const pump = async (w) => { while (!stop) { if (w.ws.bufferedAmount < 64 * 1024) { w.text.insert(w.text.length, 'x') } else { await sleep(1) } if (Math.random() < 0.05) await sleep(0) } }
  const loops = writers.map(pump)
  await sleep(secs * 1000); stop = true; await Promise.all(loops); await sleep(1000)
  const wall = (now() - t0) / 1000
  const rows = (await metric('demiurge_collab_append_batch_size_sum')) - rows0
  const commits = (await metric('demiurge_collab_append_batch_size_count')) - commits0
  writers.forEach((w) => w.ws.terminate())
  return { perSec: rows / wall, batch: rows / Math.max(1, commits) }
}

// ---- run ---------------------------------------------------------------------------------
const dem = await startDemiurge()
const node = await startNode()
const cleanup = () => { dem.child.kill('SIGTERM'); node.child.kill('SIGTERM') }
process.on('exit', cleanup)
try {
  if (process.env.BENCH_ONLY === 'fanout') {
    // One server's fan-out alone (BENCH_SERVER=node for the reference), for profiling: prints
    // the server pid first.
    const server = process.env.BENCH_SERVER === 'node' ? node : dem
    console.error(`pid ${server.pid}`)
    console.log(JSON.stringify(await fanout(server, Number(process.env.FANOUT_N || 200), FANOUT_SECS)))
    process.exit(0)
  }
  if (process.env.BENCH_ONLY === 'capacity') {
    const server = process.env.BENCH_SERVER === 'node' ? node : dem
    const cd = await capacity(server, 10)
    console.log(`capacity: ${server.name} holds ${cd.best} clients with p99 < 50 ms`)
    process.exit(0)
  }
  if (process.env.BENCH_ONLY === 'join') {
    const seeded = await seedGraph(dem, node)
    const jd = await join(dem, seeded.dem)
    const jn = await join(node, seeded.node)
    console.log(`join 10,000 nodes: demiurge p50 ${jd.p50.toFixed(2)} ms p90 ${jd.p90.toFixed(2)} ms; node p50 ${jn.p50.toFixed(2)} ms p90 ${jn.p90.toFixed(2)} ms; ${(jn.p50 / jd.p50).toFixed(2)}x`)
    process.exit(0)
  }
  console.error(`fan-out: 200 clients x 1 update/s for ${FANOUT_SECS} s, each server in turn`)
  const fd = await fanout(dem, 200, FANOUT_SECS)
  const fn = await fanout(node, 200, FANOUT_SECS)
  console.error('capacity: rising client counts, 10 s each, until p99 >= 50 ms or updates go missing')
  const cd = await capacity(dem, 10)
  const cn = await capacity(node, 10)
  console.error('join: seeding 10,000 nodes through events')
  const seeded = await seedGraph(dem, node)
  const jd = await join(dem, seeded.dem)
  const jn = await join(node, seeded.node)
  console.error('appends: 20 writers, as fast as they go, 10 s')
  const ap = await appends(dem)
  const f = (x, d = 1) => Number.isFinite(x) ? x.toFixed(d) : 'n/a'
  const rows = [
    ['fan-out 200 clients: delivery p50 (ms)', f(fd.p50), f(fn.p50), f(fn.p50 / fd.p50, 2) + 'x', '-'],
    ['fan-out 200 clients: delivery p99 (ms)', f(fd.p99), f(fn.p99), f(fn.p99 / fd.p99, 2) + 'x', '<= 20'],
    ['fan-out 200 clients: updates delivered', `${fd.delivered}/${fd.expected}`, `${fn.delivered}/${fn.expected}`, `${fd.dropped + fn.dropped} dropped`, 'all'],
    ['fan-out 200 clients: load generator CPU', f(fd.loadgenCpu, 3), f(fn.loadgenCpu, 3), '', '< 0.9'],
    ['fan-out 200 clients: server CPU (cores)', f(fd.cpuPerSec, 3), f(fn.cpuPerSec, 3), f(fd.cpuPerSec / fn.cpuPerSec, 2) + ' of Node', '<= 0.33 of Node'],
    ['fan-out 200 clients: server RSS (MiB)', f(fd.rss), f(fn.rss), '', '-'],
    ['most clients with p99 < 50 ms', String(cd.best), String(cn.best), f(cd.best / Math.max(1, cn.best), 2) + 'x', '>= 5x Node'],
    [`join 10,000 nodes (${seeded.bytes} B): p50 (ms)`, f(jd.p50, 2), f(jn.p50, 2), f(jn.p50 / jd.p50, 2) + 'x faster', '<= 20, >= 3x'],
    ['join 10,000 nodes: p90 (ms)', f(jd.p90, 2), f(jn.p90, 2), '', '-'],
    ['durable appends/s (SQLite, group commit)', f(ap.perSec, 0), 'not durable', `${f(ap.batch)} per commit`, '>= 5000'],
  ]
  const w = [44, 14, 14, 18, 16]
  const line = (r) => r.map((c, i) => String(c).padEnd(w[i])).join(' | ')
  console.log(line(['', 'demiurge', 'node ref', 'ratio', 'goal']))
  console.log(w.map((n) => '-'.repeat(n)).join('-|-'))
  rows.forEach((r) => console.log(line(r)))
} finally {
  cleanup()
  process.exit(0)
}
