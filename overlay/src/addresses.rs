//! Members' addresses for the Swarm's dials, QUIC first.
//!
//! A dial that names no address (a stream opened to a member we are not
//! connected to, a Kademlia query) collects addresses from every
//! behaviour in the order they are declared, and the Swarm tries them one
//! at a time (`lib.rs`). Identify's cache hands them out in no particular
//! order, so such dials sometimes reached a member over TCP and its
//! streams (live chunks, shares, sync blocks) then ran over TCP + noise +
//! yamux instead of QUIC. This behaviour is declared first and answers
//! with the addresses the member announced, QUIC first
//! (ours are announced in that order; a remote's order is sorted again
//! here), so QUIC is tried first and TCP only when
//! it fails.

use libp2p::core::{transport::PortUse, Endpoint};
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::convert::Infallible;
use std::task::{Context, Poll};

/// The address book: each member's announced addresses.
#[derive(Debug, Default)]
pub struct Behaviour {
    book: HashMap<PeerId, Vec<Multiaddr>>,
}

impl Behaviour {
    /// Replaces the book with these members' addresses.
    pub fn set<'a>(&mut self, members: impl Iterator<Item = (PeerId, &'a [Multiaddr])>) {
        self.book.clear();
        for (peer, addrs) in members {
            self.book.insert(peer, quic_first(addrs));
        }
    }

    /// Sets the addresses of one member (`None`: forgets it).
    pub fn update(&mut self, peer: PeerId, addrs: Option<&[Multiaddr]>) {
        match addrs {
            Some(addrs) => self.book.insert(peer, quic_first(addrs)),
            None => self.book.remove(&peer),
        };
    }

    /// The addresses a dial to `peer` tries first.
    pub fn get(&self, peer: &PeerId) -> &[Multiaddr] {
        self.book.get(peer).map_or(&[], Vec::as_slice)
    }
}

/// `addrs` with the QUIC ones first, otherwise in their order.
pub(crate) fn quic_first(addrs: &[Multiaddr]) -> Vec<Multiaddr> {
    let mut v = addrs.to_vec();
    sort_quic_first(&mut v);
    v
}

/// Puts the QUIC addresses first, keeping the order otherwise: the order
/// every dial of ours tries them in, and the one we announce.
pub(crate) fn sort_quic_first(addrs: &mut [Multiaddr]) {
    addrs.sort_by_key(|a| !is_quic(a));
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        Ok(peer.map(|p| self.get(&p).to_vec()).unwrap_or_default())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        ev: THandlerOutEvent<Self>,
    ) {
        match ev {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// Whether the address is a QUIC one.
pub(crate) fn is_quic(a: &Multiaddr) -> bool {
    a.iter().any(|p| matches!(p, libp2p::multiaddr::Protocol::QuicV1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_addresses_come_first() {
        let tcp: Multiaddr = "/ip4/10.0.0.1/tcp/7391".parse().unwrap();
        let quic: Multiaddr = "/ip4/10.0.0.1/udp/7391/quic-v1".parse().unwrap();
        let tcp2: Multiaddr = "/ip4/10.0.0.2/tcp/7391".parse().unwrap();
        let peer = PeerId::random();
        let mut b = Behaviour::default();
        b.set([(peer, &[tcp.clone(), tcp2.clone(), quic.clone()][..])].into_iter());
        assert_eq!(b.get(&peer), [quic.clone(), tcp.clone(), tcp2]);
        let dialed = b
            .handle_pending_outbound_connection(
                ConnectionId::new_unchecked(0),
                Some(peer),
                &[],
                Endpoint::Dialer,
            )
            .unwrap();
        assert_eq!(dialed[0], quic);
        assert!(b
            .handle_pending_outbound_connection(
                ConnectionId::new_unchecked(1),
                Some(PeerId::random()),
                &[],
                Endpoint::Dialer
            )
            .unwrap()
            .is_empty());
    }
}
