//! The SWIM side of the event loop: it carries out the decisions of
//! [`crate::membership::detector::Detector`] (whom
//! to probe, whom to accuse; failures nobody refuted
//! are confirmed in [`EventLoop::apply_changes`]). The probing itself
//! runs in [`crate::prober`].

use crate::event_loop::EventLoop;
use crate::prober::{Outcome, ProbeResult, Targets};
use libp2p::PeerId;
use tokio::time::Instant;
use tracing::info;

impl EventLoop {
    /// Every probe interval: our monitor targets
    /// ([`crate::membership::detector::Detector::targets`]), make sure we are connected to them, hand
    /// them and our links to the prober.
    pub(crate) fn on_probe_tick(&mut self) {
        let targets =
            self.detector.targets(&self.table, self.local.peer, self.cfg.monitors).to_vec();
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

    /// Accuses `peer` before the community ([`crate::membership::detector::Detector::probe_failed`]).
    pub(crate) fn probe_failed(&mut self, peer: PeerId, reason: &str) {
        let me = self.local.peer;
        let now = Instant::now();
        let Some((msg, changes)) = self.detector.probe_failed(&mut self.table, me, peer, now)
        else {
            return;
        };
        info!(%peer, "probe failed ({reason}); suspecting");
        self.publish(msg);
        self.apply_changes(changes);
    }
}
