// A container service through the edge and its guard, as people open it in Chromium.
// args: JSON {main, service, offline_service, member: {login, password}, viewer: {...},
//             outsider: {...}, shots}
// Prints PHASE lines and a RESULT; waits for a line from the test before the last step.
import { launchBrowser, stdinLines } from './browser.mjs'

const args = JSON.parse(process.argv[2])
const next = stdinLines()
const out = (tag, v) => console.log(`${tag} ${JSON.stringify(v)}`)
const result = {}
const browser = await launchBrowser()
try {
  // Anyone who is not signed in is sent to sign in on the main domain.
  const anon = await browser.newPage()
  await anon.goto(args.service)
  await anon.waitForURL(/\/signin/, { timeout: 15000 })
  result.anonymous_url = anon.url()

  // A project member opens the service URL, signs in on the way, and lands on the app.
  const page = await browser.newPage()
  await page.goto(args.service)
  await page.waitForURL(/\/signin/, { timeout: 15000 })
  await page.waitForSelector('#sign-in-submit')
  await page.fill('#login', args.member.login)
  await page.fill('#password', args.member.password)
  await page.click('#sign-in-submit')
  await page.waitForURL((u) => u.href.startsWith(args.service), { timeout: 20000 })
  const seen = JSON.parse(await page.textContent('body'))
  result.member_headers = seen.headers
  result.member_path = seen.path
  await page.screenshot({ path: `${args.shots}/service.png` })
  // A header the client sends never reaches the app; nor do the edge's cookies.
  result.forged = await page.evaluate(async () => {
    const r = await fetch('/forged?x=1', { headers: { 'X-Forwarded-User': 'mallory', 'X-Forwarded-Email': 'm@evil.test' } })
    return (await r.json()).headers
  })
  result.document_cookie = await page.evaluate(() => document.cookie)
  // A WebSocket from another site is refused before it reaches the app.
  out('PHASE', { step: 'member' })

  // Someone outside the project, and a viewer (no `open` permission), are refused.
  for (const who of ['outsider', 'viewer']) {
    const p = await browser.newPage()
    const r = await p.request.post(args.main + '/api/v1/auth/login', { headers: { Origin: args.main }, data: args[who] })
    if (!r.ok()) throw new Error(`${who} login: ${r.status()}`)
    const resp = await p.goto(args.service)
    result[`${who}_status`] = resp.status()
    result[`${who}_text`] = (await p.textContent('h1')).trim()
    await p.screenshot({ path: `${args.shots}/${who}.png` })
  }
  out('PHASE', { step: 'refused' })

  // The test stops the agent: the member's URL shows the offline page.
  await next()
  const resp = await page.goto(args.service)
  result.offline_status = resp.status()
  result.offline_text = (await page.textContent('h1')).trim()
  await page.screenshot({ path: `${args.shots}/offline.png` })
  out('RESULT', result)
} catch (e) {
  out('FAIL', { error: String(e && e.stack || e) })
} finally {
  await browser.close()
}
