//! The SWIM side of the event loop: it carries out the decisions of
//! [`crate::membership::detector::Detector`] (whom
//! to probe, whom to accuse; failures nobody refuted
//! are confirmed in [`EventLoop::apply_changes`]). The probing itself
//! runs in [`crate::prober`].

use crate::event_loop::EventLoop;
use crate::prober::{Outcome, ProbeResult, Targets};
use libp2p::PeerId;
use std::collections::HashMap;
use tokio::time::Instant;
use tracing::{debug, info};

/// How long a return is remembered: longer than any probe takes (its
/// timeout, doubled for a stream to open, times the local health factor).
const BACK_KEPT: std::time::Duration = std::time::Duration::from_secs(60);

/// Members that came back under a new process lately (restarted, or
/// returned after a failure or a leave), and when we heard: a probe sent
/// before then went to the previous process.
#[derive(Debug, Default)]
pub(crate) struct Returns(HashMap<PeerId, Instant>);

impl Returns {
    /// `peer` is back as of `now`; returns older than any probe still out
    /// are forgotten.
    pub(crate) fn note(&mut self, peer: PeerId, now: Instant) {
        let oldest = now.checked_sub(BACK_KEPT).unwrap_or(now);
        self.0.retain(|_, at| *at > oldest);
        self.0.insert(peer, now);
    }

    /// Whether `peer` came back after `at`, as far as we heard.
    pub(crate) fn since(&self, peer: &PeerId, at: Instant) -> bool {
        self.0.get(peer).is_some_and(|back| *back > at)
    }
}

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
            // A probe sent to the member's previous process (it restarted
            // since, and we heard) says nothing of the new one: it may only
            // have been cut short by our closing the old connection. Taken
            // as a failure, it accused the new process a moment after its
            // start, and every member heard the accusation and its
            // refutation (the churn benchmark: one in three restarts).
            Outcome::Failed(reason) if self.back.since(&r.peer, r.started) => {
                debug!(peer = %r.peer, "a probe of the member's previous process failed ({reason}); not accusing");
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn probes_sent_before_a_return_are_the_old_processes() {
        let mut r = Returns::default();
        let (p, q) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let before = t0;
        let after = t0 + Duration::from_millis(10);
        r.note(p, t0 + Duration::from_millis(5));
        assert!(r.since(&p, before), "sent before the return: to the old process");
        assert!(!r.since(&p, after), "sent after it: to the new one");
        assert!(!r.since(&q, before), "a member that never came back");
        // Forgotten once no probe can still be out.
        r.note(q, t0 + BACK_KEPT + Duration::from_secs(1));
        assert!(!r.since(&p, before));
        assert!(r.since(&q, before));
    }
}
