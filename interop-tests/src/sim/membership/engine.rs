//! The event loop of the membership simulation: simulated nodes, each with
//! the node's member table and detector, exchanging gossip, probes and
//! anti-entropy over [`Links`].

use super::{churn, Churned, Outcome, Setup, SVC};
use crate::sim::wire::{self, draw, Links};
use cloudy_overlay::broadcast::{self, Frame, Tree};
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

/// Gossipsub's mesh degree: least, wanted, most (the node's settings).
const MESH_LOW: usize = 3;
const MESH_N: usize = 4;
const MESH_HIGH: usize = 6;
/// Gossipsub's IHAVE fan-out and history, in heartbeats of 1 s.
const GOSSIP_LAZY: u64 = 3;
const GOSSIP_HISTORY_US: u64 = 3_000_000;
/// Whom every newcomer and returning node bootstraps from: an actor of
/// the scenario, so always up and holding a full table.
const BOOTSTRAP: usize = 0;
/// Successors a node without a full table keeps entries of.
const SCOPE: usize = 9;
/// When the scenario's events happen, simulated seconds.
const T_JOIN: u64 = 2;
const T_ANNOUNCE: u64 = 10;
const T_KILL: u64 = 15;
pub(super) const T_IDLE: u64 = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Tick(u32),
    /// A suspicion runs out (the node wakes at its table's next deadline).
    Check(u32),
    ProbeFail(u32, u32),
    Gossip {
        to: u32,
        from: u32,
        msg: u32,
        hops: u32,
    },
    Sync {
        to: u32,
        from: u32,
        payload: u32,
    },
    /// A frame of the broadcast tree (`frames[frame]`).
    Frame {
        to: u32,
        from: u32,
        frame: u32,
    },
    /// A missing message is due to be asked for (the tree's deadline).
    TreeCheck(u32),
    Up(u32),
    Connected(u32),
    Announce(u32),
    Down(u32),
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
    /// When it last came up, µs.
    since: u64,
    /// Holds every member (an observer), or only `scope`.
    full: bool,
    scope: HashSet<PeerId>,
    /// Has its connections and mesh (a newcomer: once it knows the community).
    linked: bool,
    table: MemberTable,
    detector: Detector,
    pending: HashSet<usize>,
    /// Gossipsub's mesh; with the broadcast tree, every connection.
    mesh: Vec<usize>,
    links: Vec<usize>,
    /// The broadcast tree over `mesh` (when the tree disseminates).
    tree: Tree<usize>,
    tree_check_at: Option<u64>,
    /// Announces itself over its first links, once it has them (the node
    /// does so on its first broadcast link).
    announce: bool,
    seen: HashSet<u64>,
    heard: Vec<u64>,
    sent: [u64; 3],
    /// Time in the project's code: gossip, detector, anti-entropy.
    cpu: [Duration; 3],
    /// Messages taken (new to it).
    taken: u64,
    /// When its next [`Ev::Check`] is due, µs.
    check_at: Option<u64>,
}

/// A member went down or came back at `at` µs; when each observer saw it.
struct Watched {
    at: u64,
    seen: HashMap<usize, u64>,
}

#[derive(Default)]
struct Watch {
    joiner: usize,
    announcer: usize,
    victim: usize,
    joined: HashMap<usize, u64>,
    joiner_full: Option<u64>,
    announced: HashMap<usize, u64>,
    failed: HashMap<usize, u64>,
    hops: u32,
    false_failed: HashSet<usize>,
    false_suspected: HashSet<usize>,
    downs: HashMap<usize, Watched>,
    backs: HashMap<usize, Watched>,
    done: (Vec<f64>, Vec<f64>),
    /// Members back before every observer saw them go.
    early: usize,
}

pub(super) struct Sim {
    cfg: Config,
    links: Links,
    nodes: Vec<Node>,
    index: HashMap<PeerId, usize>,
    ring: Vec<usize>,
    ring_pos: Vec<usize>,
    /// The nodes holding a full table, in index order.
    observers: Vec<usize>,
    seed: u64,
    base: Instant,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    msgs: Vec<(Message, u64, u64)>,
    payloads: Vec<Option<Payload>>,
    /// The broadcast tree disseminates instead of gossipsub.
    tree: bool,
    frames: Vec<Option<(Frame, u32)>>,
    /// Slots of `frames` delivered, to reuse.
    free_frames: Vec<usize>,
    watch: Watch,
}

mod tree;

/// Per node: bytes sent by kind, CPU time.
pub(super) type Counters = Vec<([u64; 3], [Duration; 3], u64)>;

/// What [`Sim::rates`] found over a phase.
struct Rates {
    /// Bytes per up node per second: gossip, probes, anti-entropy.
    bytes: [f64; 3],
    /// CPU per observer, share of a core: gossip, detector, anti-entropy.
    cpu: [f64; 3],
    /// Messages taken per observer per second.
    taken: f64,
    /// Anti-entropy bytes sent per observer per second.
    table_sync: f64,
}

/// Simulated seconds in µs.
fn micros(secs: u64) -> u64 {
    secs * 1_000_000
}

pub(super) fn alive_of(peer: PeerId, i: usize, seed: u64) -> Alive {
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

fn mean_max(v: &[f64]) -> Option<(f64, f64)> {
    let max = v.iter().copied().reduce(f64::max)?;
    Some((v.iter().sum::<f64>() / v.len() as f64, max))
}

impl Sim {
    pub(super) fn new(s: &Setup) -> Sim {
        let n = s.nodes.max(8);
        let peers: Vec<PeerId> = (0..n)
            .map(|i| {
                let bytes: [u8; 32] =
                    std::array::from_fn(|j| (draw((s.seed, "key", i, j)) * 256.0) as u8);
                Keypair::ed25519_from_bytes(bytes).expect("32 bytes").public().to_peer_id()
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
        let mut cfg = Config::default();
        if let Some((probe, suspicion)) = s.timeouts {
            cfg.probe_timeout = probe;
            cfg.timing.suspicion_timeout = suspicion;
        }
        // The actors: the last node joins, node 1 announces, node 2 dies;
        // node 0 is the newcomer's bootstrap.
        let (joiner, announcer, victim) = (n - 1, 1, 2);
        let mut actors: HashSet<usize> = [BOOTSTRAP, joiner, announcer, victim].into();
        for d in 1..=cfg.monitors + 1 {
            actors.insert(ring[(ring_pos[victim] + n - d) % n]);
        }
        let full: HashSet<usize> = match s.observers {
            None => (0..n).collect(),
            Some(o) => {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by(|a, b| draw((s.seed, "obs", a)).total_cmp(&draw((s.seed, "obs", b))));
                actors.iter().copied().chain(order.into_iter().take(o)).collect()
            }
        };
        // With a churn phase, nodes down when it starts have been gone
        // since before the simulation: in no table, no mesh.
        let absent =
            |i: usize| s.churn_secs > 0 && !actors.contains(&i) && churn::down_at_start(s.seed, i);
        let base = Instant::now();
        let nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                peer: peers[i],
                me: alive_of(peers[i], i, s.seed),
                up: i != joiner && !absent(i),
                since: 0,
                full: full.contains(&i),
                scope: (1..=SCOPE).map(|d| peers[ring[(ring_pos[i] + d) % n]]).collect(),
                linked: false,
                table: MemberTable::new(peers[i], cfg.timing),
                detector: Detector::default(),
                pending: HashSet::new(),
                mesh: Vec::new(),
                links: Vec::new(),
                tree: Tree::new(broadcast::Settings::default()),
                tree_check_at: None,
                announce: false,
                seen: HashSet::new(),
                heard: Vec::new(),
                sent: [0; 3],
                cpu: [Duration::ZERO; 3],
                taken: 0,
                check_at: None,
            })
            .collect();
        let mut observers: Vec<usize> = full.iter().copied().collect();
        observers.sort();
        let watch = Watch { joiner, announcer, victim, ..Watch::default() };
        let mut sim = Sim {
            links: Links::new(n, s.loss, s.seed),
            cfg,
            nodes,
            index,
            ring,
            ring_pos,
            observers,
            seed: s.seed,
            base,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            msgs: Vec::new(),
            payloads: Vec::new(),
            tree: s.tree,
            frames: Vec::new(),
            free_frames: Vec::new(),
            watch,
        };
        // A converged community: every table holds every up member.
        for i in 0..n {
            if sim.nodes[i].up {
                sim.fill(i);
                sim.link(i);
            }
        }
        sim
    }

    /// Fills `i`'s table with the heartbeats of the up members it keeps.
    fn fill(&mut self, i: usize) {
        let at = self.at();
        let known: Vec<Alive> = (0..self.nodes.len())
            .filter(|j| *j != i && self.nodes[*j].up && self.keeps(i, &self.nodes[*j].peer))
            .map(|j| self.nodes[j].me.clone())
            .collect();
        for a in known {
            self.nodes[i].table.apply(Message::Alive(a), at);
        }
    }

    /// Whether `i` keeps an entry for `peer`.
    fn keeps(&self, i: usize, peer: &PeerId) -> bool {
        let n = &self.nodes[i];
        n.full || n.peer == *peer || n.scope.contains(peer)
    }

    /// `i` links itself into the community.
    fn link(&mut self, i: usize) {
        self.nodes[i].linked = true;
        self.connect(i);
        if std::mem::take(&mut self.nodes[i].announce) {
            self.publish_alive(i);
        }
        // The node compares tables with every member it dials: what was
        // broadcast while it was joining, before it had links, comes
        // this way. One exchange stands for them.
        self.start_sync(i);
    }

    /// `i`'s connections (its ring neighbours and three random links) and
    /// its share of the gossip mesh.
    fn connect(&mut self, i: usize) {
        let (n, seed) = (self.nodes.len(), self.seed);
        let links: Vec<usize> = (0..self.cfg.target_peers)
            .map(|l| (draw((seed, "link", i, l, self.now)) * n as f64) as usize % n)
            .filter(|j| *j != i && self.nodes[*j].up)
            .collect();
        let mut conns = self.ring_neighbours(i);
        conns.extend(links.iter().copied());
        conns.sort();
        conns.dedup();
        self.nodes[i].links = links;
        if self.tree {
            self.tree_links(i, conns);
            return;
        }
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

    /// The monitor targets of `i` on the true ring of up members, then its
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

    /// The simulated µs to wake at for a deadline: not before it (a
    /// deadline between two µs, such as a suspicion scaled by the
    /// community's size, woke a node a fraction early, found nothing due,
    /// and armed it again for the same µs, for ever), and not in the past.
    fn wake_at(&self, due: Instant) -> u64 {
        let d = due.saturating_duration_since(self.base);
        let at = d.as_micros() as u64 + u64::from(!d.subsec_nanos().is_multiple_of(1000));
        at.max(self.now)
    }

    /// Node `i` gossips its state anew (join, announcement, refutation).
    fn publish_alive(&mut self, i: usize) {
        let me = &mut self.nodes[i].me;
        me.seq += 1;
        let msg = Message::Alive(me.clone());
        self.publish(i, msg);
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    /// The scenario's events, and every up node's first tick.
    pub(super) fn scenario(&mut self) {
        let w = &self.watch;
        let (j, a, v) = (w.joiner as u32, w.announcer as u32, w.victim as u32);
        self.schedule(micros(T_JOIN), Ev::Up(j));
        self.schedule(micros(T_ANNOUNCE), Ev::Announce(a));
        self.schedule(micros(T_KILL), Ev::Down(v));
        for i in 0..self.nodes.len() {
            if self.nodes[i].up {
                let phase = (draw((self.seed, "phase", i)) * 1e6) as u64;
                self.schedule(phase, Ev::Tick(i as u32));
            }
        }
    }

    /// Schedules the ups and downs of a churn phase of `secs` from `start` s.
    pub(super) fn churn(&mut self, start: u64, secs: u64) {
        let w = &self.watch;
        let actors = [BOOTSTRAP, w.joiner, w.announcer, w.victim];
        for i in 0..self.nodes.len() {
            if actors.contains(&i) {
                continue;
            }
            let up = self.nodes[i].up;
            for (k, t) in churn::transitions(self.seed, i, up, secs as f64).iter().enumerate() {
                let at = micros(start) + (t * 1e6) as u64;
                let ev = if (k % 2 == 0) == up { Ev::Down(i as u32) } else { Ev::Up(i as u32) };
                self.schedule(at, ev);
            }
        }
    }

    pub(super) fn until_secs(&mut self, end: u64) {
        let end = micros(end);
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
        match ev {
            Ev::Tick(i) => self.tick(i as usize),
            Ev::Check(i) => self.check(i as usize),
            Ev::ProbeFail(i, t) => self.probe_failed(i as usize, t as usize),
            Ev::Gossip { to, from, msg, hops } => {
                self.gossip(to as usize, from as usize, msg as usize, hops)
            }
            Ev::Sync { to, from, payload } => {
                self.sync(to as usize, from as usize, payload as usize)
            }
            Ev::Frame { to, from, frame } => {
                self.tree_frame(to as usize, from as usize, frame as usize)
            }
            Ev::TreeCheck(i) => self.tree_check(i as usize),
            Ev::Up(j) => self.up(j as usize),
            Ev::Connected(j) => self.connected(j as usize),
            Ev::Announce(a) => {
                self.nodes[a as usize].me.services.insert(SVC.into(), BTreeMap::new());
                self.publish_alive(a as usize);
            }
            Ev::Down(v) => self.down(v as usize),
        }
    }

    /// Runs the project's code `f` for node `i`, adding the time it took
    /// to the node's CPU time (the simulator's own work is not counted).
    /// `kind` is what the time counts as: [`GOSSIP`], [`PROBES`] (the
    /// detector) or [`SYNC`].
    fn code<T>(&mut self, i: usize, kind: usize, f: impl FnOnce(&mut Node) -> T) -> T {
        let started = std::time::Instant::now();
        let out = f(&mut self.nodes[i]);
        self.nodes[i].cpu[kind] += started.elapsed();
        out
    }

    fn down(&mut self, v: usize) {
        if !self.nodes[v].up {
            return;
        }
        self.nodes[v].up = false;
        if v != self.watch.victim {
            self.watch.backs.remove(&v);
            self.watch.downs.insert(v, Watched { at: self.now, seen: HashMap::new() });
        }
    }

    /// A node (re)starts: a new incarnation with an empty table; it reaches
    /// its bootstrap two round trips later.
    fn up(&mut self, j: usize) {
        if self.nodes[j].up {
            return;
        }
        if j != self.watch.joiner {
            // Back before every observer saw it go: no detection to time.
            if self.watch.downs.remove(&j).is_some() {
                self.watch.early += 1;
            }
            self.watch.backs.insert(j, Watched { at: self.now, seen: HashMap::new() });
        }
        let node = &mut self.nodes[j];
        node.up = true;
        node.since = self.now;
        node.linked = false;
        node.links.clear();
        node.me.incarnation += 1;
        node.me.seq = 1;
        node.table = MemberTable::new(node.peer, self.cfg.timing);
        node.detector = Detector::default();
        node.pending.clear();
        node.tree = Tree::new(broadcast::Settings::default());
        for p in std::mem::take(&mut node.mesh) {
            self.nodes[p].mesh.retain(|x| *x != j);
            self.tree_link_down(p, j);
        }
        let rtt = 2.0 * self.links.delay_ms(j, BOOTSTRAP);
        // QUIC's handshake and gossipsub's subscription: two round trips.
        self.schedule(self.now + (2.0 * rtt * 1000.0) as u64, Ev::Connected(j as u32));
    }

    /// The newcomer reached its bootstrap: it announces itself and starts
    /// an exchange (as the dialer of a new connection does). A node
    /// without a full table takes its neighbourhood's entries from the
    /// exchange (it keeps no others).
    fn connected(&mut self, j: usize) {
        if !self.nodes[j].up {
            return;
        }
        let boot = BOOTSTRAP;
        if self.tree {
            // The bootstrap connection carries the first exchange only; the
            // newcomer announces itself over its links once it has them.
            self.nodes[j].announce = true;
        } else {
            self.nodes[j].mesh.push(boot);
            self.nodes[boot].mesh.push(j);
            self.publish_alive(j);
        }
        if self.nodes[j].full {
            let hello = self.code(j, SYNC, |n| n.table.hello(&n.me));
            self.send_sync(j, boot, Payload::Req(hello));
        } else {
            self.fill(j);
            self.link(j);
        }
        self.schedule(self.now + 1_000_000, Ev::Tick(j as u32));
    }

    /// A node's second: the detector's timeouts, probes, gossipsub's mesh
    /// upkeep and IHAVEs, and anti-entropy every `sync_interval`.
    fn tick(&mut self, i: usize) {
        if !self.nodes[i].up {
            return;
        }
        let now = self.at();
        self.schedule(self.now + 1_000_000, Ev::Tick(i as u32));
        let changes = self.code(i, PROBES, |n| n.table.tick(now));
        self.changes(i, changes);
        let k = self.cfg.monitors;
        let targets = self.code(i, PROBES, |n| n.detector.targets(&n.table, n.peer, k).to_vec());
        let targets: Vec<usize> = targets.iter().map(|p| self.index[p]).collect();
        for t in targets {
            self.nodes[i].sent[PROBES] += wire::PACKET + wire::NONCE + wire::ACK;
            if self.nodes[t].up {
                self.nodes[t].sent[PROBES] += wire::PACKET + wire::NONCE;
                let tp = self.nodes[t].peer;
                let changes = self.code(i, PROBES, |n| n.table.touch(&tp, now));
                self.changes(i, changes);
            } else if self.nodes[i].pending.insert(t) {
                let limit = self.cfg.probe_timeout.as_micros() as u64;
                self.schedule(self.now + limit, Ev::ProbeFail(i as u32, t as u32));
            }
        }
        if self.nodes[i].linked {
            self.mesh_upkeep(i);
        }
        if self.tree {
            self.tree_tick(i);
        } else {
            self.ihave(i);
        }
        let sec = self.now / 1_000_000;
        if (sec + i as u64).is_multiple_of(self.cfg.sync_interval.as_secs().max(1)) {
            self.start_sync(i);
        }
    }

    /// A suspicion ran out: the node's table fails the member now, not at
    /// its next second (the node sleeps until `next_deadline`).
    fn check(&mut self, i: usize) {
        if self.nodes[i].check_at != Some(self.now) {
            return;
        }
        self.nodes[i].check_at = None;
        if !self.nodes[i].up {
            return;
        }
        let now = self.at();
        let changes = self.code(i, PROBES, |n| n.table.tick(now));
        self.changes(i, changes);
    }

    /// Wakes node `i` when its first suspicion runs out.
    fn arm(&mut self, i: usize) {
        let Some(due) = self.nodes[i].table.next_deadline() else { return };
        let at = self.wake_at(due);
        if self.nodes[i].check_at.is_none_or(|c| at < c) {
            self.nodes[i].check_at = Some(at);
            self.schedule(at, Ev::Check(i as u32));
        }
    }

    /// Gossipsub's heartbeat: mesh peers that went away are dropped, and
    /// below the least degree new ones are grafted.
    fn mesh_upkeep(&mut self, i: usize) {
        let before = self.nodes[i].mesh.len();
        let (mesh, gone): (Vec<usize>, Vec<usize>) =
            self.nodes[i].mesh.iter().partition(|p| self.nodes[**p].up);
        self.nodes[i].mesh = mesh;
        for p in gone {
            self.tree_link_down(i, p);
        }
        if self.nodes[i].mesh.len() < MESH_LOW && before >= MESH_LOW {
            self.connect(i);
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
            node.sent[GOSSIP] +=
                GOSSIP_LAZY * (wire::PACKET + wire::GOSSIP_IHAVE + ids * wire::GOSSIP_ID);
        }
    }

    fn probe_failed(&mut self, i: usize, t: usize) {
        self.nodes[i].pending.remove(&t);
        if !self.nodes[i].up || self.nodes[t].up {
            return;
        }
        let now = self.at();
        let (me, peer) = (self.nodes[i].peer, self.nodes[t].peer);
        let accused =
            self.code(i, PROBES, |n| n.detector.probe_failed(&mut n.table, me, peer, now));
        if let Some((msg, changes)) = accused {
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
        let envelope = if self.tree { wire::TREE_ENVELOPE } else { wire::GOSSIP_ENVELOPE };
        self.msgs.push((msg, data.len() as u64 + envelope, id));
        let m = self.msgs.len() - 1;
        self.nodes[i].seen.insert(id);
        self.nodes[i].heard.push(self.now);
        if self.tree {
            self.tree_publish(i, m);
            return;
        }
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
        self.take(to, m, hops);
        self.forward(to, from, m, hops);
    }

    /// Node `to` takes message `m`, new to it, `hops` from its author.
    fn take(&mut self, to: usize, m: usize, hops: u32) {
        self.nodes[to].heard.push(self.now);
        self.nodes[to].taken += 1;
        let msg = self.msgs[m].0.clone();
        if matches!(&msg, Message::Alive(a) if a.services.contains_key(SVC)) {
            self.watch.hops = self.watch.hops.max(hops);
        }
        if self.keeps(to, &msg.peer()) {
            let now = self.at();
            let changes = self.code(to, GOSSIP, |n| n.table.apply(msg, now));
            self.changes(to, changes);
        }
    }

    fn start_sync(&mut self, i: usize) {
        if !self.nodes[i].full {
            // Converged: a hash and `Equal`, with a random mesh peer.
            let partner = self.nodes[i].mesh.first().copied();
            let hello = SyncRequest::Hello { hash: vec![0; 32] };
            let (a, b) = transfer(cbor_len(&hello) + wire::NEGOTIATION);
            self.nodes[i].sent[SYNC] += a;
            if let Some(p) = partner {
                let (c, d) = transfer(cbor_len(&SyncResponse::Equal) + wire::NEGOTIATION);
                self.nodes[p].sent[SYNC] += b + c;
                self.nodes[i].sent[SYNC] += d;
            }
            return;
        }
        // A random connected member holding a full table, as the node
        // picks; where none does (few observers), a random observer.
        let n = self.observers.len();
        let ok = |p: &usize| *p != i && self.nodes[*p].up && self.nodes[*p].full;
        let mut conns: Vec<usize> =
            self.nodes[i].mesh.iter().chain(&self.nodes[i].links).copied().filter(ok).collect();
        conns.sort();
        conns.dedup();
        let pick = draw((self.seed, self.now, i, "sync"));
        let partner = match conns.len() {
            0 => {
                let random = |k: usize| {
                    self.observers[(draw((self.seed, self.now, i, k)) * n as f64) as usize % n]
                };
                (0..8).map(random).find(ok)
            }
            c => Some(conns[(pick * c as f64) as usize % c]),
        };
        let Some(p) = partner else { return };
        let hello = self.code(i, SYNC, |n| n.table.hello(&n.me));
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
        match payload {
            Payload::Req(r) => {
                let (resp, changes) = self.code(to, SYNC, |n| n.table.answer(&n.me, r, now));
                self.send_sync(to, from, Payload::Resp(resp));
                self.changes(to, changes);
            }
            Payload::Resp(r) => {
                let (next, changes) = self.code(to, SYNC, |n| n.table.take(&n.me, r, now));
                let done = next.is_none();
                if let Some(next) = next {
                    self.send_sync(to, from, Payload::Req(next));
                }
                self.changes(to, changes);
                // A newcomer's first exchange is over: it knows the community.
                if done && !self.nodes[to].linked {
                    self.link(to);
                }
            }
        }
    }

    fn changes(&mut self, i: usize, changes: Vec<Change>) {
        for c in changes {
            match c {
                Change::State { peer, to, .. } => {
                    let p = self.index[&peer];
                    self.record(i, p, to);
                    let confirm =
                        self.code(i, PROBES, |n| n.detector.on_state(&n.table, n.peer, peer, to));
                    if let Some(m) = confirm {
                        self.publish(i, m);
                    }
                }
                Change::Refute => self.publish_alive(i),
                Change::Services { peer, announced, .. } => {
                    let p = self.index[&peer];
                    if p == self.watch.announcer && announced.iter().any(|a| a == SVC) {
                        self.watch.announced.entry(i).or_insert(self.now);
                    }
                }
                Change::Restarted { peer } => {
                    let p = self.index[&peer];
                    self.record(i, p, MemberState::Alive);
                }
            }
        }
        if self.nodes[i].up {
            self.arm(i);
        }
        if i == self.watch.joiner && self.watch.joiner_full.is_none() {
            let up = self.nodes.iter().filter(|n| n.up).count() - 1;
            let known = self.nodes[i].table.iter().filter(|m| m.state.is_up()).count();
            if known >= up {
                self.watch.joiner_full = Some(self.now);
            }
        }
    }

    fn record(&mut self, i: usize, p: usize, to: MemberState) {
        if !self.nodes[i].full {
            return;
        }
        let (now, w) = (self.now, &mut self.watch);
        match to {
            MemberState::Failed if p == w.victim => drop(w.failed.entry(i).or_insert(now)),
            MemberState::Alive if p == w.joiner => drop(w.joined.entry(i).or_insert(now)),
            _ => {}
        }
        match to {
            MemberState::Failed => {
                if let Some(d) = w.downs.get_mut(&p) {
                    d.seen.entry(i).or_insert(now);
                }
            }
            MemberState::Alive => {
                if let Some(b) = w.backs.get_mut(&p) {
                    b.seen.entry(i).or_insert(now);
                }
            }
            _ => {}
        }
        // Only members up since the start (never restarted) can be
        // falsely failed: a restarted one's old incarnation really died.
        if self.nodes[p].up && self.nodes[p].since == 0 {
            match to {
                MemberState::Failed => drop(w.false_failed.insert(p)),
                MemberState::Suspect => drop(w.false_suspected.insert(p)),
                _ => {}
            }
        }
        self.settle(p);
    }

    /// Closes the watch of `p`'s going down or coming back once every
    /// observer saw it.
    fn settle(&mut self, p: usize) {
        let all = |w: &Watched| self.all_saw(&w.seen, p, w.at);
        let down = self.watch.downs.get(&p).and_then(all);
        let back = self.watch.backs.get(&p).and_then(all);
        if let Some(t) = down {
            self.watch.downs.remove(&p);
            self.watch.done.0.push(t);
        }
        if let Some(t) = back {
            self.watch.backs.remove(&p);
            self.watch.done.1.push(t);
        }
    }

    /// When every up observer other than `subject`, up since before
    /// `since`, saw it; s after `since`.
    fn all_saw(&self, seen: &HashMap<usize, u64>, subject: usize, since: u64) -> Option<f64> {
        let mut last = since;
        for (i, n) in self.nodes.iter().enumerate() {
            if i == subject || !n.up || !n.full || n.since > since {
                continue;
            }
            last = last.max(*seen.get(&i)?);
        }
        Some((last - since) as f64 / 1e6)
    }

    pub(super) fn counters(&self) -> Counters {
        self.nodes.iter().map(|n| (n.sent, n.cpu, n.taken)).collect()
    }

    /// Bytes per up node per second by kind, and per up observer: CPU per
    /// second by kind and messages taken per second.
    fn rates(&self, secs: u64, before: &Counters) -> Rates {
        let up: Vec<usize> = (0..self.nodes.len()).filter(|i| self.nodes[*i].up).collect();
        let secs = secs.max(1) as f64;
        let mut bytes = [0.0; 3];
        let (mut cpu, mut taken, mut sync, mut tables) = ([Duration::ZERO; 3], 0, 0, 0);
        for i in &up {
            let n = &self.nodes[*i];
            for (k, v) in bytes.iter_mut().enumerate() {
                *v += (n.sent[k] - before[*i].0[k]) as f64 / secs / up.len() as f64;
            }
            if n.full {
                for (k, c) in cpu.iter_mut().enumerate() {
                    *c += n.cpu[k].saturating_sub(before[*i].1[k]);
                }
                taken += n.taken - before[*i].2;
                sync += n.sent[SYNC] - before[*i].0[SYNC];
                tables += 1;
            }
        }
        let per_table = |v: f64| v / secs / f64::from(tables.max(1));
        Rates {
            bytes,
            cpu: cpu.map(|c| per_table(c.as_secs_f64())),
            taken: per_table(taken as f64),
            table_sync: per_table(sync as f64),
        }
    }

    pub(super) fn outcome(&self, secs: u64, before: &Counters) -> Outcome {
        let w = &self.watch;
        let Rates { bytes: idle_bytes, cpu: idle_cpu, .. } = self.rates(secs, before);
        let join = w.joiner_full.and_then(|full| {
            let others = self.all_saw(&w.joined, w.joiner, micros(T_JOIN))?;
            Some(others.max(full.saturating_sub(micros(T_JOIN)) as f64 / 1e6))
        });
        let up: Vec<&Node> = self.nodes.iter().filter(|n| n.up).collect();
        let summaries: HashSet<[u8; 32]> =
            up.iter().filter(|n| n.full).map(|n| n.table.summary(&n.me)).collect();
        Outcome {
            observers: self.nodes.iter().filter(|n| n.full).count(),
            join,
            announce: self.all_saw(&w.announced, w.announcer, micros(T_ANNOUNCE)),
            announce_hops: w.hops,
            detect: self.all_saw(&w.failed, w.victim, micros(T_KILL)),
            idle_bytes,
            idle_cpu,
            mesh_degree: up.iter().map(|n| n.mesh.len() as f64).sum::<f64>()
                / up.len().max(1) as f64,
            converged: summaries.len() == 1,
            ..Outcome::default()
        }
    }

    pub(super) fn churned(&self, secs: u64, before: &Counters) -> Churned {
        let w = &self.watch;
        let Rates { bytes, cpu, taken, table_sync } = self.rates(secs, before);
        Churned {
            failures: w.done.0.len() + w.downs.len() + w.early,
            returns: w.done.1.len() + w.backs.len(),
            detect: mean_max(&w.done.0),
            undetected: w.downs.len(),
            rejoin: mean_max(&w.done.1),
            unseen: w.backs.len(),
            bytes,
            cpu,
            taken,
            table_sync,
        }
    }

    /// Live members some observer held failed, and suspected.
    pub(super) fn false_alarms(&self) -> (usize, usize) {
        (self.watch.false_failed.len(), self.watch.false_suspected.len())
    }
}
