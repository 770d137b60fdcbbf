// The board in Debian's Chromium, two people in two browser contexts, clicking and typing as
// people do. Usage: node ui_board.mjs <mode> <base-url> <shots-dir> <json-args>
//   people  {pid, a: {login, password}, b: {...}}   create, type, drag, connect, delete,
//           per-user undo, locks, cursors and selections; prints PHASE lines and RESULT
//   files   {pid, pid2, a: {...}, downloads}        copy/paste across projects, duplicate,
//           frames, align, export and import
//   live    {pid, a: {...}, v: {...}}               a viewer sees changes and changes
//           nothing; survives a server restart (reads `restarted` on stdin after DOWN)
// Prints RESULT {...} or FAIL {...}; screenshots go to <shots-dir>.
import { launchBrowser, stdinLines } from './browser.mjs'

const [mode, base, shots, argsJson] = process.argv.slice(2)
const args = JSON.parse(argsJson)
setTimeout(() => { console.log('FAIL {"error":"watchdog: 240 s"}'); process.exit(2) }, 240000).unref()
const nextLine = stdinLines()
const say = (tag, obj) => console.log(`${tag} ${JSON.stringify(obj)}`)

const browser = await launchBrowser()
const result = { errors: [] }
const pages = []

async function person(who, name) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true })
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base })
  const r = await ctx.request.post(base + '/api/v1/auth/login', { headers: { Origin: base }, data: { login: who.login, password: who.password } })
  if (r.status() !== 200) throw new Error(`login ${who.login}: ${r.status()} ${await r.text()}`)
  const page = await ctx.newPage()
  pages.push([name, page])
  page.on('pageerror', (e) => result.errors.push(`${name}: ${e} ${(e.stack || '').split('\n').slice(1, 3).join(' ')}`))
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) result.errors.push(`${name}: ${m.text()}`) })
  return page
}
async function open(page, pid) {
  await page.goto(`${base}/projects/${pid}`)
  await page.waitForSelector('#board[data-ready="true"]', { timeout: 20000 })
}
const card = (page, text) => page.locator('[data-node-id]', { hasText: text }).first()
async function idOf(page, text) {
  const c = card(page, text)
  await c.waitFor({ timeout: 10000 })
  return c.getAttribute('data-node-id')
}
async function centre(loc) {
  const b = await loc.boundingBox()
  return [b.x + b.width / 2, b.y + b.height / 2]
}
async function drag(page, from, to) {
  await page.mouse.move(from[0], from[1])
  await page.mouse.down()
  await page.mouse.move(from[0] + 6, from[1] + 6, { steps: 2 })
  await page.mouse.move(to[0], to[1], { steps: 12 })
  await page.mouse.up()
}
const until = (page, fn, arg, timeout = 10000) => page.waitForFunction(fn, arg, { timeout, polling: 50 })
// Waits until the card is drawn and wholly inside the viewport (after the camera moved to it,
// the server draws it on its next render).
const onScreen = (page, id) => until(page, (id) => {
  const e = document.querySelector(`[data-node-id="${id}"]`)
  if (!e || e.hidden) return false
  const r = e.getBoundingClientRect(), v = document.querySelector('#board-viewport').getBoundingClientRect()
  return r.width > 0 && r.top >= v.top && r.bottom <= v.bottom && r.left >= v.left && r.right <= v.right
}, id)
async function api(page, method, path, data) {
  const r = await page.context().request.fetch(base + path, { method, headers: { Origin: base }, data })
  let body = null
  try { body = await r.json() } catch { body = null }
  return { status: r.status(), body }
}
const doc = async (page, pid) => (await api(page, 'GET', `/api/v1/projects/${pid}/document`)).body.roots
const shot = (page, name) => page.screenshot({ path: `${shots}/${name}.png` })
async function typeIn(page, text) {
  await page.waitForSelector('textarea.text-editor', { timeout: 5000 })
  await page.keyboard.type(text, { delay: 15 })
  // Let the last keystrokes reach the server before leaving the editor.
  await page.waitForTimeout(300)
  await page.keyboard.press('Escape')
}
async function tool(page, name) { await page.click(`[data-tool="${name}"]`) }
async function select(page, text, add) {
  const [x, y] = await centre(card(page, text))
  if (add) await page.keyboard.down('Shift')
  await page.mouse.click(x, y)
  if (add) await page.keyboard.up('Shift')
}

try {
  if (mode === 'people') {
    const { pid } = args
    const A = await person(args.a, 'A'); const B = await person(args.b, 'B')
    await open(A, pid); await open(B, pid)

    // A makes a sticky note and types in it; B sees both.
    await A.mouse.dblclick(420, 330)
    await typeIn(A, 'Hello from A')
    await until(B, () => [...document.querySelectorAll('[data-node-id]')].some((c) => c.textContent.includes('Hello from A')))
    const note = await idOf(B, 'Hello from A')
    result.b_sees_note = true

    // B drags it; A sees it move.
    const x0 = parseFloat(await card(A, 'Hello from A').getAttribute('data-x'))
    const [nx, ny] = await centre(card(B, 'Hello from A'))
    await drag(B, [nx, ny], [nx + 200, ny + 60])
    await until(A, ([id, x0]) => parseFloat(document.querySelector(`[data-node-id="${id}"]`).dataset.x) > x0 + 150, [note, x0])
    result.a_sees_move = parseFloat(await card(A, 'Hello from A').getAttribute('data-x')) - x0

    // A adds a shape (the shape tool, a click) and connects the note to it by its handle.
    await tool(A, 'shape')
    await A.mouse.click(300, 620)
    await typeIn(A, 'Shape of A')
    const shape = await idOf(A, 'Shape of A')
    const [sx, sy] = await centre(card(A, 'Shape of A'))
    const [ax, ay] = await centre(card(A, 'Hello from A'))
    await A.mouse.move(ax, ay)
    const handle = A.locator(`.conn-handle[data-connect="${note}"][data-side="right"]`)
    await handle.waitFor({ timeout: 5000 })
    const [hx, hy] = await centre(handle)
    await drag(A, [hx, hy], [sx, sy])
    await until(B, () => document.querySelectorAll('[data-edge-id]').length === 1)
    await until(A, () => document.querySelectorAll('[data-edge-id]').length === 1)
    result.edge_from = await B.locator('[data-edge-id]').first().getAttribute('data-from')
    result.edge_to = await B.locator('[data-edge-id]').first().getAttribute('data-to')
    result.note = note; result.shape = shape
    say('PHASE', { phase: 'connected', note, shape })
    await nextLine()

    // B deletes the shape: the connector goes with it, for both.
    await select(B, 'Shape of A')
    await B.keyboard.press('Delete')
    await until(A, (id) => !document.querySelector(`[data-node-id="${id}"]`) && document.querySelectorAll('[data-edge-id]').length === 0, shape)
    await until(B, () => document.querySelectorAll('[data-edge-id]').length === 0)
    const d1 = await doc(A, pid)
    result.after_delete = { nodes: Object.keys(d1.nodes).length, edges: Object.keys(d1.edges).length, text: d1.texts[note] }
    say('PHASE', { phase: 'deleted' })
    await nextLine()

    // Per-user undo: A colours the note, B moves it and adds a card of his own; A undoes.
    await select(A, 'Hello from A')
    await A.click('#style-panel [aria-label="Fill #ffc9c9"]')
    await until(B, (id) => document.querySelector(`[data-node-id="${id}"]`).getAttribute('style').includes('#ffc9c9'), note)
    const bx0 = parseFloat(await card(B, 'Hello from A').getAttribute('data-x'))
    const [mx, my] = await centre(card(B, 'Hello from A'))
    await drag(B, [mx, my], [mx - 120, my + 40])
    await until(A, ([id, x]) => parseFloat(document.querySelector(`[data-node-id="${id}"]`).dataset.x) < x - 80, [note, bx0])
    await B.mouse.dblclick(1000, 650)
    await typeIn(B, 'Card of B')
    await until(A, () => [...document.querySelectorAll('[data-node-id]')].some((c) => c.textContent.includes('Card of B')))
    const moved = parseFloat(await card(A, 'Hello from A').getAttribute('data-x'))
    await A.locator('#board-viewport').focus()
    await A.keyboard.press('Control+z')
    await until(A, (id) => !document.querySelector(`[data-node-id="${id}"]`).getAttribute('style').includes('#ffc9c9'), note)
    const d2 = await doc(A, pid)
    result.undo = {
      fill: d2.nodes[note].data.fill ?? null,
      x: d2.nodes[note].x, moved_x: moved,
      b_card_kept: Object.values(d2.texts).includes('Card of B'),
    }
    await A.keyboard.press('Control+Shift+z')
    await until(B, (id) => document.querySelector(`[data-node-id="${id}"]`).getAttribute('style').includes('#ffc9c9'), note)
    result.redo_fill = (await doc(A, pid)).nodes[note].data.fill

    // A locks the note: B can neither move it nor delete it, in the page or by the API.
    await select(A, 'Hello from A')
    await A.click('#lock-button')
    await until(B, (id) => document.querySelector(`[data-node-id="${id}"]`).dataset.lockedBy !== '', note)
    const lx = parseFloat(await card(B, 'Hello from A').getAttribute('data-x'))
    const [kx, ky] = await centre(card(B, 'Hello from A'))
    await drag(B, [kx, ky], [kx + 150, ky + 150])
    await select(B, 'Hello from A')
    await B.keyboard.press('Delete')
    await B.waitForTimeout(800)
    const viaApi = await api(B, 'POST', `/api/v1/projects/${pid}/events`, { type: 'whiteboard:move', moves: [{ id: note, x: 0, y: 0 }] })
    const d3 = await doc(B, pid)
    result.lock = {
      still_there: !!d3.nodes[note],
      x_unchanged: d3.nodes[note] && d3.nodes[note].x === lx,
      api_status: viaApi.status, api_code: viaApi.body && viaApi.body.error,
      toast: await B.textContent('#board-toast'),
    }

    // A picture: notes, a shape, a frame, a connector, and both people's cursors and selections.
    await tool(A, 'frame')
    await A.mouse.click(640, 300)
    await A.keyboard.press('Escape')
    await tool(A, 'shape')
    await A.mouse.click(300, 640)
    await typeIn(A, 'Diamond')
    await select(A, 'Diamond')
    await A.click('#style-panel [aria-label="Diamond"]')
    const diamond = await idOf(A, 'Diamond')
    const cardB = await idOf(A, 'Card of B')
    await ok(A, pid, { type: 'whiteboard:connect', from: diamond, to: cardB, style: { route: 'step', dash: 'dashed', label: 'depends on' } })
    await select(A, 'Diamond')
    await select(B, 'Card of B')
    await A.mouse.move(560, 420, { steps: 4 })
    await B.mouse.move(760, 480, { steps: 4 })
    await until(A, () => document.querySelector('[data-cursor-user]') !== null)
    await until(B, () => document.querySelector('[data-cursor-user]') !== null)
    await until(A, () => document.querySelector('[data-selected-by]') !== null)
    await until(B, () => document.querySelector('[data-selected-by]') !== null)
    result.cursors = {
      a_sees: await A.getAttribute('[data-cursor-user]', 'data-cursor-user'),
      b_sees: await B.getAttribute('[data-cursor-user]', 'data-cursor-user'),
      a_sees_selection_of: await A.getAttribute('[data-selected-by]', 'data-selected-by'),
      b_sees_selection_of: await B.getAttribute('[data-selected-by]', 'data-selected-by'),
      a_cursor_name: await A.textContent('[data-cursor-user] .cursor-name'),
    }
    await shot(A, 'board-a')
    await shot(B, 'board-b')
  } else if (mode === 'files') {
    const { pid, pid2 } = args
    const A = await person(args.a, 'A')
    await open(A, pid)
    // Three cards, aligned; then grouped into a frame; one dragged out and back in.
    for (const [x, y, t] of [[350, 300, 'One'], [540, 380, 'Two'], [850, 340, 'Three']]) {
      await A.mouse.dblclick(x, y)
      await typeIn(A, t)
    }
    await select(A, 'One'); await select(A, 'Two', true); await select(A, 'Three', true)
    await A.click('#style-panel [aria-label="Align top"]')
    await until(A, () => { const ys = [...document.querySelectorAll('[data-node-id]')].map((c) => c.dataset.y); return new Set(ys).size === 1 })
    const d0 = await doc(A, pid)
    result.aligned_y = [...new Set(Object.values(d0.nodes).map((n) => n.y))]
    // Spaced evenly across (the middle one was nearer the first).
    await A.click('#style-panel button:has-text("Space across")')
    const gaps = async () => {
      const ns = Object.values((await doc(A, pid)).nodes).sort((a, b) => a.x - b.x)
      return [ns[1].x - (ns[0].x + ns[0].w), ns[2].x - (ns[1].x + ns[1].w)]
    }
    for (let i = 0; i < 50; i++) { const [g1, g2] = await gaps(); if (Math.abs(g1 - g2) < 0.5) break; await A.waitForTimeout(100) }
    result.distributed_gaps = await gaps()
    await A.locator('#board-viewport').focus()
    await A.keyboard.press('Control+g')
    await until(A, () => document.querySelector('[data-kind="frame"]') !== null)
    const frame = await A.getAttribute('[data-kind="frame"]', 'data-node-id')
    await until(A, (f) => [...document.querySelectorAll('[data-node-id]')].filter((c) => c.dataset.parent === f).length === 3, frame)
    const [tx, ty] = await centre(card(A, 'Three'))
    await drag(A, [tx, ty], [tx + 80, ty + 330])
    const three = await idOf(A, 'Three')
    await until(A, (id) => !document.querySelector(`[data-node-id="${id}"]`).dataset.parent, three)
    result.dragged_out = true
    const [t2x, t2y] = await centre(card(A, 'Three'))
    await drag(A, [t2x, t2y], [t2x - 80, t2y - 330])
    await until(A, ([id, f]) => document.querySelector(`[data-node-id="${id}"]`).dataset.parent === f, [three, frame])
    result.dropped_in = true
    // Duplicate (Ctrl+D) makes a copy with a new id.
    await select(A, 'Two')
    await A.keyboard.press('Control+d')
    await until(A, () => [...document.querySelectorAll('[data-node-id]')].filter((c) => c.textContent.includes('Two')).length === 2)
    result.duplicated = true
    // Copy here, paste on another project's board.
    await select(A, 'One'); await select(A, 'Two', true)
    await A.waitForTimeout(400)
    await A.keyboard.press('Control+c')
    await until(A, () => /Copied/.test(document.querySelector('#board-toast').textContent))
    const copied = await A.evaluate(() => navigator.clipboard.readText())
    result.clipboard_format = JSON.parse(copied).format
    await open(A, pid2)
    await A.locator('#board-viewport').click({ position: { x: 500, y: 400 } })
    await A.keyboard.press('Control+v')
    await until(A, () => [...document.querySelectorAll('[data-node-id]')].some((c) => c.textContent.includes('One')))
    const d2 = await doc(A, pid2)
    result.pasted = Object.values(d2.texts).sort()
    result.pasted_ids_new = Object.keys(d2.nodes).every((id) => !Object.keys(d0.nodes).includes(id))
    // Export each format from the first board (files downloaded from the page's menu).
    await open(A, pid)
    const files = {}
    for (const f of ['png', 'svg', 'json', 'canvas']) {
      await A.click('#export-menu summary')
      const [dl] = await Promise.all([A.waitForEvent('download'), A.click(`[data-export="${f}"]`)])
      const path = `${args.downloads}/${dl.suggestedFilename()}`
      await dl.saveAs(path)
      files[f] = path
    }
    result.files = files
    // Import each back into the second board: the file input, as a person picks a file.
    await open(A, pid2)
    const before = Object.keys((await doc(A, pid2)).nodes).length
    for (const f of ['json', 'canvas']) {
      await A.click('#export-menu summary')
      const [chooser] = await Promise.all([A.waitForEvent('filechooser'), A.click('#import-button')])
      await chooser.setFiles(files[f])
      await A.waitForTimeout(200)
    }
    await until(A, (n) => document.querySelectorAll('[data-node-id]').length >= n, before + 8)
    const d3 = await doc(A, pid2)
    result.imported = Object.keys(d3.nodes).length - before
    result.imported_texts = Object.values(d3.texts).filter((t) => t === 'Three').length
    await shot(A, 'board-files')
  } else if (mode === 'more') {
    const { pid } = args
    const A = await person(args.a, 'A'); const B = await person(args.b, 'B')
    await open(A, pid); await open(B, pid)
    result.clean_url = !A.url().includes('?') && !A.url().includes('#')
    // A sticky note from the context menu, then resized by its corner handle.
    await A.mouse.click(400, 320, { button: 'right' })
    await A.click('.context-menu button:has-text("New sticky note")')
    await typeIn(A, 'From the menu')
    const note = await idOf(A, 'From the menu')
    await select(A, 'From the menu')
    const w0 = (await doc(A, pid)).nodes[note].w
    const corner = A.locator('.sel-handle[data-handle="se"]')
    await corner.waitFor()
    const [cx, cy] = await centre(corner)
    await drag(A, [cx, cy], [cx + 120, cy + 60])
    await until(A, ([id, w]) => parseFloat(document.querySelector(`[data-node-id="${id}"]`).dataset.w) > w + 50, [note, w0])
    result.resized = (await doc(A, pid)).nodes[note].w - w0
    // A second note, connected through the API; the connector restyled from the panel.
    await A.mouse.dblclick(900, 560)
    await typeIn(A, 'Second')
    const second = await idOf(A, 'Second')
    await ok(A, pid, { type: 'whiteboard:connect', from: note, to: second })
    await until(A, () => document.querySelector('[data-edge-id]') !== null)
    const edge = await A.getAttribute('[data-edge-id]', 'data-edge-id')
    await A.keyboard.press('Escape')
    const hit = await A.evaluate((id) => {
      const p = document.querySelector(`[data-edge-id="${id}"] .edge-line`)
      const at = p.getPointAtLength(p.getTotalLength() / 2)
      const m = p.getScreenCTM()
      return [at.x * m.a + m.e, at.y * m.d + m.f]
    }, edge)
    await A.mouse.click(hit[0], hit[1])
    await A.waitForSelector('#style-panel button:has-text("step")')
    await A.click('#style-panel button:has-text("step")')
    // The step drawn before the label is typed (the panel re-renders with the new style).
    await until(A, (id) => document.querySelector(`[data-edge-id="${id}"]`).dataset.route === 'step', edge)
    await A.fill('#style-panel .edge-label-input', 'next')
    await A.press('#style-panel .edge-label-input', 'Enter')
    await until(B, (id) => { const g = document.querySelector(`[data-edge-id="${id}"]`); return g && g.dataset.route === 'step' && g.textContent.includes('next') }, edge)
    const e = (await doc(A, pid)).edges[edge]
    result.edge_style = { route: e.data.route, label: e.data.label }
    // The help dialog, with `?`.
    await A.locator('#board-viewport').focus()
    await A.keyboard.press('Shift+Slash')
    await A.waitForSelector('#help-dialog')
    result.help_rows = await A.$$eval('#help-dialog tr', (l) => l.length)
    await A.click('#help-dialog [aria-label="Close"]')
    await A.waitForSelector('#help-dialog', { state: 'detached' })
    // A frame, its title typed over it.
    await tool(A, 'frame')
    await A.mouse.click(560, 700)
    const frame = await A.getAttribute('[data-kind="frame"]', 'data-node-id')
    const title = A.locator(`[data-node-id="${frame}"] .frame-title`)
    const [tx, ty] = await centre(title)
    await A.mouse.dblclick(tx, ty)
    await A.waitForSelector('input.title-editor')
    await A.keyboard.press('Control+a')
    await A.keyboard.type('Roadmap')
    await A.keyboard.press('Enter')
    await until(B, (id) => document.querySelector(`[data-node-id="${id}"] .frame-title`).textContent === 'Roadmap', frame)
    result.frame_title = (await doc(A, pid)).nodes[frame].data.title
    // B follows A: A zooms in twice; B's view follows.
    await B.click(`[data-follow][data-user="${args.a_id}"]`)
    await A.click('[data-action="zoom-in"]')
    await A.click('[data-action="zoom-in"]')
    await until(B, (z) => Math.abs(window.dmgBoard.state().camera.z - z) / z < 0.05, (await A.evaluate(() => window.dmgBoard.state().camera.z)))
    result.follow = { a: await A.evaluate(() => window.dmgBoard.state().camera), b: await B.evaluate(() => window.dmgBoard.state().camera), following: (await B.evaluate(() => window.dmgBoard.state())).following !== null }
    // History: A saves a version, deletes the second note, and restores the version.
    await A.click('#history-button')
    await A.waitForSelector('#history-name')
    await A.fill('#history-name', 'Before the cut')
    await A.click('#history-save')
    await A.waitForSelector('.history-point:has-text("Before the cut")')
    await select(A, 'Second')
    await A.keyboard.press('Delete')
    await until(B, (id) => !document.querySelector(`[data-node-id="${id}"]`), second)
    await A.click('.history-point:has-text("Before the cut") .restore')
    await A.click('.history-point:has-text("Before the cut") .restore-confirm')
    await until(B, (id) => !!document.querySelector(`[data-node-id="${id}"]`), second)
    result.restored = true
    result.history_by = await A.textContent('.history-point:has-text("Before the cut") .muted')
    await shot(A, 'board-more')
    await A.click('#history-button')
    // Layers: a card far off the screen is found by name, shown and selected from its row,
    // and locked from there.
    const farOff = (await ok(A, pid, { type: 'whiteboard:add-card', view: 'main', kind: 'note', x: 6000, y: 5000, text: 'Faraway idea' })).result.id
    await A.locator('#board-viewport').focus()
    await A.keyboard.press('l')
    await A.waitForSelector('#layers-panel')
    await until(A, () => document.querySelectorAll('#layers-panel [data-layer]').length >= 4)
    result.layer_rows = await A.$$eval('#layers-panel [data-layer]', (l) => l.map((e) => e.textContent))
    await A.fill('#layers-filter', 'farawa')
    await until(A, () => document.querySelectorAll('#layers-panel [data-layer]').length === 1)
    await A.click(`#layers-panel [data-layer="${farOff}"]`)
    await onScreen(A, farOff)
    result.layer_selected = await A.evaluate(() => window.dmgBoard.state().selection)
    await A.click(`#layers-panel .layer-row:has([data-layer="${farOff}"]) .layer-lock`)
    await until(A, (id) => document.querySelector(`#layers-panel .layer-row:has([data-layer="${id}"]) .layer-lock.locked`) !== null, farOff)
    result.layer_locked_by = (await doc(A, pid)).nodes[farOff].locked_by
    await shot(A, 'board-layers')
    await A.keyboard.press('Escape')
    // Views: A makes a second view, moves a card there, and back in the main view the card
    // is where it was.
    const mainX = (await doc(A, pid)).nodes[note].x
    await A.click('#views-menu summary')
    await A.fill('#new-view-name', 'Sketch')
    await A.press('#new-view-name', 'Enter')
    await until(A, () => document.querySelector('#board').dataset.view !== 'main')
    const viewId = await A.getAttribute('#board', 'data-view')
    // Renamed from the same menu.
    await A.click('#views-menu summary')
    await A.fill('#rename-view-name', 'Sketches')
    await A.press('#rename-view-name', 'Enter')
    await until(A, () => document.querySelector('#views-menu summary').textContent.includes('Sketches'))
    result.view_name = (await doc(A, pid)).views[viewId].name
    // Found from the layers view (the new view shows the whole board, the note is small).
    await A.fill('#layers-filter', 'From the menu')
    await A.click(`#layers-panel [data-layer="${note}"]`)
    await onScreen(A, note)
    await A.keyboard.press('Escape')
    const [nx, ny] = await centre(A.locator(`[data-node-id="${note}"]`))
    await drag(A, [nx, ny], [nx + 150, ny + 40])
    const moved = async () => { const d = await doc(A, pid); return d.views[viewId] && d.views[viewId].cards && d.views[viewId].cards[note] }
    for (let i = 0; i < 50 && !(await moved()); i++) await A.waitForTimeout(100)
    const inView = await moved()
    const after = await doc(A, pid)
    result.view_moved = { main_before: mainX, main_after: after.nodes[note].x, in_view: inView ? inView.x : null }
    await A.click('#views-menu summary')
    await A.click('#views-menu [data-view-id="main"]')
    await until(A, () => document.querySelector('#board').dataset.view === 'main')
    await until(A, ([id, x]) => { const e = document.querySelector(`[data-node-id="${id}"]`); return e && parseFloat(e.dataset.x) === x }, [note, mainX])
    // And deleted again (from the view itself).
    await A.click('#views-menu summary')
    await A.click(`#views-menu [data-view-id="${viewId}"]`)
    await until(A, (v) => document.querySelector('#board').dataset.view === v, viewId)
    await A.click('#views-menu summary')
    await A.click('#delete-view')
    await until(A, () => document.querySelector('#board').dataset.view === 'main')
    result.view_deleted = !(await doc(A, pid)).views[viewId]
    // Snap to the grid (G): a drag by an odd distance lands on the grid; G again turns it off.
    await A.locator('#board-viewport').focus()
    await A.keyboard.press('g')
    await until(A, () => document.querySelector('[data-action="snap"]').getAttribute('aria-pressed') === 'true')
    await A.fill('#layers-filter', 'Second')
    await A.click(`#layers-panel [data-layer="${second}"]`)
    await onScreen(A, second)
    await A.keyboard.press('Escape')
    const [sx, sy] = await centre(A.locator(`[data-node-id="${second}"]`))
    const before = (await doc(A, pid)).nodes[second]
    await drag(A, [sx, sy], [sx + 37, sy + 23])
    for (let i = 0; i < 50; i++) { const n = (await doc(A, pid)).nodes[second]; if (n.x !== before.x) break; await A.waitForTimeout(100) }
    const snappedTo = (await doc(A, pid)).nodes[second]
    result.snapped = { x: snappedTo.x, y: snappedTo.y, moved: snappedTo.x !== before.x }
    await A.keyboard.press('g')
  } else if (mode === 'touch') {
    // A phone: 390 px wide, touch only. One finger on empty space pans, two fingers pinch,
    // a tap selects; nothing scrolls sideways.
    const { pid } = args
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 })
    const r = await ctx.request.post(base + '/api/v1/auth/login', { headers: { Origin: base }, data: { login: args.a.login, password: args.a.password } })
    if (r.status() !== 200) throw new Error(`login: ${r.status()}`)
    const P = await ctx.newPage()
    pages.push(['phone', P])
    P.on('pageerror', (e) => result.errors.push(`phone: ${e}`))
    const made = await api(P, 'POST', `/api/v1/projects/${pid}/events`, { type: 'whiteboard:add-card', view: 'main', kind: 'note', x: 0, y: 0, w: 160, h: 120, text: 'On the phone' })
    if (made.status !== 200) throw new Error(`add-card: ${made.status}`)
    const id = made.body.result.id
    await open(P, pid)
    result.page_width = await P.evaluate(() => document.documentElement.scrollWidth)
    const cdp = await ctx.newCDPSession(P)
    const touch = (type, points) => cdp.send('Input.dispatchTouchEvent', { type, touchPoints: points.map(([x, y], i) => ({ x, y, id: i })) })
    const cam = () => P.evaluate(() => window.dmgBoard.state().camera)
    const box = await P.locator('#board-viewport').boundingBox()
    // Empty space: near the bottom of the canvas, away from the card in the middle.
    const ex = box.x + box.width / 2, ey = box.y + box.height - 120
    const c0 = await cam()
    await touch('touchStart', [[ex, ey]])
    for (let i = 1; i <= 8; i++) await touch('touchMove', [[ex - i * 10, ey - i * 10]])
    await touch('touchEnd', [])
    const c1 = await cam()
    result.pan = { dx: c1.x - c0.x, dy: c1.y - c0.y }
    // Two fingers apart: zoom in around their middle.
    const mx = box.x + box.width / 2, my = box.y + box.height / 2 + 150
    await touch('touchStart', [[mx - 40, my], [mx + 40, my]])
    for (let i = 1; i <= 8; i++) await touch('touchMove', [[mx - 40 - i * 10, my], [mx + 40 + i * 10, my]])
    await touch('touchEnd', [])
    const c2 = await cam()
    // And together again: back out.
    await touch('touchStart', [[mx - 120, my], [mx + 120, my]])
    for (let i = 1; i <= 8; i++) await touch('touchMove', [[mx - 120 + i * 10, my], [mx + 120 - i * 10, my]])
    await touch('touchEnd', [])
    const c3 = await cam()
    result.pinch = { before: c1.z, after: c2.z, back: c3.z }
    // A tap on the card selects it.
    const cb = await P.locator(`[data-node-id="${id}"]`).boundingBox()
    await P.touchscreen.tap(cb.x + cb.width / 2, cb.y + Math.min(30, cb.height / 2))
    await until(P, (id) => window.dmgBoard.state().selection.includes(id), id)
    result.tapped = true
    await shot(P, 'board-phone')
    result.tools_on_screen = await P.evaluate(() => { const r = document.querySelector('.board-tools').getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth + 1 })
  } else if (mode === 'live') {
    const { pid } = args
    const A = await person(args.a, 'A'); const V = await person(args.v, 'V')
    await open(A, pid); await open(V, pid)
    result.viewer_can_edit = await V.getAttribute('#board', 'data-can-edit')
    result.viewer_tools = await V.$$eval('[data-tool]', (l) => l.map((b) => b.dataset.tool))
    await A.mouse.dblclick(500, 400)
    await typeIn(A, 'Seen by the viewer')
    await until(V, () => [...document.querySelectorAll('[data-node-id]')].some((c) => c.textContent.includes('Seen by the viewer')))
    result.viewer_sees = true
    // The viewer tries: a double-click, a drag, Delete, and the API.
    const id = await idOf(V, 'Seen by the viewer')
    const xBefore = (await doc(A, pid)).nodes[id].x
    await V.mouse.dblclick(300, 600)
    const [vx, vy] = await centre(card(V, 'Seen by the viewer'))
    await drag(V, [vx, vy], [vx + 100, vy + 100])
    await V.mouse.click(vx + 100, vy + 100)
    await V.keyboard.press('Delete')
    const viaApi = await api(V, 'POST', `/api/v1/projects/${pid}/events`, { type: 'whiteboard:delete', cards: [id] })
    await V.waitForTimeout(600)
    const d = await doc(A, pid)
    result.viewer_changed_nothing = Object.keys(d.nodes).length === 1 && d.nodes[id].x === xBefore
    result.viewer_api = viaApi.status
    await shot(V, 'viewer')
    // The server restarts; both pages come back by themselves and keep working.
    // Whether a page showed "reconnecting" is kept in its session storage: the page may
    // reload as soon as the server is back, before a poll could see it.
    for (const page of [A, V]) {
      await page.evaluate(() => {
        window.__before_restart = true
        new MutationObserver(() => {
          if (document.documentElement.dataset.live === 'reconnecting') sessionStorage.setItem('saw_reconnecting', '1')
        }).observe(document.documentElement, { attributes: true, attributeFilter: ['data-live'] })
      })
    }
    say('DOWN', {})
    await nextLine()
    for (const page of [A, V]) await reloaded(page)
    result.saw_reconnecting = await Promise.all([A, V].map((p) => p.evaluate(() => sessionStorage.getItem('saw_reconnecting') === '1')))
    await A.mouse.dblclick(800, 300)
    await typeIn(A, 'After the restart')
    await until(V, () => [...document.querySelectorAll('[data-node-id]')].some((c) => c.textContent.includes('After the restart')), null, 15000)
    result.after_restart = true
    await shot(A, 'after-restart')
  }
  say('RESULT', result)
} catch (e) {
  for (const [name, page] of pages) {
    await page.screenshot({ path: `${shots}/failed-${mode}-${name}.png` }).catch(() => {})
    result[`state_${name}`] = await page.evaluate(() => window.dmgBoard && window.dmgBoard.state()).catch(() => null)
  }
  say('FAIL', { error: String(e && e.stack || e), result })
} finally {
  await browser.close()
}

// Waits for the page the reconnect script loads anew (the old one's DOM says ready too).
async function reloaded(page) {
  const t0 = Date.now()
  for (;;) {
    try {
      const fresh = await page.evaluate(() => !window.__before_restart &&
        document.documentElement.dataset.live === 'connected' && !!document.querySelector('#board[data-ready="true"]'))
      if (fresh) return
    } catch (e) { /* the page is navigating */ }
    if (Date.now() - t0 > 40000) throw new Error('the page did not come back after the restart')
    await new Promise((r) => setTimeout(r, 100))
  }
}

async function ok(page, pid, ev) {
  const r = await api(page, 'POST', `/api/v1/projects/${pid}/events`, ev)
  if (r.status !== 200) throw new Error(`${JSON.stringify(ev)}: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}
