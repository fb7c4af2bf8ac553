//! The anti-entropy side of the event loop: starting exchanges, answering
//! them and merging what they bring ([`crate::membership::sync`] has the
//! logic, [`crate::sync_msg`] the messages).

use crate::event_loop::EventLoop;
use crate::membership::sync::SyncEntry;
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
        let hash = self.table.summary(&me).to_vec();
        self.last_sync.insert(peer, Instant::now());
        self.swarm.behaviour_mut().members.send_request(&peer, SyncRequest::Hello { hash });
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
                let reply = match request {
                    SyncRequest::Hello { hash } if hash[..] == self.table.summary(&me) => {
                        SyncResponse::Equal
                    }
                    SyncRequest::Hello { .. } => SyncResponse::Digest(self.table.digest(&me)),
                    SyncRequest::Exchange { push, mut want } => {
                        want.extend(self.merge_entries(peer, push));
                        let me = self.local.alive_info(&self.cfg.external_addrs);
                        SyncResponse::Entries(
                            want.iter().filter_map(|p| self.table.entry(p, &me)).collect(),
                        )
                    }
                };
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
                match response {
                    SyncResponse::Equal => {}
                    SyncResponse::Digest(theirs) => {
                        let me = self.local.alive_info(&self.cfg.external_addrs);
                        let (push, want) = self.table.compare(&me, &theirs);
                        debug!(%peer, push = push.len(), want = want.len(), "membership tables differ");
                        if !push.is_empty() || !want.is_empty() {
                            self.swarm
                                .behaviour_mut()
                                .members
                                .send_request(&peer, SyncRequest::Exchange { push, want });
                        }
                    }
                    SyncResponse::Entries(entries) => drop(self.merge_entries(peer, entries)),
                }
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                debug!(%peer, "membership exchange failed: {error}")
            }
            _ => {}
        }
    }

    /// Merges entries from `from`'s table. Returns the members of which we
    /// hold a newer entry than `from` sent.
    fn merge_entries(&mut self, from: PeerId, entries: Vec<SyncEntry>) -> Vec<PeerId> {
        let now = Instant::now();
        let mut changes = Vec::new();
        let mut ours_newer = Vec::new();
        for e in entries {
            if e.info.coord.as_ref().is_some_and(|c| !c.is_valid()) {
                continue;
            }
            let peer = e.info.peer;
            let merged = self.table.merge(e, now);
            if merged.ours_newer {
                ours_newer.push(peer);
            }
            changes.extend(merged.changes);
        }
        if !changes.is_empty() {
            debug!(%from, changes = changes.len(), "membership news from anti-entropy");
        }
        self.apply_changes_with(changes, false);
        ours_newer
    }
}
