//! The SWIM side of the event loop: choosing whom to probe, accusing
//! members whose probes fail, confirming failures nobody refuted. The
//! probing itself runs in [`crate::prober`].

use crate::event_loop::EventLoop;
use crate::membership::wire::{Accusation, Message};
use crate::membership::{monitor_targets, MemberState};
use crate::prober::{Outcome, ProbeResult};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::PeerId;
use tokio::time::Instant;
use tracing::{debug, info};

impl EventLoop {
    /// Every probe interval: recompute our monitor targets, make sure we are
    /// connected to them, hand them to the prober.
    pub(crate) fn on_probe_tick(&mut self) {
        let alive = self.table.iter().filter(|m| m.state == MemberState::Alive).map(|m| m.info.peer);
        let targets = monitor_targets(self.local.peer, alive, self.cfg.monitors);
        for target in &targets {
            if !self.swarm.is_connected(target) {
                if let Some(m) = self.table.get(target) {
                    let opts = DialOpts::peer_id(*target)
                        .addresses(m.info.addrs.clone())
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    let _ = self.swarm.dial(opts);
                }
            }
        }
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
                self.on_rtt(r.peer, rtt);
                let changes = self.table.touch(&r.peer, Instant::now());
                self.apply_changes(changes);
            }
            Outcome::Failed(reason) => self.probe_failed(r.peer, &reason),
            // A peer that does not speak our probe protocol is not dead.
            Outcome::Unsupported => {}
        }
    }

    /// Accuses `peer` before the community.
    pub(crate) fn probe_failed(&mut self, peer: PeerId, reason: &str) {
        let Some(m) = self.table.get(&peer) else { return };
        if m.state != MemberState::Alive {
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
