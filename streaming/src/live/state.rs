//! The mesh logic of one channel on one node, publisher or viewer (pure:
//! the caller passes the time, delivers messages and carries out the
//! returned [`Action`]s).
//!
//! - The publisher sends each new chunk to one neighbour, taking turns,
//!   and tells the others about it only after [`Params::patience`], so the
//!   viewers fetch it from each other first. It answers requests from a
//!   budget of [`Params::pull_share`] of the stream, and says
//!   [`Msg::Missing`] beyond it.
//! - A viewer keeps [`Params::neighbours`] sessions, chosen at random
//!   weighted by overlay score, and asks them for what it lacks by
//!   [`window::pick`]: due-soon chunks first, then newest first. A request
//!   unanswered in [`Params::request_timeout`] is asked again elsewhere (and
//!   its neighbour gets no more requests until it answers); a neighbour
//!   silent for [`Params::silence`] is dropped and replaced.
//! - A viewer answers requests from a budget of [`Params::relay_share`] of
//!   the stream, so the relaying spreads over all viewers instead of
//!   falling on the first to hold each chunk.
//! - Every node tells its neighbours what it holds on every new chunk and
//!   at least every [`Params::keepalive`].
//! - Time this node itself did not run (a process starved of CPU, its
//!   100 ms tick late by more than [`STALLED`]) counts against no one: on
//!   waking, its request timeouts, silence timers and players' deadlines
//!   move on by the stall ([`Live::wake`]), so what its neighbours sent
//!   meanwhile, still unread, is taken rather than skipped.

use super::stats::Stats;
use crate::chunk::Chunk;
use crate::playout::{Out, Playout};
use crate::protocol::Msg;
use crate::window::{self, BufferMap, Neighbour, WINDOW};
use cloudy_overlay::PeerId;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Chunks kept to play and to serve (10 s at 4 a second; buffer maps
/// cover [`WINDOW`], the older part of it simply shows as not held).
const STORE: usize = 40;
/// A viewer with no new chunk for this long opens one more session.
const STARVED: Duration = Duration::from_secs(2);
/// How long after getting a chunk a node may refuse it for want of budget.
const FRESH: Duration = Duration::from_millis(600);
/// A gap this long between two calls means the node was not running (the
/// channel's task calls [`Live::tick`] every 100 ms).
pub const STALLED: Duration = Duration::from_millis(500);
/// Most a request budget saves up, in bytes.
const BUDGET_CAP: f64 = 256.0 * 1024.0;

/// A neighbour session, numbered by the caller.
pub type Sid = u64;
/// A local player.
pub type SubId = u64;

/// Tunables (DESIGN/streaming.md gives the reasons).
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Sessions a viewer opens until it has this many.
    pub neighbours: usize,
    /// More incoming sessions than this are refused.
    pub max_neighbours: usize,
    /// How long a player waits for a missing chunk.
    pub playout_delay: Duration,
    /// A request unanswered this long is asked again elsewhere.
    pub request_timeout: Duration,
    /// A neighbour silent this long is dropped.
    pub silence: Duration,
    /// We tell each neighbour what we hold at least this often.
    pub keepalive: Duration,
    /// The publisher advertises a chunk this long after pushing it.
    pub patience: Duration,
    /// A viewer with no new chunk for this long gives the channel up.
    pub stall: Duration,
    /// The publisher's answers to requests, as a share of the stream.
    pub pull_share: f64,
    /// A viewer's answers to requests, as a share of the stream: a cap
    /// that spreads the relaying over all viewers.
    pub relay_share: f64,
    /// A peer that refused us or failed is not dialed again for this long.
    pub retry: Duration,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            neighbours: 5,
            max_neighbours: 10,
            playout_delay: Duration::from_secs(3),
            request_timeout: Duration::from_millis(1000),
            silence: Duration::from_secs(3),
            keepalive: Duration::from_millis(1000),
            patience: Duration::from_millis(300),
            stall: Duration::from_secs(10),
            pull_share: 0.75,
            relay_share: 1.2,
            retry: Duration::from_secs(3),
        }
    }
}

/// The time, both ways.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// Monotonic, for timers.
    pub at: Instant,
    /// Unix milliseconds, to compare with chunk timestamps.
    pub unix_ms: u64,
}

/// Another node watching or publishing the channel, from the directory.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The node.
    pub peer: PeerId,
    /// Its overlay score (higher is nearer and more reliable).
    pub score: f64,
    /// It publishes the channel.
    pub publisher: bool,
}

/// What the caller must do.
#[derive(Debug)]
pub enum Action {
    /// Send a control message.
    Send(Sid, Msg),
    /// Send a chunk.
    Chunk(Sid, Arc<Chunk>),
    /// Close a session.
    Close(Sid, String),
    /// Open a session to this peer.
    Dial(PeerId),
    /// Give a player this.
    Play(SubId, Out),
}

/// How the channel is doing here (in JSON: `"starting"`, `"live"`,
/// `"ended"`, `"lost"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// No chunk yet.
    #[default]
    Starting,
    /// Chunks flow.
    Live,
    /// The end chunk arrived.
    Ended,
    /// No chunk for [`Params::stall`]: the publisher is gone.
    Lost,
}

/// Why a session with a peer is not taken (sent to it as the reason).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A session with it is open already.
    #[error("already neighbours")]
    AlreadyNeighbours,
    /// As many neighbours as allowed.
    #[error("no room: {0} neighbours already")]
    Full(usize),
    /// The channel ended or was lost here.
    #[error("the channel is over here")]
    Over,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Starting => "starting",
            Phase::Live => "live",
            Phase::Ended => "ended",
            Phase::Lost => "lost",
        })
    }
}

struct Nb {
    peer: PeerId,
    publisher: bool,
    score: f64,
    map: BufferMap,
    asked: BTreeMap<u64, Instant>,
    heard: Instant,
    told: Instant,
    told_map: BufferMap,
    benched: Option<Instant>,
    /// Chunks asked of it so far.
    asked_total: u64,
}

/// One channel's mesh state on one node.
pub struct Live {
    params: Params,
    publisher: bool,
    store: BTreeMap<u64, Arc<Chunk>>,
    held: BTreeSet<u64>,
    keys: BTreeSet<u64>,
    got_at: BTreeMap<u64, Instant>,
    nbs: BTreeMap<Sid, Nb>,
    subs: BTreeMap<SubId, Playout>,
    start_key: Option<u64>,
    last_new: Instant,
    end: Option<u64>,
    phase: Phase,
    turn: usize,
    budget: f64,
    /// Upload rate, bytes/s, averaged over about 2 s.
    load: f64,
    load_at: (Instant, u64),
    last_reach: Instant,
    /// The last call: a longer gap than [`STALLED`] is a stall.
    awake: Instant,
    rng: rand::rngs::StdRng,
    dialing: BTreeSet<PeerId>,
    avoid: BTreeMap<PeerId, Instant>,
    /// What happened so far.
    pub stats: Stats,
}

impl Live {
    /// A publisher's (`publisher`) or a viewer's state.
    pub fn new(params: Params, publisher: bool, now: Instant) -> Live {
        Live {
            params,
            publisher,
            store: BTreeMap::new(),
            held: BTreeSet::new(),
            keys: BTreeSet::new(),
            got_at: BTreeMap::new(),
            nbs: BTreeMap::new(),
            subs: BTreeMap::new(),
            start_key: None,
            last_new: now,
            end: None,
            phase: Phase::Starting,
            turn: 0,
            budget: 0.0,
            load: 0.0,
            load_at: (now, 0),
            last_reach: now,
            awake: now,
            rng: rand::SeedableRng::from_entropy(),
            dialing: BTreeSet::new(),
            avoid: BTreeMap::new(),
            stats: Stats::default(),
        }
    }

    /// Makes the random choices (of neighbours) repeatable.
    pub fn seed(&mut self, seed: u64) {
        self.rng = rand::SeedableRng::seed_from_u64(seed);
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Neighbours: `(peer, is publisher)`.
    pub fn neighbours(&self) -> Vec<(PeerId, bool)> {
        self.nbs.values().map(|n| (n.peer, n.publisher)).collect()
    }

    /// For tests: each neighbour's map newest, bits and our requests to it.
    #[cfg(test)]
    pub(crate) fn debug(&self) -> String {
        let nbs: Vec<String> = self
            .nbs
            .values()
            .map(|n| {
                format!(
                    "{}:{}/{:x}/{:?}/b{:?}",
                    &n.peer.to_string()[46..],
                    n.map.newest,
                    n.map.bits,
                    n.asked.keys().collect::<Vec<_>>(),
                    n.benched.is_some()
                )
            })
            .collect();
        format!(
            "held {:?}.. start {:?} phase {:?} budget {:.0} nbs [{}]",
            self.held.first(),
            self.start_key,
            self.phase,
            self.budget,
            nbs.join(" ")
        )
    }

    /// Whether every player has played the end.
    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Ended | Phase::Lost) && self.subs.values().all(Playout::ended)
    }

    fn map(&self) -> BufferMap {
        BufferMap { load: self.load_kbs(), ..BufferMap::of(&self.held, &self.keys) }
    }

    /// Chunk bytes uploaded lately, KB/s (an average over about 2 s).
    fn load_kbs(&self) -> u32 {
        (self.load / 1000.0) as u32
    }

    /// What the publisher may advertise: chunks pushed at least
    /// `patience` ago (and the end at once).
    fn advertised(&self, now: Instant) -> BufferMap {
        let ripe = |s: &u64| {
            self.got_at.get(s).is_none_or(|t| now.duration_since(*t) >= self.params.patience)
                || Some(*s) == self.end
        };
        let held: BTreeSet<u64> = self.held.iter().copied().filter(ripe).collect();
        BufferMap { load: self.load_kbs(), ..BufferMap::of(&held, &self.keys) }
    }

    /// Whether a session from `peer` can be taken.
    pub fn accepts(&self, peer: &PeerId) -> Result<(), Refusal> {
        if self.nbs.values().any(|n| n.peer == *peer) {
            return Err(Refusal::AlreadyNeighbours);
        }
        if self.nbs.len() >= self.params.max_neighbours {
            return Err(Refusal::Full(self.nbs.len()));
        }
        if matches!(self.phase, Phase::Ended | Phase::Lost) {
            return Err(Refusal::Over);
        }
        Ok(())
    }

    /// A session is open (either way).
    pub fn on_open(
        &mut self,
        sid: Sid,
        peer: PeerId,
        publisher: bool,
        score: f64,
        now: Now,
    ) -> Vec<Action> {
        self.dialing.remove(&peer);
        self.stats.sessions_opened += 1;
        let map = if self.publisher { self.advertised(now.at) } else { self.map() };
        let nb = Nb {
            peer,
            publisher,
            score,
            map: BufferMap::default(),
            asked: BTreeMap::new(),
            heard: now.at,
            told: now.at,
            told_map: map.clone(),
            benched: None,
            asked_total: 0,
        };
        self.nbs.insert(sid, nb);
        vec![Action::Send(sid, Msg::Have(map))]
    }

    /// A session closed (or failed); its peer is not dialed again for a while.
    pub fn on_close(&mut self, sid: Sid, now: Now) {
        if let Some(nb) = self.nbs.remove(&sid) {
            self.stats.sessions_closed += 1;
            self.avoid.insert(nb.peer, now.at + self.params.retry);
        }
    }

    /// Opening a session to `peer` failed.
    pub fn on_dial_failed(&mut self, peer: PeerId, now: Now) {
        self.dialing.remove(&peer);
        self.avoid.insert(peer, now.at + self.params.retry);
    }

    /// Notes that the node runs at `now`. After a stall (no call for more
    /// than [`STALLED`]) every timer moves on by its length: the node could
    /// not read what its neighbours sent meanwhile, so their answers are
    /// not late, they are not silent, and a chunk due in that time is not
    /// missing yet. Without this a viewer starved of CPU for 2.5 s woke
    /// to drop its neighbours and skip chunks waiting unread in its
    /// sockets (`sim_tests`).
    fn wake(&mut self, now: Instant) {
        let gap = now.saturating_duration_since(self.awake);
        self.awake = now;
        if gap <= STALLED {
            return;
        }
        for nb in self.nbs.values_mut() {
            nb.heard += gap;
            for at in nb.asked.values_mut() {
                *at += gap;
            }
            if let Some(b) = nb.benched.as_mut() {
                *b += gap;
            }
        }
        for p in self.subs.values_mut() {
            p.postpone(gap);
        }
        self.last_new += gap;
    }

    /// A message from a neighbour. Chunks must have been verified.
    pub fn on_msg(&mut self, sid: Sid, msg: Msg, now: Now) -> Vec<Action> {
        self.wake(now.at);
        let mut acts = Vec::new();
        let Some(nb) = self.nbs.get_mut(&sid) else { return acts };
        nb.heard = now.at;
        match msg {
            Msg::Have(map) => nb.map = map,
            Msg::Want(seqs) => {
                for seq in seqs {
                    self.serve(sid, seq, now.at, &mut acts);
                }
            }
            Msg::Chunk(c) => {
                nb.asked.remove(&c.seq);
                nb.benched = None;
                let len = c.data.len() as u64;
                self.stats.bytes_down += len;
                self.stats.by_peer.entry(nb.peer.to_string()).or_default().1 += len;
                if self.take(c, now, &mut acts).is_none() {
                    self.stats.bytes_dup += len;
                }
            }
            Msg::Missing(seq) => {
                nb.asked.remove(&seq);
                nb.map.clear(seq);
            }
            Msg::Hello { .. } | Msg::Welcome | Msg::Refuse { .. } => {
                acts.push(Action::Close(
                    sid,
                    "protocol violation: handshake message inside a session".into(),
                ));
                return acts;
            }
        }
        self.request(now, &mut acts);
        acts
    }

    /// Answers a request. Over budget, a chunk got less than
    /// [`FRESH`] ago is refused: others will hold it soon. An older one is
    /// always sent, so no chunk goes missing for want of budget.
    fn serve(&mut self, sid: Sid, seq: u64, now: Instant, acts: &mut Vec<Action>) {
        let Some(c) = self.store.get(&seq) else {
            acts.push(Action::Send(sid, Msg::Missing(seq)));
            return;
        };
        let len = c.data.len() as f64;
        let fresh = self.got_at.get(&seq).is_some_and(|t| now.duration_since(*t) < FRESH);
        if self.budget < len && fresh && Some(seq) != self.end {
            self.stats.spared += 1;
            acts.push(Action::Send(sid, Msg::Missing(seq)));
            return;
        }
        self.budget = (self.budget - len).max(-BUDGET_CAP);
        self.stats.bytes_up += c.data.len() as u64;
        self.stats.chunks_up += 1;
        let c = c.clone();
        self.count_up(sid, c.data.len());
        acts.push(Action::Chunk(sid, c));
    }

    /// Counts `len` chunk bytes sent to the neighbour of session `sid`.
    fn count_up(&mut self, sid: Sid, len: usize) {
        if let Some(nb) = self.nbs.get(&sid) {
            self.stats.by_peer.entry(nb.peer.to_string()).or_default().0 += len as u64;
        }
    }

    /// Adds `share` of a new chunk's `len` to the budget for answering
    /// requests.
    fn save(&mut self, share: f64, len: usize) {
        let len = len as f64;
        self.budget = (self.budget + share * len).min(BUDGET_CAP + len);
    }

    /// The publisher's new chunk.
    pub fn publish(&mut self, c: Chunk, now: Now) -> Vec<Action> {
        self.wake(now.at);
        let mut acts = Vec::new();
        self.save(self.params.pull_share, c.data.len());
        let end = c.is_end();
        let Some(c) = self.take(c, now, &mut acts) else { return acts };
        // Push: the end to everyone, any other chunk to one neighbour in turn.
        let live: Vec<Sid> = self.nbs.keys().copied().collect();
        let targets: Vec<Sid> = if end || live.is_empty() {
            live
        } else {
            self.turn = (self.turn + 1) % live.len();
            vec![live[self.turn]]
        };
        for sid in targets {
            self.stats.bytes_up += c.data.len() as u64;
            self.stats.chunks_up += 1;
            self.count_up(sid, c.data.len());
            acts.push(Action::Chunk(sid, c.clone()));
        }
        if end {
            self.tell_all(now, &mut acts, true);
        }
        acts
    }

    /// Stores a new chunk, hands it to players and tells neighbours.
    /// Returns it, or `None` if it was not new.
    fn take(&mut self, c: Chunk, now: Now, acts: &mut Vec<Action>) -> Option<Arc<Chunk>> {
        let floor = self.held.last().map_or(0, |n| n.saturating_sub(WINDOW - 1));
        if self.held.contains(&c.seq) || c.seq < floor || self.end.is_some_and(|e| c.seq > e) {
            self.stats.duplicates += 1;
            return None;
        }
        let seq = c.seq;
        if c.is_end() {
            self.end = Some(seq);
        }
        if c.is_key() {
            self.keys.insert(seq);
        }
        self.held.insert(seq);
        self.stats.arrived(
            seq,
            c.timestamp_ms,
            if self.publisher { c.timestamp_ms } else { now.unix_ms },
        );
        self.last_new = now.at;
        if self.phase == Phase::Starting {
            self.phase = Phase::Live;
        }
        if !self.publisher {
            self.save(self.params.relay_share, c.data.len());
        }
        self.got_at.insert(seq, now.at);
        let c = Arc::new(c);
        self.store.insert(seq, c.clone());
        while self.store.len() > STORE {
            if let Some((old, _)) = self.store.pop_first() {
                self.held.remove(&old);
                self.keys.remove(&old);
                self.got_at.remove(&old);
            }
        }
        for p in self.subs.values_mut() {
            p.add((*c).clone());
        }
        self.play(now, acts);
        if !self.publisher {
            self.tell_all(now, acts, false);
        }
        Some(c)
    }

    /// Tells neighbours what we hold: those whose view of us is out of
    /// date (or all when `force`), and any not told for `keepalive`.
    fn tell_all(&mut self, now: Now, acts: &mut Vec<Action>, force: bool) {
        let map = if self.publisher { self.advertised(now.at) } else { self.map() };
        for (sid, nb) in self.nbs.iter_mut() {
            if force
                || news(&map, &nb.told_map, &nb.map)
                || now.at.duration_since(nb.told) >= self.params.keepalive
            {
                nb.told = now.at;
                nb.told_map = map.clone();
                acts.push(Action::Send(*sid, Msg::Have(map.clone())));
            }
        }
    }

    fn play(&mut self, now: Now, acts: &mut Vec<Action>) {
        for (id, p) in self.subs.iter_mut() {
            let before = p.played;
            let skipped = p.skipped;
            if !p.start(now.at) {
                continue;
            }
            let first = p.next();
            for out in p.poll(now.at) {
                acts.push(Action::Play(*id, out));
            }
            if p.played > before && self.stats.first_played.is_none() {
                self.stats.first_played = first;
            }
            self.stats.played += p.played - before;
            self.stats.skipped += p.skipped - skipped;
        }
        if self.end.is_some() && self.subs.values().all(Playout::ended) {
            self.phase = Phase::Ended;
        }
    }

    /// Where a viewer fetches from: the earliest player position, or
    /// before any player starts, the newest key chunk anyone holds.
    fn position(&mut self) -> Option<u64> {
        if let Some(p) = self.subs.values().filter_map(Playout::next).min() {
            return Some(p);
        }
        let known = self
            .keys
            .last()
            .copied()
            .into_iter()
            .chain(self.nbs.values().filter_map(|n| n.map.newest_key()));
        if let Some(k) = known.max() {
            if self.start_key.is_none_or(|s| k > s && !self.held.contains(&s)) {
                self.start_key = Some(k);
            }
        }
        self.start_key
    }

    fn request(&mut self, now: Now, acts: &mut Vec<Action>) {
        if self.publisher
            || self.subs.is_empty()
            || matches!(self.phase, Phase::Ended | Phase::Lost)
        {
            return;
        }
        let Some(from) = self.position() else { return };
        // Nearer first (scores in steps of 0.1), then the least busy, then
        // the one asked least so far: the relaying spreads over equally
        // near neighbours.
        let mut order: Vec<Sid> = self.nbs.keys().copied().collect();
        let step = |s: f64| (s * 10.0).round() as i64;
        order.sort_by_key(|sid| {
            let nb = &self.nbs[sid];
            (-step(nb.score), nb.map.load / 16, nb.asked_total)
        });
        let mut have = self.held.clone();
        let view: Vec<Neighbour> = order
            .iter()
            .map(|sid| {
                let nb = &self.nbs[sid];
                have.extend(nb.asked.keys());
                let benched = nb.benched.is_some_and(|t| now.at < t);
                let mut map = if benched { BufferMap::default() } else { nb.map.clone() };
                if let Some(e) = self.end {
                    for s in e + 1..=map.newest {
                        map.clear(s);
                    }
                }
                Neighbour { map, in_flight: nb.asked.len(), spare: nb.publisher }
            })
            .collect();
        let mut wants: BTreeMap<Sid, Vec<u64>> = BTreeMap::new();
        for (seq, i) in window::pick(&have, Some(from), &view) {
            wants.entry(order[i]).or_default().push(seq);
        }
        for (sid, seqs) in wants {
            if let Some(nb) = self.nbs.get_mut(&sid) {
                nb.asked.extend(seqs.iter().map(|s| (*s, now.at)));
                nb.asked_total += seqs.len() as u64;
            }
            acts.push(Action::Send(sid, Msg::Want(seqs)));
        }
    }

    /// Timers: request timeouts, silent neighbours, keepalives, playout
    /// deadlines, the stall check and new neighbours from `candidates`.
    pub fn tick(&mut self, now: Now, candidates: &[Candidate]) -> Vec<Action> {
        self.wake(now.at);
        let mut acts = Vec::new();
        let p = self.params;
        let dt = now.at.duration_since(self.load_at.0).as_secs_f64();
        if dt >= 0.5 {
            let rate = (self.stats.bytes_up - self.load_at.1) as f64 / dt;
            self.load = if self.load == 0.0 { rate } else { 0.75 * self.load + 0.25 * rate };
            self.load_at = (now.at, self.stats.bytes_up);
        }
        for nb in self.nbs.values_mut() {
            let before = nb.asked.len();
            nb.asked.retain(|_, t| now.at.duration_since(*t) < p.request_timeout);
            if nb.asked.len() < before {
                // Likely dead: no requests until it answers or is dropped
                // for silence.
                self.stats.timeouts += (before - nb.asked.len()) as u64;
                nb.benched = Some(now.at + p.silence);
            }
        }
        let silent: Vec<Sid> = self
            .nbs
            .iter()
            .filter(|(_, n)| now.at.duration_since(n.heard) >= p.silence)
            .map(|(s, _)| *s)
            .collect();
        for sid in silent {
            acts.push(Action::Close(sid, format!("silent for {:?}", p.silence)));
            self.on_close(sid, now);
        }
        self.tell_all(now, &mut acts, false);
        self.play(now, &mut acts);
        let waiting = matches!(self.phase, Phase::Live | Phase::Starting)
            && !self.publisher
            && !self.subs.is_empty();
        if waiting && self.end.is_none() && now.at.duration_since(self.last_new) >= p.stall {
            self.phase = Phase::Lost;
            for id in self.subs.keys() {
                acts.push(Action::Play(*id, Out::End));
            }
        }
        if !self.publisher && !matches!(self.phase, Phase::Ended | Phase::Lost) {
            self.dial(now, candidates, &mut acts);
        }
        self.request(now, &mut acts);
        acts
    }

    fn dial(&mut self, now: Now, candidates: &[Candidate], acts: &mut Vec<Action>) {
        self.avoid.retain(|_, until| now.at < *until);
        let mut want = self.params.neighbours.saturating_sub(self.nbs.len() + self.dialing.len());
        // Nothing new for a while, though neighbours are there: they may
        // be an island cut off from the source. Reach out to one more.
        let starved = now.at.duration_since(self.last_new) >= STARVED
            && now.at.duration_since(self.last_reach) >= STARVED;
        if starved && !self.subs.is_empty() && !matches!(self.phase, Phase::Ended | Phase::Lost) {
            self.last_reach = now.at;
            // Drop the neighbours that have nothing newer than we do
            // (keeping two), and look for others.
            let ours = self.held.last().copied().unwrap_or(0);
            let mut behind: Vec<(u64, Sid)> = self
                .nbs
                .iter()
                .filter(|(_, n)| !n.publisher && n.map.newest <= ours)
                .map(|(s, n)| (n.map.newest, *s))
                .collect();
            behind.sort();
            for (_, sid) in behind.into_iter().take(self.nbs.len().saturating_sub(2)) {
                acts.push(Action::Close(
                    sid,
                    "nothing new from this neighbour; trying others".into(),
                ));
                self.on_close(sid, now);
            }
            want =
                self.params.neighbours.saturating_sub(self.nbs.len() + self.dialing.len()).max(1);
        }
        let mut pool: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| {
                !self.avoid.contains_key(&c.peer)
                    && !self.dialing.contains(&c.peer)
                    && !self.nbs.values().any(|n| n.peer == c.peer)
            })
            .collect();
        while want > 0 && !pool.is_empty() {
            // Weighted by score: near and reliable peers are likelier.
            let total: f64 = pool.iter().map(|c| c.score.max(0.01)).sum();
            let mut x = rand::Rng::gen::<f64>(&mut self.rng) * total;
            let mut i = 0;
            while i + 1 < pool.len() && x >= pool[i].score.max(0.01) {
                x -= pool[i].score.max(0.01);
                i += 1;
            }
            let c = pool.swap_remove(i);
            self.dialing.insert(c.peer);
            acts.push(Action::Dial(c.peer));
            want -= 1;
        }
    }

    /// A local player joins; it starts at the newest key chunk held.
    pub fn subscribe(&mut self, id: SubId, now: Now) -> Vec<Action> {
        let mut p = Playout::new(self.params.playout_delay);
        for c in self.store.values() {
            p.add((**c).clone());
        }
        self.subs.insert(id, p);
        let mut acts = Vec::new();
        if self.phase == Phase::Lost {
            acts.push(Action::Play(id, Out::End));
        }
        self.play(now, &mut acts);
        self.request(now, &mut acts);
        acts
    }

    /// A local player leaves.
    pub fn unsubscribe(&mut self, id: SubId) {
        self.subs.remove(&id);
    }
}

/// Whether `map` holds a chunk that a neighbour neither heard of from us
/// (`told`) nor holds itself (`theirs`, its latest map): telling it of
/// chunks it already has is a packet and an acknowledgement for nothing.
fn news(map: &BufferMap, told: &BufferMap, theirs: &BufferMap) -> bool {
    map.bits & !told.bits_at(map.newest) & !theirs.bits_at(map.newest) != 0
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod news_tests {
    use super::*;
    use std::collections::BTreeSet;

    fn map(seqs: &[u64]) -> BufferMap {
        BufferMap::of(&seqs.iter().copied().collect(), &BTreeSet::new())
    }

    #[test]
    fn a_neighbour_hears_only_of_chunks_it_lacks() {
        let ours = map(&[10, 11, 12]);
        // Told of 10 and 11; 12 is new to it.
        assert!(news(&ours, &map(&[10, 11]), &map(&[])));
        // It holds 12 already: nothing to tell.
        assert!(!news(&ours, &map(&[10, 11]), &map(&[12])));
        assert!(!news(&ours, &map(&[10]), &map(&[11, 12, 13])));
        // Nothing new since we last told it.
        assert!(!news(&ours, &ours, &map(&[])));
        // An older chunk we just got, that it lacks.
        assert!(news(&map(&[8, 12]), &map(&[12]), &map(&[12])));
    }
}
