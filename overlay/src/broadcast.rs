//! A broadcast tree over a node's links (Plumtree: Leitão, Pereira and
//! Rodrigues, "Epidemic Broadcast Trees", SRDS 2007). Pure logic: it takes
//! time, links and frames, and returns the frames to send.
//!
//! Every link starts *eager*: a new message is pushed over it whole. A
//! node that receives a message it already has over an eager link makes
//! the link *lazy* at both ends (`Prune`), so the eager links settle into
//! a spanning tree and each member receives each message about once
//! (gossipsub's mesh of degree D sends it about D − 1 times). Over lazy
//! links a node only announces the ids it received (`IHave`, batched until
//! the next [`Tree::tick`], which announces to a few lazy links in turn;
//! each link is told, when its turn comes, every recent id it was not told
//! yet, so no lazy link misses an id for lack of a turn while ids keep
//! coming); a node that hears of an id it still lacks
//! after `graft_after` asks the announcer for it (`Graft`), which makes
//! that link eager again. The lazy links are thus the detour around a
//! member that left, crashed or drops messages.
//!
//! Messages are opaque here: the caller checks that a message is valid
//! (signed by its author, well formed) before it hands it over, so that no
//! node passes on what it would not accept itself.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// A message id.
pub type Id = [u8; 16];

/// Ids, messages and announcers kept at most (a hostile link cannot make
/// a node hold more).
pub const MAX_KEPT: usize = 4096;
/// How long a received id is owed to the lazy links not told of it yet.
pub const OWED_FOR: Duration = Duration::from_secs(10);
/// Ids in one `IHave` or `Graft` frame, at most.
pub const MAX_IDS: usize = 256;

/// One frame on a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A message, pushed along the tree.
    Push {
        /// Its id.
        id: Id,
        /// The message (for membership: a signed envelope).
        data: Vec<u8>,
    },
    /// Ids of messages the sender has (over a lazy link).
    IHave(Vec<Id>),
    /// Send me these messages, and push to me from now on.
    Graft(Vec<Id>),
    /// Do not push to me: a duplicate came over this link.
    Prune,
}

/// A frame that is not one.
#[derive(Debug, thiserror::Error)]
#[error("malformed broadcast frame: {0}")]
pub struct BadFrame(&'static str);

impl Frame {
    /// The frame on the wire: a tag, then the id and data of a `Push`, the
    /// ids of an `IHave` or `Graft` (16 bytes each), nothing for `Prune`.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, ids): (u8, &[Id]) = match self {
            Frame::Push { id, data } => {
                let mut out = Vec::with_capacity(17 + data.len());
                out.push(0);
                out.extend_from_slice(id);
                out.extend_from_slice(data);
                return out;
            }
            Frame::IHave(ids) => (1, ids),
            Frame::Graft(ids) => (2, ids),
            Frame::Prune => (3, &[]),
        };
        let mut out = Vec::with_capacity(1 + 16 * ids.len());
        out.push(tag);
        for id in ids {
            out.extend_from_slice(id);
        }
        out
    }

    /// Reads a frame written by [`Frame::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Frame, BadFrame> {
        let (tag, rest) = bytes.split_first().ok_or(BadFrame("empty"))?;
        let ids = || -> Result<Vec<Id>, BadFrame> {
            if rest.len() % 16 != 0 || rest.len() / 16 > MAX_IDS {
                return Err(BadFrame("ids are not a whole number of 16 bytes, or too many"));
            }
            Ok(rest.chunks_exact(16).map(|c| c.try_into().expect("16 bytes")).collect())
        };
        match tag {
            0 if rest.len() > 16 => {
                let (id, data) = rest.split_at(16);
                Ok(Frame::Push { id: id.try_into().expect("16 bytes"), data: data.to_vec() })
            }
            0 => Err(BadFrame("a push without data")),
            1 => Ok(Frame::IHave(ids()?)),
            2 => Ok(Frame::Graft(ids()?)),
            3 if rest.is_empty() => Ok(Frame::Prune),
            _ => Err(BadFrame("unknown kind")),
        }
    }
}

/// How the tree behaves.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How long an announced id may stay missing before it is asked for.
    pub graft_after: Duration,
    /// How long ids received wait to be announced (batched) over lazy
    /// links.
    pub announce_after: Duration,
    /// How long messages are kept for `Graft` and ids for deduplication.
    pub keep_for: Duration,
    /// Lazy links announced to at each tick, at most (taken in turn);
    /// 0: all.
    pub lazy_fanout: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            graft_after: Duration::from_millis(150),
            announce_after: Duration::from_millis(25),
            keep_for: Duration::from_secs(60),
            lazy_fanout: 3,
        }
    }
}

/// An id received lately: what lazy links are told.
#[derive(Debug)]
struct Recent<P> {
    /// Its number (consecutive, from `Tree::next_told`).
    n: u64,
    at: Instant,
    id: Id,
    /// The link it came over, and the lazy links that announced it to
    /// us: none of them needs telling.
    holders: Vec<P>,
    /// Whether it is a message of our own.
    own: bool,
    /// Our own message: the links it was pushed over that are still up.
    pushed_to: Vec<P>,
    /// Our own message, pushed over links that all went down since: it
    /// may have died with them.
    lost: bool,
}

/// Lazy links remembered as holding an id, at most.
const MAX_HOLDERS: usize = 32;

/// An id announced to us that we lack.
#[derive(Debug)]
struct Missing<P> {
    announcers: VecDeque<P>,
    due: Instant,
}

/// One node's broadcast tree; `P` names a link's far end.
#[derive(Debug)]
pub struct Tree<P: Copy + Ord> {
    settings: Settings,
    eager: BTreeSet<P>,
    lazy: BTreeSet<P>,
    /// Messages seen, with when (for expiry, in arrival order below).
    kept: HashMap<Id, Vec<u8>>,
    arrivals: VecDeque<(Instant, Id)>,
    /// Ids received lately, in order: what lazy links are told.
    told: VecDeque<Recent<P>>,
    /// Where each id of `told` is (its number).
    told_index: HashMap<Id, u64>,
    /// The number of the next id in `told`.
    next_told: u64,
    /// Per lazy link, the number of the first id in `told` it was not
    /// told yet (eager links are pushed every message instead).
    cursors: BTreeMap<P, u64>,
    missing: BTreeMap<Id, Missing<P>>,
    /// When the next announcements are due to go out.
    announce_due: Option<Instant>,
    /// Where the next announcements start among the lazy links.
    turn: usize,
}

/// What [`Tree::receive`] made of a frame: the frames to send, and the
/// message to deliver if it was new.
#[derive(Debug)]
pub struct Received<P> {
    /// Frames to send.
    pub send: Vec<(P, Frame)>,
    /// A message seen for the first time.
    pub fresh: Option<(Id, Vec<u8>)>,
}

impl<P: Copy + Ord> Tree<P> {
    /// An empty tree.
    pub fn new(settings: Settings) -> Self {
        Tree {
            settings,
            eager: BTreeSet::new(),
            lazy: BTreeSet::new(),
            kept: HashMap::new(),
            arrivals: VecDeque::new(),
            told: VecDeque::new(),
            told_index: HashMap::new(),
            next_told: 0,
            cursors: BTreeMap::new(),
            missing: BTreeMap::new(),
            announce_due: None,
            turn: 0,
        }
    }

    /// A link came up: it starts eager. It is told (an `IHave`; it asks
    /// for those it lacks) our own messages of the last [`OWED_FOR`] that
    /// may be lost: every link they were pushed over went down since. A
    /// newcomer's announcement goes out over its first link only, and the
    /// far end may drop that stream unread. Messages that are not lost are
    /// not told: a far end would ask for one the tree is still carrying,
    /// get it twice and prune a link of the tree.
    pub fn link_up(&mut self, p: P, now: Instant) -> Vec<(P, Frame)> {
        if !self.lazy.contains(&p) {
            self.eager.insert(p);
        }
        let ids = self.lost(now);
        ids.chunks(MAX_IDS).map(|c| (p, Frame::IHave(c.to_vec()))).collect()
    }

    /// What we pushed over `p` may not have arrived (its link, or the
    /// stream it went on, ended): our own messages pushed over no other
    /// link still up are lost, and every link is told of them (`p` too, if
    /// it is still up over another stream).
    pub fn pushes_lost(&mut self, p: P, now: Instant) -> Vec<(P, Frame)> {
        let mut newly_lost = Vec::new();
        for r in self.told.iter_mut().filter(|r| r.own && !r.lost) {
            let before = r.pushed_to.len();
            r.pushed_to.retain(|q| *q != p);
            if before > 0 && r.pushed_to.is_empty() {
                r.lost = true;
                if now.saturating_duration_since(r.at) < OWED_FOR {
                    newly_lost.push(r.id);
                }
            }
        }
        let mut out = Vec::new();
        if newly_lost.is_empty() {
            return out;
        }
        for l in self.eager.iter().chain(&self.lazy) {
            for c in newly_lost.chunks(MAX_IDS) {
                out.push((*l, Frame::IHave(c.to_vec())));
            }
        }
        out
    }

    /// Our own messages of the last [`OWED_FOR`] that may be lost.
    fn lost(&self, now: Instant) -> Vec<Id> {
        self.told
            .iter()
            .filter(|r| r.lost && now.saturating_duration_since(r.at) < OWED_FOR)
            .map(|r| r.id)
            .collect()
    }

    /// A link went away. If it was on the tree, the tree is cut there: a
    /// lazy link takes its place (a `Graft` without ids makes it eager at
    /// both ends), so that the next message does not wait for an
    /// announcement to cross the cut. A cycle this closes is pruned by the
    /// first duplicate.
    ///
    /// Our own messages pushed over no link still up are told to every
    /// remaining link (see [`Tree::link_up`]).
    pub fn link_down(&mut self, p: P, now: Instant) -> Vec<(P, Frame)> {
        let on_tree = self.eager.remove(&p);
        self.lazy.remove(&p);
        self.cursors.remove(&p);
        for m in self.missing.values_mut() {
            m.announcers.retain(|a| *a != p);
        }
        let mut out = self.pushes_lost(p, now);
        if !on_tree || self.lazy.is_empty() {
            return out;
        }
        let n = self.lazy.len();
        let l = *self.lazy.iter().nth(self.turn % n).expect("not empty");
        self.turn = self.turn.wrapping_add(1);
        self.make_eager(l);
        out.push((l, Frame::Graft(Vec::new())));
        out
    }

    /// The links that push, and those that announce.
    pub fn links(&self) -> (impl Iterator<Item = &P>, impl Iterator<Item = &P>) {
        (self.eager.iter(), self.lazy.iter())
    }

    /// Whether the message `id` was seen (a caller may skip checking it).
    pub fn knows(&self, id: &Id) -> bool {
        self.kept.contains_key(id)
    }

    /// Sends a message of our own: pushed to every eager link.
    pub fn broadcast(&mut self, id: Id, data: Vec<u8>, now: Instant) -> Vec<(P, Frame)> {
        if !self.keep(id, &data, now) {
            return Vec::new();
        }
        self.queue_announce(id, Vec::new(), true, now);
        let out = self.push(id, &data, None);
        if let Some(r) = self.told.back_mut() {
            r.pushed_to = out.iter().map(|(p, _)| *p).collect();
        }
        out
    }

    /// Sends our last message (a goodbye): pushed to every link, lazy
    /// ones too, as there will be no later round to announce it in.
    pub fn broadcast_last(&mut self, id: Id, data: Vec<u8>, now: Instant) -> Vec<(P, Frame)> {
        let mut out = self.broadcast(id, data.clone(), now);
        out.extend(self.lazy.iter().map(|p| (*p, Frame::Push { id, data: data.clone() })));
        out
    }

    /// A frame from `from`. A `Push` must already have been checked by the
    /// caller.
    pub fn receive(&mut self, from: P, frame: Frame, now: Instant) -> Received<P> {
        let mut r = Received { send: Vec::new(), fresh: None };
        let linked = self.eager.contains(&from) || self.lazy.contains(&from);
        match frame {
            Frame::Push { id, data } => {
                if !self.keep(id, &data, now) {
                    // A duplicate: that link is not on our tree. If it is
                    // a message of ours, it got out.
                    self.delivered(&id);
                    if self.make_lazy(from) {
                        r.send.push((from, Frame::Prune));
                    }
                    return r;
                }
                let mut holders =
                    self.missing.remove(&id).map(|m| Vec::from(m.announcers)).unwrap_or_default();
                if linked {
                    self.make_eager(from);
                    holders.retain(|a| *a != from);
                    holders.insert(0, from);
                }
                holders.truncate(MAX_HOLDERS);
                self.queue_announce(id, holders, false, now);
                r.send = self.push(id, &data, Some(from));
                r.fresh = Some((id, data));
            }
            Frame::IHave(ids) => {
                let due = now + self.settings.graft_after;
                for id in ids.into_iter().take(MAX_IDS) {
                    if self.kept.contains_key(&id) {
                        if linked {
                            self.holds(from, &id);
                        }
                        self.delivered(&id);
                        continue;
                    }
                    if !self.missing.contains_key(&id) && self.missing.len() >= MAX_KEPT {
                        continue;
                    }
                    let m = self
                        .missing
                        .entry(id)
                        .or_insert_with(|| Missing { announcers: VecDeque::new(), due });
                    if linked && !m.announcers.contains(&from) {
                        m.announcers.push_back(from);
                    }
                }
            }
            Frame::Graft(ids) => {
                if linked {
                    self.make_eager(from);
                }
                for id in ids.into_iter().take(MAX_IDS) {
                    if let Some(data) = self.kept.get(&id) {
                        r.send.push((from, Frame::Push { id, data: data.clone() }));
                    }
                }
            }
            Frame::Prune => {
                self.make_lazy(from);
            }
        }
        r
    }

    /// Announces the ids received over the lazy links once
    /// `announce_after` has passed, asks for ids missing for
    /// `graft_after`, and forgets old messages. Called at
    /// [`Tree::next_deadline`] and now and then (the node: every probe
    /// interval).
    pub fn tick(&mut self, now: Instant) -> Vec<(P, Frame)> {
        let mut send = Vec::new();
        // Ids are owed for as long as anti-entropy takes to repair what
        // was missed anyway; older ones are not told.
        while let Some(r) = self.told.front() {
            if now.saturating_duration_since(r.at) < OWED_FOR && self.told.len() <= MAX_KEPT {
                break;
            }
            self.told_index.remove(&r.id);
            self.told.pop_front();
        }
        if self.announce_due.is_some_and(|due| due <= now) {
            self.announce_due = None;
            let n = self.lazy.len();
            let fanout = match self.settings.lazy_fanout {
                0 => n,
                f => f.min(n),
            };
            let start = self.turn % n.max(1);
            self.turn = self.turn.wrapping_add(fanout);
            let chosen: Vec<P> =
                self.lazy.iter().cycle().skip(start).take(fanout).copied().collect();
            for l in chosen {
                let from = self.cursors.get(&l).copied().unwrap_or(0);
                let ids: Vec<Id> = self
                    .told
                    .iter()
                    .filter(|r| r.n >= from && !r.holders.contains(&l))
                    .map(|r| r.id)
                    .collect();
                self.cursors.insert(l, self.next_told);
                for chunk in ids.chunks(MAX_IDS) {
                    send.push((l, Frame::IHave(chunk.to_vec())));
                }
            }
        }
        self.graft(now, &mut send);
        let keep_for = self.settings.keep_for;
        while let Some((at, id)) = self.arrivals.front().copied() {
            if now.saturating_duration_since(at) < keep_for && self.arrivals.len() <= MAX_KEPT {
                break;
            }
            self.arrivals.pop_front();
            self.kept.remove(&id);
        }
        send
    }

    /// When the next announcements or the next missing id are due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.missing.values().map(|m| m.due).chain(self.announce_due).min()
    }

    /// Another node has our message `id` (it came back to us): it is not
    /// lost whatever becomes of the links it went over.
    fn delivered(&mut self, id: &Id) {
        let Some(r) = self.recent_mut(id) else { return };
        if r.own {
            r.pushed_to.clear();
            r.lost = false;
        }
    }

    /// The id `id` among those received lately.
    fn recent_mut(&mut self, id: &Id) -> Option<&mut Recent<P>> {
        let (n, first) = (self.told_index.get(id)?, self.told.front()?);
        let i = n.checked_sub(first.n)?;
        self.told.get_mut(i as usize)
    }

    /// The link `l` told us it holds `id`: it need not be told it.
    fn holds(&mut self, l: P, id: &Id) {
        let Some(r) = self.recent_mut(id) else { return };
        if !r.holders.contains(&l) && r.holders.len() < MAX_HOLDERS {
            r.holders.push(l);
        }
    }

    fn queue_announce(&mut self, id: Id, holders: Vec<P>, own: bool, now: Instant) {
        self.told.push_back(Recent {
            n: self.next_told,
            at: now,
            id,
            holders,
            own,
            pushed_to: Vec::new(),
            lost: false,
        });
        self.told_index.insert(id, self.next_told);
        self.next_told += 1;
        self.announce_due.get_or_insert(now + self.settings.announce_after);
    }

    /// Asks the first announcer of every id missing for long enough; the
    /// next announcer is asked after another `graft_after`.
    fn graft(&mut self, now: Instant, send: &mut Vec<(P, Frame)>) {
        let mut asks: BTreeMap<P, Vec<Id>> = BTreeMap::new();
        let graft_after = self.settings.graft_after;
        self.missing.retain(|id, m| {
            if m.due > now {
                return true;
            }
            let Some(a) = m.announcers.pop_front() else { return false };
            asks.entry(a).or_default().push(*id);
            m.due = now + graft_after;
            true
        });
        for (a, ids) in asks {
            if self.lazy.contains(&a) {
                self.make_eager(a);
            }
            for chunk in ids.chunks(MAX_IDS) {
                send.push((a, Frame::Graft(chunk.to_vec())));
            }
        }
    }

    /// Makes the eager link `p` lazy; false if it was not eager. It is
    /// owed the ids that come from now on.
    fn make_lazy(&mut self, p: P) -> bool {
        if !self.eager.remove(&p) {
            return false;
        }
        self.lazy.insert(p);
        self.cursors.insert(p, self.next_told);
        true
    }

    /// Makes the link `p` eager.
    fn make_eager(&mut self, p: P) {
        self.lazy.remove(&p);
        self.cursors.remove(&p);
        self.eager.insert(p);
    }

    /// Records a message; false if it was seen already.
    fn keep(&mut self, id: Id, data: &[u8], now: Instant) -> bool {
        if self.kept.contains_key(&id) {
            return false;
        }
        self.kept.insert(id, data.to_vec());
        self.arrivals.push_back((now, id));
        true
    }

    /// The message to every eager link but the one it came over.
    fn push(&self, id: Id, data: &[u8], from: Option<P>) -> Vec<(P, Frame)> {
        self.eager
            .iter()
            .filter(|p| Some(**p) != from)
            .map(|p| (*p, Frame::Push { id, data: data.to_vec() }))
            .collect()
    }
}

#[cfg(test)]
mod tests;
