//! The SWIM side of the event loop: choosing whom to probe, accusing
//! members whose probes fail, confirming failures nobody refuted. The
//! probing itself runs in [`crate::prober`].

use crate::event_loop::EventLoop;
use crate::membership::monitor_targets;
use crate::membership::wire::{Accusation, Message};
use crate::prober::{Outcome, ProbeResult, Targets};
use libp2p::PeerId;
use tokio::time::Instant;
use tracing::{debug, info};

impl EventLoop {
    /// Every probe interval: recompute our monitor targets, make sure we are
    /// connected to them, hand them and our links to the prober. Suspect
    /// members stay on the ring: their other monitors keep probing them,
    /// and a dead member's monitors all accuse it (which shortens the
    /// suspicion), while a live one is found alive again.
    pub(crate) fn on_probe_tick(&mut self) {
        let up = self.table.iter().filter(|m| m.state.is_up()).map(|m| m.info.peer);
        let targets = monitor_targets(self.local.peer, up, self.cfg.monitors);
        self.update_targets(Some(targets));
    }

    /// Hands the prober our monitor targets (new ones, or the current ones
    /// if `None`) and links, dialing any we are not connected to.
    pub(crate) fn update_targets(&mut self, probe: Option<Vec<PeerId>>) {
        let probe = probe.unwrap_or_else(|| self.probe_targets.borrow().probe.clone());
        for target in &probe {
            if !self.swarm.is_connected(target) {
                self.dial_member(*target);
            }
        }
        let targets = Targets { probe, link: self.links.clone() };
        self.probe_targets.send_if_modified(|current| {
            let changed = *current != targets;
            if changed {
                *current = targets;
            }
            changed
        });
    }

    pub(crate) fn on_probe_result(&mut self, r: ProbeResult) {
        match r.outcome {
            Outcome::Answered(rtt) => {
                self.health.better();
                self.on_rtt(r.peer, rtt);
                let changes = self.table.touch(&r.peer, Instant::now());
                self.apply_changes(changes);
            }
            Outcome::Failed(reason) => {
                self.health.worse();
                self.probe_failed(r.peer, &reason)
            }
            // A peer that does not speak our probe protocol is not dead.
            Outcome::Unsupported => {}
        }
    }

    /// Accuses `peer` before the community, once per suspicion: a member
    /// already suspected by others gets our accusation too, which shortens
    /// the suspicion (Lifeguard).
    pub(crate) fn probe_failed(&mut self, peer: PeerId, reason: &str) {
        let Some(m) = self.table.get(&peer) else { return };
        if !m.state.is_up() || self.accused.contains(&peer) {
            return;
        }
        info!(%peer, "probe failed ({reason}); suspecting");
        let (incarnation, seq) = m.version;
        let msg = Message::Suspect(Accusation { peer, incarnation, seq, by: self.local.peer });
        self.publish(msg.clone());
        self.accused.insert(peer);
        let changes = self.table.apply(msg, Instant::now());
        self.apply_changes(changes);
    }

    /// Tells everyone that a member we accused did not refute in time.
    pub(crate) fn confirm_failed(&mut self, peer: PeerId) {
        let Some(m) = self.table.get(&peer) else { return };
        let (incarnation, seq) = m.version;
        debug!(%peer, "confirming failure");
        self.publish(Message::Failed(Accusation { peer, incarnation, seq, by: self.local.peer }));
    }
}
