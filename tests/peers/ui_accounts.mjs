// The account pages in Debian's Chromium (playwright-core), with its WebAuthn virtual
// authenticator: sign up -> enrol TOTP -> add a passkey -> sign out -> sign in with password
// and TOTP -> sign out -> sign in with the passkey alone. Screenshots of each page.
// Usage: node ui_accounts.mjs <base-url> <screenshot-dir>. Prints RESULT {...} or FAIL {...}.
import { launchBrowser } from './browser.mjs'
import crypto from 'node:crypto'

const [, , base, shots, setupCode] = process.argv
setTimeout(() => { console.log('FAIL {"error":"watchdog: 120 s"}'); process.exit(2) }, 120000).unref()
const say = (tag, obj) => console.log(`${tag} ${JSON.stringify(obj)}`)

// RFC 6238 with SHA-1, 6 digits, 30 s: what any authenticator app computes.
function base32(s) {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = ''
  for (const ch of s.replace(/=+$/, '').toUpperCase()) bits += abc.indexOf(ch).toString(2).padStart(5, '0')
  const out = []
  for (let i = 0; i + 8 <= bits.length; i += 8) out.push(parseInt(bits.slice(i, i + 8), 2))
  return Buffer.from(out)
}
function totp(secret, stepOffset = 0) {
  const step = Math.floor(Date.now() / 1000 / 30) + stepOffset
  const msg = Buffer.alloc(8)
  msg.writeBigUInt64BE(BigInt(step))
  const h = crypto.createHmac('sha1', base32(secret)).update(msg).digest()
  const o = h[h.length - 1] & 0xf
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3]
  return String(n % 1000000).padStart(6, '0')
}

const browser = await launchBrowser()
const result = { errors: [] }
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } })
  page.on('pageerror', (e) => result.errors.push(String(e)))
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('WebAuthn.enable')
  await cdp.send('WebAuthn.addVirtualAuthenticator', { options: {
    protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true,
    isUserVerified: true, automaticPresenceSimulation: true } })
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true })
  const whoami = async () => { await page.waitForSelector('#whoami', { timeout: 15000 }); return (await page.textContent('#whoami')).trim() }

  // The server has no account yet: the sign-up page asks for the setup code from its log.
  // Without it the first account is refused; then with it (and a wrong password first: the
  // error is shown).
  await page.goto(base + '/signup')
  await page.waitForSelector('#setup-code')
  result.setup_heading = (await page.textContent('#sign-up h2')).trim()
  await page.fill('#username', 'uitest')
  await page.fill('#email', 'uitest@example.test')
  await page.fill('#password', 'a long enough passphrase')
  await page.fill('#setup-code', 'AAAA-BBBB-CCCC-DDDD-EEEE')
  await page.click('#sign-up-submit')
  await page.waitForSelector('#sign-up .notice.error')
  result.setup_refused = (await page.textContent('#sign-up .notice.error')).trim()
  await shot('setup')
  await page.fill('#setup-code', setupCode)
  await page.waitForSelector('#sign-up-submit')
  await page.fill('#username', 'uitest')
  await page.fill('#email', 'uitest@example.test')
  await page.fill('#display-name', 'UI Tester')
  await page.fill('#password', 'short')
  await page.click('#sign-up-submit')
  // The refusal above is still on the page until this answer replaces it: wait for a new text.
  await page.waitForFunction((before) => {
    const e = document.querySelector('#sign-up .notice.error')
    return e && e.textContent.trim() !== before
  }, result.setup_refused, { timeout: 15000 })
  result.signup_error = (await page.textContent('#sign-up .notice.error')).trim()
  await shot('signup')
  await page.fill('#password', 'a long enough passphrase')
  await page.click('#sign-up-submit')
  await page.waitForURL(base + '/')
  result.after_signup = await whoami()

  // Settings: enrol TOTP with the code computed from the shown key.
  await page.goto(base + '/settings')
  await page.waitForSelector('#totp-begin')
  await shot('settings')
  await page.click('#totp-begin')
  await page.waitForSelector('#totp-secret')
  const secret = (await page.textContent('#totp-secret')).trim()
  result.qr = await page.$eval('#totp-enrol .qr', (e) => !!e.querySelector('svg'))
  await shot('totp-enrol')
  await page.fill('#totp-code', totp(secret))
  await page.click('#totp-confirm')
  await page.waitForSelector('#recovery-codes li')
  result.recovery_codes = await page.$$eval('#recovery-codes li', (l) => l.length)
  await shot('totp-on')

  // A passkey from the virtual authenticator.
  await page.fill('#passkey-name', 'Chromium')
  await page.click('#passkey-add')
  await page.waitForSelector('li.passkey[data-name="Chromium"]', { timeout: 15000 })
  await shot('passkey-added')

  // Sign out, then in with password + TOTP (the next step's code: this one was used).
  await page.click('#sign-out')
  await page.waitForURL(base + '/signin')
  await page.waitForSelector('#sign-in-submit')
  await shot('signin')
  await page.fill('#login', 'uitest')
  await page.fill('#password', 'wrong password here')
  await page.click('#sign-in-submit')
  await page.waitForSelector('#sign-in .notice.error')
  result.wrong_password = (await page.textContent('#sign-in .notice.error')).trim()
  await page.fill('#password', 'a long enough passphrase')
  await page.click('#sign-in-submit')
  await page.waitForSelector('#second-factor')
  await shot('second-factor')
  await page.fill('#code', '000000')
  await page.click('#code-submit')
  await page.waitForSelector('#second-factor .notice.error')
  result.wrong_code = (await page.textContent('#second-factor .notice.error')).trim()
  await page.fill('#code', totp(secret, 1))
  await page.click('#code-submit')
  await page.waitForURL(base + '/')
  result.after_totp = await whoami()

  // Sign out, then in with the passkey alone (discoverable credential, no username).
  await page.click('#sign-out')
  await page.waitForURL(base + '/signin')
  await page.waitForSelector('#passkey-sign-in')
  await page.click('#passkey-sign-in')
  await page.waitForURL(base + '/')
  const signedInAt = Date.now()
  result.after_passkey = await whoami()
  await page.goto(base + '/settings')
  await page.waitForSelector('#sessions li')
  result.session_text = (await page.textContent('#sessions li.session')).replace(/\s+/g, ' ').trim()
  // A new name: the profile and the header follow at once.
  await page.fill('#display-name-input', '  UI Tester Renamed ')
  await page.click('#display-name-save')
  await page.waitForFunction(() => document.querySelector('#whoami').textContent.trim() === 'UI Tester Renamed', null, { timeout: 10000 })
  result.renamed_profile = (await page.textContent('#profile-name')).trim()
  result.renamed_header = (await page.textContent('#whoami')).trim()
  await shot('settings-signed-in')

  // Once the sign-in is no longer recent (the test's window is 8 s), a new token asks to
  // confirm it is you; the password does, and the token is made.
  await page.waitForTimeout(Math.max(0, 8500 - (Date.now() - signedInAt)))
  await page.fill('#token-name', 'ci')
  await page.click('#token-create')
  await page.waitForSelector('#reauth-secret')
  result.reauth_asked = (await page.textContent('#tokens .notice.error')).trim()
  await shot('reauth')
  await page.fill('#reauth-secret', 'a long enough passphrase')
  await page.click('#reauth-submit')
  await page.waitForSelector('#reauth', { state: 'detached' })
  await page.click('#token-create')
  await page.waitForSelector('#new-token')
  result.token_after_reauth = (await page.textContent('#new-token')).trim().startsWith('dmg_pat_')

  // The forgotten-password page (signed out).
  await page.click('#sign-out')
  await page.waitForURL(base + '/signin')
  await page.goto(base + '/forgot')
  await page.fill('#email', 'uitest@example.test')
  await page.click('#forgot-submit')
  await page.waitForSelector('#forgot .notice.ok')
  result.forgot = (await page.textContent('#forgot .notice.ok')).trim()
  await shot('forgot')
  say('RESULT', result)
} catch (e) {
  result.error = String(e)
  say('FAIL', result)
  process.exitCode = 1
} finally {
  await browser.close()
}
process.exit(process.exitCode ?? 0)
