// The organization's container catalogue, in Chromium: the owner adds an image on the
// organization's settings page (a services list that is not name:port refused with a
// message), edits it; a project member picks it on a board's containers panel, and the
// container runs the entry's image; the owner deletes the entry, confirming.
// args: JSON {main, org, pid, owner: {login, password}, member: {login, password}, shots}
import { launchBrowser } from './browser.mjs'

const args = JSON.parse(process.argv[2])
const out = (tag, v) => console.log(`${tag} ${JSON.stringify(v)}`)
const result = { errors: [] }
const browser = await launchBrowser()
// Each person signs in on the sign-in page, as they would.
const signedIn = async (who) => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await ctx.newPage()
  page.on('pageerror', (e) => result.errors.push(String(e)))
  await page.goto(args.main + '/signin')
  await page.waitForSelector('#sign-in-submit')
  await page.fill('#login', who.login)
  await page.fill('#password', who.password)
  await page.click('#sign-in-submit')
  await page.waitForURL((u) => !u.pathname.startsWith('/signin'), { timeout: 15000 })
  return page
}
try {
  const owner = await signedIn(args.owner)
  await owner.goto(`${args.main}/orgs/${args.org}/settings`)
  await owner.waitForSelector('#container-image-form', { timeout: 20000 })
  result.empty = await owner.locator('#container-images-empty').count() === 1
  await owner.fill('#image-key', 'gpu-lab')
  await owner.fill('#image-title', 'GPU notebooks')
  await owner.fill('#image-ref', 'ghcr.io/team/gpu-lab:1')
  await owner.fill('#image-services', 'lab')
  await owner.fill('#image-command', 'start-notebook.sh --ip=127.0.0.1')
  await owner.click('#image-save')
  await owner.waitForSelector('#container-images .notice.error', { timeout: 10000 })
  result.bad_services = (await owner.textContent('#container-images .notice.error')).trim()
  await owner.fill('#image-services', 'lab:8888, shell:7681:terminal')
  await owner.click('#image-save')
  await owner.waitForSelector('#container-image-list tr[data-image="gpu-lab"]', { timeout: 10000 })
  // Edited: the form takes the entry, the key stays.
  await owner.click('tr[data-image="gpu-lab"] .image-edit')
  // The page answers over its LiveView socket: wait for the form to take the entry.
  await owner.waitForFunction(() => document.querySelector('#image-key')?.disabled && document.querySelector('#image-services')?.value !== '', null, { timeout: 10000 }).catch(() => {})
  result.key_locked = await owner.isDisabled('#image-key')
  result.services_shown = await owner.inputValue('#image-services')
  await owner.fill('#image-title', 'GPU notebooks (CUDA 12)')
  await owner.click('#image-save')
  await owner.waitForFunction(() => document.querySelector('tr[data-image="gpu-lab"]')?.textContent.includes('CUDA 12'), null, { timeout: 10000 })
  result.row = (await owner.textContent('tr[data-image="gpu-lab"]')).trim()
  await owner.screenshot({ path: `${args.shots}/org-images.png`, fullPage: true })

  // A member picks it on the board.
  const member = await signedIn(args.member)
  await member.goto(`${args.main}/projects/${args.pid}`)
  await member.waitForSelector('#board[data-ready="true"]', { timeout: 20000 })
  await member.click('#containers-button')
  await member.waitForSelector('#container-image option[value="gpu-lab"]', { state: 'attached', timeout: 15000 })
  result.option = (await member.textContent('#container-image option[value="gpu-lab"]')).trim()
  await member.fill('#container-name', 'Train')
  await member.selectOption('#container-image', 'gpu-lab')
  await member.click('#container-create')
  await member.waitForSelector('#container-command-text', { timeout: 15000 })
  result.command = await member.inputValue('#container-command-text')
  await member.waitForSelector('li.container', { timeout: 15000 })
  result.listed = (await member.textContent('li.container')).trim()
  result.links = await member.locator('li.container a.service-link').allTextContents()
  await member.screenshot({ path: `${args.shots}/panel-org-image.png` })

  // The owner deletes the entry, confirming; the container stays.
  await owner.click('tr[data-image="gpu-lab"] .image-delete')
  await owner.click('tr[data-image="gpu-lab"] .image-delete-confirm')
  await owner.waitForSelector('#container-images-empty', { timeout: 10000 })
  result.deleted = true
  out('RESULT', result)
} catch (e) {
  out('FAIL', { error: String(e && e.stack || e), errors: result.errors })
} finally {
  await browser.close()
}
