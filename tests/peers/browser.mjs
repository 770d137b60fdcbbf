// What the Chromium scripts share: the browser as every test starts it (Debian's Chromium,
// headless, no background traffic), and the lines the Rust test writes to the script's stdin.
import { chromium } from 'playwright-core'
import readline from 'node:readline'

// Every page of every context is watched for Content-Security-Policy refusals: one means the
// page needs something our policy forbids, and the script stops with it (exit code 3).
export async function launchBrowser(extraArgs = []) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', ...extraArgs],
  })
  // The page reports each refusal (the DOM's securitypolicyviolation event) on its console.
  const report = () => document.addEventListener('securitypolicyviolation', (e) =>
    console.error(`csp-refusal: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`))
  // Container services are other people's apps: their own policies are theirs to keep.
  const watch = (page) => page.on('console', (m) => {
    if (m.text().startsWith('csp-refusal:') && !new URL(page.url()).hostname.includes('.containers.')) {
      process.stderr.write(`Content-Security-Policy refusal on ${page.url()}: ${m.text()}\n`)
      process.exit(3)
    }
  })
  const newContext = browser.newContext.bind(browser)
  browser.newContext = async (...args) => {
    const ctx = await newContext(...args)
    await ctx.addInitScript(report)
    ctx.on('page', watch)
    return ctx
  }
  browser.newPage = async (...args) => (await browser.newContext(...args)).newPage()
  return browser
}

// The next line from the test, in order (lines that come before they are asked for wait).
export function stdinLines() {
  const rl = readline.createInterface({ input: process.stdin })
  const lines = []
  let waiter = null
  rl.on('line', (l) => { if (waiter) { const w = waiter; waiter = null; w(l) } else lines.push(l) })
  return () => new Promise((res) => { if (lines.length) res(lines.shift()); else waiter = res })
}
