// The cloudy-p2p dashboard: renders /ui/events (server-sent overviews)
// and acts through the node's API. No framework, nothing fetched from the
// internet. Requests that change something carry x-cloudy-csrf (see ui.rs).
'use strict'

const $ = (sel) => document.querySelector(sel)
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c])
const short = (id) => (id && id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : (id ?? ''))
const cls = (s) => String(s ?? '').replace(/[^a-z0-9]+/gi, '-').toLowerCase()

function bytes (n) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let i = 0
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++ }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`
}

function span (secs) {
  return secs < 60 ? `${secs} s` : secs < 3600 ? `${Math.floor(secs / 60)} min` : secs < 86400 ? `${Math.floor(secs / 3600)} h` : `${Math.floor(secs / 86400)} d`
}

function ago (unixSecs) {
  if (!unixSecs) return 'never'
  const s = Math.max(0, Date.now() / 1000 - unixSecs)
  return s < 90 ? `${Math.round(s)} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`
}

function say (text, error = false) {
  const m = $('#message')
  m.textContent = text
  m.className = error ? 'error' : ''
}

async function api (method, path, body) {
  const headers = { 'x-cloudy-csrf': '1' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  if (r.status === 401) { location.reload(); return null }
  const text = await r.text()
  const v = text ? JSON.parse(text) : null
  if (!r.ok) throw new Error(v?.error ?? `${r.status} ${r.statusText}`)
  return v
}

// Panels: one at a time, chosen by the URL's hash.
function showPanel () {
  const id = (location.hash || '#community').slice(1)
  for (const p of document.querySelectorAll('.panel')) p.classList.toggle('current', p.id === id)
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('current', a.getAttribute('href') === `#${id}`)
}
window.addEventListener('hashchange', showPanel)
showPanel()

function rows (table, html) {
  $(`${table} tbody`).innerHTML = html.join('') || '<tr><td colspan="9" class="muted">none</td></tr>'
}

function renderCommunity (o) {
  const s = o.status
  $('#me').textContent = `${short(s.peer_id)} · ${s.zone || 'no zone'} · v${s.version}`
  const m = s.members
  $('#counts').textContent = `${m.alive} alive, ${m.suspect} suspect, ${m.failed} failed, ${m.left} left (besides this node)`
  const c = o.community
  const admin = c.kind === 'private' && c.role === 'admin'
  $('#trust').innerHTML = c.kind === 'open'
    ? `Open community${c.name ? ` ${esc(c.name)}` : ''}: anyone who reaches a member may join. <code>cloudy-p2p community create NAME</code> makes it private.`
    : `Private community ${esc(c.name ?? '')} <code title="${esc(c.id)}">${esc(short(c.id))}</code>: this node is ${esc(c.role ?? `not admitted (${c.problem ?? 'no certificate'})`)}` +
      (c.expires ? `, certificate valid until ${new Date(c.expires * 1000).toLocaleDateString()}` : '') +
      `; admins: ${c.admins.map((a) => `<code title="${esc(a)}">${esc(short(a))}</code>`).join(', ') || 'none seen'}; ${c.refused} connection(s) refused; ${c.evicted.length} evicted.`
  $('#invite').hidden = !admin
  rows('#peers', o.peers.map((p) => `<tr data-peer="${esc(p.peer_id)}">
    <td title="${esc(p.peer_id)}"><code>${esc(short(p.peer_id))}</code></td>
    <td class="state-${cls(p.state)}">${esc(p.state)}</td>
    <td>${p.rtt_ms == null ? (p.est_rtt_ms == null ? '—' : `~${p.est_rtt_ms.toFixed(1)} ms`) : `${p.rtt_ms.toFixed(1)} ms`}</td>
    <td>${p.availability == null ? '–' : `${(100 * p.availability).toFixed(0)} % of ${span(p.observed_secs)}`}</td>
    <td>${esc(p.zone || '—')}</td>
    <td>${p.score.toFixed(2)}</td>
    <td>${admin && p.state !== 'left' ? `<button type="button" data-evict="${esc(p.peer_id)}">Evict</button>` : ''}</td></tr>`))
  // Who is near whom: each member at its round trip from this node (measured,
  // else estimated), in the direction its network coordinate lies from ours
  // (spread evenly while coordinates have not settled); 100 = the farthest.
  const me = s.coord ?? [0, 0]
  const placed = o.peers.map((p, i) => {
    const dx = p.coord ? p.coord[0] - me[0] : 0
    const dy = p.coord ? p.coord[1] - me[1] : 0
    const angle = Math.hypot(dx, dy) > 0.05 ? Math.atan2(dy, dx) : (2 * Math.PI * i) / Math.max(1, o.peers.length)
    return { p, angle, rtt: p.rtt_ms ?? p.est_rtt_ms ?? Math.hypot(dx, dy) }
  })
  const far = Math.max(1e-6, ...placed.map((q) => q.rtt))
  const dots = placed.map((q) => {
    const r = 15 + (85 * q.rtt) / far
    const x = (r * Math.cos(q.angle)).toFixed(1)
    const y = (r * Math.sin(q.angle)).toFixed(1)
    return `<line x1="0" y1="0" x2="${x}" y2="${y}" stroke="#d8dde5"/><g class="state-${cls(q.p.state)}"><circle cx="${x}" cy="${y}" r="5" fill="currentColor"><title>${esc(q.p.peer_id)}: ${esc(q.p.state)}, ${q.rtt.toFixed(1)} ms</title></circle><text x="${x}" y="${Number(y) - 8}" font-size="8" text-anchor="middle" fill="currentColor">${esc(q.p.peer_id.slice(-6))}</text></g>`
  })
  $('#map').innerHTML = `${dots.join('')}<circle cx="0" cy="0" r="7" fill="#1f6feb"><title>this node</title></circle>`
}

function renderServices (o) {
  // The node's own services (storage, live channels) apart from those
  // people announced.
  rows('#internal', o.services.filter((s) => s.internal).map((s) => `<tr>
    <td>${esc(s.name)}</td>
    <td title="${esc(s.peer_id)}">${s.local ? 'this node' : `<code>${esc(short(s.peer_id))}</code>`}</td>
    <td>${s.score.toFixed(2)}</td>
    <td>${esc(Object.entries(s.meta).map(([k, v]) => `${k}=${v}`).join(' '))}</td></tr>`))
  rows('#directory', o.services.filter((s) => !s.internal).map((s) => `<tr>
    <td>${esc(s.name)}</td>
    <td title="${esc(s.peer_id)}">${s.local ? 'this node' : `<code>${esc(short(s.peer_id))}</code>`}</td>
    <td>${s.score.toFixed(2)}</td>
    <td>${esc(Object.entries(s.meta).map(([k, v]) => `${k}=${v}`).join(' '))}</td>
    <td>${s.local ? `<button data-withdraw="${esc(s.name)}">Withdraw</button>` : ''}</td></tr>`))
}

function renderStorage (o) {
  const st = o.storage
  $('#store-use').textContent = st.server
    ? `This node stores ${bytes(st.used)} of shares for the community; ${bytes(st.free)} free.`
    : 'This node does not store shares for others.'
  rows('#maintained', o.maintained.map((f) => `<tr>
    <td title="${esc(f.verify_cap)}"><code>${esc(short(f.verify_cap))}</code></td>
    <td>${bytes(f.size)}</td><td>${f.k}-of-${f.n}</td>
    <td>${f.good_shares ?? '—'} / ${f.n}</td>
    <td class="health-${cls(f.status.split(':')[0])}">${esc(f.status)}</td>
    <td>${ago(f.checked)}</td></tr>`))
}

// Contribution accounting (GET /v1/usage asks every storage server, so it
// is loaded when the Storage panel is shown, every 15 s while it is, and on
// Refresh; not with every overview).
async function loadUsage () {
  try {
    const u = await api('GET', '/v1/usage')
    $('#quota').textContent = u.quota_here == null
      ? 'This node does not store shares for others.'
      : `This node keeps at most ${bytes(u.quota_here)} of shares for each member.`
    const opt = (n) => (n == null ? 'n/a' : bytes(n))
    rows('#usage', u.members.map((r) => `<tr data-peer="${esc(r.peer)}">
      <td title="${esc(r.peer)}"><code>${esc(short(r.peer))}</code></td>
      <td>${bytes(r.stored_here)}</td><td class="there">${opt(r.stored_there)}</td>
      <td>${r.quota_there == null ? '—' : bytes(r.quota_there)}</td>
      <td>${bytes(r.stream_sent)} / ${bytes(r.stream_received)}</td>
      <td>${bytes(r.video_sent)} / ${bytes(r.video_received)}</td></tr>`))
  } catch (err) { say(err.message, true) }
}
setInterval(() => { if (location.hash === '#storage') loadUsage() }, 15000)
window.addEventListener('hashchange', () => { if (location.hash === '#storage') loadUsage() })
if (location.hash === '#storage') loadUsage()

function renderSync (o) {
  const html = o.folders.map((f) => {
    const members = f.members.map((m) => `<li title="${esc(m)}"><code>${esc(short(m))}</code>${m === f.owner ? ' (owner)' : ''}: index applied up to ${f.applied?.[m] ?? 0}</li>`).join('')
    const pending = f.pending.map((p) => `<li><code title="${esc(p)}">${esc(short(p))}</code> asks to join <button data-admit="${esc(f.id)}" data-peer="${esc(p)}">Admit</button></li>`).join('')
    const conflicts = f.conflicts.map((c) => `<li><code>${esc(c)}</code></li>`).join('')
    return `<div class="folder" data-folder="${esc(f.name)}">
      <h3>${esc(f.name)} <span class="state-${cls(f.state)}">${esc(f.state)}</span></h3>
      <p class="muted">${esc(f.path)} · ${f.files} files, ${bytes(f.bytes)} · still to fetch: ${f.need_files} files, ${bytes(f.need_bytes)} · downloaded ${bytes(f.downloaded)}, served ${bytes(f.uploaded)}</p>
      <p>Members:</p><ul>${members}</ul>
      ${pending ? `<p>Waiting for admission:</p><ul class="pending">${pending}</ul>` : ''}
      ${conflicts ? `<p>Conflicts to look at (both versions are kept):</p><ul class="conflicts">${conflicts}</ul>` : ''}
      ${f.errors.length ? `<p class="error">${esc(f.errors.join('; '))}</p>` : ''}
      <p class="muted">Invite: <code>${esc(f.invite)}</code></p></div>`
  })
  $('#folders').innerHTML = html.join('') || '<p class="muted">No shared folders. Share one with <code>cloudy-p2p sync add DIR</code>.</p>'
}

function renderStreams (o) {
  rows('#channels', o.channels.map((c) => `<tr>
    <td title="${esc(c.id)}">${esc(c.name)}</td>
    <td title="${esc(c.publisher)}"><code>${esc(short(c.publisher))}</code></td>
    <td>${c.viewers}</td>
    <td>${c.local ? esc(`${c.local.role}, ${c.local.state}`) : '—'}</td>
    <td><a href="/watch/stream/${encodeURIComponent(c.id)}" target="_blank" class="play">Play</a> <a href="/stream/${encodeURIComponent(c.id)}" class="muted" title="MPEG-TS for VLC, mpv or ffplay">TS</a></td></tr>`))
  // The community's catalogue, then videos held here that it does not list.
  const s = o.status
  const listed = new Set(o.videos.catalogue.map((v) => v.id))
  const videos = o.videos.catalogue.map((v) => ({ ...v, held: v.held_here })).concat(
    o.videos.videos.filter((v) => !listed.has(v.id)).map((v) => ({ ...v, title: '', publisher: v.published ? s.peer_id : '' })))
  rows('#videos', videos.map((v) => `<tr>
    <td title="${esc(v.id)}${v.found ? `: ${esc(v.found)}` : ''}">${v.title ? esc(v.title) : `<code>${esc(short(v.id))}</code>`}${v.description ? `<br><span class="muted">${esc(v.description)}</span>` : ''}</td>
    <td>${v.duration_s == null ? '—' : span(Math.round(v.duration_s))}</td>
    <td>${bytes(v.size)}</td>
    <td title="${esc(v.publisher)}">${v.publisher === s.peer_id ? 'this node' : v.publisher ? `<code>${esc(short(v.publisher))}</code>` : '—'}</td>
    <td>${v.held} of ${v.pieces} pieces</td>
    <td><a href="/watch/vod/${encodeURIComponent(v.id)}" target="_blank" class="play">Play</a> <a href="/vod/${encodeURIComponent(v.id)}" class="muted" title="MPEG-TS for VLC, mpv or ffplay">TS</a></td></tr>`))
}

// The latest overview.
let data = null

function render (o) {
  data = o
  renderCommunity(o)
  renderServices(o)
  renderStorage(o)
  renderSync(o)
  renderStreams(o)
  document.body.dataset.loaded = 'yes'
}

// Live updates.
function listen () {
  const events = new EventSource('/ui/events')
  events.addEventListener('overview', (e) => render(JSON.parse(e.data)))
  events.onopen = () => { $('#live').className = 'dot on' }
  events.onerror = () => { $('#live').className = 'dot' }
}
listen()

// Actions.
document.addEventListener('click', async (e) => {
  const b = e.target.closest('button')
  if (!b) return
  try {
    if (b.dataset.withdraw) {
      await api('DELETE', `/v1/services/${encodeURIComponent(b.dataset.withdraw)}`)
      say(`Withdrew ${b.dataset.withdraw}.`)
    } else if (b.dataset.admit) {
      await api('POST', `/v1/sync/${encodeURIComponent(b.dataset.admit)}/admit`, { peer: b.dataset.peer })
      say(`Admitted ${short(b.dataset.peer)}.`)
    } else if (b.dataset.evict) {
      if (!confirm(`Evict ${short(b.dataset.evict)} from the community? Every member will refuse it from now on.`)) return
      await api('POST', '/v1/community/evict', { peer: b.dataset.evict, reason: 'evicted from the dashboard' })
      say(`Evicted ${short(b.dataset.evict)}.`)
    } else if (b.id === 'usage-refresh') {
      await loadUsage()
    } else if (b.id === 'logout') {
      await api('POST', '/ui/logout')
      location.href = '/'
    }
  } catch (err) { say(err.message, true) }
})

$('#invite').addEventListener('submit', async (e) => {
  e.preventDefault()
  const f = new FormData(e.target)
  try {
    const v = await api('POST', '/v1/community/invites', { uses: Number(f.get('uses')), expires_secs: Number(f.get('expires')) })
    $('#invite-text').innerHTML = `On the new machine: <code class="cap">cloudy-p2p join ${esc(v.invite)}</code>`
  } catch (err) { say(err.message, true) }
})

$('#announce').addEventListener('submit', async (e) => {
  e.preventDefault()
  const f = new FormData(e.target)
  const meta = {}
  for (const pair of String(f.get('meta')).split(/\s+/).filter(Boolean)) {
    const [k, ...v] = pair.split('=')
    meta[k] = v.join('=')
  }
  try {
    await api('POST', '/v1/services', { name: f.get('name'), meta })
    say(`Announced ${f.get('name')}.`)
    e.target.reset()
  } catch (err) { say(err.message, true) }
})

// Erasure coding for an upload: the grid's default 3-of-5 (4 servers
// needed), or less where fewer storage servers are up.
function encoding () {
  const servers = (data?.services ?? []).filter((s) => s.name === 'storage').length
  const n = Math.min(5, Math.max(1, servers))
  const k = Math.min(3, Math.max(1, Math.ceil(n / 2)))
  const happy = n === 5 ? 4 : n
  return { k, n, happy }
}

function upload (file) {
  const { k, n, happy } = encoding()
  const row = document.createElement('div')
  row.className = 'upload'
  row.innerHTML = `<span>${esc(file.name)}</span> <span class="muted">${k}-of-${n}</span> <progress max="100" value="0"></progress> <span class="result muted">uploading…</span>`
  $('#uploads').prepend(row)
  const bar = row.querySelector('progress')
  const result = row.querySelector('.result')
  const xhr = new XMLHttpRequest()
  xhr.open('PUT', `/uri?k=${k}&n=${n}&happy=${happy}`)
  xhr.setRequestHeader('x-cloudy-csrf', '1')
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total }
  xhr.onload = () => {
    let v = null
    try { v = JSON.parse(xhr.responseText) } catch { }
    if (xhr.status >= 200 && xhr.status < 300 && v?.cap) {
      bar.value = 100
      const href = `/uri/${encodeURIComponent(v.cap)}?filename=${encodeURIComponent(file.name)}`
      result.className = 'result'
      result.innerHTML = `stored. Capability: <code class="cap">${esc(v.cap)}</code> <a href="${esc(href)}" download="${esc(file.name)}">download</a>`
    } else {
      result.className = 'result error'
      result.textContent = `failed: ${v?.error ?? xhr.statusText}`
    }
  }
  xhr.onerror = () => { result.className = 'result error'; result.textContent = 'failed: the node did not answer' }
  xhr.send(file)
}

$('#file').addEventListener('change', (e) => { for (const f of e.target.files) upload(f); e.target.value = '' })
const drop = $('#drop')
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over') })
drop.addEventListener('dragleave', () => drop.classList.remove('over'))
drop.addEventListener('drop', (e) => {
  e.preventDefault()
  drop.classList.remove('over')
  for (const f of e.dataTransfer.files) upload(f)
})

$('#download').addEventListener('submit', (e) => {
  e.preventDefault()
  const f = new FormData(e.target)
  const cap = String(f.get('cap')).trim()
  const name = String(f.get('name') || 'download').trim()
  if (!cap.startsWith('cloudy:')) { say('A capability starts with cloudy:', true); return }
  const href = `/uri/${encodeURIComponent(cap)}?filename=${encodeURIComponent(name)}`
  $('#download-link').innerHTML = `<a id="download-file" href="${esc(href)}" download="${esc(name)}">Download ${esc(name)}</a>`
})

// Folders on the grid: the home's aliases, opened by name and walked
// (GET /v1/fs/aliases, POST /v1/fs/ls, …); files go up with PUT
// /uri/DIRCAP/path and down with GET /uri/CAP?filename=.
const browsing = { cap: null, path: [], writable: false, readCap: '' }
const joinPath = (parts) => parts.map(encodeURIComponent).join('/')

async function loadAliases () {
  try {
    const all = await api('GET', '/v1/fs/aliases')
    $('#aliases').innerHTML = Object.keys(all).map((n) =>
      `<button type="button" data-alias="${esc(n)}" data-cap="${esc(all[n])}">${esc(n)}</button>`).join(' ') ||
      '<span class="muted">no folders yet</span>'
  } catch (err) { say(err.message, true) }
}

async function openDir (cap, path) {
  try {
    const l = await api('POST', '/v1/fs/ls', { cap, path: path.join('/') })
    Object.assign(browsing, { cap, path, writable: l.writable, readCap: l.read_cap })
    $('#browser').hidden = false
    $('#dir-shared').textContent = ''
    const crumbs = [`<a href="#storage" data-crumb="0">${esc(browsing.alias ?? 'folder')}</a>`]
    path.forEach((p, i) => crumbs.push(`<a href="#storage" data-crumb="${i + 1}">${esc(p)}</a>`))
    $('#crumbs').innerHTML = crumbs.join(' / ') + (l.writable ? '' : ' <span class="muted">(read-only)</span>')
    rows('#dir', l.entries.map((e) => {
      const name = esc(e.name)
      const open = e.kind === 'dir'
        ? `<a href="#storage" data-open="${name}">${name}/</a>`
        : `<a href="/uri/${encodeURIComponent(e.cap)}?filename=${encodeURIComponent(e.name)}" download="${name}">${name}</a>`
      const change = l.writable ? ` <button type="button" data-rename="${name}">Rename</button> <button type="button" data-delete="${name}">Delete</button>` : ''
      return `<tr data-entry="${name}"><td>${open}${e.conflict ? ' <em>(conflict copy)</em>' : ''}</td>
        <td>${e.kind === 'dir' ? '' : bytes(e.size)}</td><td>${e.mtime ? ago(e.mtime) : ''}</td>
        <td><button type="button" data-share="${esc(e.read_cap)}">Share read-only</button>${change}</td></tr>`
    }))
    for (const b of l.bad) say(`Not readable: ${b}`, true)
  } catch (err) { say(err.message, true) }
}

function shareLink (readCap) {
  const url = `${location.origin}/uri/${encodeURIComponent(readCap)}`
  $('#dir-shared').innerHTML = `read-only capability: <code class="cap">${esc(readCap)}</code> <a href="${esc(url)}">link</a>`
}

$('#aliases').addEventListener('click', (e) => {
  const b = e.target.closest('button[data-alias]')
  if (!b) return
  browsing.alias = b.dataset.alias
  openDir(b.dataset.cap, [])
})
$('#new-alias').addEventListener('submit', async (e) => {
  e.preventDefault()
  const name = String(new FormData(e.target).get('name')).trim()
  try {
    const made = await api('POST', '/v1/fs/aliases', { name })
    e.target.reset()
    await loadAliases()
    browsing.alias = name
    openDir(made.cap, [])
  } catch (err) { say(err.message, true) }
})
$('#crumbs').addEventListener('click', (e) => {
  const a = e.target.closest('a[data-crumb]')
  if (a) { e.preventDefault(); openDir(browsing.cap, browsing.path.slice(0, Number(a.dataset.crumb))) }
})
$('#dir').addEventListener('click', async (e) => {
  const t = e.target
  const here = browsing.path
  if (t.dataset.open) { e.preventDefault(); openDir(browsing.cap, [...here, t.dataset.open]); return }
  if (t.dataset.share) { shareLink(t.dataset.share); return }
  try {
    if (t.dataset.rename) {
      const to = prompt(`Rename ${t.dataset.rename} to`, t.dataset.rename)
      if (!to || to === t.dataset.rename) return
      await api('POST', '/v1/fs/mv', { from: { cap: browsing.cap, path: [...here, t.dataset.rename].join('/') }, to: { cap: browsing.cap, path: [...here, to].join('/') } })
      say(`Renamed ${t.dataset.rename} to ${to}.`)
    } else if (t.dataset.delete) {
      if (!confirm(`Delete ${t.dataset.delete}?`)) return
      await api('POST', '/v1/fs/rm', { cap: browsing.cap, path: [...here, t.dataset.delete].join('/') })
      say(`Deleted ${t.dataset.delete}.`)
    } else return
    openDir(browsing.cap, here)
  } catch (err) { say(err.message, true) }
})
$('#dir-share').addEventListener('click', () => shareLink(browsing.readCap))
$('#dir-mkdir').addEventListener('click', async () => {
  const name = prompt('New subfolder name')
  if (!name) return
  try {
    await api('POST', '/v1/fs/mkdir', { cap: browsing.cap, path: [...browsing.path, name].join('/') })
    openDir(browsing.cap, browsing.path)
  } catch (err) { say(err.message, true) }
})
$('#dir-file').addEventListener('change', async (e) => {
  const files = [...e.target.files]
  e.target.value = ''
  for (const f of files) {
    const path = joinPath([...browsing.path, f.name])
    const r = await fetch(`/uri/${encodeURIComponent(browsing.cap)}/${path}`, { method: 'PUT', headers: { 'x-cloudy-csrf': '1' }, body: f })
    if (!r.ok) { say(`${f.name}: ${(await r.json().catch(() => ({}))).error ?? r.statusText}`, true); break }
    say(`Stored ${f.name} in ${browsing.path.join('/') || browsing.alias}.`)
  }
  openDir(browsing.cap, browsing.path)
})
window.addEventListener('hashchange', () => { if (location.hash === '#storage') loadAliases() })
if (location.hash === '#storage') loadAliases()
