//! The SWIM failure detector's decisions (pure logic, no I/O): whom to
//! probe, whom to accuse when a probe fails, and which failures to confirm.
//!
//! The node ([`crate::probe`]) and the community simulator call the same
//! code; the probing itself (a stream and a timer) is theirs.

use super::wire::{Accusation, Message};
use super::{Change, MemberState, MemberTable};
use libp2p::PeerId;
use std::collections::HashSet;
use tokio::time::Instant;

/// One node's detector state: the members it accused, and its monitor
/// targets as of the table's last generation.
#[derive(Debug, Default)]
pub struct Detector {
    accused: HashSet<PeerId>,
    targets: Option<(u64, Vec<PeerId>)>,
}

impl Detector {
    /// The members `local` must probe now: its `k` monitor targets among
    /// the members it holds up ([`MemberTable::up_after`], the ring kept
    /// sorted), looked up again only when the table changed: this runs
    /// every probe interval on every node, and the lookup doubled the
    /// table's idle CPU (DESIGN/simulation.md). Suspect members stay on
    /// the ring: their other monitors keep probing them, and a dead
    /// member's monitors all accuse it (which shortens the suspicion),
    /// while a live one is found alive again.
    pub fn targets(&mut self, table: &MemberTable, local: PeerId, k: usize) -> &[PeerId] {
        let generation = table.generation();
        if self.targets.as_ref().is_none_or(|(g, _)| *g != generation) {
            self.targets = Some((generation, table.up_after(&local, k)));
        }
        self.targets.as_ref().map_or(&[], |(_, t)| t.as_slice())
    }

    /// A probe of `peer` by `local` failed: the accusation to gossip (once
    /// per suspicion; a member already suspected by others gets ours too,
    /// which shortens the suspicion), already applied to `table`, with the
    /// changes it made.
    pub fn probe_failed(
        &mut self,
        table: &mut MemberTable,
        local: PeerId,
        peer: PeerId,
        now: Instant,
    ) -> Option<(Message, Vec<Change>)> {
        let m = table.get(&peer)?;
        if !m.state.is_up() || self.accused.contains(&peer) {
            return None;
        }
        let (incarnation, seq) = m.version;
        let msg = Message::Suspect(Accusation { peer, incarnation, seq, by: local });
        self.accused.insert(peer);
        let changes = table.apply(msg.clone(), now);
        Some((msg, changes))
    }

    /// Whether our own probe accused `peer` of the suspicion (or failure)
    /// in force.
    pub fn accused(&self, peer: &PeerId) -> bool {
        self.accused.contains(peer)
    }

    /// A member's state changed to `to`: an accusation of ours ends with
    /// any state but suspect, and one that ended in failure is confirmed
    /// to everyone (the confirmation to gossip) by one accuser only, the
    /// least of the member's accusers: every node times the suspicion out
    /// on its own, so the confirmation only serves nodes that missed the
    /// suspicion, and one is enough (each further one cost every member a
    /// message; DESIGN/simulation.md). A failure first heard as another
    /// accuser's confirmation is not confirmed again.
    pub fn on_state(
        &mut self,
        table: &MemberTable,
        local: PeerId,
        peer: PeerId,
        to: MemberState,
    ) -> Option<Message> {
        let we_accused = to != MemberState::Suspect && self.accused.remove(&peer);
        if !(we_accused && to == MemberState::Failed) {
            return None;
        }
        let m = table.get(&peer)?;
        if m.accusers.iter().min().is_some_and(|first| *first != local) {
            return None;
        }
        let (incarnation, seq) = m.version;
        Some(Message::Failed(Accusation { peer, incarnation, seq, by: local }))
    }
}
