// Drives Debian's Chromium through playwright-core against a running Demiurge.
// Usage: node ui_shell.mjs <base-url> <screenshot-dir>
// Talks to the Rust test over stdio: prints PHASE lines, waits for "stopped" and "restarted".
import { launchBrowser, stdinLines } from './browser.mjs'

const [, , base, shots] = process.argv
// Never outlive the test: give up after 90 s whatever happens.
setTimeout(() => { console.log('FAIL {"error":"watchdog: 90 s"}'); process.exit(2) }, 90000).unref()
const nextLine = stdinLines()
const say = (tag, obj) => console.log(`${tag} ${JSON.stringify(obj)}`)

const browser = await launchBrowser()
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } })
  const errors = []
  page.on('pageerror', (e) => errors.push(String(e)))
  await page.goto(base + '/')
  await page.waitForSelector('#subsystems tr[data-subsystem="vpn"][data-state="running"]', { timeout: 30000 })
  const rows = await page.$$eval('#subsystems tbody tr', (rs) => rs.map((r) => [r.dataset.subsystem, r.dataset.state]))
  // Nothing internal on a page anyone may open: no database path, no listening address.
  const text = await page.textContent('body')
  const leaks = (text.match(/demiurge\.db|127\.0\.0\.1:\d+|\/tmp\/\S+|boot [0-9a-f]{6,}/g) || [])
  const boot = await page.getAttribute('#boot-id', 'data-boot')
  const title = (await page.textContent('#instance-name')).trim()
  const overall = (await page.textContent('#overall')).trim()
  const live = await page.getAttribute('html', 'data-live')
  await page.screenshot({ path: `${shots}/shell.png`, fullPage: true })
  say('PHASE1', { rows, boot, title, overall, live, errors, leaks })

  if ((await nextLine()) !== 'stopped') throw new Error('expected "stopped"')
  await page.waitForSelector('html[data-live="reconnecting"]', { timeout: 15000 })
  await page.waitForSelector('#reconnect-banner', { timeout: 5000 })
  await page.screenshot({ path: `${shots}/reconnecting.png`, fullPage: true })
  say('DOWN', { banner: (await page.textContent('#reconnect-banner')).trim() })

  if ((await nextLine()) !== 'restarted') throw new Error('expected "restarted"')
  await page.waitForFunction((b) => {
    const e = document.querySelector('#boot-id')
    return e && e.dataset.boot && e.dataset.boot !== b
  }, boot, { timeout: 30000 })
  await page.waitForSelector('#subsystems tr[data-subsystem="vpn"][data-state="running"]', { timeout: 30000 })
  const boot2 = await page.getAttribute('#boot-id', 'data-boot')
  const live2 = await page.getAttribute('html', 'data-live')
  await page.screenshot({ path: `${shots}/reconnected.png`, fullPage: true })
  say('PHASE2', { boot: boot2, live: live2, errors })
} catch (e) {
  say('FAIL', { error: String(e) })
  process.exitCode = 1
} finally {
  await browser.close()
}
process.exit(process.exitCode ?? 0)
