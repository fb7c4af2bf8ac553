// Plays a live channel and a video in the node's player page, in Debian's
// Chromium (headless) with playwright-core, as a member would: opens the
// channel's link (logging in on the way), watches it for 20 s, checks a
// channel of opaque bytes says why it cannot play, and plays a video with
// two seeks. Run by interop-tests/tests/scenarios/player.rs with one JSON
// argument: {url, token, live, opaque, vod, out}. Prints one `ok:` line
// per step and one `figures:` line of JSON; exits non-zero on the first
// failure.

import { chromium } from 'playwright-core'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

const cfg = JSON.parse(process.argv[2])
mkdirSync(cfg.out, { recursive: true })
const step = (what) => console.log(`ok: ${what}`)
const check = (cond, what) => { if (!cond) throw new Error(`failed: ${what}`) }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required']
})
const figures = {}
let page = null
try {
  page = await browser.newPage({ viewport: { width: 1000, height: 800 } })
  page.on('console', (m) => console.log(`console: ${m.text()}`))
  page.setDefaultTimeout(20000)
  const shot = (name) => page.screenshot({ path: join(cfg.out, `${name}.png`) })
  const errors = []
  page.on('pageerror', (e) => errors.push(e.message))

  // A link to the channel: the login page first, then the player.
  await page.goto(`${cfg.url}watch/stream/${cfg.live}`)
  await page.fill('#token', cfg.token)
  await page.click('button[type=submit]')
  await page.waitForURL(`**/watch/stream/${cfg.live}`)
  step('the channel link went through the login page to the player')

  // Live: the first frame, then 20 s of playback.
  await page.waitForFunction(() => window.player && window.player.firstFrameMs !== null, null, { timeout: 20000 })
  const startup = await page.evaluate(() => window.player.firstFrameMs)
  figures.live_startup_ms = Math.round(startup)
  const sample = () => page.evaluate(() => ({
    t: document.querySelector('video').currentTime,
    frames: document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames,
    dropped: document.querySelector('video').getVideoPlaybackQuality().droppedVideoFrames,
    latency: window.player.latency,
    stalls: window.player.stalls,
    error: window.player.error,
    facts: document.querySelector('#facts').textContent,
    title: document.querySelector('#title').textContent
  }))
  const first = await sample()
  const latencies = []
  let last = first
  for (let i = 0; i < 20; i++) {
    await sleep(1000)
    last = await sample()
    check(last.error === null, `no media error (${last.error})`)
    if (last.latency !== null) latencies.push(last.latency)
  }
  await shot('player-live')
  check(last.t - first.t >= 15, `the video advanced ${(last.t - first.t).toFixed(1)} s in 20 s`)
  check(last.frames - first.frames >= 100, `frames were shown (${last.frames - first.frames})`)
  check(last.title === 'camera', `the channel's name is shown (${last.title})`)
  check(/viewer/.test(last.facts) && /continuity/.test(last.facts), `viewers and continuity are shown (${last.facts})`)
  latencies.sort((a, b) => a - b)
  figures.live_latency_p50_s = latencies.length ? latencies[Math.floor(latencies.length / 2)] : null
  figures.live_latency_max_s = latencies.length ? latencies[latencies.length - 1] : null
  figures.live_stalls = last.stalls
  figures.live_frames = last.frames - first.frames
  figures.live_dropped_frames = last.dropped
  step(`live: ${(last.t - first.t).toFixed(1)} s played in 20 s, first frame after ${figures.live_startup_ms} ms`)

  // The node restarts under the open page: the page reconnects by itself.
  const before = await page.evaluate(() => ({ reconnects: window.player.reconnects, t: document.querySelector('video').currentTime }))
  console.log('restart: now')
  await page.waitForFunction((r) => window.player.reconnects > r, before.reconnects, { timeout: 30000 })
  const restarted = Date.now()
  await page.waitForFunction((t) => window.player.state === 'playing' && document.querySelector('video').currentTime > t + 3, before.t, { timeout: 60000 })
  figures.back_after_restart_s = (Date.now() - restarted) / 1000
  await shot('player-after-restart')
  step(`the page played again ${figures.back_after_restart_s.toFixed(1)} s after its node came back`)

  // A channel of opaque bytes: the page says why.
  await page.goto(`${cfg.url}watch/stream/${cfg.opaque}`)
  await page.waitForSelector('#message.error:has-text("not MPEG-TS")')
  await shot('player-opaque')
  // A malformed video id: one clear line, no retrying.
  await page.goto(`${cfg.url}watch/vod/not-a-video`)
  await page.waitForFunction(() => window.player.state === 'failed')
  const said = await page.textContent('#message')
  check(/video id/i.test(said), `a malformed id is named (${said})`)
  step('a channel that is not MPEG-TS says so, and so does a malformed video id')

  // A video: plays from the start, then two seeks.
  await page.goto(`${cfg.url}watch/vod/${cfg.vod}`)
  await page.waitForFunction(() => window.player.firstFrameMs !== null && document.querySelector('video').currentTime > 0.5, null, { timeout: 20000 })
  figures.vod_startup_ms = Math.round(await page.evaluate(() => window.player.firstFrameMs))
  const seek = async (to) => page.evaluate(async (to) => {
    const v = document.querySelector('video')
    const start = performance.now()
    v.currentTime = to
    await new Promise((resolve) => v.addEventListener('seeked', resolve, { once: true }))
    const frames = v.getVideoPlaybackQuality().totalVideoFrames
    while (v.getVideoPlaybackQuality().totalVideoFrames < frames + 5 || v.currentTime < to + 0.1) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      if (performance.now() - start > 10000) break
    }
    return { ms: performance.now() - start, at: v.currentTime, error: window.player.error }
  }, to)
  const twoSeeks = async (tag) => {
    for (const to of [7, 2]) {
      const s = await seek(to)
      check(s.error === null, `no error after seeking (${s.error})`)
      check(s.at >= to && s.at < to + 3, `playing at ${s.at.toFixed(1)} s after a seek to ${to} s`)
      figures[`${tag}_seek_to_${to}s_ms`] = Math.round(s.ms)
    }
  }
  await twoSeeks('vod')
  await shot('player-vod')
  step(`video: first frame after ${figures.vod_startup_ms} ms; seeks took ${figures.vod_seek_to_7s_ms} and ${figures.vod_seek_to_2s_ms} ms`)

  // An MP4 video: the browser plays the node's URL itself.
  await page.goto(`${cfg.url}watch/vod/${cfg.mp4}`)
  await page.waitForFunction(() => window.player.firstFrameMs !== null && document.querySelector('video').currentTime > 0.5, null, { timeout: 20000 })
  figures.mp4_startup_ms = Math.round(await page.evaluate(() => window.player.firstFrameMs))
  await page.waitForSelector('#title:has-text("Test card")')
  await twoSeeks('mp4')
  await shot('player-mp4')
  step(`MP4 video: first frame after ${figures.mp4_startup_ms} ms; seeks took ${figures.mp4_seek_to_7s_ms} and ${figures.mp4_seek_to_2s_ms} ms`)
  check(errors.length === 0, `no script error (${errors.join('; ')})`)
} catch (e) {
  // What the page knew, for the failure's report.
  const state = await page?.evaluate(() => JSON.stringify({ player: window.player, message: document.querySelector('#message')?.textContent, time: document.querySelector('video')?.currentTime, buffered: document.querySelector('video')?.buffered.length })).catch(() => null)
  console.log(`page state: ${state}`)
  await page?.screenshot({ path: join(cfg.out, 'player-failed.png') }).catch(() => {})
  throw e
} finally {
  console.log(`figures: ${JSON.stringify(figures)}`)
  await browser.close()
}
