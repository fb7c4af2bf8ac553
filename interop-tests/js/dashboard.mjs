// Drives a node's web dashboard in Debian's Chromium (headless) with
// playwright-core, as a member would: logs in with the API token, opens
// every panel, announces and withdraws a service, uploads a file and
// downloads it back twice (from the upload's link and by capability), and
// admits a member that asked to join a sync folder. Screenshots of every
// step go to `out`. Run by interop-tests/tests/scenarios/dashboard.rs with
// one JSON argument: {url, token, out, upload, pending, folder, video}.
// Prints one line per step; exits non-zero on the first failure.

import { chromium } from 'playwright-core'
import { readFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'

const cfg = JSON.parse(process.argv[2])
mkdirSync(cfg.out, { recursive: true })
const step = (what) => console.log(`ok: ${what}`)
const check = (cond, what) => { if (!cond) throw new Error(`failed: ${what}`) }
const T = 20000

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync']
})
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  page.setDefaultTimeout(T)
  const shot = (name) => page.screenshot({ path: join(cfg.out, `${name}.png`), fullPage: true })

  // Login: a wrong token is refused, the right one gives the dashboard.
  await page.goto(cfg.url)
  await page.fill('#token', 'not-the-token')
  await page.click('button[type=submit]')
  await page.waitForSelector('text=That is not this node\'s API token.')
  await shot('01-login-refused')
  await page.fill('#token', cfg.token)
  await page.click('button[type=submit]')
  await page.waitForSelector('body[data-loaded=yes]')
  step('logged in; the overview arrived by server-sent events')
  const cookies = await context.cookies()
  const session = cookies.find((c) => c.name === 'cloudy_session')
  check(session && session.httpOnly && session.sameSite === 'Strict', 'an HttpOnly, SameSite=Strict session cookie')

  // Community: members, states and the map.
  await page.goto(`${cfg.url}#community`)
  await page.waitForSelector('#peers td.state-alive')
  const alive = await page.locator('#peers td.state-alive').count()
  check(alive >= 2, `two alive members listed (${alive})`)
  check(await page.locator('#map circle').count() === alive + 1, 'the map shows this node and every member')
  await shot('02-community')
  step(`community: ${alive} alive members`)

  // Services: announce, see it live, withdraw.
  await page.goto(`${cfg.url}#services`)
  await page.waitForSelector('#internal td:text-is("storage")')
  check(await page.locator('#directory td:text-is("storage")').count() === 0, "the node's own storage service is listed apart from announced ones")
  await page.fill('#announce input[name=name]', 'wiki')
  await page.fill('#announce input[name=meta]', 'port=8080 path=/wiki')
  await page.click('#announce button')
  await page.waitForSelector('#directory button[data-withdraw="wiki"]')
  await shot('03-services')
  await page.click('#directory button[data-withdraw="wiki"]')
  await page.waitForSelector('#directory button[data-withdraw="wiki"]', { state: 'detached' })
  step('services: announced and withdrew wiki')

  // Storage: upload with the file picker, then download twice.
  await page.goto(`${cfg.url}#storage`)
  await page.waitForSelector('#store-use:has-text("stores")')
  await page.setInputFiles('#file', cfg.upload)
  const cap = (await page.locator('.upload code.cap').first().textContent({ timeout: 60000 })).trim()
  check(cap.startsWith('cloudy:'), `a capability after the upload (${cap})`)
  check(await page.locator('.upload progress').first().getAttribute('value') === '100', 'the progress bar reached 100')
  await shot('04-storage-uploaded')
  const original = readFileSync(cfg.upload)
  const fetch = async (click, name) => {
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60000 }), click()])
    const path = join(cfg.out, name)
    await download.saveAs(path)
    check(Buffer.compare(readFileSync(path), original) === 0, `${name} is the uploaded file, byte for byte`)
  }
  await fetch(() => page.click('.upload a[download]'), 'downloaded-from-link.bin')
  await page.fill('#download input[name=cap]', cap)
  await page.fill('#download input[name=name]', 'by-capability.bin')
  await page.click('#download button')
  await fetch(() => page.click('#download-file'), 'downloaded-by-capability.bin')
  await page.fill('#download input[name=cap]', 'not-a-capability')
  await page.click('#download button')
  await page.waitForSelector('#message.error:has-text("A capability starts with cloudy:")')
  await page.waitForSelector('#maintained td.health-unchecked, #maintained td.health-healthy')
  // Who gives and who takes: the other members now store shares for this node.
  await page.click('#usage-refresh')
  await page.waitForFunction(() => [...document.querySelectorAll('#usage td.there')].some((td) => /^[1-9][0-9.]* [KMG]?B$/.test(td.textContent)), null, { timeout: 20000 })
  check(/keeps at most/.test(await page.locator('#quota').textContent()), 'the quota this node keeps per member is shown')
  await shot('05-storage')
  step(`storage: uploaded ${original.length} bytes and downloaded them back twice`)

  // Folders: a new folder by name, a file uploaded into it, downloaded,
  // renamed and deleted, and a read-only link to share.
  await page.fill('#new-alias input[name=name]', 'photos')
  await page.click('#new-alias button')
  await page.waitForSelector('#aliases button[data-alias="photos"]')
  await page.waitForSelector('#browser:not([hidden])')
  await page.setInputFiles('#dir-file', cfg.upload)
  const uploaded = cfg.upload.split('/').pop()
  await page.waitForSelector(`#dir tr[data-entry="${uploaded}"]`, { timeout: 60000 })
  await fetch(() => page.click(`#dir tr[data-entry="${uploaded}"] a[download]`), 'downloaded-from-folder.bin')
  page.once('dialog', (d) => d.accept('renamed.jpg'))
  await page.click(`#dir button[data-rename="${uploaded}"]`)
  await page.waitForSelector('#dir tr[data-entry="renamed.jpg"]')
  await page.click('#dir-share')
  const ro = (await page.locator('#dir-shared code.cap').textContent()).trim()
  check(ro.startsWith('cloudy:dir-read:'), `a read-only capability to share (${ro})`)
  await shot('05b-folder')
  page.once('dialog', (d) => d.accept())
  await page.click('#dir button[data-delete="renamed.jpg"]')
  await page.waitForSelector('#dir tr[data-entry="renamed.jpg"]', { state: 'detached' })
  step('folders: made photos, uploaded into it, downloaded, renamed, shared read-only and deleted')

  // Sync: the pending member is admitted.
  await page.goto(`${cfg.url}#sync`)
  const admit = page.locator(`button[data-admit][data-peer="${cfg.pending}"]`)
  await admit.waitFor()
  await shot('06-sync-pending')
  await admit.click()
  await page.waitForSelector(`button[data-peer="${cfg.pending}"]`, { state: 'detached' })
  await page.waitForSelector(`.folder[data-folder="${cfg.folder}"] li[title="${cfg.pending}"]`)
  await shot('07-sync-admitted')
  step('sync: admitted the member that asked to join')

  // Streams: the video is listed with a play link.
  await page.goto(`${cfg.url}#streams`)
  const play = page.locator(`#videos a[href="/vod/${cfg.video}"]`)
  await play.waitFor()
  const response = await page.request.get(`${cfg.url}vod/${cfg.video}`, { headers: { range: 'bytes=0-99' } })
  check(response.status() === 206, `the play link serves the video (${response.status()})`)
  await shot('08-streams')
  step('streams: the video is listed and its play link works')

  // Log out: the dashboard is gone until the token is given again.
  await page.goto(cfg.url)
  await page.click('#logout')
  await page.waitForSelector('#token')
  step('logged out')
} finally {
  await browser.close()
}
