// Board benchmark in Debian's Chromium (playwright-core from tests/peers) against a release
// build: what people feel on big boards, and what open boards cost the server.
//
//   node bench/board.mjs PATH_TO_DEMIURGE
//
// Prints, with the goals of issue 12 and tldraw's own CI baselines beside them:
//   - frames per second while panning and while dragging a card on a 1,000-card board,
//   - A's drop to B's screen: p50 and p99 over 200 moves with 20 other pages of the board open,
//   - server memory per open board page (1,000 cards) and server CPU for one move with 50
//     pages open,
//   - opening a 5,000-card board: first paint of the visible cards.
// BENCH_MOVES=n changes the 200; BENCH_ONLY=fps|latency|memory|open runs one part.
import { execFileSync, spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(path.join(here, '..', 'tests', 'peers', 'package.json'))
const { chromium } = require('playwright-core')

const [binary] = process.argv.slice(2)
if (!binary) { console.error('usage: node bench/board.mjs PATH_TO_DEMIURGE'); process.exit(2) }
const MOVES = Number(process.env.BENCH_MOVES || 200)
const ONLY = process.env.BENCH_ONLY || ''
const OTHERS = Number(process.env.BENCH_OTHERS ?? 20)
const NICE_OTHERS = (process.env.BENCH_OTHERS_NICE ?? '1') !== '0'
const runs = (part) => !ONLY || ONLY === part
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const freePort = () => new Promise((r) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)) }) })
const cpuSeconds = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}
// CPU seconds of every Chromium process (the bench's browser is the only one it expects).
const browserCpuSeconds = () => {
  let sum = 0
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('chrom')) continue
      sum += cpuSeconds(pid)
    } catch { /* gone meanwhile */ }
  }
  return sum
}
// The server's heap in use, when it counts it (built with `heap-stats`), else null.
const heapMiB = async () => {
  const text = await (await fetch(base + '/metrics')).text().catch(() => '')
  const m = /^demiurge_heap_live_bytes (\d+)/m.exec(text)
  return m ? Number(m[1]) / 1048576 : null
}
const rssMiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))] }
const fmt = (n, d = 1) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d))

// ---- the server and the boards -------------------------------------------------------------
const port = await freePort()
const data = mkdtempSync(path.join(tmpdir(), 'demiurge-board-bench-'))
const server = spawn(binary, ['serve'], {
  env: {
    PATH: process.env.PATH,
    DEMIURGE_SERVER__DATA_DIR: data,
    DEMIURGE_EDGE__HTTP: `127.0.0.1:${port}`,
    DEMIURGE_EDGE__HTTPS: '',
    DEMIURGE_DNS__LISTEN: '',
    DEMIURGE_VPN__LISTEN: '',
    DEMIURGE_LOG__LEVEL: 'warn',
    DEMIURGE_AUTH__LOGIN_RATE: '1000000/1s',
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('DEMIURGE_'))),
  },
  stdio: 'ignore',
})
const base = `http://localhost:${port}`
for (let i = 0; ; i++) {
  try { if ((await fetch(base + '/readyz')).ok) break } catch {}
  if (i > 300) throw new Error('the server did not start')
  await sleep(100)
}
const launchOptions = {
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', '--disable-renderer-backgrounding',
    '--disable-background-timer-throttling', '--disable-backgrounding-occluded-windows'],
}
const browser = await chromium.launch(launchOptions)
// Every process under `root` (a browser's renderers and helpers).
const treeOf = (root) => {
  const kids = new Map()
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const ppid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1])
      if (!kids.has(ppid)) kids.set(ppid, [])
      kids.get(ppid).push(Number(pid))
    } catch { /* gone meanwhile */ }
  }
  const out = []
  const walk = (p) => { out.push(p); for (const k of kids.get(p) || []) walk(k) }
  walk(root)
  return out
}
const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } })
// The new server's first account claims it with the setup code it made.
const setupCode = readFileSync(path.join(data, 'setup-code'), 'utf8').trim()
const signup = await ctx.request.post(base + '/api/v1/auth/signup', { headers: { Origin: base }, data: { username: 'bench', email: 'bench@example.test', password: 'benchmark password', setup_code: setupCode } })
if (signup.status() !== 201) throw new Error(`signup: ${signup.status()}`)
const token = (await (await ctx.request.post(base + '/api/v1/me/tokens', { headers: { Origin: base }, data: { name: 'bench' } })).json()).token
const org = (await (await ctx.request.get(base + '/api/v1/orgs')).json())[0].id
const call = async (method, p, body) => {
  const r = await fetch(base + p, { method, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: body && JSON.stringify(body) })
  const j = await r.json().catch(() => null)
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(j)}`)
  return j
}
// A project with `n` sticky notes in a grid (and a connector between neighbours in a row).
async function board(name, n, cols) {
  const id = (await call('POST', `/api/v1/orgs/${org}/projects`, { name })).id
  for (let start = 0; start < n; start += 1000) {
    const cards = []; const edges = []
    for (let i = start; i < Math.min(n, start + 1000); i++) {
      cards.push({ ref: `c${i}`, kind: 'note', x: (i % cols) * 240, y: Math.floor(i / cols) * 170, w: 200, h: 130, text: `Card ${i}\nsome words on it` })
      if (i % cols && i > start) edges.push({ from: `c${i - 1}`, to: `c${i}` })
    }
    await call('POST', `/api/v1/projects/${id}/events`, { type: 'whiteboard:insert', cards, edges })
  }
  return id
}
async function open(pid, c = ctx) {
  const page = await c.newPage()
  const t0 = Date.now()
  await page.goto(`${base}/projects/${pid}`)
  await page.waitForSelector('#board[data-ready="true"]', { timeout: 60000 })
  await page.waitForFunction(() => document.querySelectorAll('[data-node-id]:not([hidden])').length > 0, null, { timeout: 60000 })
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))))
  return { page, ms: Date.now() - t0 }
}
async function fit(page) {
  await page.click('[data-action="zoom-fit"]')
  await page.waitForTimeout(800)
}
// Frames the page draws while `gesture` runs, per second.
async function fps(page, gesture) {
  await page.evaluate(() => {
    window.__frames = 0
    window.__run = true
    const tick = () => { if (!window.__run) return; window.__frames++; requestAnimationFrame(tick) }
    requestAnimationFrame(tick)
  })
  const t0 = Date.now()
  await gesture()
  const secs = (Date.now() - t0) / 1000
  const frames = await page.evaluate(() => { window.__run = false; return window.__frames })
  return frames / secs
}
// A pointer held down and moved for `secs` seconds, 60 moves a second.
async function sweep(page, from, secs, dx, dy, button = 'left') {
  await page.mouse.move(from[0], from[1])
  await page.mouse.down({ button })
  const t0 = Date.now()
  let i = 0
  while (Date.now() - t0 < secs * 1000) {
    const t = (Date.now() - t0) / (secs * 1000)
    const k = Math.sin(t * Math.PI * 2)
    await page.mouse.move(from[0] + dx * k, from[1] + dy * k)
    i++
    await sleep(Math.max(0, t0 + i * 16.7 - Date.now()))
  }
  await page.mouse.up({ button })
}

const out = {}
const serverPid = server.pid
try {
  if (runs('fps') || runs('memory') || runs('latency')) {
    const big = await board('Thousand', 1000, 40)
    if (runs('fps')) {
      const { page } = await open(big)
      await fit(page)
      out.mounted = await page.evaluate(() => document.querySelectorAll('[data-node-id]:not([hidden])').length)
      out.pan = await fps(page, () => sweep(page, [640, 450], 4, 300, 120, 'middle'))
      // Zoomed in to 100 %, a card in the middle of the screen is dragged about.
      await page.click('[data-action="zoom-100"]')
      await page.waitForTimeout(800)
      const card = await page.evaluate(() => {
        const vp = document.querySelector('#board-viewport').getBoundingClientRect()
        const c = [...document.querySelectorAll('[data-node-id]:not([hidden])')].find((e) => { const r = e.getBoundingClientRect(); return r.left > vp.left + 200 && r.top > vp.top + 150 && r.right < vp.right - 300 && r.bottom < vp.bottom - 150 })
        const r = c.getBoundingClientRect()
        return [r.left + r.width / 2, r.top + r.height / 2]
      })
      out.drag = await fps(page, () => sweep(page, card, 4, 220, 90))
      await page.close()
    }
    if (runs('memory')) {
      // Twenty pages at 100 % (about what one screen holds), then twenty showing all 1,000
      // (BENCH_ROUNDS=n: the far round n times, to tell what stays from what is kept).
      const rounds = [['near', { x: 100, y: 100, z: 1 }], ['far', null]]
      for (let r = 1; r < Number(process.env.BENCH_ROUNDS || 1); r++) rounds.push([`far${r + 1}`, null])
      // A warm-up first: the board's first opening fills caches (the shared replica, the
      // allocator's pools) that no later page pays for.
      {
        const c = await browser.newContext({ viewport: { width: 1280, height: 800 } })
        await c.request.post(base + '/api/v1/auth/login', { headers: { Origin: base }, data: { login: 'bench', password: 'benchmark password' } })
        const warm = []
        for (let i = 0; i < 3; i++) warm.push((await open(big, c)).page)
        for (const p of warm) await p.close()
        await c.close()
        await sleep(2000)
      }
      for (const [label, camera] of rounds) {
        const c = await browser.newContext({ viewport: { width: 1280, height: 800 } })
        await c.request.post(base + '/api/v1/auth/login', { headers: { Origin: base }, data: { login: 'bench', password: 'benchmark password' } })
        if (camera) await c.addInitScript(([key, cam]) => localStorage.setItem(key, JSON.stringify(cam)), [`dmg.camera.${big}.main`, camera])
        const pages = []
        await sleep(1500)
        const rss0 = rssMiB(serverPid)
        // Per page: the slope from 5 pages open to 20 (what the first pages stir up in the
        // allocator, such as returning older free memory, cancels out).
        // With a counted heap that is exact: the bytes in use, from none to 20 pages.
        const heap0 = await heapMiB()
        let rss5 = 0
        for (let i = 0; i < 20; i++) {
          const { page } = await open(big, c)
          if (!camera) await fit(page)
          pages.push(page)
          if (i === 4) { await sleep(2000); rss5 = rssMiB(serverPid) }
        }
        await sleep(3000)
        out[`memory_${label}`] = (rssMiB(serverPid) - rss5) / 15
        if (heap0 !== null) out[`heap_${label}`] = ((await heapMiB()) - heap0) / 20
        out[`drawn_${label}`] = await pages[0].evaluate(() => document.querySelectorAll('[data-node-id]:not([hidden])').length)
        for (const p of pages) await p.close()
        await c.close()
        await sleep(3000)
        // What the server still holds once they are gone (memory its allocator keeps).
        out[`memory_${label}_after`] = (rssMiB(serverPid) - rss0) / 20
        if (heap0 !== null) out[`heap_${label}_after`] = ((await heapMiB()) - heap0) / 20
      }
    }
  }
  if (runs('latency')) {
    const small = await board('Latency', 100, 10)
    const a = await open(small)
    const bctx = await browser.newContext({ viewport: { width: 1280, height: 800 } })
    await bctx.request.post(base + '/api/v1/auth/login', { headers: { Origin: base }, data: { login: 'bench', password: 'benchmark password' } })
    const b = await open(small, bctx)
    // The other pages stand for other people's machines: they keep their sockets and draw
    // every change, in a browser of their own at the lowest CPU priority (BENCH_OTHERS_NICE=0:
    // in the same browser, at the same priority, competing with A and B for the two cores).
    const others = []
    let othersServer = null
    if (NICE_OTHERS && OTHERS > 0) {
      othersServer = await chromium.launchServer(launchOptions)
      const ob = await chromium.connect(othersServer.wsEndpoint())
      const octx = await ob.newContext({ viewport: { width: 1280, height: 800 } })
      await octx.request.post(base + '/api/v1/auth/login', { headers: { Origin: base }, data: { login: 'bench', password: 'benchmark password' } })
      for (let i = 0; i < OTHERS; i++) others.push((await open(small, octx)).page)
      const tree = treeOf(othersServer.process().pid)
      execFileSync('renice', ['-n', '19', '-p', ...tree.map(String)], { stdio: 'ignore' })
      // With the kernel's autogroups, nice counts only inside a session: the browser's own
      // session (its autogroup) is lowered too.
      for (const pid of tree) { try { writeFileSync(`/proc/${pid}/autogroup`, '19') } catch { /* not ours, or no autogroups */ } }
    } else {
      for (let i = 0; i < OTHERS; i++) others.push((await open(small, bctx)).page)
    }
    const A = a.page, B = b.page
    await B.evaluate(() => {
      window.__seen = {}
      new MutationObserver((ms) => {
        for (const m of ms) {
          const e = m.target
          if (e.dataset && e.dataset.nodeId) window.__seen[e.dataset.nodeId + ':' + e.dataset.x] = performance.timeOrigin + performance.now()
        }
      }).observe(document.querySelector('#board-world'), { attributes: true, subtree: true, attributeFilter: ['data-x'] })
    })
    await A.evaluate(() => {
      // The drop, and the last move before it (A's screen shows the card where it ends from
      // that frame on): B's latency counts from each.
      document.addEventListener('pointermove', (e) => { if (e.buttons) window.__moved = performance.timeOrigin + performance.now() }, true)
      document.addEventListener('pointerup', () => { window.__up = performance.timeOrigin + performance.now() }, true)
    })
    const cpuAt0 = [cpuSeconds(serverPid), browserCpuSeconds(), Date.now()]
    const lat = []
    const fromMove = []
    let missed = 0
    for (let i = 0; i < MOVES; i++) {
      // A card whose grab point is not under a panel, the minimap or another card.
      const [id, x0, z, from] = await A.evaluate((i) => {
        const cs = [...document.querySelectorAll('.cards-layer > [data-node-id]:not([hidden])')]
        for (let k = 0; k < cs.length; k++) {
          const c = cs[(i + k) % cs.length]
          const r = c.getBoundingClientRect()
          const at = [r.left + r.width / 2, r.top + 12]
          const hit = document.elementFromPoint(at[0], at[1])
          const far = document.elementFromPoint(at[0] + (i % 2 ? -60 : 60), at[1])
          if (hit && hit.closest('[data-node-id]') === c && far && far.closest('#board-viewport')) {
            return [c.dataset.nodeId, parseFloat(c.dataset.x), window.dmgBoard.state().camera.z, at]
          }
        }
        throw new Error('no card to drag')
      }, i)
      const dx = (i % 2 ? -1 : 1) * 48
      await A.mouse.move(from[0], from[1])
      await A.mouse.down()
      await A.mouse.move(from[0] + dx / 2, from[1], { steps: 2 })
      await A.mouse.move(from[0] + dx, from[1], { steps: 2 })
      await A.mouse.up()
      const expected = x0 + dx / z
      const t = await B.waitForFunction(([id, x]) => {
        const key = Object.keys(window.__seen).find((k) => k.startsWith(id + ':') && Math.abs(parseFloat(k.split(':')[1]) - x) < 0.01)
        return key ? window.__seen[key] : false
      }, [id, expected], { timeout: 3000, polling: 5 }).then((h) => h.jsonValue()).catch(() => null)
      const [up, moved] = await A.evaluate(() => [window.__up, window.__moved])
      // B may show it before the drop (the last move was sent while the button was held).
      if (t && up) { lat.push(Math.max(0, t - up)); fromMove.push(t - moved) } else missed++
      await B.evaluate(() => { window.__seen = {} })
    }
    // Where the two cores went meanwhile: the server, and the pages (all in this browser).
    const cpuShare = { server_s: cpuSeconds(serverPid) - cpuAt0[0], browser_s: browserCpuSeconds() - cpuAt0[1], wall_s: (Date.now() - cpuAt0[2]) / 1000 }
    out.latency = { cpu: cpuShare, n: lat.length, missed, others: OTHERS, others_niced: NICE_OTHERS, p50: pct(lat, 50), p90: pct(lat, 90), p95: pct(lat, 95), p99: pct(lat, 99), max: Math.max(...lat), from_last_move: { p50: pct(fromMove, 50), p99: pct(fromMove, 99) } }
    // Server CPU for one move: with no page open, then with 50.
    const movesCpu = async (project, n) => {
      const ids = Object.keys((await call('GET', `/api/v1/projects/${project}/document`)).roots.nodes)
      const cpu0 = cpuSeconds(serverPid)
      for (let i = 0; i < n; i++) {
        await call('POST', `/api/v1/projects/${project}/events`, { type: 'whiteboard:move', moves: [{ id: ids[i % ids.length], x: (i % 7) * 30, y: (i % 5) * 30 }] })
        await sleep(100)
      }
      await sleep(1000)
      return (cpuSeconds(serverPid) - cpu0) / n * 1000
    }
    out.cpu_per_move_alone_ms = await movesCpu(await board('Alone', 100, 10), 100)
    // Server CPU for one move with 50 pages open (30 more).
    for (let i = 0; i < 28; i++) others.push((await open(small, bctx)).page)
    await sleep(2000)
    const ids = Object.keys((await call('GET', `/api/v1/projects/${small}/document`)).roots.nodes)
    const cpu0 = cpuSeconds(serverPid)
    const n = 100
    for (let i = 0; i < n; i++) {
      await call('POST', `/api/v1/projects/${small}/events`, { type: 'whiteboard:move', moves: [{ id: ids[i % ids.length], x: (i % 7) * 30, y: (i % 5) * 30 }] })
      await sleep(100)
    }
    await sleep(1000)
    out.cpu_per_move_ms = (cpuSeconds(serverPid) - cpu0) / n * 1000
    out.open_pages = others.length + 2
    for (const p of others) await p.close()
    if (othersServer) await othersServer.close()
  }
  if (runs('open')) {
    const huge = await board('FiveThousand', 5000, 80)
    // The first visit computes the board once (its feed loads the project); then a person's.
    const first = await open(huge)
    await first.page.close()
    const fresh = await browser.newContext({ viewport: { width: 1280, height: 800 } })
    await fresh.request.post(base + '/api/v1/auth/login', { headers: { Origin: base }, data: { login: 'bench', password: 'benchmark password' } })
    const again = await open(huge, fresh)
    out.open_5000 = { first_ms: first.ms, ms: again.ms, mounted: await again.page.evaluate(() => document.querySelectorAll('[data-node-id]').length) }
    // Panning across the big board at 100 % (and where the page's time goes meanwhile).
    await again.page.click('[data-action="zoom-100"]')
    await again.page.waitForTimeout(800)
    const cdp = await again.page.context().newCDPSession(again.page)
    await cdp.send('Performance.enable')
    const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]))
    const m0 = await metrics()
    out.pan_5000 = await fps(again.page, () => sweep(again.page, [640, 450], 3, 400, 200, 'middle'))
    const m1 = await metrics()
    out.pan_5000_costs = Object.fromEntries(['ScriptDuration', 'LayoutDuration', 'RecalcStyleDuration', 'TaskDuration', 'LayoutCount', 'RecalcStyleCount']
      .map((k) => [k, Math.round((m1[k] - m0[k]) * (k.endsWith('Duration') ? 1000 : 1))]))
  }
} finally {
  await browser.close()
  server.kill('SIGTERM')
}

console.log('\nBoard benchmark (Chromium 156 headless, software rendering; release build)\n')
console.log('| measure | Demiurge | goal | tldraw CI baseline |')
console.log('|---|---|---|---|')
if (out.pan !== undefined) console.log(`| pan, 1,000 cards (${out.mounted} on screen) | ${fmt(out.pan)} fps | ≥ 50 | 38 |`)
if (out.drag !== undefined) console.log(`| drag a card, 1,000-card board | ${fmt(out.drag)} fps | ≥ 55 | 54 |`)
if (out.latency) console.log(`| A's drop → B's screen, ${out.latency.n} moves, ${out.latency.others} more pages open${out.latency.others_niced ? ' (a second browser, nice 19)' : ' (same browser)'} | p50 ${fmt(out.latency.p50)} ms, p90 ${fmt(out.latency.p90)} ms, p99 ${fmt(out.latency.p99)} ms (max ${fmt(out.latency.max)}; from the last move p50 ${fmt(out.latency.from_last_move.p50)}, p99 ${fmt(out.latency.from_last_move.p99)}); CPU meanwhile: server ${fmt(out.latency.cpu.server_s)} s, Chromium ${fmt(out.latency.cpu.browser_s)} s in ${fmt(out.latency.cpu.wall_s)} s | p99 ≤ 100 ms | - |`)
if (out.heap_near !== undefined) console.log(`| server heap in use per open page, 1,000-card board at 100 % (${out.drawn_near} drawn) | ${fmt(out.heap_near, 2)} MiB | ≤ 2 MB | - |`)
if (out.heap_far !== undefined) console.log(`| server heap in use per open page, all 1,000 cards drawn (fitted) | ${fmt(out.heap_far, 2)} MiB (${fmt(out.heap_far_after, 2)} left once closed) | ≤ 2 MB | - |`)
if (out.memory_near !== undefined) console.log(`| server memory per open page, 1,000-card board at 100 % (${out.drawn_near} drawn) | ${fmt(out.memory_near, 2)} MiB | ≤ 2 MB | - |`)
if (out.memory_far !== undefined) console.log(`| server memory per open page, all 1,000 cards drawn (fitted) | ${fmt(out.memory_far, 2)} MiB | ≤ 2 MB | - |`)
if (out.cpu_per_move_ms !== undefined) console.log(`| server CPU per move, ${out.open_pages} pages open (no page: ${fmt(out.cpu_per_move_alone_ms, 2)} ms) | ${fmt(out.cpu_per_move_ms, 2)} ms | - | - |`)
if (out.open_5000) console.log(`| open a 5,000-card board (${out.open_5000.mounted} cards mounted) | ${out.open_5000.ms} ms (first visit ${out.open_5000.first_ms} ms) | ≤ 1,000 ms | - |`)
if (out.pan_5000 !== undefined) console.log(`| pan, 5,000-card board at 100 % | ${fmt(out.pan_5000)} fps (3 s: ${JSON.stringify(out.pan_5000_costs)}) | smooth | - |`)
console.log('\n' + JSON.stringify(out))
