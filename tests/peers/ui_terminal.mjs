// A real ttyd in a container (the built-in terminal image), through the edge in Chromium:
// the page loads, and over its WebSocket (ttyd's protocol, from the page) typed input is
// echoed and $TTYD_USER is the person the edge says.
// args: JSON {main, service, member: {login, password}, shots}
import { launchBrowser } from './browser.mjs'

const args = JSON.parse(process.argv[2])
const out = (tag, v) => console.log(`${tag} ${JSON.stringify(v)}`)
const browser = await launchBrowser()
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 600 } })
  const r = await page.request.post(args.main + '/api/v1/auth/login', { headers: { Origin: args.main }, data: args.member })
  if (!r.ok()) throw new Error(`login: ${r.status()}`)
  await page.goto(args.service + '/')
  await page.waitForSelector('.xterm', { timeout: 30000 })
  // The page's own terminal: a person types into it.
  await page.click('.xterm')
  await page.keyboard.type('echo typed-by-$TTYD_USER\n')
  await page.waitForTimeout(500)
  await page.screenshot({ path: `${args.shots}/terminal.png` })
  // ttyd's protocol from the page: '0' + input up, '0' + output down.
  const seen = await page.evaluate(() => new Promise((resolve, reject) => {
    const ws = new WebSocket(location.href.replace(/^http/, 'ws').replace(/\/?$/, '/ws'), ['tty'])
    ws.binaryType = 'arraybuffer'
    const enc = new TextEncoder()
    const dec = new TextDecoder()
    let text = ''
    const timer = setTimeout(() => reject(new Error('no answer: ' + JSON.stringify(text))), 20000)
    ws.onopen = () => {
      ws.send(enc.encode(JSON.stringify({ AuthToken: '', columns: 80, rows: 24 })))
      ws.send(enc.encode('0echo "user=[$TTYD_USER]" "sum=$((6*7))"\r'))
    }
    ws.onmessage = (m) => {
      const b = new Uint8Array(m.data)
      if (b[0] === 48) text += dec.decode(b.slice(1))
      if (/user=\[[^\]]*\] sum=42/.test(text)) { clearTimeout(timer); ws.close(); resolve(text) }
    }
    ws.onerror = () => { clearTimeout(timer); reject(new Error('websocket error')) }
  }))
  const m = /user=\[([^\]]*)\] sum=42/.exec(seen)
  out('RESULT', { user: m && m[1], echoed: seen.includes('echo "user=') })
} catch (e) {
  out('FAIL', { error: String(e && e.stack || e) })
} finally {
  await browser.close()
}
