// The admin page in Debian's Chromium: the admin opens it from the header, reads the
// diagnostics, finds an account by searching, disables it (that person's open page loses
// its session), sees the action in the audit log, and enables it again. Someone else gets
// "not found" at /admin and no link to it. The admin renames the server and closes sign-up
// (open pages follow; a visitor's sign-up page says so) and resets the other's sign-in.
// Screenshots of each step.
// Usage: node ui_admin.mjs <base-url> <screenshot-dir> <json {admin, other}>.
import { launchBrowser } from './browser.mjs'

const [, , base, shots, argsJson] = process.argv
const args = JSON.parse(argsJson)
setTimeout(() => { console.log('FAIL {"error":"watchdog: 120 s"}'); process.exit(2) }, 120000).unref()
const say = (tag, obj) => console.log(`${tag} ${JSON.stringify(obj)}`)

const browser = await launchBrowser()
const result = { errors: [] }
async function signedIn(who) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } })
  const r = await ctx.request.post(base + '/api/v1/auth/login', { headers: { Origin: base }, data: { login: who.login, password: who.password } })
  if (r.status() !== 200) throw new Error(`sign-in of ${who.login}: ${r.status()}`)
  const page = await ctx.newPage()
  page.on('pageerror', (e) => result.errors.push(String(e)))
  return page
}
try {
  const admin = await signedIn(args.admin)
  const shot = (page, name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true })
  await admin.goto(base + '/')
  await admin.click('#admin-link')
  await admin.waitForSelector('#diagnostics')
  result.url = new URL(admin.url()).pathname
  result.facts = await admin.$$eval('#diagnostics table.facts th', (ths) => ths.map((t) => t.textContent))
  result.database = await admin.textContent('#diagnostics table.facts tr:nth-child(3) td')
  result.subsystems = await admin.$$eval('#admin-subsystems li', (l) => l.length)
  result.no_acme = await admin.isVisible('#no-acme')
  await shot(admin, 'admin')

  // A test mail, and the SMTP server's answer.
  await admin.waitForFunction(() => document.querySelector('#mail-test-to').value.includes('@'))
  await admin.click('#mail-test-send')
  await admin.waitForSelector('#mail-test-answer')
  result.mail_answer = (await admin.textContent('#mail-test-answer')).trim()
  result.mail_sent = await admin.getAttribute('#mail-test-answer', 'data-sent')

  // The other person has their settings open.
  const other = await signedIn(args.other)
  await other.goto(base + '/settings')
  await other.waitForSelector('#settings')

  // Search, then disable.
  await admin.fill('#admin-user-search', args.other.login.slice(0, 3))
  await admin.waitForFunction((u) => { const rows = document.querySelectorAll('#admin-users li[data-user]'); return rows.length === 1 && rows[0].dataset.user === u }, args.other.login, { timeout: 10000 })
  const row = `#admin-users li[data-user="${args.other.login}"]`
  await admin.click(`${row} [data-action="disable"]`)
  await admin.waitForSelector(`${row} .pill.failed`)
  result.disabled_pill = (await admin.textContent(`${row} .pill.failed`)).trim()
  await shot(admin, 'admin-disabled')
  // Their page: the next load finds the session gone and asks them to sign in.
  await other.reload()
  await other.waitForURL(/\/signin/, { timeout: 15000 })
  result.other_sent_to = new URL(other.url()).pathname
  const again = await other.context().request.post(base + '/api/v1/auth/login', { headers: { Origin: base }, data: { login: args.other.login, password: args.other.password } })
  result.other_sign_in = again.status()

  // The audit log, narrowed to admin actions.
  await admin.selectOption('#audit-kind', 'admin')
  await admin.waitForSelector('#admin-audit tr[data-kind="admin.user_disabled"]')
  result.audit_kinds = await admin.$$eval('#admin-audit tr', (rows) => rows.map((r) => r.dataset.kind))
  result.audit_text = await admin.textContent('#admin-audit tr[data-kind="admin.user_disabled"]')
  await shot(admin, 'admin-audit')

  // Enabled again.
  await admin.click(`${row} [data-action="enable"]`)
  await admin.waitForSelector(`${row} [data-action="disable"]`)
  const back = await other.context().request.post(base + '/api/v1/auth/login', { headers: { Origin: base }, data: { login: args.other.login, password: args.other.password } })
  result.other_sign_in_after = back.status()

  // Settings: rename the server (every open page's header follows at once) and close
  // sign-up (a visitor's sign-up page says so).
  await other.goto(base + '/settings')
  await other.waitForSelector('#settings')
  await admin.waitForSelector('#instance-name-input')
  await admin.fill('#instance-name-input', 'Acme Team')
  await admin.click('#instance-name-save')
  await admin.waitForFunction(() => document.querySelector('#instance-name').textContent === 'Acme Team', null, { timeout: 10000 })
  await other.waitForFunction(() => document.querySelector('#instance-name').textContent === 'Acme Team', null, { timeout: 10000 })
  result.other_header_name = await other.textContent('#instance-name')
  await admin.waitForFunction(() => document.querySelector('#instance-name-origin').textContent.startsWith('Set here'), null, { timeout: 10000 })
  result.name_origin = (await admin.textContent('#instance-name-origin')).trim()
  await admin.uncheck('#open-signup')
  await admin.waitForFunction(() => document.querySelector('#open-signup-origin').textContent.startsWith('Closed'), null, { timeout: 10000 })
  await shot(admin, 'admin-settings')
  const visitorCtx = await browser.newContext({ viewport: { width: 1100, height: 900 } })
  const visitor = await visitorCtx.newPage()
  visitor.on('pageerror', (e) => result.errors.push(String(e)))
  await visitor.goto(base + '/signup')
  await visitor.waitForSelector('#signup-closed')
  result.visitor_title = await visitor.title()
  result.visitor_form = await visitor.$('#sign-up-submit') !== null
  await shot(visitor, 'signup-closed')
  await visitorCtx.close()

  // Someone else at /admin: not found, and no link in the header.
  await other.goto(base + '/admin')
  await other.waitForSelector('#admin-missing')
  result.other_admin_link = await other.$('#admin-link') !== null
  await shot(other, 'admin-not-found')

  // Reset the other person's sign-in: one click asks, the second does it.
  await admin.click(`${row} [data-action="reset-sign-in"]`)
  await admin.click(`${row} [data-action="reset-sign-in-confirm"]`)
  await admin.waitForSelector('#admin-users .notice.ok')
  result.reset_notice = (await admin.textContent('#admin-users .notice.ok')).trim()
  await other.reload()
  await other.waitForURL(/\/signin/, { timeout: 15000 })
  result.other_after_reset = new URL(other.url()).pathname
  say('RESULT', result)
} catch (e) {
  say('FAIL', { error: String(e && e.stack || e), result })
} finally {
  await browser.close()
}
