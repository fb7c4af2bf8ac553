//! The delegation a wrapping [`libp2p::swarm::NetworkBehaviour`] needs.

/// Forwards every `NetworkBehaviour` method but `poll` to `self.0`, passing
/// each new connection's handler through `$wrap`. For the wrappers that
/// change one thing about a libp2p behaviour (`quiet_gossip`, `quiet_kad`).
macro_rules! forward_to_inner {
    ($wrap:expr) => {
        fn handle_pending_inbound_connection(
            &mut self,
            id: libp2p::swarm::ConnectionId,
            local: &libp2p::Multiaddr,
            remote: &libp2p::Multiaddr,
        ) -> Result<(), libp2p::swarm::ConnectionDenied> {
            self.0.handle_pending_inbound_connection(id, local, remote)
        }

        fn handle_established_inbound_connection(
            &mut self,
            id: libp2p::swarm::ConnectionId,
            peer: libp2p::PeerId,
            local: &libp2p::Multiaddr,
            remote: &libp2p::Multiaddr,
        ) -> Result<libp2p::swarm::THandler<Self>, libp2p::swarm::ConnectionDenied> {
            self.0.handle_established_inbound_connection(id, peer, local, remote).map($wrap)
        }

        fn handle_pending_outbound_connection(
            &mut self,
            id: libp2p::swarm::ConnectionId,
            peer: Option<libp2p::PeerId>,
            addrs: &[libp2p::Multiaddr],
            role: libp2p::core::Endpoint,
        ) -> Result<Vec<libp2p::Multiaddr>, libp2p::swarm::ConnectionDenied> {
            self.0.handle_pending_outbound_connection(id, peer, addrs, role)
        }

        fn handle_established_outbound_connection(
            &mut self,
            id: libp2p::swarm::ConnectionId,
            peer: libp2p::PeerId,
            addr: &libp2p::Multiaddr,
            role: libp2p::core::Endpoint,
            port_use: libp2p::core::transport::PortUse,
        ) -> Result<libp2p::swarm::THandler<Self>, libp2p::swarm::ConnectionDenied> {
            self.0.handle_established_outbound_connection(id, peer, addr, role, port_use).map($wrap)
        }

        fn on_swarm_event(&mut self, event: libp2p::swarm::FromSwarm) {
            self.0.on_swarm_event(event)
        }

        fn on_connection_handler_event(
            &mut self,
            peer: libp2p::PeerId,
            id: libp2p::swarm::ConnectionId,
            event: libp2p::swarm::THandlerOutEvent<Self>,
        ) {
            self.0.on_connection_handler_event(peer, id, event)
        }
    };
}

pub(crate) use forward_to_inner;
