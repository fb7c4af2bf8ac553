//! Community membership and failure detection (pure logic, no I/O).
//!
//! Every member publishes an [`wire::Alive`] heartbeat on the membership
//! gossip topic every `heartbeat_interval`; gossipsub carries it to every
//! member in O(log N) hops. A member unheard for `suspect_after` becomes
//! [`MemberState::Suspect`], for `fail_after` [`MemberState::Failed`]; a
//! [`wire::Message::Leave`] makes it [`MemberState::Left`]. A newer
//! heartbeat (higher `(incarnation, seq)`) brings it back. A successful
//! direct ping also counts as hearing from a member. Announced services are
//! visible while their member is alive or suspect and expire with it.

pub mod wire;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use wire::{Alive, Message};

/// State of a member as seen by this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Heard from recently.
    Alive,
    /// Not heard from for `suspect_after`.
    Suspect,
    /// Not heard from for `fail_after`: crashed or cut off.
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
}

impl std::fmt::Display for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Failure-detector timing.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Silence after which a member is suspect.
    pub suspect_after: Duration,
    /// Silence after which a member is failed.
    pub fail_after: Duration,
    /// How long failed and left members stay listed.
    pub reap_after: Duration,
}

/// One member.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its latest heartbeat.
    pub info: Alive,
    /// `(incarnation, seq)` of the latest message, heartbeat or leave.
    pub version: (u64, u64),
    /// Current state.
    pub state: MemberState,
    /// When we last heard from it (gossip, state exchange or ping).
    pub last_heard: Instant,
    /// When `state` last changed.
    pub state_since: Instant,
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
}

/// The members this node knows of (not itself).
pub struct MemberTable {
    local: PeerId,
    timing: Timing,
    members: HashMap<PeerId, Member>,
}

impl MemberTable {
    /// An empty table for the node `local`.
    pub fn new(local: PeerId, timing: Timing) -> Self {
        MemberTable { local, timing, members: HashMap::new() }
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
        if peer == self.local {
            return Vec::new();
        }
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
        };
        let (old_state, old_since, old_heard) = match &old {
            Some(m) => (Some(m.state), m.state_since, m.last_heard.max(heard_at)),
            None => (None, heard_at, heard_at),
        };
        let state_since = if old_state == Some(state) { old_since } else { heard_at };
        let member = Member { info, version, state, last_heard: old_heard, state_since };
        let changes = diff(peer, old.as_ref(), &member);
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
            return diff(*peer, Some(&old), m);
        }
        Vec::new()
    }

    /// Advances the failure detector to `now` and forgets long-gone members.
    pub fn tick(&mut self, now: Instant) -> Vec<Change> {
        let t = self.timing;
        let mut changes = Vec::new();
        for (peer, m) in self.members.iter_mut() {
            if !m.state.is_up() {
                continue;
            }
            let silent = now.saturating_duration_since(m.last_heard);
            let to = if silent >= t.fail_after {
                MemberState::Failed
            } else if silent >= t.suspect_after {
                MemberState::Suspect
            } else {
                continue;
            };
            if to != m.state {
                let old = m.clone();
                m.state = to;
                m.state_since = now;
                changes.extend(diff(*peer, Some(&old), m));
            }
        }
        self.members
            .retain(|_, m| m.state.is_up() || now.saturating_duration_since(m.state_since) < t.reap_after);
        changes
    }

    /// Heartbeats of up members with how long ago we heard each, for the
    /// join-time state exchange.
    pub fn up_entries(&self, now: Instant) -> Vec<(Alive, Duration)> {
        self.members
            .values()
            .filter(|m| m.state.is_up())
            .map(|m| (m.info.clone(), now.saturating_duration_since(m.last_heard)))
            .collect()
    }
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
    let before = visible(old);
    let after = visible(Some(new));
    let announced: Vec<String> = after.iter().filter(|n| !before.contains(n)).map(|n| n.to_string()).collect();
    let withdrawn: Vec<String> = before.iter().filter(|n| !after.contains(n)).map(|n| n.to_string()).collect();
    let meta_changed = old.is_some_and(|o| o.state.is_up() && new.state.is_up() && o.info.services != new.info.services);
    if !announced.is_empty() || !withdrawn.is_empty() || meta_changed {
        out.push(Change::Services { peer, announced, withdrawn });
    }
    out
}

#[cfg(test)]
mod tests;
