//! The anti-entropy side of the event loop: starting exchanges, answering
//! them and merging what they bring ([`crate::membership::sync`] has the
//! logic, [`crate::sync_msg`] the messages).

use crate::event_loop::EventLoop;
use crate::membership::Change;
use crate::sync_msg::{SyncRequest, SyncResponse, MAX_ENTRIES};
use libp2p::request_response::{self, Message as RrMessage};
use libp2p::PeerId;
use tokio::time::Instant;
use tracing::{debug, warn};

type Event = request_response::Event<SyncRequest, SyncResponse>;

impl EventLoop {
    /// Starts an exchange with `peer` (step 1: our summary).
    pub(crate) fn start_sync(&mut self, peer: PeerId) {
        let me = self.local.alive_info(&self.cfg.external_addrs);
        let hello = self.table.hello(&me);
        self.last_sync.insert(peer, Instant::now());
        self.swarm.behaviour_mut().members.send_request(&peer, hello);
    }

    /// Every `sync_interval`: an exchange with one random connected member
    /// (not one we exchanged with in the last interval).
    pub(crate) fn sync_with_random_member(&mut self) {
        use rand::seq::IteratorRandom;
        let now = Instant::now();
        let every = self.cfg.sync_interval;
        self.last_sync.retain(|_, t| now.duration_since(*t) < every);
        let peer = self
            .swarm
            .connected_peers()
            .filter(|p| {
                self.table.get(p).is_some_and(|m| m.state.is_up())
                    && !self.last_sync.contains_key(p)
            })
            .copied()
            .choose(&mut rand::thread_rng());
        if let Some(peer) = peer {
            self.start_sync(peer);
        }
    }

    pub(crate) fn on_members(&mut self, ev: Event) {
        match ev {
            request_response::Event::Message {
                peer,
                message: RrMessage::Request { request, channel, .. },
                ..
            } => {
                if request.len() > MAX_ENTRIES {
                    warn!(%peer, entries = request.len(), "membership exchange too large, ignored");
                    return;
                }
                let me = self.local.alive_info(&self.cfg.external_addrs);
                let (reply, changes) = self.table.answer(&me, request, Instant::now());
                self.learned(peer, changes);
                let _ = self.swarm.behaviour_mut().members.send_response(channel, reply);
            }
            request_response::Event::Message {
                peer,
                message: RrMessage::Response { response, .. },
                ..
            } => {
                if response.len() > MAX_ENTRIES {
                    warn!(%peer, entries = response.len(), "membership exchange too large, ignored");
                    return;
                }
                let me = self.local.alive_info(&self.cfg.external_addrs);
                let (next, changes) = self.table.take(&me, response, Instant::now());
                self.learned(peer, changes);
                if let Some(next) = next {
                    debug!(%peer, entries = next.len(), "membership tables differ");
                    self.swarm.behaviour_mut().members.send_request(&peer, next);
                }
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                debug!(%peer, "membership exchange failed: {error}")
            }
            _ => {}
        }
    }

    /// Acts on what an exchange with `from` taught us.
    fn learned(&mut self, from: PeerId, changes: Vec<Change>) {
        if !changes.is_empty() {
            debug!(%from, changes = changes.len(), "membership news from anti-entropy");
        }
        self.apply_changes_with(changes, false);
    }
}
