// Home in Debian's Chromium, as a new person meets it: sign up, land on a home page that has
// a board to open, open it, make a second board from home, and find it first in "recent".
// The home page at a phone's width is no wider than the screen. Screenshots of each step.
// Usage: node ui_home.mjs <base-url> <screenshot-dir>.
import { launchBrowser } from './browser.mjs'

const [, , base, shots] = process.argv
setTimeout(() => { console.log('FAIL {"error":"watchdog: 120 s"}'); process.exit(2) }, 120000).unref()
const say = (tag, obj) => console.log(`${tag} ${JSON.stringify(obj)}`)

const browser = await launchBrowser()
const result = { errors: [] }
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await ctx.newPage()
  page.on('pageerror', (e) => result.errors.push(String(e)))
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true })
  const boards = () => page.$$eval('#recent-boards li[data-board] a.board-link', (as) => as.map((a) => a.textContent.trim()))

  await page.goto(base + '/signup')
  await page.waitForSelector('#sign-up-submit')
  await page.fill('#username', 'newbie')
  await page.fill('#email', 'newbie@example.test')
  await page.fill('#password', 'a long enough passphrase')
  await page.click('#sign-up-submit')
  await page.waitForURL(base + '/')
  await page.waitForSelector('#recent-boards li[data-board] a.board-link', { timeout: 15000 })
  result.first_page = await boards()
  await shot('home-new-account')

  // Open it: the board loads, and home lists it as recent.
  await page.click('#recent-boards a.board-link')
  await page.waitForURL(/\/projects\/[^/]+$/)
  await page.waitForSelector('#board[data-ready="true"]', { timeout: 20000 })
  await page.goto(base + '/')
  await page.waitForSelector('#recent-boards li[data-board] .muted', { timeout: 15000 })
  result.after_open = await boards()
  result.org_of_first = (await page.textContent('#recent-boards li[data-board] .muted')).trim()

  // A second board from home: made, opened, then first in "recent".
  await page.fill('#new-board-name', 'Second board')
  await page.click('#new-board-create')
  await page.waitForURL(/\/projects\/[^/]+$/)
  await page.waitForSelector('#board[data-ready="true"]', { timeout: 20000 })
  result.second_title = await page.title()
  await page.goto(base + '/')
  await page.waitForFunction(() => {
    const a = document.querySelector('#recent-boards li[data-board] a.board-link')
    return a && a.textContent.trim() === 'Second board'
  }, null, { timeout: 15000 })
  result.after_second = await boards()
  result.orgs = await page.$$eval('#home-orgs li a', (as) => as.map((a) => a.textContent.trim()))
  await shot('home')

  // At a phone's width.
  await page.setViewportSize({ width: 390, height: 844 })
  await page.goto(base + '/')
  await page.waitForSelector('#recent-boards li[data-board]')
  result.phone_width = await page.evaluate(() => document.documentElement.scrollWidth)
  await shot('home-phone')
  result.html = await page.content()
  say('RESULT', result)
} catch (e) {
  say('FAIL', { error: String(e && e.stack || e), result })
} finally {
  await browser.close()
}
