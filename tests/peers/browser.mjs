// What the Chromium scripts share: the browser as every test starts it (Debian's Chromium,
// headless, no background traffic), and the lines the Rust test writes to the script's stdin.
import { chromium } from 'playwright-core'
import readline from 'node:readline'

export const launchBrowser = () => chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
})

// The next line from the test, in order (lines that come before they are asked for wait).
export function stdinLines() {
  const rl = readline.createInterface({ input: process.stdin })
  const lines = []
  let waiter = null
  rl.on('line', (l) => { if (waiter) { const w = waiter; waiter = null; w(l) } else lines.push(l) })
  return () => new Promise((res) => { if (lines.length) res(lines.shift()); else waiter = res })
}
