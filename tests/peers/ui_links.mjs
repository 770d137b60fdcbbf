// Emailed links in Debian's Chromium, used as a person would: ask for a sign-in link on the
// sign-in page, open the link the test reads from the mail sink, press the button; then the
// same for a password reset from the "forgot" page, choosing a new password; then the review
// of the passkeys that can still sign in, which the reset asks for.
// Usage: node ui_links.mjs <base-url> <screenshot-dir> <email>. Prints SENT {} when a mail
// should be on its way and reads the link (one line) from stdin; ends with RESULT or FAIL.
import { launchBrowser, stdinLines } from './browser.mjs'

const [, , base, shots, email] = process.argv
setTimeout(() => { console.log('FAIL {"error":"watchdog: 120 s"}'); process.exit(2) }, 120000).unref()
const say = (tag, obj) => console.log(`${tag} ${JSON.stringify(obj)}`)
const nextLine = stdinLines()

const browser = await launchBrowser()
const result = { errors: [] }
let page
try {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 800 } })
  page = await ctx.newPage()
  page.on('pageerror', (e) => result.errors.push(String(e)))
  // Every POST the link page makes, with the Origin the browser itself set.
  const origins = []
  page.on('request', (r) => { if (r.method() === 'POST' && r.url().includes('/auth/link')) origins.push(r.allHeaders().then((h) => h.origin ?? null)) })

  // A sign-in link, asked for on the sign-in page.
  await page.goto(base + '/signin')
  await page.waitForSelector('#link-email')
  await page.fill('#link-email', email)
  await page.click('#link-submit')
  await page.waitForSelector('text=a sign-in link is on its way')
  say('SENT', { purpose: 'sign_in' })
  const link = await nextLine()
  await page.goto(link)
  await page.screenshot({ path: `${shots}/link-sign-in.png` })
  await page.click('button[type=submit]')
  await page.waitForSelector('text=Sign out', { timeout: 15000 })
  result.signed_in_at = new URL(page.url()).pathname
  result.me = await page.evaluate(async () => (await fetch('/api/v1/me')).json())

  // Signed out, a password reset from the "forgot" page.
  await page.click('text=Sign out')
  await page.waitForSelector('text=Sign in')
  await page.goto(base + '/forgot')
  await page.waitForSelector('#forgot-submit')
  await page.fill('#forgot #email', email)
  await page.click('#forgot-submit')
  await page.waitForSelector('#forgot .notice', { timeout: 10000 })
  say('SENT', { purpose: 'reset_password' })
  const reset = await nextLine()
  await page.goto(reset)
  await page.fill('input[name=new_password]', 'a brand new passphrase')
  await page.screenshot({ path: `${shots}/link-reset.png` })
  await page.click('button[type=submit]')
  await page.waitForSelector('text=Sign out', { timeout: 15000 })
  result.reset_signed_in = true
  result.origins = await Promise.all(origins)

  // After the reset, the page asks about what can still sign in (the test gave the account
  // two passkeys): remove one as a person who does not recognise it would, keep the other.
  await page.waitForSelector('#sign-in-review li.review-passkey', { timeout: 15000 })
  await page.screenshot({ path: `${shots}/review.png` })
  result.review_heading = (await page.textContent('#sign-in-review h2')).trim()
  result.review_listed = await page.$$eval('#sign-in-review li.review-passkey', (l) => l.map((e) => e.dataset.name).sort())
  await page.click('#sign-in-review li.review-passkey[data-name="unknown"] button')
  await page.waitForSelector('#sign-in-review li.review-passkey[data-name="unknown"]', { state: 'detached', timeout: 15000 })
  await page.click('#review-done')
  await page.waitForSelector('#sign-in-review', { state: 'detached', timeout: 15000 })
  await page.reload()
  await page.waitForSelector('text=Sign out', { timeout: 15000 })
  result.review_after_reload = await page.$('#sign-in-review') !== null
  result.passkeys_left = await page.evaluate(async () => (await (await fetch('/api/v1/me/passkeys')).json()).map((k) => k.name))
  say('RESULT', result)
} catch (e) {
  if (page) await page.screenshot({ path: `${shots}/link-failed.png` }).catch(() => {})
  result.error = String(e && e.stack || e)
  result.page = page ? await page.content().catch(() => '') : ''
  say('FAIL', result)
} finally {
  await browser.close()
}
