//! Kademlia that dials only for the node's own queries.
//!
//! libp2p-kad dials on its own in two cases the overlay does not want:
//!
//! - its bootstrap walk, which it starts whenever a peer enters a routing
//!   table of fewer than 20 (no setting turns that off). Every member's
//!   addresses reach the routing table from the member table, so the walk
//!   finds nothing new; each of its steps (one per bucket) dialed three
//!   members before the event loop could end it, and a newcomer to 30
//!   members sometimes ended up connected to 22 of them;
//! - a peer that connects while its bucket is full: kad dials the bucket's
//!   least recently seen member to see whether it still answers. In a
//!   community of more than about 40, buckets are full and most members
//!   are not connected, so every new connection made another.
//!
//! This wrapper ends every bootstrap walk as it starts, and drops the dials
//! kad asks for while none of the node's own queries (providers, records)
//! is running. A dropped liveness dial only means that the newcomer waits
//! for kad's pending timeout (60 s) before it takes the silent entry's place.

use libp2p::kad;
use libp2p::swarm::{NetworkBehaviour, THandler, THandlerInEvent, ToSwarm};
use std::task::{Context, Poll};
use tracing::trace;

type Kad = kad::Behaviour<kad::store::MemoryStore>;

/// [`kad::Behaviour`] without walks or dials of its own; derefs to it.
pub struct Behaviour(pub Kad);

impl std::ops::Deref for Behaviour {
    type Target = Kad;
    fn deref(&self) -> &Kad {
        &self.0
    }
}

impl std::ops::DerefMut for Behaviour {
    fn deref_mut(&mut self) -> &mut Kad {
        &mut self.0
    }
}

impl Behaviour {
    /// Ends every bootstrap walk (each step of it: ending one step starts
    /// the next bucket's); `true` if one of the node's own queries runs.
    fn end_walks(&mut self) -> bool {
        let mut asking = false;
        for mut q in self.0.iter_queries_mut() {
            match q.info() {
                kad::QueryInfo::Bootstrap { .. } => q.finish(),
                _ => asking = true,
            }
        }
        asking
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = THandler<Kad>;
    type ToSwarm = kad::Event;

    crate::forward::forward_to_inner!(std::convert::identity);

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        loop {
            let ev = std::task::ready!(self.0.poll(cx));
            let asking = self.end_walks();
            match ev {
                ToSwarm::Dial { opts } if !asking => {
                    trace!(peer = ?opts.get_peer_id(), "a dial of Kademlia's own, dropped");
                }
                ev => return Poll::Ready(ev),
            }
        }
    }
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use libp2p::{Multiaddr, PeerId};
    use std::time::Duration;

    fn kad_with(peers: &[PeerId]) -> Kad {
        let me = Keypair::generate_ed25519().public().to_peer_id();
        let mut cfg = kad::Config::new(crate::protocols::KAD);
        cfg.set_periodic_bootstrap_interval(None);
        let mut kad = Kad::with_config(me, kad::store::MemoryStore::new(me), cfg);
        for (i, p) in peers.iter().enumerate() {
            let addr: Multiaddr = format!("/ip4/127.0.0.1/udp/{}/quic-v1", 9 + i).parse().unwrap();
            kad.add_address(p, addr);
        }
        kad
    }

    /// The peers a behaviour asks the Swarm to dial within `window`.
    async fn dials<B: NetworkBehaviour>(b: &mut B, window: Duration) -> usize {
        let mut n = 0;
        let until = tokio::time::Instant::now() + window;
        while let Ok(ev) =
            tokio::time::timeout_at(until, std::future::poll_fn(|cx| b.poll(cx))).await
        {
            n += usize::from(matches!(ev, ToSwarm::Dial { .. }));
        }
        n
    }

    #[tokio::test]
    async fn kademlia_dials_for_the_nodes_queries_only() {
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        // Five peers in a routing table of fewer than 20: libp2p-kad
        // walks 0.5 s later and dials the closest three.
        let mut plain = kad_with(&peers);
        assert!(dials(&mut plain, Duration::from_secs(1)).await >= 3);
        let mut quiet = Behaviour(kad_with(&peers));
        assert_eq!(dials(&mut quiet, Duration::from_secs(1)).await, 0);
        // A query of the node's own still dials.
        quiet.get_providers(kad::RecordKey::new(&"video"));
        assert!(dials(&mut quiet, Duration::from_millis(200)).await >= 1);
    }
}
