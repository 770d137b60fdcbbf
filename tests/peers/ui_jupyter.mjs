// A real JupyterLab in a container, opened through the edge and its guard in Chromium:
// who JupyterLab says the person is, and a notebook whose kernel (over its WebSocket,
// through the tunnel) runs print(6*7).
// args: JSON {main, service, member: {login, password}, shots}
import { launchBrowser } from './browser.mjs'

const args = JSON.parse(process.argv[2])
const out = (tag, v) => console.log(`${tag} ${JSON.stringify(v)}`)
const result = {}
const browser = await launchBrowser()
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  const r = await page.request.post(args.main + '/api/v1/auth/login', { headers: { Origin: args.main }, data: args.member })
  if (!r.ok()) throw new Error(`login: ${r.status()}`)
  await page.goto(args.service + '/lab')
  await page.waitForSelector('.jp-LauncherCard', { timeout: 90000 })
  result.url = page.url()
  // Who JupyterLab's own front end is told it serves (JupyterLab 4 draws the user only in
  // its collaborative mode; this is the identity it loads for every page).
  result.me = await page.evaluate(async () => (await (await fetch('/api/me')).json()).identity)
  await page.screenshot({ path: `${args.shots}/jupyterlab.png` })
  out('PHASE', { step: 'lab' })

  // A notebook, as a person starts one: the launcher's Python card, a cell, Shift+Enter.
  await page.click('.jp-LauncherCard[data-category="Notebook"]')
  const cell = '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .cm-content'
  await page.waitForSelector(cell, { timeout: 60000 })
  // The kernel is ready when the status bar says so (a cell run before then is dropped).
  await page.waitForFunction(() => /\| Idle/.test(document.querySelector('#jp-main-statusbar')?.textContent || ''),
    null, { timeout: 90000 })
  await page.click(cell)
  await page.keyboard.type('print(6*7)')
  const answered = () => page.waitForFunction(() => [...document.querySelectorAll('.jp-OutputArea-output')]
    .some((e) => e.textContent.trim() === '42'), null, { timeout: 30000 })
  // Run it; if nothing comes (a busy machine), run the same cell again, as a person would.
  let ok = false
  for (let i = 0; i < 3 && !ok; i++) {
    await page.click('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .cm-content >> nth=0')
    await page.keyboard.press('Shift+Enter')
    ok = await answered().then(() => true, () => false)
  }
  if (!ok) throw new Error('the kernel never printed 42')
  result.output = '42'
  await page.screenshot({ path: `${args.shots}/jupyterlab-kernel.png` })
  out('RESULT', result)
} catch (e) {
  try {
    const [p] = browser.contexts().flatMap((c) => c.pages())
    if (p) await p.screenshot({ path: `${args.shots}/jupyterlab-failed.png` })
  } catch {}
  out('FAIL', { error: String(e && e.stack || e) })
} finally {
  await browser.close()
}
