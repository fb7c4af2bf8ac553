//! Membership and failure detection at community scale, simulated with the
//! project's own code (issue 21): every simulated node that keeps a member
//! table runs the node's [`MemberTable`] (gossip, suspicion timeouts,
//! anti-entropy through `hello`/`answer`/`take`) and [`Detector`] (monitor
//! targets, accusations, confirmations), with the node's default
//! [`Config`]. Gossipsub (libp2p's code, not ours) is modelled: each
//! message floods a mesh of degree 4–6 built from each node's connections
//! (its monitors, its monitor targets and three random links). Time is
//! simulated; links follow [`Links`]. The model, its sources and the
//! results are in DESIGN/simulation.md.
//!
//! A table per node costs N entries, so N tables cost N² (about 40 GB at
//! N = 10,000). Beyond a few thousand nodes the simulation keeps tables on
//! a sample of *observers* (the nodes the scenario needs, and a random
//! sample): the others relay gossip and probe their ring neighbours, with
//! the traffic that costs, but hold no table. Their anti-entropy
//! exchanges are counted as the converged case (a hash and `Equal`).

use super::wire::{self, draw, Links};
use cloudy_overlay::membership::detector::Detector;
use cloudy_overlay::membership::wire::{Alive, Message};
use cloudy_overlay::membership::{Change, MemberState, MemberTable};
use cloudy_overlay::scoring::vivaldi::Coordinate;
use cloudy_overlay::sync_msg::{SyncRequest, SyncResponse};
use cloudy_overlay::{Config, Keypair, Multiaddr, PeerId};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// The service the announcement scenario announces.
pub const SVC: &str = "sim-svc";
/// Gossipsub's mesh degree: wanted, and most (the node's settings).
const MESH_N: usize = 4;
const MESH_HIGH: usize = 6;
/// Gossipsub's IHAVE fan-out and history, in heartbeats of 1 s.
const GOSSIP_LAZY: u64 = 3;
const GOSSIP_HISTORY_US: u64 = 3_000_000;
/// When the scenario's events happen, simulated seconds.
const T_JOIN: u64 = 2;
const T_ANNOUNCE: u64 = 10;
const T_KILL: u64 = 15;
const T_IDLE: u64 = 30;

/// One simulation's settings.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Nodes in the community (one of them joins during the run).
    pub nodes: usize,
    /// Nodes holding a member table besides those the scenario needs; `None`: all.
    pub observers: Option<usize>,
    /// The seed: one seed, one result.
    pub seed: u64,
    /// Share of packets lost.
    pub loss: f64,
    /// Length of the idle window, simulated seconds.
    pub idle_secs: u64,
}

impl Setup {
    /// The default scenario for `nodes`: every node holds a table up to
    /// 2,000 nodes, 300 observers beyond.
    pub fn community(nodes: usize, seed: u64) -> Setup {
        let observers = (nodes > 2000).then_some(300);
        Setup { nodes, observers, seed, loss: 0.01, idle_secs: 60 }
    }
}

/// What one run found.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Nodes holding a member table.
    pub observers: usize,
    /// A newcomer knows every member and every observer holds it alive, s after its start.
    pub join: Option<f64>,
    /// A service announcement seen by every observer, s.
    pub announce: Option<f64>,
    /// Gossip hops the announcement needed to reach the last node.
    pub announce_hops: u32,
    /// A killed member seen failed by every observer, s.
    pub detect: Option<f64>,
    /// Live members some observer held failed.
    pub false_failures: usize,
    /// Live members some observer suspected.
    pub false_suspicions: usize,
    /// Idle bytes sent per node per second: gossip, probes, anti-entropy.
    pub idle_bytes: [f64; 3],
    /// CPU time of the membership code per table-holding node, share of one core, idle.
    pub idle_cpu: f64,
    /// Mean gossip mesh degree.
    pub mesh_degree: f64,
    /// Whether every observer's table summary agrees at the end.
    pub converged: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Tick(u32),
    RelayTick,
    ProbeFail(u32, u32),
    Gossip { to: u32, from: u32, msg: u32, hops: u32 },
    Sync { to: u32, from: u32, payload: u32 },
    Start(u32),
    Connected(u32),
    Announce(u32),
    Kill(u32),
}

enum Payload {
    Req(SyncRequest),
    Resp(SyncResponse),
}

const GOSSIP: usize = 0;
const PROBES: usize = 1;
const SYNC: usize = 2;

struct Node {
    peer: PeerId,
    me: Alive,
    up: bool,
    table: Option<MemberTable>,
    detector: Detector,
    pending: HashSet<usize>,
    mesh: Vec<usize>,
    links: Vec<usize>,
    seen: HashSet<u64>,
    heard: Vec<u64>,
    sent: [u64; 3],
    cpu: Duration,
}

struct Watch {
    joiner: usize,
    announcer: usize,
    victim: usize,
    joined: HashMap<usize, u64>,
    joiner_full: Option<u64>,
    announced: HashMap<usize, u64>,
    failed: HashMap<usize, u64>,
    false_failed: HashSet<(usize, usize)>,
    false_suspected: HashSet<(usize, usize)>,
    hops: u32,
}

struct Sim {
    cfg: Config,
    links: Links,
    nodes: Vec<Node>,
    index: HashMap<PeerId, usize>,
    ring: Vec<usize>,
    ring_pos: Vec<usize>,
    seed: u64,
    base: Instant,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    msgs: Vec<(Message, u64, u64)>,
    payloads: Vec<Option<Payload>>,
    watch: Watch,
    measuring: bool,
}

/// Simulated seconds in µs.
fn micros(secs: u64) -> u64 {
    secs * 1_000_000
}

fn alive_of(peer: PeerId, i: usize, seed: u64) -> Alive {
    let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    let addrs: Vec<Multiaddr> =
        [format!("/ip4/{ip}/udp/7391/quic-v1"), format!("/ip4/{ip}/tcp/7391")]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
    let mut coord = Coordinate { error: 0.2, ..Coordinate::default() };
    for (d, v) in coord.vec.iter_mut().enumerate() {
        *v = (draw((seed, "coord", i, d)) - 0.5) * 0.02;
    }
    Alive {
        peer,
        incarnation: 1,
        seq: 1,
        addrs,
        zone: String::new(),
        coord: Some(coord),
        services: BTreeMap::new(),
    }
}

/// Bytes of a message of `len` bytes on the wire: the sender's and the
/// receiver's (acknowledgements).
fn transfer(len: u64) -> (u64, u64) {
    let packets = len.div_ceil(1200).max(1);
    (len + packets * wire::PACKET, packets.div_ceil(2) * wire::ACK)
}

fn cbor_len<T: serde::Serialize>(v: &T) -> u64 {
    cbor4ii::serde::to_vec(Vec::new(), v).map_or(0, |b| b.len() as u64)
}

/// Runs one simulation.
pub fn run(s: &Setup) -> Outcome {
    let mut sim = Sim::new(s);
    sim.schedule(micros(T_JOIN), Ev::Start(sim.watch.joiner as u32));
    sim.schedule(micros(T_ANNOUNCE), Ev::Announce(sim.watch.announcer as u32));
    sim.schedule(micros(T_KILL), Ev::Kill(sim.watch.victim as u32));
    sim.schedule(0, Ev::RelayTick);
    for i in 0..sim.nodes.len() {
        if sim.nodes[i].table.is_some() && i != sim.watch.joiner {
            let phase = (draw((s.seed, "phase", i)) * 1e6) as u64;
            sim.schedule(phase, Ev::Tick(i as u32));
        }
    }
    sim.until(micros(T_IDLE));
    let before: Vec<([u64; 3], Duration)> = sim.nodes.iter().map(|n| (n.sent, n.cpu)).collect();
    sim.measuring = true;
    sim.until(micros(T_IDLE + s.idle_secs));
    sim.outcome(s, &before)
}

impl Sim {
    fn new(s: &Setup) -> Sim {
        let n = s.nodes.max(8);
        let peers: Vec<PeerId> = (0..n)
            .map(|i| {
                let mut bytes = [0u8; 32];
                for (j, b) in bytes.iter_mut().enumerate() {
                    *b = (draw((s.seed, "key", i, j)) * 256.0) as u8;
                }
                let key = Keypair::ed25519_from_bytes(bytes).expect("32 bytes");
                key.public().to_peer_id()
            })
            .collect();
        let index: HashMap<PeerId, usize> =
            peers.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        let mut ring: Vec<usize> = (0..n).collect();
        ring.sort_by_key(|i| peers[*i]);
        let mut ring_pos = vec![0; n];
        for (pos, i) in ring.iter().enumerate() {
            ring_pos[*i] = pos;
        }
        let cfg = Config::default();
        // The scenario's actors: the last node joins, node 1 announces,
        // node 2 dies; node 0 is the newcomer's bootstrap.
        let (joiner, announcer, victim) = (n - 1, 1, 2);
        let mut keep: HashSet<usize> = [0, joiner, announcer, victim].into();
        let pos = ring.iter().position(|i| *i == victim).expect("on the ring");
        for d in 1..=cfg.monitors + 1 {
            keep.insert(ring[(pos + n - d) % n]);
        }
        let observers: HashSet<usize> = match s.observers {
            None => (0..n).collect(),
            Some(o) => {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by(|a, b| draw((s.seed, "obs", a)).total_cmp(&draw((s.seed, "obs", b))));
                keep.into_iter().chain(order.into_iter().take(o)).collect()
            }
        };
        let base = Instant::now();
        let mut nodes: Vec<Node> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| Node {
                peer: *p,
                me: alive_of(*p, i, s.seed),
                up: i != joiner,
                table: observers.contains(&i).then(|| MemberTable::new(*p, cfg.timing)),
                detector: Detector::default(),
                pending: HashSet::new(),
                mesh: Vec::new(),
                links: Vec::new(),
                seen: HashSet::new(),
                heard: Vec::new(),
                sent: [0; 3],
                cpu: Duration::ZERO,
            })
            .collect();
        // A converged community: every table holds every member but the newcomer.
        let all: Vec<Alive> = nodes.iter().map(|n| n.me.clone()).collect();
        for (i, node) in nodes.iter_mut().enumerate() {
            if let Some(t) = node.table.as_mut().filter(|_| i != joiner) {
                for (j, a) in all.iter().enumerate() {
                    if j != i && j != joiner {
                        t.apply(Message::Alive(a.clone()), base);
                    }
                }
            }
        }
        let watch = Watch {
            joiner,
            announcer,
            victim,
            joined: HashMap::new(),
            joiner_full: None,
            announced: HashMap::new(),
            failed: HashMap::new(),
            false_failed: HashSet::new(),
            false_suspected: HashSet::new(),
            hops: 0,
        };
        let mut sim = Sim {
            links: Links::new(n, s.loss, s.seed),
            cfg,
            nodes,
            index,
            ring,
            ring_pos,
            seed: s.seed,
            base,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            msgs: Vec::new(),
            payloads: Vec::new(),
            watch,
            measuring: false,
        };
        for i in 0..n {
            if i != joiner {
                sim.connect(i);
            }
        }
        sim
    }

    /// `i`'s connections (its ring neighbours and three random links) and
    /// its share of the gossip mesh.
    fn connect(&mut self, i: usize) {
        let (n, seed) = (self.nodes.len(), self.seed);
        let links: Vec<usize> = (0..self.cfg.target_peers)
            .map(|l| (draw((seed, "link", i, l)) * n as f64) as usize % n)
            .filter(|j| *j != i && self.nodes[*j].up)
            .collect();
        let mut conns = self.ring_neighbours(i);
        conns.extend(links.iter().copied());
        conns.sort();
        conns.dedup();
        self.nodes[i].links = links;
        conns.sort_by(|a, b| draw((seed, "mesh", i, a)).total_cmp(&draw((seed, "mesh", i, b))));
        for j in conns {
            if self.nodes[i].mesh.len() >= MESH_N {
                break;
            }
            if j != i && !self.nodes[i].mesh.contains(&j) && self.nodes[j].mesh.len() < MESH_HIGH {
                self.nodes[i].mesh.push(j);
                self.nodes[j].mesh.push(i);
            }
        }
    }

    /// The monitor targets of `i` on the true ring of up members (as
    /// [`monitor_targets`] picks them from a converged table), then its
    /// monitors.
    fn ring_neighbours(&self, i: usize) -> Vec<usize> {
        let n = self.ring.len();
        let k = self.cfg.monitors;
        let walk = |step: usize| {
            (1..n)
                .map(move |d| self.ring[(self.ring_pos[i] + step * d) % n])
                .filter(|j| self.nodes[*j].up)
                .take(k)
        };
        walk(1).chain(walk(n - 1)).collect()
    }

    fn at(&self) -> Instant {
        self.base + Duration::from_micros(self.now)
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    fn until(&mut self, end: u64) {
        while let Some(Reverse((t, _, ev))) = self.queue.peek().copied() {
            if t > end {
                break;
            }
            self.queue.pop();
            self.now = t;
            self.handle(ev);
        }
        self.now = end;
    }

    fn handle(&mut self, ev: Ev) {
        let started = std::time::Instant::now();
        let node = match ev {
            Ev::Tick(i) => self.tick(i as usize).then_some(i as usize),
            Ev::RelayTick => {
                self.relay_tick();
                None
            }
            Ev::ProbeFail(i, t) => {
                self.probe_failed(i as usize, t as usize);
                Some(i as usize)
            }
            Ev::Gossip { to, from, msg, hops } => {
                self.gossip(to as usize, from as usize, msg as usize, hops);
                Some(to as usize)
            }
            Ev::Sync { to, from, payload } => {
                self.sync(to as usize, from as usize, payload as usize);
                Some(to as usize)
            }
            Ev::Start(j) => {
                self.nodes[j as usize].up = true;
                let rtt = 2.0 * self.links.delay_ms(j as usize, 0);
                // QUIC's handshake and gossipsub's subscription: two round trips.
                self.schedule(self.now + (2.0 * rtt * 1000.0) as u64, Ev::Connected(j));
                None
            }
            Ev::Connected(j) => {
                self.connected(j as usize);
                Some(j as usize)
            }
            Ev::Announce(a) => {
                let a = a as usize;
                let me = &mut self.nodes[a].me;
                me.seq += 1;
                me.services.insert(SVC.into(), BTreeMap::new());
                let msg = Message::Alive(me.clone());
                self.publish(a, msg);
                None
            }
            Ev::Kill(v) => {
                self.nodes[v as usize].up = false;
                None
            }
        };
        if let Some(i) = node.filter(|i| self.nodes[*i].table.is_some()) {
            self.nodes[i].cpu += started.elapsed();
        }
    }

    /// An observer's second: the detector's timeouts, probes, anti-entropy
    /// every `sync_interval`, and gossipsub's IHAVEs.
    fn tick(&mut self, i: usize) -> bool {
        if !self.nodes[i].up {
            return false;
        }
        let now = self.at();
        self.schedule(self.now + 1_000_000, Ev::Tick(i as u32));
        let changes = self.nodes[i].table.as_mut().map(|t| t.tick(now)).unwrap_or_default();
        self.changes(i, changes);
        let node = &mut self.nodes[i];
        let Some(table) = node.table.as_ref() else { return false };
        let targets: Vec<usize> = node
            .detector
            .targets(table, node.peer, self.cfg.monitors)
            .iter()
            .map(|p| self.index[p])
            .collect();
        for t in targets {
            self.probe_bytes(i, t);
            if self.nodes[t].up {
                let tp = self.nodes[t].peer;
                let changes = self.nodes[i].table.as_mut().map(|x| x.touch(&tp, now));
                self.changes(i, changes.unwrap_or_default());
            } else if self.nodes[i].pending.insert(t) {
                let limit = self.cfg.probe_timeout.as_micros() as u64;
                self.schedule(self.now + limit, Ev::ProbeFail(i as u32, t as u32));
            }
        }
        let sec = self.now / 1_000_000;
        let every = self.cfg.sync_interval.as_secs().max(1);
        if (sec + i as u64).is_multiple_of(every) {
            self.start_sync(i);
        }
        self.ihave(i);
        true
    }

    /// The nodes without a table: their probes and converged exchanges.
    fn relay_tick(&mut self) {
        self.schedule(self.now + 1_000_000, Ev::RelayTick);
        let sec = self.now / 1_000_000;
        let every = self.cfg.sync_interval.as_secs().max(1);
        for i in 0..self.nodes.len() {
            if self.nodes[i].table.is_some() || !self.nodes[i].up {
                continue;
            }
            let targets: Vec<usize> =
                self.ring_neighbours(i).into_iter().take(self.cfg.monitors).collect();
            for t in targets {
                self.probe_bytes(i, t);
            }
            if (sec + i as u64).is_multiple_of(every) {
                let partner = self.nodes[i].mesh.first().copied();
                let hello = SyncRequest::Hello { hash: vec![0; 32] };
                let (a, b) = transfer(cbor_len(&hello) + wire::NEGOTIATION);
                self.nodes[i].sent[SYNC] += a;
                if let Some(p) = partner {
                    let (c, d) = transfer(cbor_len(&SyncResponse::Equal) + wire::NEGOTIATION);
                    self.nodes[p].sent[SYNC] += b + c;
                    self.nodes[i].sent[SYNC] += d;
                }
            }
            self.ihave(i);
        }
    }

    fn probe_bytes(&mut self, i: usize, t: usize) {
        self.nodes[i].sent[PROBES] += wire::PACKET + wire::NONCE + wire::ACK;
        if self.nodes[t].up {
            self.nodes[t].sent[PROBES] += wire::PACKET + wire::NONCE;
        }
    }

    /// Gossipsub's lazy gossip: ids of messages seen in the last three
    /// heartbeats, to three peers outside the mesh.
    fn ihave(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let now = self.now;
        node.heard.retain(|t| now.saturating_sub(*t) < GOSSIP_HISTORY_US);
        let ids = node.heard.len() as u64;
        if ids > 0 {
            node.sent[GOSSIP] += GOSSIP_LAZY * (wire::PACKET + ids * wire::GOSSIP_ID);
        }
    }

    fn probe_failed(&mut self, i: usize, t: usize) {
        self.nodes[i].pending.remove(&t);
        if !self.nodes[i].up || self.nodes[t].up {
            return;
        }
        let now = self.at();
        let (me, peer) = (self.nodes[i].peer, self.nodes[t].peer);
        let node = &mut self.nodes[i];
        let Some(table) = node.table.as_mut() else { return };
        if let Some((msg, changes)) = node.detector.probe_failed(table, me, peer, now) {
            self.publish(i, msg);
            self.changes(i, changes);
        }
    }

    fn publish(&mut self, i: usize, msg: Message) {
        let data = msg.encode();
        let id = {
            use std::hash::{DefaultHasher, Hash, Hasher};
            let mut h = DefaultHasher::new();
            data.hash(&mut h);
            h.finish()
        };
        self.msgs.push((msg, data.len() as u64 + wire::GOSSIP_ENVELOPE, id));
        let m = self.msgs.len() - 1;
        self.nodes[i].seen.insert(id);
        self.nodes[i].heard.push(self.now);
        self.forward(i, usize::MAX, m, 0);
    }

    fn forward(&mut self, i: usize, from: usize, m: usize, hops: u32) {
        let (len, id) = (self.msgs[m].1, self.msgs[m].2);
        for p in self.nodes[i].mesh.clone() {
            if p == from {
                continue;
            }
            let (ms, times) = self.links.deliver(i, p, (id, 'g'));
            self.nodes[i].sent[GOSSIP] += times * (len + wire::PACKET);
            if self.nodes[p].up {
                self.nodes[p].sent[GOSSIP] += wire::ACK;
            }
            let ev = Ev::Gossip { to: p as u32, from: i as u32, msg: m as u32, hops: hops + 1 };
            self.schedule(self.now + (ms * 1000.0) as u64, ev);
        }
    }

    fn gossip(&mut self, to: usize, from: usize, m: usize, hops: u32) {
        let id = self.msgs[m].2;
        if !self.nodes[to].up || !self.nodes[to].seen.insert(id) {
            return;
        }
        self.nodes[to].heard.push(self.now);
        if m == self.announcement() {
            self.watch.hops = self.watch.hops.max(hops);
        }
        let now = self.at();
        let msg = self.msgs[m].0.clone();
        if let Some(t) = self.nodes[to].table.as_mut() {
            let changes = t.apply(msg, now);
            self.changes(to, changes);
        }
        self.forward(to, from, m, hops);
    }

    /// The index of the announcement among the messages (or none yet).
    fn announcement(&self) -> usize {
        let a = self.nodes[self.watch.announcer].peer;
        self.msgs
            .iter()
            .position(|(m, _, _)| matches!(m, Message::Alive(x) if x.peer == a && x.services.contains_key(SVC)))
            .unwrap_or(usize::MAX)
    }

    fn start_sync(&mut self, i: usize) {
        // A random connected member, as the node picks; where none holds a
        // table (few observers), a random observer.
        let n = self.nodes.len();
        let ok = |p: &usize| *p != i && self.nodes[*p].up && self.nodes[*p].table.is_some();
        let mut conns: Vec<usize> =
            self.nodes[i].mesh.iter().chain(&self.nodes[i].links).copied().filter(ok).collect();
        conns.sort();
        conns.dedup();
        let pick = draw((self.seed, self.now, i, "sync"));
        let partner = match conns.len() {
            0 => {
                (0..8).map(|k| (draw((self.seed, self.now, i, k)) * n as f64) as usize % n).find(ok)
            }
            c => Some(conns[(pick * c as f64) as usize % c]),
        };
        let Some(p) = partner else { return };
        let node = &mut self.nodes[i];
        let Some(t) = node.table.as_mut() else { return };
        let hello = t.hello(&node.me);
        self.send_sync(i, p, Payload::Req(hello));
    }

    fn send_sync(&mut self, from: usize, to: usize, payload: Payload) {
        let len = match &payload {
            Payload::Req(r) => cbor_len(r),
            Payload::Resp(r) => cbor_len(r),
        } + wire::NEGOTIATION;
        let (a, b) = transfer(len);
        self.nodes[from].sent[SYNC] += a;
        self.nodes[to].sent[SYNC] += b;
        self.payloads.push(Some(payload));
        let k = self.payloads.len() - 1;
        let (ms, _) = self.links.deliver(from, to, (k, 's'));
        let ev = Ev::Sync { to: to as u32, from: from as u32, payload: k as u32 };
        self.schedule(self.now + (ms * 1000.0) as u64, ev);
    }

    fn sync(&mut self, to: usize, from: usize, k: usize) {
        let Some(payload) = self.payloads[k].take() else { return };
        if !self.nodes[to].up {
            return;
        }
        let now = self.at();
        let node = &mut self.nodes[to];
        let Some(t) = node.table.as_mut() else { return };
        match payload {
            Payload::Req(r) => {
                let (resp, changes) = t.answer(&node.me, r, now);
                self.send_sync(to, from, Payload::Resp(resp));
                self.changes(to, changes);
            }
            Payload::Resp(r) => {
                let (next, changes) = t.take(&node.me, r, now);
                if let Some(next) = next {
                    self.send_sync(to, from, Payload::Req(next));
                }
                self.changes(to, changes);
            }
        }
    }

    /// The newcomer reached its bootstrap: it announces itself, and starts
    /// an exchange (as the dialer of a new connection does).
    fn connected(&mut self, j: usize) {
        self.nodes[j].mesh.push(0);
        self.nodes[0].mesh.push(j);
        let me = &mut self.nodes[j].me;
        me.seq += 1;
        let msg = Message::Alive(me.clone());
        self.publish(j, msg);
        let node = &mut self.nodes[j];
        if let Some(t) = node.table.as_mut() {
            let hello = t.hello(&node.me);
            self.send_sync(j, 0, Payload::Req(hello));
        }
        self.schedule(self.now + 1_000_000, Ev::Tick(j as u32));
    }

    fn changes(&mut self, i: usize, changes: Vec<Change>) {
        for c in changes {
            match c {
                Change::State { peer, to, .. } => {
                    let p = self.index[&peer];
                    self.record(i, p, to);
                    let node = &mut self.nodes[i];
                    let confirm = match node.table.as_ref() {
                        Some(t) => node.detector.on_state(t, node.peer, peer, to),
                        None => None,
                    };
                    if let Some(m) = confirm {
                        self.publish(i, m);
                    }
                }
                Change::Refute => {
                    let me = &mut self.nodes[i].me;
                    me.seq += 1;
                    let msg = Message::Alive(me.clone());
                    self.publish(i, msg);
                }
                Change::Services { peer, announced, .. } => {
                    if self.index[&peer] == self.watch.announcer
                        && announced.iter().any(|a| a == SVC)
                    {
                        self.watch.announced.entry(i).or_insert(self.now);
                    }
                }
                Change::Restarted { .. } => {}
            }
        }
        if i == self.watch.joiner && self.watch.joiner_full.is_none() {
            let up = self.nodes.iter().filter(|n| n.up).count() - 1;
            let known = self.nodes[i]
                .table
                .as_ref()
                .map_or(0, |t| t.iter().filter(|m| m.state.is_up()).count());
            if known >= up {
                self.watch.joiner_full = Some(self.now);
                self.connect(i);
            }
        }
    }

    fn record(&mut self, i: usize, p: usize, to: MemberState) {
        let w = &mut self.watch;
        if to == MemberState::Failed && p == w.victim {
            w.failed.entry(i).or_insert(self.now);
        }
        if to == MemberState::Alive && p == w.joiner {
            w.joined.entry(i).or_insert(self.now);
        }
        if self.nodes[p].up {
            match to {
                MemberState::Failed => drop(w.false_failed.insert((i, p))),
                MemberState::Suspect => drop(w.false_suspected.insert((i, p))),
                _ => {}
            }
        }
    }

    /// When every up observer other than `subject` saw it, s after `since`.
    fn all_saw(&self, seen: &HashMap<usize, u64>, subject: usize, since: u64) -> Option<f64> {
        let mut last = since;
        for (i, n) in self.nodes.iter().enumerate() {
            if i == subject || !n.up || n.table.is_none() {
                continue;
            }
            last = last.max(*seen.get(&i)?);
        }
        Some((last - since) as f64 / 1e6)
    }

    fn outcome(&self, s: &Setup, before: &[([u64; 3], Duration)]) -> Outcome {
        let w = &self.watch;
        let up: Vec<usize> = (0..self.nodes.len()).filter(|i| self.nodes[*i].up).collect();
        let secs = s.idle_secs.max(1) as f64;
        let mut idle = [0.0; 3];
        let mut cpu = Duration::ZERO;
        let mut tables = 0;
        for i in &up {
            for (k, v) in idle.iter_mut().enumerate() {
                *v += (self.nodes[*i].sent[k] - before[*i].0[k]) as f64 / secs / up.len() as f64;
            }
            if self.nodes[*i].table.is_some() {
                cpu += self.nodes[*i].cpu - before[*i].1;
                tables += 1;
            }
        }
        let join_start = micros(T_JOIN);
        let join = w.joiner_full.and_then(|full| {
            let others = self.all_saw(&w.joined, w.joiner, join_start)?;
            Some(others.max((full.saturating_sub(join_start)) as f64 / 1e6))
        });
        let summaries: HashSet<[u8; 32]> = up
            .iter()
            .filter_map(|i| {
                let n = &self.nodes[*i];
                Some(n.table.as_ref()?.summary(&n.me))
            })
            .collect();
        Outcome {
            observers: self.nodes.iter().filter(|n| n.table.is_some()).count(),
            join,
            announce: self.all_saw(&w.announced, w.announcer, micros(T_ANNOUNCE)),
            announce_hops: w.hops,
            detect: self.all_saw(&w.failed, w.victim, micros(T_KILL)),
            false_failures: w.false_failed.iter().map(|(_, p)| p).collect::<HashSet<_>>().len(),
            false_suspicions: w
                .false_suspected
                .iter()
                .map(|(_, p)| p)
                .collect::<HashSet<_>>()
                .len(),
            idle_bytes: idle,
            idle_cpu: cpu.as_secs_f64() / secs / tables.max(1) as f64,
            mesh_degree: up.iter().map(|i| self.nodes[*i].mesh.len() as f64).sum::<f64>()
                / up.len().max(1) as f64,
            converged: summaries.len() == 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(o: &Outcome) -> (Option<f64>, Option<f64>, Option<f64>, u32, [u64; 3]) {
        let bytes = o.idle_bytes.map(|b| b.round() as u64);
        (o.join, o.announce, o.detect, o.announce_hops, bytes)
    }

    #[test]
    fn the_same_seed_gives_the_same_run_and_another_seed_another() {
        let a = run(&Setup::community(100, 1));
        let b = run(&Setup::community(100, 1));
        let c = run(&Setup::community(100, 2));
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
    }

    /// The 1,000-node case of the issue, with tables on a fifth of the
    /// nodes (a debug build runs the member tables unoptimised).
    #[test]
    fn a_thousand_node_community_meets_the_membership_targets() {
        let o = run(&Setup { observers: Some(200), ..Setup::community(1000, 3) });
        assert!(o.observers >= 200, "{o:?}");
        assert!(o.join.is_some_and(|t| t <= 3.0), "newcomer: {o:?}");
        assert!(o.announce.is_some_and(|t| t <= 1.0), "announcement: {o:?}");
        assert!(o.detect.is_some_and(|t| t <= 5.0), "kill -9: {o:?}");
        assert_eq!((o.false_failures, o.false_suspicions), (0, 0), "{o:?}");
        assert!(o.idle_bytes.iter().sum::<f64>() <= 1000.0, "idle traffic: {o:?}");
        assert!(o.converged, "tables disagree: {o:?}");
    }

    /// Tables on a sample of nodes give the figures of tables everywhere.
    #[test]
    fn observers_see_what_every_node_sees() {
        let full = run(&Setup { observers: None, ..Setup::community(300, 4) });
        let sampled = run(&Setup { observers: Some(40), ..Setup::community(300, 4) });
        assert_eq!(full.observers, 300);
        assert!(sampled.observers < 60);
        let near = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() <= 0.25 * a.max(b) + 0.05,
            _ => false,
        };
        assert!(near(full.detect, sampled.detect), "{full:?} {sampled:?}");
        assert!(near(full.announce, sampled.announce), "{full:?} {sampled:?}");
        let total = |o: &Outcome| o.idle_bytes.iter().sum::<f64>();
        assert!((total(&full) - total(&sampled)).abs() <= 0.1 * total(&full));
    }

    /// Without the detector's probes nobody accuses a dead member: the
    /// figure comes from the detector, not from the scenario.
    #[test]
    fn a_member_nobody_monitors_is_never_failed() {
        let mut s = Setup::community(60, 5);
        s.idle_secs = 5;
        let mut sim = Sim::new(&s);
        let victim = sim.watch.victim;
        sim.cfg.monitors = 0;
        sim.schedule(micros(1), Ev::Kill(victim as u32));
        for i in 0..sim.nodes.len() {
            if i != sim.watch.joiner {
                sim.schedule(micros(1) + i as u64, Ev::Tick(i as u32));
            }
        }
        sim.until(micros(20));
        assert!(sim.watch.failed.is_empty());
    }
}
