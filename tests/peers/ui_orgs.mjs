// Organizations in Debian's Chromium: an owner creates an organization and invites a second
// person by email; the second person accepts; the owner creates a project and gives the
// second person a project role, then changes roles; the second person's pages follow.
// Usage: node ui_orgs.mjs <base-url> <screenshot-dir>. Talks over stdio: prints
// `INVITE <email>` and reads back the invitation link; ends with RESULT {...} or FAIL {...}.
import { launchBrowser, stdinLines } from './browser.mjs'

const [, , base, shots, setupCode] = process.argv
setTimeout(() => { console.log('FAIL {"error":"watchdog: 120 s"}'); process.exit(2) }, 120000).unref()
const nextLine = stdinLines()
const say = (tag, obj) => console.log(`${tag} ${JSON.stringify(obj)}`)

const browser = await launchBrowser()
const result = { errors: [] }
const pages = []
async function personPage(name) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 800 } })
  const r = await ctx.request.post(base + '/api/v1/auth/signup', {
    headers: { Origin: base },
    // The first person claims the new server with its setup code (ignored afterwards).
    data: { username: name, email: `${name}@example.test`, password: 'correct horse battery', setup_code: setupCode },
  })
  if (r.status() !== 201) throw new Error(`signup ${name}: ${r.status()}`)
  const page = await ctx.newPage()
  pages.push(page)
  page.on('pageerror', (e) => result.errors.push(String(e)))
  return page
}
try {
  const owner = await personPage('uiowner')
  const shot = (page, name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true })

  // Create an organization.
  await owner.goto(base + '/orgs')
  await owner.waitForSelector('#org-create')
  await owner.fill('#org-name', 'Acme UI')
  await owner.click('#org-create')
  await owner.waitForSelector('#org-title')
  // Pages may carry a stray '?#' after a form submit; compare and navigate by path.
  const bare = (u) => u.split(/[?#]/)[0]
  const orgUrl = bare(owner.url())
  result.org_title = (await owner.textContent('#org-title')).trim()
  // The gateway panel: stopped, then started by the owner.
  await owner.waitForSelector('#gateway[data-state="stopped"]')
  await owner.click('#gateway-start')
  await owner.waitForSelector('#gateway[data-state="running"]')
  result.gateway_status = (await owner.textContent('#gateway-status')).trim()
  await shot(owner, 'org-dashboard')

  // Invite the second person by email.
  await owner.click('#org-settings-link')
  await owner.waitForSelector('#invite-submit')
  await owner.fill('#invite-email', 'uimember@example.test')
  await owner.click('#invite-submit')
  await owner.waitForSelector('#invitations li')
  await shot(owner, 'org-settings')
  say('INVITE', { email: 'uimember@example.test' })
  const link = (await nextLine()).trim()

  // The second person accepts.
  const member = await personPage('uimember')
  await member.goto(link)
  await member.waitForSelector('#invite-accept')
  result.invite_about = (await member.textContent('#invite-about')).trim()
  await shot(member, 'invite')
  await member.click('#invite-accept')
  await member.waitForSelector('#org-title')
  result.member_joined = bare(member.url()) === orgUrl
  result.member_role = await member.getAttribute('#my-org-role', 'data-role')
  result.member_role_text = (await member.textContent('#my-org-role')).trim()
  result.member_sees_projects_before = await member.$$eval('li.project', (l) => l.length)

  // The owner creates a project and makes the member a viewer of it.
  await owner.goto(orgUrl)
  await owner.waitForSelector('#project-create')
  await owner.fill('#project-name', 'Apollo')
  await owner.click('#project-create')
  await owner.waitForSelector('li.project[data-name="Apollo"]')
  // A project opens as its board; its settings are a click away.
  await owner.click('li.project[data-name="Apollo"] a')
  await owner.waitForSelector('#board[data-ready="true"]')
  await owner.click('#board-settings')
  await owner.waitForSelector('#project-member-submit')
  const projectUrl = bare(owner.url())
  await owner.fill('#project-member', 'uimember')
  await owner.selectOption('#project-member-role', 'project:viewer')
  await owner.click('#project-member-submit')
  await owner.waitForSelector('li.member[data-username="uimember"]')
  await shot(owner, 'project-settings')

  // The member sees the project, read-only.
  await member.goto(orgUrl)
  await member.waitForSelector('li.project[data-name="Apollo"]')
  await member.goto(projectUrl)
  const permsLoaded = () => member.waitForFunction(() => {
    const e = document.querySelector('#my-project-permissions')
    return e && e.dataset.permissions.includes('project:project:read') && e.textContent.startsWith('You can')
  })
  await permsLoaded()
  result.viewer_permissions = await member.getAttribute('#my-project-permissions', 'data-permissions')
  result.viewer_sentence = (await member.textContent('#my-project-permissions')).trim()
  result.viewer_can_rename = (await member.$('#project-rename')) !== null
  await shot(member, 'project-as-viewer')

  // Roles change: project editor, then organization admin; the member's pages follow.
  await owner.fill('#project-member', 'uimember')
  await owner.selectOption('#project-member-role', 'project:editor')
  await owner.click('#project-member-submit')
  await owner.waitForFunction(() => {
    const r = document.querySelector('li.member[data-username="uimember"] .role')
    return r && r.dataset.role === 'project:editor'
  })
  result.project_role_text = await owner.$eval('li.member[data-username="uimember"] .role', (r) => r.textContent.trim())
  await member.reload()
  await permsLoaded()
  result.editor_permissions = await member.getAttribute('#my-project-permissions', 'data-permissions')
  await owner.goto(orgUrl + '/settings')
  await owner.waitForSelector('select.member-role[data-username="uimember"]')
  await owner.selectOption('select.member-role[data-username="uimember"]', 'org:admin')
  await owner.waitForSelector('#org-settings .notice.ok')
  await member.goto(orgUrl)
  await member.waitForSelector('#org-title')
  await member.waitForSelector('#org-settings-link')
  await member.waitForFunction(() => document.querySelector('#my-org-role').dataset.role === 'org:admin')
  result.member_role_after = await member.getAttribute('#my-org-role', 'data-role')
  result.member_role_after_text = (await member.textContent('#my-org-role')).trim()
  await shot(member, 'org-as-admin')
  say('RESULT', result)
} catch (e) {
  result.error = String(e)
  for (const [i, p] of pages.entries()) {
    const u = p.url()
    if (u.includes('/orgs/')) {
      const api = await p.context().request.get(u.replace('/orgs/', '/api/v1/orgs/') + '/projects').catch((e) => String(e))
      result[`api-${i}`] = [u, api.text ? await api.text() : api]
    }
    await p.screenshot({ path: `${shots}/failed-${i}.png`, fullPage: true }).catch(() => {})
  }
  say('FAIL', result)
  process.exitCode = 1
} finally {
  await browser.close()
}
process.exit(process.exitCode ?? 0)
