// Browser viewers for the stream benchmark (cli/benches/stream.rs): one
// headless Chromium, one page per viewer, each on its own node's player
// page for a live channel, for `secs` seconds. Argument: JSON
// {viewers: [{url, token}], channel, secs}. Prints one JSON line per
// viewer: {startup_ms, latency: [samples, s], stalls, frames, dropped,
// played_s, error}.

import { chromium } from 'playwright-core'

const cfg = JSON.parse(process.argv[2])
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required', '--disable-background-timer-throttling',
    '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows']
})
try {
  const watch = async ({ url, token }) => {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${url}watch/stream/${cfg.channel}`)
    await page.fill('#token', token)
    await page.click('button[type=submit]')
    await page.waitForURL(`**/watch/stream/${cfg.channel}`)
    const result = { startup_ms: null, latency: [], stalls: 0, frames: 0, dropped: 0, played_s: 0, error: null }
    const start = await page.evaluate(() => document.querySelector('video').currentTime)
    for (let i = 0; i < cfg.secs; i++) {
      await sleep(1000)
      const s = await page.evaluate(() => ({
        p: window.player,
        t: document.querySelector('video').currentTime,
        q: (({ totalVideoFrames, droppedVideoFrames }) => ({ totalVideoFrames, droppedVideoFrames }))(document.querySelector('video').getVideoPlaybackQuality())
      }))
      if (s.p.latency !== null && s.p.firstFrameMs !== null) result.latency.push(s.p.latency)
      result.startup_ms = s.p.firstFrameMs
      result.stalls = s.p.stalls
      result.frames = s.q.totalVideoFrames
      result.dropped = s.q.droppedVideoFrames
      result.played_s = s.t - start
      result.error = s.p.error
    }
    await context.close()
    return result
  }
  const results = await Promise.all(cfg.viewers.map(watch))
  for (const r of results) console.log(JSON.stringify(r))
} finally {
  await browser.close()
}
