// The containers panel of a board, in Chromium, as a project member uses it: a new
// terminal container from the panel, its docker run line shown, the card going live when
// the agent joins (the test runs the line), its terminal opened from the card's link
// through the guard, and the container deleted from the panel.
// args: JSON {main, pid, member: {login, password}, shots}
import { launchBrowser, stdinLines } from './browser.mjs'

const args = JSON.parse(process.argv[2])
const next = stdinLines()
const out = (tag, v) => console.log(`${tag} ${JSON.stringify(v)}`)
const result = { errors: [] }
const browser = await launchBrowser()
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } })
  const r = await ctx.request.post(args.main + '/api/v1/auth/login', { headers: { Origin: args.main }, data: args.member })
  if (!r.ok()) throw new Error(`login: ${r.status()}`)
  const page = await ctx.newPage()
  page.on('pageerror', (e) => result.errors.push(String(e)))
  await page.goto(`${args.main}/projects/${args.pid}`)
  await page.waitForSelector('#board[data-ready="true"]', { timeout: 20000 })
  await page.click('#containers-button')
  await page.waitForSelector('#containers-panel')
  result.empty_text = (await page.textContent('#containers-panel')).includes('No containers yet')
  await page.fill('#container-name', 'Shell')
  await page.selectOption('#container-image', 'terminal')
  await page.click('#container-create')
  await page.waitForSelector('#container-command-text', { timeout: 15000 })
  const command = await page.inputValue('#container-command-text')
  await page.waitForSelector('li.container[data-state="created"]', { timeout: 15000 })
  result.created_text = (await page.textContent('li.container')).trim()
  await page.screenshot({ path: `${args.shots}/panel-created.png` })
  out('PHASE', { command })

  // The test runs the command; the card goes live by itself.
  await next()
  await page.waitForSelector('li.container[data-state="running"]', { timeout: 60000 })
  result.running_text = (await page.textContent('li.container')).trim()
  await page.screenshot({ path: `${args.shots}/panel-running.png` })
  const link = page.locator('li.container a.service-link').first()
  result.link_text = (await link.textContent()).trim()
  result.href = await link.getAttribute('href')
  result.target = await link.getAttribute('target')
  const [tab] = await Promise.all([ctx.waitForEvent('page'), link.click()])
  await tab.waitForSelector('.xterm', { timeout: 30000 })
  result.tab_url = tab.url()
  await tab.screenshot({ path: `${args.shots}/panel-terminal.png` })
  await tab.close()

  // Delete, with its confirmation.
  await page.click('li.container .container-delete')
  await page.click('li.container .container-delete-confirm')
  await page.waitForSelector('li.container', { state: 'detached', timeout: 15000 })
  result.deleted = true
  out('RESULT', result)
} catch (e) {
  out('FAIL', { error: String(e && e.stack || e), errors: result.errors })
} finally {
  await browser.close()
}
