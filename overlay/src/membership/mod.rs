//! Community membership and failure detection (pure logic, no I/O).
//!
//! Failure detection follows SWIM (Das et al. 2002) with a deterministic
//! choice of monitors:
//! - every member is probed every `probe_interval` by the `monitors` members
//!   that precede it on the ring of up members sorted by peer id
//!   ([`monitor_targets`]); a probe that fails makes the prober publish a
//!   [`wire::Message::Suspect`];
//! - every node that hears a suspicion marks the member
//!   [`MemberState::Suspect`]; the member itself, if alive, refutes it by
//!   publishing a newer [`wire::Alive`] (higher `(incarnation, seq)`);
//! - a suspicion not refuted within `suspicion_timeout` makes the member
//!   [`MemberState::Failed`] (the accuser also publishes a confirmation);
//!   every node times the suspicion out on its own: another node's
//!   confirmation makes it suspect and shortens its suspicion, but does
//!   not fail the member at once ([`MemberTable::confirmed`]);
//!   below 100 members the timeout is shorter, down to three quarters of
//!   it, as a refutation reaches a small community sooner;
//! - a suspicion lasts longer while only one monitor accuses (Lifeguard's
//!   dynamic suspicion timeout, [`Timing::suspicion_for`]): an overloaded
//!   accuser alone gives its target time to refute, while a member all its
//!   monitors accuse is failed after the shortest timeout;
//! - a member's own state ([`wire::Alive`]: addresses, coordinate,
//!   services) is gossiped when it changes, not periodically; members that
//!   missed a message catch up through anti-entropy ([`sync`]);
//! - [`wire::Message::Leave`] makes a member [`MemberState::Left`].
//!
//! Announced services are visible while their member is alive or suspect
//! and expire with it.

pub mod detector;
pub mod signed;
pub mod sync;
pub mod wire;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;
use wire::{Alive, Message};

/// State of a member as seen by this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Heard from recently.
    Alive,
    /// A probe to it failed; it has `suspicion_timeout` to refute.
    Suspect,
    /// Crashed or cut off: a suspicion went unrefuted.
    Failed,
    /// Said goodbye.
    Left,
}

impl MemberState {
    /// Lower-case name, as printed and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Failed => "failed",
            MemberState::Left => "left",
        }
    }

    /// Whether the member counts as up (its services are visible).
    pub fn is_up(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }

    /// Order of states at the same version: an accusation outranks the
    /// heartbeat it names, a confirmed failure outranks a suspicion.
    pub fn rank(self) -> u8 {
        match self {
            MemberState::Alive => 0,
            MemberState::Suspect => 1,
            MemberState::Failed => 2,
            MemberState::Left => 3,
        }
    }
}

impl std::fmt::Display for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Failure-detector timing.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long a suspicion may go unrefuted once every expected accuser
    /// has made it (the shortest suspicion).
    pub suspicion_timeout: Duration,
    /// How many times longer a suspicion lasts with a single accuser.
    pub suspicion_max_factor: u32,
    /// Accusers expected for a member that really died: its monitors.
    pub expected_accusers: usize,
    /// How long failed and left members stay listed.
    pub reap_after: Duration,
}

/// A community of this many members or more waits the configured
/// suspicion timeout; a smaller one waits less, down to [`LEAST_SCALE`].
pub const FULL_SCALE_MEMBERS: usize = 100;
/// The shortest suspicion, as a share of the configured one.
pub const LEAST_SCALE: f64 = 0.75;

impl Timing {
    /// Lifeguard's suspicion timeout after `accusers` independent
    /// accusations in a table of `members`: the longest with one, falling
    /// logarithmically to the shortest once all `expected_accusers` have
    /// accused. The shortest is `suspicion_timeout` from
    /// [`FULL_SCALE_MEMBERS`] up, and scales with log N below (a refutation
    /// reaches everyone in O(log N) gossip rounds; memberlist scales its
    /// suspicion by log N too), never under [`LEAST_SCALE`] of it.
    pub fn suspicion_for(&self, accusers: usize, members: usize) -> Duration {
        let full = (FULL_SCALE_MEMBERS as f64).log10();
        let scale = ((members.max(1) as f64).log10() / full).clamp(LEAST_SCALE, 1.0);
        let min = self.suspicion_timeout.as_secs_f64() * scale;
        let max = min * f64::from(self.suspicion_max_factor.max(1));
        let k = self.expected_accusers.max(1) as f64;
        let c = accusers.saturating_sub(1) as f64;
        let frac = if k <= 1.0 { 1.0 } else { ((c + 1.0).ln() / k.ln()).min(1.0) };
        Duration::from_secs_f64((max - (max - min) * frac).max(min))
    }
}

/// The most a suspicion is lengthened, in points of `1 + points` times
/// (memberlist's awareness limit).
pub const MAX_SLACK: u32 = 8;

/// A refutation this long before a suspicion started makes its crowd
/// count ([`crowd_slack`]).
pub const REFUTED_WITHIN: Duration = Duration::from_secs(30);

/// Points by which a suspicion lasts longer when this node held `crowd`
/// members suspect at once during it, once some suspicion here was
/// refuted lately ([`REFUTED_WITHIN`]): none up to 2, then one per two
/// more. Many members suspected at once are more often the observers'
/// trouble (a starved machine, a congested link: their answers and
/// refutations arrive late) than as many deaths: after 200 members on two
/// cores were starved of CPU, the nodes that failed live members held 10
/// to 80 of them suspect at once, against one for a kill -9
/// (DESIGN/failure-detection.md). Real failures that many at once (a cut
/// backbone link) refute nothing, so they are not given longer.
pub fn crowd_slack(crowd: usize) -> u32 {
    (crowd.saturating_sub(2) / 2).min(MAX_SLACK as usize) as u32
}

/// One member.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its latest heartbeat.
    pub info: Alive,
    /// `(incarnation, seq)` of the latest message, heartbeat or leave.
    pub version: (u64, u64),
    /// Who accuses it of the current suspicion (or failure).
    pub accusers: Vec<PeerId>,
    /// Current state.
    pub state: MemberState,
    /// When we last heard from it (gossip, state exchange, probe or ping).
    pub last_heard: Instant,
    /// When `state` last changed.
    pub state_since: Instant,
    /// When the current suspicion started, while suspect.
    pub suspected_at: Option<Instant>,
    /// Another node confirmed the failure the current suspicion is about:
    /// it lasts the shortest time, as if every expected monitor accused.
    pub confirmed: bool,
    /// The most members this node held suspect at once during the current
    /// suspicion ([`crowd_slack`]).
    pub crowd: usize,
}

impl Member {
    /// The accusers the suspicion counts: all that `t` expects once
    /// another node confirmed the failure.
    fn counted_accusers(&self, t: Timing) -> usize {
        match self.confirmed {
            true => self.accusers.len().max(t.expected_accusers),
            false => self.accusers.len(),
        }
    }

    /// A new suspicion starts at `now`, with no accuser counted yet.
    fn start_suspicion(&mut self, now: Instant) {
        (self.state, self.state_since, self.suspected_at) = (MemberState::Suspect, now, Some(now));
        self.accusers.clear();
        self.confirmed = false;
        self.crowd = 0;
    }
}

/// A change worth telling the rest of the node about.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A member appeared (`from: None`) or changed state.
    State {
        /// The member.
        peer: PeerId,
        /// Previous state.
        from: Option<MemberState>,
        /// New state.
        to: MemberState,
    },
    /// Services became visible or vanished (announce, withdraw, or expiry).
    Services {
        /// The member.
        peer: PeerId,
        /// Names now visible that were not.
        announced: Vec<String>,
        /// Names no longer visible.
        withdrawn: Vec<String>,
    },
    /// Someone suspects *us*: publish a newer heartbeat to refute it.
    Refute,
    /// A member we held up came back under a new incarnation: it
    /// restarted before we noticed it was gone. Its connections and
    /// addresses may be stale.
    Restarted {
        /// The member.
        peer: PeerId,
    },
}

/// The members this node knows of (not itself).
#[derive(Debug)]
pub struct MemberTable {
    local: PeerId,
    /// `local` as messages spell it.
    local_text: String,
    timing: Timing,
    /// Suspicions last `1 + slack` times as long here: how far behind the
    /// node's own timers are ([`MemberTable::set_slack`]).
    slack: u32,
    /// When a suspicion or failure here was last refuted by its member
    /// (the same incarnation back alive): a sign that this node's
    /// suspicions are the observers' trouble ([`crowd_slack`]).
    refuted: Option<Instant>,
    members: HashMap<PeerId, Member>,
    idx: Index,
}

/// What keeps a node's steady-state cost independent of N: the work of
/// every second (timeouts, reaping) and of every exchange (the summary)
/// touches only what changed, not every member. Before, the community
/// simulation measured the idle CPU of a table growing about 60-fold from
/// 100 to 5,000 members (DESIGN/simulation.md).
#[derive(Debug)]
struct Index {
    /// Bumped whenever an entry's version or state changes.
    generation: u64,
    /// Members that may be suspect (cleaned by `tick`).
    suspects: HashSet<PeerId>,
    /// Failed and left members by when they are due to be forgotten, so
    /// that forgetting one does not walk the whole table.
    reaps: BTreeSet<(Instant, PeerId)>,
    /// The sum of the entries' shares of the summary ([`sync::share`]).
    sum: [u64; 4],
    /// The same sum per [`sync::bucket`].
    buckets: Vec<[u64; 4]>,
    /// Up members per bucket, for a bucket's digest without a walk of the
    /// whole table.
    up_in: Vec<BTreeSet<PeerId>>,
    /// Up members in ring order, for monitor targets without a sort.
    up: BTreeSet<PeerId>,
}

impl Index {
    fn new() -> Self {
        Index {
            generation: 0,
            suspects: HashSet::new(),
            reaps: BTreeSet::new(),
            sum: [0; 4],
            buckets: vec![[0; 4]; sync::BUCKETS],
            up_in: vec![BTreeSet::new(); sync::BUCKETS],
            up: BTreeSet::new(),
        }
    }

    /// A member's entry changed its version or state from `old` to `m`.
    fn note(&mut self, old: Option<&Member>, m: &Member, reap_after: Duration) {
        self.generation += 1;
        let b = usize::from(sync::bucket(&m.info.peer));
        if let Some(s) = old.and_then(sync::share_of) {
            self.sum = sync::sub(self.sum, s);
            self.buckets[b] = sync::sub(self.buckets[b], s);
        }
        if let Some(s) = sync::share_of(m) {
            self.sum = sync::add(self.sum, s);
            self.buckets[b] = sync::add(self.buckets[b], s);
        }
        match m.state.is_up() {
            true => {
                self.up.insert(m.info.peer);
                self.up_in[b].insert(m.info.peer);
            }
            false => {
                self.up.remove(&m.info.peer);
                self.up_in[b].remove(&m.info.peer);
            }
        };
        if m.suspected_at.is_some() {
            self.suspects.insert(m.info.peer);
        }
        if let Some(o) = old.filter(|o| !o.state.is_up()) {
            self.reaps.remove(&(o.state_since + reap_after, o.info.peer));
        }
        if !m.state.is_up() {
            self.reaps.insert((m.state_since + reap_after, m.info.peer));
        }
    }
}

impl MemberTable {
    /// An empty table for the node `local`.
    pub fn new(local: PeerId, timing: Timing) -> Self {
        MemberTable {
            local,
            local_text: local.to_base58(),
            timing,
            slack: 0,
            refuted: None,
            members: HashMap::new(),
            idx: Index::new(),
        }
    }

    /// Changes whenever a member's version or state does (not when a
    /// member is merely heard from): what was derived from the table at
    /// one generation still holds at the same generation.
    pub fn generation(&self) -> u64 {
        self.idx.generation
    }

    /// How many members are up (alive or suspect).
    pub fn up_count(&self) -> usize {
        self.idx.up.len()
    }

    /// The `k` up members that follow `local` on the ring of up members
    /// sorted by peer id: [`monitor_targets`] over this table, in
    /// O(k log N) rather than a sort of every member.
    pub fn up_after(&self, local: &PeerId, k: usize) -> Vec<PeerId> {
        use std::ops::Bound::{Excluded, Unbounded};
        let after = self.idx.up.range((Excluded(*local), Unbounded));
        let before = self.idx.up.range(..*local);
        after.chain(before).take(k).copied().collect()
    }

    /// Makes every suspicion last `1 + slack` times as long at this node:
    /// a node that is itself behind (its timers late, the CPU-starvation
    /// part of its local health) hears refutations late, and must not fail
    /// the members it could not hear in time. Failed probes, the other
    /// part, slow the probes but not this: a lone node whose last peer
    /// died would otherwise put off failing it, probe after failed probe.
    pub fn set_slack(&mut self, slack: u32) {
        self.slack = slack;
    }

    /// How long the suspicion of `m` lasts in a table of `members` at a
    /// node `slack` points behind: [`Timing::suspicion_for`] its accusers,
    /// times `1 + slack +` [`crowd_slack`], at most [`MAX_SLACK`] points.
    /// The crowd counts only if a suspicion here was refuted within
    /// [`REFUTED_WITHIN`] before this one started, or since: many members
    /// dying at once (a cut link, a power failure) refute nothing, and are
    /// failed as soon as one would be.
    fn suspicion_lasts(
        t: Timing,
        slack: u32,
        refuted: Option<Instant>,
        m: &Member,
        members: usize,
    ) -> Duration {
        let since = m.suspected_at.map(|at| at.checked_sub(REFUTED_WITHIN).unwrap_or(at));
        let crowd = match (refuted, since) {
            (Some(r), Some(since)) if r >= since => crowd_slack(m.crowd),
            _ => 0,
        };
        let points = (slack + crowd).min(MAX_SLACK);
        t.suspicion_for(m.counted_accusers(t), members) * (1 + points)
    }

    /// A member changed from `old` to `new`: a suspicion or failure of the
    /// same incarnation ended alive was a false alarm, heard at `now`.
    fn note_refutation(&mut self, old: Option<&Member>, new: &Member, now: Instant) {
        let false_alarm = old.is_some_and(|o| {
            matches!(o.state, MemberState::Suspect | MemberState::Failed)
                && new.state == MemberState::Alive
                && new.version.0 == o.version.0
        });
        if false_alarm {
            self.refuted_at(now);
        }
    }

    /// A suspicion or failure here was refuted at `now`.
    fn refuted_at(&mut self, now: Instant) {
        self.refuted = Some(self.refuted.map_or(now, |r| r.max(now)));
    }

    /// The timing in force.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// One member.
    pub fn get(&self, peer: &PeerId) -> Option<&Member> {
        self.members.get(peer)
    }

    /// All members.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Applies a message heard at `heard_at`; stale messages are ignored.
    pub fn apply(&mut self, msg: Message, heard_at: Instant) -> Vec<Change> {
        let peer = msg.peer();
        match msg {
            Message::Suspect(_) | Message::Failed(_) if peer == self.local => vec![Change::Refute],
            _ if peer == self.local => Vec::new(),
            Message::Suspect(a) => self.accuse(&a, heard_at, MemberState::Suspect),
            Message::Failed(a) => self.accuse(&a, heard_at, MemberState::Failed),
            msg => self.apply_own(msg, heard_at),
        }
    }

    /// Whether a message still encoded (`raw`) may settle a suspicion
    /// ([`MemberTable::settles_suspicion`]): one that names this node, or
    /// any while a member is suspect. Most messages are then decoded once,
    /// after their signature is checked, not twice.
    pub fn may_settle(&self, raw: &[u8]) -> bool {
        let me = self.local_text.as_bytes();
        !self.idx.suspects.is_empty() || raw.windows(me.len()).any(|w| w == me)
    }

    /// Whether `msg`, once found genuine, settles a suspicion: an
    /// accusation of this node (which it refutes), or a suspect member's
    /// newer state (its refutation, or its goodbye). The event loop takes
    /// such messages before the others waiting: after a CPU starvation a
    /// refutation queued behind the backlog reached observers after their
    /// suspicion ran out (DESIGN/failure-detection.md).
    pub fn settles_suspicion(&self, msg: &Message) -> bool {
        match msg {
            Message::Suspect(a) | Message::Failed(a) => a.peer == self.local,
            Message::Alive(_) | Message::Leave { .. } => self
                .members
                .get(&msg.peer())
                .is_some_and(|m| m.state == MemberState::Suspect && m.version < msg.version()),
        }
    }

    /// A suspicion or failure confirmation about a member. It counts only
    /// if the member has said nothing newer than what the accuser knew.
    fn accuse(&mut self, a: &wire::Accusation, now: Instant, to: MemberState) -> Vec<Change> {
        let Some(m) = self.members.get_mut(&a.peer) else { return Vec::new() };
        if m.version > (a.incarnation, a.seq) || !m.state.is_up() {
            return Vec::new();
        }
        if to == MemberState::Failed {
            return self.confirmed(&a.peer, Some(a.by), None, now);
        }
        if m.state == MemberState::Suspect {
            // Another monitor confirms the suspicion: it may end sooner.
            if !m.accusers.contains(&a.by) {
                m.accusers.push(a.by);
            }
            return Vec::new();
        }
        let old = m.clone();
        m.start_suspicion(now);
        m.accusers.push(a.by);
        self.idx.note(Some(&old), m, self.timing.reap_after);
        let changes = diff(a.peer, Some(&old), m);
        self.count_crowd();
        changes
    }

    /// A suspicion started: every suspect member remembers how many were
    /// suspect at once ([`crowd_slack`]).
    fn count_crowd(&mut self) {
        let suspects: Vec<PeerId> = (self.idx.suspects.iter())
            .filter(|p| self.members.get(p).is_some_and(|m| m.state == MemberState::Suspect))
            .copied()
            .collect();
        for p in &suspects {
            if let Some(m) = self.members.get_mut(p) {
                m.crowd = m.crowd.max(suspects.len());
            }
        }
    }

    /// Another node failed an up member: its confirmation (`by`, gossiped)
    /// or its table (anti-entropy, with the entry it holds, `newer` if it
    /// is newer than ours). This node does not fail the member at once:
    /// it suspects it, if it did not already, for the shortest suspicion,
    /// and fails it on its own timer unless the member refutes first.
    /// Taken at once, a single node's failure, timed out while the
    /// member's refutation was still on its way to it, failed a live
    /// member everywhere: after a CPU starvation most false failures were
    /// adopted that way (DESIGN/failure-detection.md).
    pub(crate) fn confirmed(
        &mut self,
        peer: &PeerId,
        by: Option<PeerId>,
        newer: Option<(Alive, (u64, u64))>,
        now: Instant,
    ) -> Vec<Change> {
        let Some(m) = self.members.get_mut(peer).filter(|m| m.state.is_up()) else {
            return Vec::new();
        };
        let old = m.clone();
        if let Some((info, version)) = newer.filter(|(_, v)| *v > m.version) {
            (m.info, m.version) = (info, version);
        }
        let started = m.state != MemberState::Suspect;
        if started {
            m.start_suspicion(now);
        }
        if let Some(by) = by.filter(|b| !m.accusers.contains(b)) {
            m.accusers.push(by);
        }
        m.confirmed = true;
        if (old.version, old.state) != (m.version, m.state) {
            self.idx.note(Some(&old), m, self.timing.reap_after);
        }
        let changes = diff(*peer, Some(&old), m);
        if started {
            self.count_crowd();
        }
        changes
    }

    /// A heartbeat or goodbye from the member itself.
    fn apply_own(&mut self, msg: Message, heard_at: Instant) -> Vec<Change> {
        let peer = msg.peer();
        if self.members.get(&peer).is_some_and(|m| m.version >= msg.version()) {
            return Vec::new();
        }
        let version = msg.version();
        let old = self.members.remove(&peer);
        let (info, state) = match msg {
            Message::Alive(info) => (info, MemberState::Alive),
            Message::Leave { .. } => match &old {
                Some(m) => (m.info.clone(), MemberState::Left),
                // A goodbye from someone we never met: nothing to record.
                None => return Vec::new(),
            },
            Message::Suspect(_) | Message::Failed(_) => return Vec::new(),
        };
        let (old_state, old_since, old_heard) = match &old {
            Some(m) => (Some(m.state), m.state_since, m.last_heard.max(heard_at)),
            None => (None, heard_at, heard_at),
        };
        let state_since = if old_state == Some(state) { old_since } else { heard_at };
        let member = Member {
            info,
            version,
            accusers: Vec::new(),
            state,
            last_heard: old_heard,
            state_since,
            suspected_at: None,
            confirmed: false,
            crowd: 0,
        };
        let changes = diff(peer, old.as_ref(), &member);
        self.note_refutation(old.as_ref(), &member, heard_at);
        self.idx.note(old.as_ref(), &member, self.timing.reap_after);
        self.members.insert(peer, member);
        changes
    }

    /// Direct evidence that `peer` is up (a ping answered).
    pub fn touch(&mut self, peer: &PeerId, now: Instant) -> Vec<Change> {
        let Some(m) = self.members.get_mut(peer) else { return Vec::new() };
        if !m.state.is_up() {
            return Vec::new();
        }
        m.last_heard = m.last_heard.max(now);
        if m.state == MemberState::Suspect {
            let old = m.clone();
            m.state = MemberState::Alive;
            m.state_since = now;
            m.suspected_at = None;
            m.accusers.clear();
            m.confirmed = false;
            self.idx.note(Some(&old), m, self.timing.reap_after);
            let changes = diff(*peer, Some(&old), m);
            self.refuted_at(now);
            return changes;
        }
        Vec::new()
    }

    /// Advances the failure detector to `now` and forgets long-gone members.
    pub fn tick(&mut self, now: Instant) -> Vec<Change> {
        let (t, slack, n, refuted) = (self.timing, self.slack, self.members.len(), self.refuted);
        let mut changes = Vec::new();
        let mut suspects: Vec<PeerId> = self.idx.suspects.iter().copied().collect();
        suspects.sort();
        for peer in suspects {
            let Some(m) = self.members.get_mut(&peer) else {
                self.idx.suspects.remove(&peer);
                continue;
            };
            let Some(since) = m.suspected_at.filter(|_| m.state.is_up()) else {
                self.idx.suspects.remove(&peer);
                continue;
            };
            if now.saturating_duration_since(since)
                >= Self::suspicion_lasts(t, slack, refuted, m, n)
            {
                let old = m.clone();
                m.state = MemberState::Failed;
                m.state_since = now;
                m.suspected_at = None;
                self.idx.suspects.remove(&peer);
                self.idx.note(Some(&old), m, t.reap_after);
                changes.extend(diff(peer, Some(&old), m));
            }
        }
        while let Some(&(due, peer)) = self.idx.reaps.first().filter(|(due, _)| *due <= now) {
            self.idx.reaps.remove(&(due, peer));
            if self.members.get(&peer).is_some_and(|m| !m.state.is_up()) {
                self.members.remove(&peer);
                self.idx.generation += 1;
            }
        }
        changes
    }

    /// When the next suspicion runs out, if any member is suspect.
    pub fn next_deadline(&self) -> Option<Instant> {
        let (t, slack, n, refuted) = (self.timing, self.slack, self.members.len(), self.refuted);
        self.idx
            .suspects
            .iter()
            .filter_map(|p| self.members.get(p))
            .filter_map(|m| Some(m.suspected_at? + Self::suspicion_lasts(t, slack, refuted, m, n)))
            .min()
    }
}

/// The members `local` probes: the `k` up members that follow it on the
/// ring of up members (and itself) sorted by peer id. Every member is thus
/// probed by the `k` members that precede it, whatever N is.
pub fn monitor_targets(
    local: PeerId,
    up: impl IntoIterator<Item = PeerId>,
    k: usize,
) -> Vec<PeerId> {
    let mut ring: Vec<PeerId> = up.into_iter().filter(|p| *p != local).collect();
    ring.sort();
    ring.dedup();
    let start = ring.partition_point(|p| *p < local);
    (0..k.min(ring.len())).map(|i| ring[(start + i) % ring.len()]).collect()
}

fn visible(m: Option<&Member>) -> Vec<&String> {
    match m {
        Some(m) if m.state.is_up() => m.info.services.keys().collect(),
        _ => Vec::new(),
    }
}

fn diff(peer: PeerId, old: Option<&Member>, new: &Member) -> Vec<Change> {
    let mut out = Vec::new();
    let from = old.map(|m| m.state);
    if from != Some(new.state) {
        out.push(Change::State { peer, from, to: new.state });
    }
    if old.is_some_and(|o| o.state.is_up() && new.state.is_up() && new.version.0 > o.version.0) {
        out.push(Change::Restarted { peer });
    }
    let before = visible(old);
    let after = visible(Some(new));
    let announced: Vec<String> =
        after.iter().filter(|n| !before.contains(n)).map(|n| n.to_string()).collect();
    let withdrawn: Vec<String> =
        before.iter().filter(|n| !after.contains(n)).map(|n| n.to_string()).collect();
    let meta_changed = old.is_some_and(|o| {
        o.state.is_up() && new.state.is_up() && o.info.services != new.info.services
    });
    if !announced.is_empty() || !withdrawn.is_empty() || meta_changed {
        out.push(Change::Services { peer, announced, withdrawn });
    }
    out
}

#[cfg(test)]
mod tests;
