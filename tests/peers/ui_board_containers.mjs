// The containers panel of a board, in Chromium, as a project member uses it: a new
// terminal container from the panel, its docker run line shown, the card going live when
// the agent joins (the test runs the line), its terminal opened from the card's link
// through the guard, renamed in place, a custom image with its services (a malformed list
// refused with a message), and the containers deleted from the panel.
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
  // Its card on the board, in the middle of the screen.
  await page.waitForSelector('.board-card[data-kind="container"] .container-card[data-state="created"]', { timeout: 15000 })
  result.card_created = (await page.textContent('.board-card[data-kind="container"]')).trim()
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

  // The card went live too, and its link opens the terminal as well (a click on the
  // canvas is a link's click there, not a drag).
  await page.click('#containers-button')
  await page.waitForSelector('#containers-panel', { state: 'detached' })
  const cardSel = '.board-card[data-kind="container"] .container-card[data-state="running"]'
  await page.waitForSelector(cardSel, { timeout: 15000 })
  result.card_running = (await page.textContent(cardSel)).trim()
  await page.screenshot({ path: `${args.shots}/card-running.png` })
  const cardLink = page.locator(`${cardSel} a.service-link`).first()
  const [tab2] = await Promise.all([ctx.waitForEvent('page'), cardLink.click()])
  await tab2.waitForSelector('.xterm', { timeout: 30000 })
  result.card_tab_url = tab2.url()
  await tab2.close()
  // Its card deleted (selected, Delete), the panel offers to put it back, and does.
  await page.click(`${cardSel} .container-by`)
  await page.keyboard.press('Delete')
  await page.waitForSelector('.board-card[data-kind="container"]', { state: 'detached', timeout: 15000 })
  await page.click('#containers-button')
  await page.waitForSelector('#containers-panel')
  await page.click('li.container .container-place')
  await page.waitForSelector(cardSel, { timeout: 15000 })
  result.put_back = await page.locator('li.container .container-place').count() === 0

  // Renamed in place: the field, Enter, and the name everyone sees.
  await page.click('li.container .container-rename-button')
  await page.fill('li.container .container-rename-input', 'Build shell')
  await page.press('li.container .container-rename-input', 'Enter')
  await page.waitForFunction(() => document.querySelector('li.container .container-name')?.textContent === 'Build shell', null, { timeout: 15000 })
  result.renamed = (await page.textContent('li.container .container-name')).trim()

  // A custom image: a services list that is not name:port is refused with a message.
  await page.fill('#container-name', 'Site')
  await page.selectOption('#container-image', 'custom')
  await page.fill('#container-image-ref', 'nginx:stable')
  await page.fill('#container-services', 'web')
  await page.click('#container-create')
  await page.waitForSelector('#containers-panel .notice.error', { timeout: 10000 })
  result.bad_services = (await page.textContent('#containers-panel .notice.error')).trim()
  await page.fill('#container-services', 'web:8080, api:3000')
  await page.click('#container-create')
  await page.waitForFunction(() => document.querySelectorAll('li.container').length === 2, null, { timeout: 15000 })
  const custom = page.locator('li.container', { hasText: 'Site' })
  result.custom_text = (await custom.textContent()).trim()
  result.custom_links = await custom.locator('a.service-link').allTextContents()
  await page.screenshot({ path: `${args.shots}/panel-custom.png` })

  // Delete, with its confirmation.
  for (let n = 2; n > 0; n--) {
    await page.click('li.container .container-delete')
    await page.click('li.container .container-delete-confirm')
    await page.waitForFunction((n) => document.querySelectorAll('li.container').length === n - 1, n, { timeout: 15000 })
  }
  result.deleted = true
  await page.waitForSelector('.board-card[data-kind="container"] .container-card[data-state="deleted"]', { timeout: 15000 })
  result.card_deleted = (await page.textContent('.board-card[data-kind="container"]')).trim()
  out('RESULT', result)
} catch (e) {
  out('FAIL', { error: String(e && e.stack || e), errors: result.errors })
} finally {
  await browser.close()
}
