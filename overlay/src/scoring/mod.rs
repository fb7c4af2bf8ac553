//! Locality-aware peer scoring (pure logic, no I/O).
//!
//! One score in `[0, 1]` per member, higher is better:
//!
//! ```text
//! rtt      = measured EWMA RTT, else Vivaldi estimate, else 250 ms
//! latency  = 1 / (1 + rtt_ms / 20)          (20 ms scores 0.5, 2 ms 0.91)
//! avail    = (up + 0.5·P) / (observed + P)  (P = 10 min of observation)
//! reliab   = 1 / (1 + failures)             (failures decay, half-life 1 h)
//! zone     = 1 if both zone labels are set and equal, else 0
//! score    = state × (0.45·latency + 0.35·avail + 0.10·reliab + 0.10·zone)
//! state    = 1 alive, 0.25 suspect, 0 failed or left
//! ```
//!
//! The event loop keeps the inputs and publishes a [`PeerScores`] snapshot
//! through a `watch` channel; services read it without a round trip.

pub mod history;
pub mod rtt;
pub mod vivaldi;

use crate::membership::MemberState;
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// RTT assumed for a member we have neither measured nor can estimate.
pub const UNKNOWN_RTT: Duration = Duration::from_millis(250);

/// Everything the formula needs about one member.
#[derive(Clone, Debug)]
pub struct ScoreInputs {
    /// Membership state.
    pub state: MemberState,
    /// Measured RTT if any, else the estimate.
    pub rtt: Option<Duration>,
    /// Smoothed fraction of time seen up.
    pub availability: f64,
    /// Decayed recent failure count.
    pub failures: f64,
    /// Whether the member is in our zone.
    pub same_zone: bool,
}

/// How much slower than the nearest candidate another may be and still
/// count as near: twice its round trip, or this much more, whichever is
/// larger (round trips on a mesh jitter by a few ms).
pub const NEAR_SLACK: Duration = Duration::from_millis(20);

/// Whether a peer with round trip `rtt` is near, when the nearest candidate
/// has `nearest`: within twice it, or [`NEAR_SLACK`] more. With no round
/// trip known at all, everyone is near; a peer with none unknown is not.
pub fn is_near(nearest: Option<Duration>, rtt: Option<Duration>) -> bool {
    match (nearest, rtt) {
        (None, _) => true,
        (Some(n), Some(r)) => r <= (n * 2).max(n + NEAR_SLACK),
        (Some(_), None) => false,
    }
}

/// The documented score formula (see the module docs).
pub fn score(i: &ScoreInputs) -> f64 {
    let state = match i.state {
        MemberState::Alive => 1.0,
        MemberState::Suspect => 0.25,
        MemberState::Failed | MemberState::Left => 0.0,
    };
    let rtt_ms = i.rtt.unwrap_or(UNKNOWN_RTT).as_secs_f64() * 1000.0;
    let latency = 1.0 / (1.0 + rtt_ms / 20.0);
    let reliab = 1.0 / (1.0 + i.failures.max(0.0));
    let zone = if i.same_zone { 1.0 } else { 0.0 };
    state * (0.45 * latency + 0.35 * i.availability.clamp(0.0, 1.0) + 0.10 * reliab + 0.10 * zone)
}

/// Availability below which a member is placed after the others.
pub const TIER_AVAILABILITY: f64 = 0.5;
/// Decayed failure count from which a member is placed after the others
/// (one failure within the last hour, at [`history::FAILURE_HALF_LIFE_MS`]).
pub const TIER_FAILURES: f64 = 0.5;

/// A member's placement tier, 0 best: 0 when alive, up at least half the
/// time it was watched and without a failure in the last hour; 1 when
/// alive otherwise; 2 when not alive. Unlike the score it leaves out the
/// round trip and the zone, which are each node's own view: storage orders
/// the servers of a file's window by tier, so that an uploader and a
/// downloader anywhere in the community put them in the same order (with
/// score tenths they did not, and a download asked about twice as many
/// servers as it needed). The two thresholds sit far from where a healthy
/// member's figures are, so two nodes rarely disagree about one.
pub fn placement_tier(state: MemberState, availability: f64, failures: f64) -> u8 {
    match state {
        MemberState::Alive if availability >= TIER_AVAILABILITY && failures < TIER_FAILURES => 0,
        MemberState::Alive => 1,
        _ => 2,
    }
}

/// What this node knows of one member, as published in a snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct PeerView {
    /// The member.
    pub peer: PeerId,
    /// Addresses it announced.
    pub addrs: Vec<Multiaddr>,
    /// Membership state.
    pub state: MemberState,
    /// EWMA of measured round trips, if we measured any.
    pub rtt_measured: Option<Duration>,
    /// RTT estimated from network coordinates, if both are known.
    pub rtt_estimated: Option<Duration>,
    /// Smoothed availability in `[0, 1]`, pulled towards 0.5 while there
    /// is little evidence (what the score uses).
    pub availability: f64,
    /// How long this node has watched the member, and how much of that
    /// time it was up (the raw evidence behind `availability`).
    pub observed: Duration,
    /// Of `observed`, the time it was up.
    pub seen_up: Duration,
    /// Decayed recent failure count.
    pub failures: f64,
    /// The member's zone label (may be empty).
    pub zone: String,
    /// The score, see [`score`].
    pub score: f64,
    /// Whether we hold a direct connection to it.
    pub connected: bool,
    /// Time since we last heard from it.
    pub last_heard_ago: Duration,
    /// Services it announces, with their metadata.
    pub services: BTreeMap<String, BTreeMap<String, String>>,
    /// Its network coordinate, if it announced one.
    pub coordinate: Option<vivaldi::Coordinate>,
}

/// This node itself, as published in a snapshot.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LocalView {
    /// Our peer id (`None` only in the empty initial snapshot).
    pub peer: Option<PeerId>,
    /// Addresses we listen on.
    pub listen_addrs: Vec<Multiaddr>,
    /// Our zone label.
    pub zone: String,
    /// Services we announce.
    pub services: BTreeMap<String, BTreeMap<String, String>>,
    /// Our network coordinate.
    pub coordinate: Option<vivaldi::Coordinate>,
}

/// One provider of a named service.
#[derive(Clone, Debug, Serialize)]
pub struct Provider {
    /// The providing peer.
    pub peer: PeerId,
    /// Whether that peer is this node.
    pub local: bool,
    /// Metadata it announced.
    pub meta: BTreeMap<String, String>,
    /// Its score (1.0 for ourselves: nothing is nearer).
    pub score: f64,
    /// Its addresses.
    pub addrs: Vec<Multiaddr>,
}

/// A read-only picture of the community, published by the event loop.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PeerScores {
    /// This node.
    pub local: LocalView,
    /// Every member we know of (not ourselves), alive or not. Each view
    /// is shared with the snapshots before and after it that did not
    /// change it: a change to one member republishes one view, not every
    /// member's (DESIGN/failure-detection.md).
    #[serde(serialize_with = "shared_views")]
    pub peers: HashMap<PeerId, Arc<PeerView>>,
}

impl PeerView {
    /// Its placement tier, see [`placement_tier`].
    pub fn tier(&self) -> u8 {
        placement_tier(self.state, self.availability, self.failures)
    }
}

/// Serialises the shared views as the views themselves (without serde's
/// `rc` feature, which would change every crate's symbols and so the
/// binary's idle-code layout, `cli/build.rs`).
fn shared_views<S: serde::Serializer>(
    peers: &HashMap<PeerId, Arc<PeerView>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(peers.iter().map(|(peer, view)| (peer, &**view)))
}

impl PeerScores {
    /// The score of `peer`, 0 when unknown.
    pub fn score(&self, peer: &PeerId) -> f64 {
        self.peers.get(peer).map_or(0.0, |p| p.score)
    }

    /// Members sorted best first (ties broken by peer id, so the order is stable).
    pub fn ranked(&self) -> Vec<&PeerView> {
        let mut v: Vec<&PeerView> = self.peers.values().map(|v| &**v).collect();
        v.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.peer.cmp(&b.peer)));
        v
    }

    /// Sorts `peers` best first.
    pub fn rank(&self, peers: &mut [PeerId]) {
        peers.sort_by(|a, b| self.score(b).total_cmp(&self.score(a)).then_with(|| a.cmp(b)));
    }

    /// Live providers of `name` (or of every service when `None`), ourselves
    /// first, then by score. Failed and left members are not listed: their
    /// announcements expire with them.
    pub fn providers(&self, name: Option<&str>) -> Vec<(String, Provider)> {
        let wanted = |n: &str| name.is_none_or(|w| w == n);
        let mut out = Vec::new();
        if let Some(me) = self.local.peer {
            for (n, meta) in self.local.services.iter().filter(|(n, _)| wanted(n)) {
                let p = Provider {
                    peer: me,
                    local: true,
                    meta: meta.clone(),
                    score: 1.0,
                    addrs: self.local.listen_addrs.clone(),
                };
                out.push((n.clone(), p));
            }
        }
        for view in self.ranked() {
            if !matches!(view.state, MemberState::Alive | MemberState::Suspect) {
                continue;
            }
            for (n, meta) in view.services.iter().filter(|(n, _)| wanted(n)) {
                let p = Provider {
                    peer: view.peer,
                    local: false,
                    meta: meta.clone(),
                    score: view.score,
                    addrs: view.addrs.clone(),
                };
                out.push((n.clone(), p));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.score.total_cmp(&a.1.score)));
        out
    }

    /// Counts members by state.
    pub fn count(&self, state: MemberState) -> usize {
        self.peers.values().filter(|p| p.state == state).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(rtt_ms: u64) -> ScoreInputs {
        ScoreInputs {
            state: MemberState::Alive,
            rtt: Some(Duration::from_millis(rtt_ms)),
            availability: 0.9,
            failures: 0.0,
            same_zone: false,
        }
    }

    #[test]
    fn lower_rtt_scores_higher() {
        assert!(score(&inputs(2)) > score(&inputs(20)));
        assert!(score(&inputs(20)) > score(&inputs(200)));
    }

    #[test]
    fn state_availability_failures_zone_all_count() {
        let base = score(&inputs(10));
        assert_eq!(score(&ScoreInputs { state: MemberState::Failed, ..inputs(10) }), 0.0);
        assert!(score(&ScoreInputs { state: MemberState::Suspect, ..inputs(10) }) < base);
        assert!(score(&ScoreInputs { availability: 0.2, ..inputs(10) }) < base);
        assert!(score(&ScoreInputs { failures: 3.0, ..inputs(10) }) < base);
        assert!(score(&ScoreInputs { same_zone: true, ..inputs(10) }) > base);
        let s = score(&ScoreInputs { same_zone: true, availability: 1.0, ..inputs(0) });
        assert!(s <= 1.0 && s > 0.99);
    }

    #[test]
    fn unknown_rtt_is_pessimistic() {
        assert!(score(&ScoreInputs { rtt: None, ..inputs(10) }) < score(&inputs(100)));
    }
}
