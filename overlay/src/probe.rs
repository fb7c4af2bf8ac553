//! The SWIM side of the event loop: probing our monitor targets, accusing
//! those that do not answer, confirming failures nobody refuted.

use crate::behaviour::Probe;
use crate::event_loop::EventLoop;
use crate::membership::wire::{Accusation, Message};
use crate::membership::{monitor_targets, MemberState};
use libp2p::request_response::{self, Message as RrMessage, OutboundFailure};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::PeerId;
use tokio::time::Instant;
use tracing::{debug, info};

impl EventLoop {
    /// Every probe interval: give up on stuck probes, probe our targets.
    pub(crate) fn on_probe_tick(&mut self) {
        let now = Instant::now();
        // A probe waiting for a dial can outlive request-response's timeout.
        let limit = self.cfg.probe_timeout + self.cfg.probe_interval;
        let stuck: Vec<PeerId> =
            self.probing.iter().filter(|(_, (_, at))| now.duration_since(*at) > limit).map(|(p, _)| *p).collect();
        for peer in stuck {
            self.probing.remove(&peer);
            self.probe_failed(peer, "no answer in time");
        }
        let alive = self.table.iter().filter(|m| m.state == MemberState::Alive).map(|m| m.info.peer);
        for target in monitor_targets(self.local.peer, alive, self.cfg.monitors) {
            if self.probing.contains_key(&target) {
                continue;
            }
            if !self.swarm.is_connected(&target) {
                if let Some(m) = self.table.get(&target) {
                    let _ = self.swarm.dial(DialOpts::peer_id(target).addresses(m.info.addrs.clone()).build());
                }
            }
            let id = self.swarm.behaviour_mut().probe.send_request(&target, Probe {});
            self.probing.insert(target, (id, now));
        }
    }

    pub(crate) fn on_probe(&mut self, ev: request_response::Event<Probe, Probe>) {
        match ev {
            request_response::Event::Message { message: RrMessage::Request { channel, .. }, .. } => {
                let _ = self.swarm.behaviour_mut().probe.send_response(channel, Probe {});
            }
            request_response::Event::Message { peer, message: RrMessage::Response { request_id, .. }, .. } => {
                if let Some((_, sent)) = self.take_probe(peer, request_id) {
                    self.on_rtt(peer, sent.elapsed());
                    let changes = self.table.touch(&peer, Instant::now());
                    self.apply_changes(changes);
                }
            }
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                if self.take_probe(peer, request_id).is_some() {
                    // A peer that does not speak our probe protocol is not dead.
                    if !matches!(error, OutboundFailure::UnsupportedProtocols) {
                        self.probe_failed(peer, &error.to_string());
                    }
                }
            }
            _ => {}
        }
    }

    /// Removes the probe if `request_id` is the one under way to `peer`.
    fn take_probe(
        &mut self,
        peer: PeerId,
        request_id: request_response::OutboundRequestId,
    ) -> Option<(request_response::OutboundRequestId, Instant)> {
        match self.probing.get(&peer) {
            Some((id, _)) if *id == request_id => self.probing.remove(&peer),
            _ => None,
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
