// The node's player page: plays a live channel (/stream/ID) or a video
// (/vod/ID) in the browser's <video>. The node serves MPEG-TS; browsers do
// not play it, so the page reads the bytes as they arrive, checks they are
// MPEG-TS with H.264 video (and AAC audio), remuxes them to fragmented MP4
// with mux.js (vendored, served by the node) and appends them to a Media
// Source. Live: it keeps within a few seconds of the live edge, jumps over
// chunks the mesh skipped, and reconnects by itself when the stream or the
// node goes away. See DESIGN/streaming.md.
'use strict'

const $ = (sel) => document.querySelector(sel)
const kind = document.body.dataset.kind
const id = document.body.dataset.id
const video = $('#video')
const media = `/${kind}/${encodeURIComponent(id)}`

// What the page measured; the browser tests read it.
const stats = window.player = {
  kind, id, state: 'starting', error: null, firstFrameMs: null, stalls: 0,
  reconnects: 0, latency: null, behindLive: null, codecs: null, segments: 0
}

function say (text, error = false) {
  const m = $('#message')
  m.textContent = text
  m.className = error ? 'error' : ''
}

function fail (why) {
  stats.state = 'failed'
  stats.error = why
  say(why, true)
}

$('#media-url').textContent = `${location.origin}${media}`

// ---- MPEG-TS: program tables, to know what the stream carries ----------

const TS = 188
const VIDEO_TYPES = { 0x1b: 'H.264', 0x24: 'H.265/HEVC', 0x02: 'MPEG-2 video', 0x01: 'MPEG-1 video', 0x10: 'MPEG-4 part 2 video' }
const AUDIO_TYPES = { 0x0f: 'AAC', 0x03: 'MPEG-1 audio (MP2/MP3)', 0x04: 'MPEG-2 audio', 0x81: 'AC-3', 0x11: 'AAC (LATM)' }

// The offset of the first packet boundary (three sync bytes 188 apart), or -1.
function syncOffset (b) {
  for (let i = 0; i < TS && i + 2 * TS < b.length; i++) {
    if (b[i] === 0x47 && b[i + TS] === 0x47 && b[i + 2 * TS] === 0x47) return i
  }
  return -1
}

function payloadStart (b, p) {
  const adaptation = (b[p + 3] >> 4) & 3
  let off = p + 4
  if (adaptation & 2) off += 1 + b[p + 4]
  return off
}

// The program's streams ({pid, type}) from the PAT and PMT in `b` (whole
// packets from offset `start`), or null while the PMT was not seen.
function programStreams (b, start) {
  let pmtPid = null
  for (let p = start; p + TS <= b.length; p += TS) {
    const pid = ((b[p + 1] & 0x1f) << 8) | b[p + 2]
    if (!(b[p + 1] & 0x40)) continue
    const off = payloadStart(b, p)
    const t = off + 1 + b[off]
    if (pid === 0 && pmtPid === null) {
      const end = t + 3 + (((b[t + 1] & 0x0f) << 8) | b[t + 2]) - 4
      for (let e = t + 8; e + 4 <= end; e += 4) {
        if (((b[e] << 8) | b[e + 1]) !== 0) { pmtPid = ((b[e + 2] & 0x1f) << 8) | b[e + 3]; break }
      }
    } else if (pmtPid !== null && pid === pmtPid && b[t] === 0x02) {
      const end = t + 3 + (((b[t + 1] & 0x0f) << 8) | b[t + 2]) - 4
      const streams = []
      for (let s = t + 12 + (((b[t + 10] & 0x0f) << 8) | b[t + 11]); s + 5 <= end; s += 5 + (((b[s + 3] & 0x0f) << 8) | b[s + 4])) {
        streams.push({ type: b[s], pid: ((b[s + 1] & 0x1f) << 8) | b[s + 2] })
      }
      return streams
    }
  }
  return null
}

// Why the browser cannot play `streams`, or null if it can.
function unplayable (streams) {
  const video = streams.find((s) => VIDEO_TYPES[s.type])
  const audio = streams.find((s) => AUDIO_TYPES[s.type])
  if (!video && !audio) return 'its MPEG-TS program has no video or audio stream the player knows'
  if (video && video.type !== 0x1b) return `its video is ${VIDEO_TYPES[video.type]}, and browsers play H.264 only`
  if (audio && audio.type !== 0x0f) return `its audio is ${AUDIO_TYPES[audio.type]}, and the player remuxes AAC only`
  return null
}

// ---- Media Source ----------------------------------------------------

let source = null
let buffer = null
const queue = []

function codecsOf (init) {
  const find = (a, b, c, d) => {
    for (let i = 0; i + 3 < init.length; i++) if (init[i] === a && init[i + 1] === b && init[i + 2] === c && init[i + 3] === d) return i
    return -1
  }
  const hex = (n) => n.toString(16).padStart(2, '0')
  const codecs = []
  const avcc = find(0x61, 0x76, 0x63, 0x43) // 'avcC'
  if (avcc >= 0) codecs.push(`avc1.${hex(init[avcc + 5])}${hex(init[avcc + 6])}${hex(init[avcc + 7])}`)
  if (find(0x6d, 0x70, 0x34, 0x61) >= 0) codecs.push('mp4a.40.2') // 'mp4a'
  return codecs.join(',')
}

function pump () {
  if (!buffer || buffer.updating || !queue.length || stats.state === 'failed') return
  try {
    buffer.appendBuffer(queue[0])
    queue.shift()
  } catch (e) {
    if (e.name === 'QuotaExceededError' && video.currentTime > 30) {
      buffer.remove(0, video.currentTime - 20) // then 'updateend' pumps again
    } else {
      fail(`the browser refused the video data: ${e.message}`)
    }
  }
}

function append (bytes) {
  queue.push(bytes)
  pump()
}

function openSource () {
  return new Promise((resolve) => {
    source = new MediaSource()
    source.addEventListener('sourceopen', resolve, { once: true })
    video.src = URL.createObjectURL(source)
  })
}

// ---- Reading and remuxing ----------------------------------------------

// One connection's bytes: checked, cut at video frame boundaries, remuxed.
class Feed {
  constructor () {
    this.pending = new Uint8Array(0)
    this.streams = null
    this.videoPid = null
    this.initCodecs = null
    this.early = 0
    this.lastFlush = 0
    this.mux = new (window.muxjs.mp4 || window.muxjs).Transmuxer({ keepOriginalTimestamps: true, remux: true })
    this.mux.on('data', (seg) => this.segment(seg))
  }

  segment (seg) {
    const codecs = codecsOf(seg.initSegment)
    // mux.js may emit the video alone before the audio's first frames: wait
    // (a few segments at most) for every track the program lists.
    const want = this.streams.filter((x) => x.type === 0x1b || x.type === 0x0f).length
    if (codecs.split(',').length < want && this.early++ < 10) return
    if (!buffer) {
      const mime = `video/mp4; codecs="${codecs}"`
      stats.codecs = codecs
      if (!window.MediaSource || !MediaSource.isTypeSupported(mime)) {
        fail(`this browser cannot play ${mime}; VLC or mpv can (address below)`)
        return
      }
      buffer = source.addSourceBuffer(mime)
      buffer.addEventListener('updateend', pump)
    }
    if (codecs !== this.initCodecs) {
      append(seg.initSegment)
      this.initCodecs = codecs
    }
    append(seg.data)
    stats.segments++
    if (stats.state !== 'playing') {
      stats.state = 'playing'
      stats.error = null
    }
  }

  // Takes bytes off the network; false when the stream cannot be played.
  take (chunk) {
    let b = new Uint8Array(this.pending.length + chunk.length)
    b.set(this.pending)
    b.set(chunk, this.pending.length)
    if (this.streams === null) {
      if (b.length < 3 * TS) { this.pending = b; return true }
      const at = syncOffset(b)
      if (at < 0) {
        const head = Array.from(b.subarray(0, 4), (x) => x.toString(16).padStart(2, '0')).join(' ')
        fail(`This ${kind === 'stream' ? 'channel' : 'video'} is not MPEG-TS (it starts with bytes ${head}), so the browser cannot play it; VLC or mpv may (address below).`)
        return false
      }
      b = b.subarray(at)
      this.streams = programStreams(b, 0)
      if (this.streams === null) {
        if (b.length > 4 << 20) { fail('No MPEG-TS program table in the first 4 MB: the browser cannot play this stream.'); return false }
        this.pending = b
        return true
      }
      const why = unplayable(this.streams)
      if (why) { fail(`The browser cannot play this ${kind === 'stream' ? 'channel' : 'video'}: ${why}. VLC or mpv can (address below).`); return false }
      this.videoPid = (this.streams.find((s) => s.type === 0x1b) || {}).pid ?? null
    }
    // Remux up to the last frame start (a packet of the video stream that
    // starts a PES), a few times a second: mux.js emits on flush.
    const whole = b.length - (b.length % TS)
    let cut = 0
    if (this.videoPid === null) {
      cut = whole
    } else {
      for (let p = whole - TS; p > 0; p -= TS) {
        if (b[p] === 0x47 && (b[p + 1] & 0x40) && (((b[p + 1] & 0x1f) << 8) | b[p + 2]) === this.videoPid) { cut = p; break }
      }
    }
    const now = performance.now()
    if (cut > 0 && now - this.lastFlush >= 200) {
      this.mux.push(b.subarray(0, cut))
      this.mux.flush()
      this.lastFlush = now
      this.pending = b.slice(cut)
    } else {
      this.pending = b
    }
    return true
  }

  // The stream ended: what is left.
  end () {
    if (this.streams === null) {
      fail(this.pending.length
        ? 'No MPEG-TS program table in this stream: the browser cannot play it; VLC or mpv may (address below).'
        : 'The stream ended before any byte arrived.')
      return false
    }
    if (this.pending.length) {
      this.mux.push(this.pending.subarray(0, this.pending.length - (this.pending.length % TS)))
      this.mux.flush()
    }
    this.pending = new Uint8Array(0)
    return true
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// A video's catalogue entry (title, format, duration), if it has one.
async function entry () {
  try {
    const r = await fetch('/v1/vod')
    return r.ok ? (await r.json()).catalogue.find((v) => v.id === id) ?? null : null
  } catch (_) {
    return null
  }
}

// An MP4 video: the browser plays it from the node's URL itself, seeking
// with HTTP ranges.
function native () {
  stats.codecs = 'mp4 (native)'
  video.src = media
  video.addEventListener('playing', () => { if (stats.state !== 'failed') stats.state = 'playing' })
  video.play().catch(() => {})
}

async function start () {
  if (kind === 'vod') {
    const e = await entry()
    if (e && e.format === 'mp4') {
      if (!e.browser) { fail(`This video cannot play in browsers: ${e.found}.`); return }
      native()
      return
    }
  }
  await run()
}

async function run () {
  if (!window.MediaSource || !window.muxjs) {
    fail('This browser has no Media Source Extensions: open the address below in VLC or mpv.')
    return
  }
  await openSource()
  for (;;) {
    try {
      const r = await fetch(media, { cache: 'no-store' })
      if (r.status === 401) { location.reload(); return }
      if (!r.ok) {
        const text = await r.text()
        let why = text
        try { why = JSON.parse(text).error ?? text } catch (_) {}
        // A malformed id, or a video nobody has: asking again will not help.
        if (r.status === 400 || (kind === 'vod' && r.status === 404)) { fail(why); return }
        say(`${why}; trying again…`, true)
        stats.state = 'reconnecting'
      } else {
        const feed = new Feed()
        const reader = r.body.getReader()
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          if (!feed.take(value)) { reader.cancel(); return }
        }
        if (!feed.end() && kind === 'vod') return
        if (kind === 'vod') {
          await finish()
          return
        }
        say('The channel paused or the connection closed; reconnecting…')
        stats.state = 'reconnecting'
      }
    } catch (e) {
      say(`Lost the node (${e.message}); reconnecting…`, true)
      stats.state = 'reconnecting'
    }
    stats.reconnects++
    await sleep(1000)
  }
}

// A video's last bytes are appended: the Media Source ends (so the video
// plays to its end).
async function finish () {
  while (queue.length || (buffer && buffer.updating)) await sleep(50)
  if (source.readyState === 'open' && buffer) source.endOfStream()
  if (stats.state !== 'failed') say('')
}

// ---- Playback: start, live edge, gaps, stalls ----------------------------

function firstFrame () {
  if (stats.firstFrameMs !== null) return
  stats.firstFrameMs = performance.now()
  say('')
}
if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(firstFrame)
else video.addEventListener('playing', firstFrame, { once: true })
video.addEventListener('error', () => {
  fail(`The browser could not decode the video: ${video.error ? video.error.message || `error ${video.error.code}` : 'unknown error'}`)
  queue.length = 0
  buffer = null
})

let lastTime = -1
let stuckSince = null
setInterval(() => {
  const b = video.buffered
  if (!b.length) return
  const t = video.currentTime
  const end = b.end(b.length - 1)
  if (video.paused && stats.firstFrameMs === null) video.play().catch(() => {})
  let inside = false
  for (let i = 0; i < b.length; i++) if (t >= b.start(i) && t < b.end(i) - 0.1) inside = true
  if (!inside) {
    // Before the first range, or at a gap the mesh skipped: jump on.
    for (let i = 0; i < b.length; i++) {
      if (b.start(i) > t - 0.1 && b.end(i) - b.start(i) > 0.2) { video.currentTime = b.start(i) + 0.05; break }
    }
  }
  if (kind === 'stream') {
    stats.behindLive = end - t
    if (end - t > 3) video.currentTime = end - 1 // fell behind: back to the live edge
  }
  // A stall: playing, yet the time stood still for a second.
  if (!video.paused && !video.ended && t === lastTime) {
    if (stuckSince === null) stuckSince = performance.now()
    else if (performance.now() - stuckSince > 1000 && stuckSince !== -1) { stats.stalls++; stuckSince = -1 }
  } else if (t !== lastTime) {
    stuckSince = null
  }
  lastTime = t
}, 250)

// ---- Facts: name, viewers, continuity ------------------------------------

async function facts () {
  try {
    if (kind === 'stream') {
      const r = await fetch(`/v1/streams/${encodeURIComponent(id)}`)
      if (!r.ok) return
      const c = await r.json()
      $('#title').textContent = c.name
      document.title = `cloudy-p2p: ${c.name}`
      // Publisher's cut to arrival at this node (p50), then to the screen.
      const nodeLatency = c.role === 'publisher' ? 0 : c.latency_ms == null ? null : c.latency_ms[0] / 1000
      if (nodeLatency !== null && stats.behindLive !== null) stats.latency = nodeLatency + stats.behindLive
      const bits = [`${c.viewers} viewer(s)`]
      if (c.continuity != null) bits.push(`continuity here ${(100 * c.continuity).toFixed(1)} %`)
      if (stats.latency != null) bits.push(`${stats.latency.toFixed(1)} s behind the publisher`)
      $('#facts').textContent = bits.join(' · ')
    } else {
      const e = await entry()
      if (!e) return
      $('#title').textContent = e.title || `video ${id.slice(0, 8)}…`
      document.title = `cloudy-p2p: ${e.title}`
      const bits = []
      if (e.duration_s != null) bits.push(`${e.duration_s.toFixed(1)} s`)
      bits.push(`${(e.size / 1e6).toFixed(1)} MB`, `${e.held_here} of ${e.pieces} pieces on this node`)
      if (e.description) bits.push(e.description)
      $('#facts').textContent = bits.join(' · ')
    }
  } catch (_) {
    // The node is restarting: the next round tries again.
  }
}
facts()
setInterval(facts, 2000)
start()
