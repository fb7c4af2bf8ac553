// A js-libp2p peer for the interop tests: TCP (noise + yamux) and QUIC,
// identify, ping, Kademlia under cloudy's protocol id and gossipsub.
//
// It listens on 127.0.0.1 (ports chosen by the OS), prints one line
// `ready {"peer":…,"addrs":[…]}`, then reads one JSON command per line on
// stdin and answers each with one JSON line on stdout:
// `{"ok":true,…}` or `{"ok":false,"error":"…"}`. See `handlers` below.

// js-libp2p 3 is written for Node 22; Node 20 lacks Promise.withResolvers.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { quic } = await import('@chainsafe/libp2p-quic')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { kadDHT, passthroughMapper } = await import('@libp2p/kad-dht')
const { gossipsub } = await import('@libp2p/gossipsub')
const { multiaddr } = await import('@multiformats/multiaddr')
const { peerIdFromString } = await import('@libp2p/peer-id')
const { CID } = await import('multiformats/cid')
const { sha256 } = await import('multiformats/hashes/sha2')
const readline = await import('node:readline')

const KAD = '/cloudy/kad/1.0.0'
const enc = new TextEncoder()
const dec = new TextDecoder()

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/udp/0/quic-v1'] },
  transports: [tcp(), quic()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    // The connection monitor pings too: allow a test's ping beside it.
    ping: ping({ maxOutboundStreams: 4 }),
    dht: kadDHT({
      protocol: KAD,
      clientMode: false,
      allowQueryWithZeroPeers: true,
      // Keep loopback addresses: every peer of the test is on 127.0.0.1.
      peerInfoMapper: passthroughMapper,
      // Records under /cloudy/… are opaque bytes: any is valid, the first wins.
      validators: { cloudy: async () => {} },
      selectors: { cloudy: () => 0 }
    }),
    pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false })
  }
})

// Gossip received, in order: {topic, from, data (UTF-8)}.
const received = []
node.services.pubsub.addEventListener('message', (evt) => {
  const m = evt.detail
  received.push({ topic: m.topic, from: m.from?.toString(), data: dec.decode(m.data) })
})

// The provider key of a name: the sha2-256 multihash of its UTF-8 bytes, as a raw CID.
async function cidOf (name) {
  return CID.createV1(0x55, await sha256.digest(enc.encode(name)))
}

// Runs a DHT query to its end; returns its events.
async function drain (events) {
  const all = []
  for await (const e of events) all.push(e)
  return all
}

const handlers = {
  // Dial an address; answers with the remote peer id.
  async dial ({ addr }) {
    const conn = await node.dial(multiaddr(addr))
    return { peer: conn.remotePeer.toString(), addr: conn.remoteAddr.toString() }
  },
  // Ping a connected peer (or an address); answers with the RTT in ms.
  async ping ({ peer, addr }) {
    const target = addr ? multiaddr(addr) : peerIdFromString(peer)
    return { rtt: await node.services.ping.ping(target) }
  },
  // What identify told us about a peer.
  async peer ({ peer }) {
    const p = await node.peerStore.get(peerIdFromString(peer))
    const agent = p.metadata.get('AgentVersion')
    return { protocols: p.protocols, agent: agent ? dec.decode(agent) : null }
  },
  async connections () {
    return { peers: node.getConnections().map((c) => ({ peer: c.remotePeer.toString(), addr: c.remoteAddr.toString() })) }
  },
  async put ({ key, value }) {
    await drain(node.services.dht.put(enc.encode(key), enc.encode(value)))
    return {}
  },
  async get ({ key }) {
    for await (const e of node.services.dht.get(enc.encode(key))) {
      if (e.name === 'VALUE') return { value: dec.decode(e.value), from: e.from.toString() }
    }
    throw new Error(`no record for ${key}`)
  },
  async provide ({ name }) {
    await drain(node.services.dht.provide(await cidOf(name)))
    return {}
  },
  async providers ({ name }) {
    const found = new Map()
    for await (const e of node.services.dht.findProviders(await cidOf(name))) {
      if (e.name === 'PROVIDER') {
        for (const p of e.providers) found.set(p.id.toString(), p.multiaddrs.map((a) => a.toString()))
      }
    }
    return { providers: [...found.entries()].map(([peer, addrs]) => ({ peer, addrs })) }
  },
  async subscribe ({ topic }) {
    node.services.pubsub.subscribe(topic)
    return {}
  },
  async messages () {
    return { messages: received }
  },
  async publish ({ topic, data }) {
    const r = await node.services.pubsub.publish(topic, enc.encode(data))
    return { recipients: r.recipients.map((p) => p.toString()) }
  },
  async stop () {
    await node.stop()
    setImmediate(() => process.exit(0))
    return {}
  }
}

console.log('ready ' + JSON.stringify({ peer: node.peerId.toString(), addrs: node.getMultiaddrs().map((a) => a.toString()) }))

const lines = readline.createInterface({ input: process.stdin })
for await (const line of lines) {
  let reply
  try {
    const cmd = JSON.parse(line)
    const handler = handlers[cmd.op]
    if (!handler) throw new Error(`unknown op ${cmd.op}`)
    reply = { ok: true, ...(await handler(cmd)) }
  } catch (e) {
    reply = { ok: false, error: String(e?.message ?? e) }
  }
  console.log(JSON.stringify(reply))
}
await node.stop()
process.exit(0)
