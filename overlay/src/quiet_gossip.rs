//! Gossipsub whose long-lived streams do not keep connections open.
//!
//! Gossipsub opens one long-lived stream each way on every connection to a
//! peer that speaks it, and the Swarm keeps a connection open while any
//! stream on it is open (rust-libp2p issue #5190). Every connection a node
//! ever made (a Kademlia query, a bootstrap dial, a storage session) thus
//! stayed open for good: at N = 100 each node ended up connected to most
//! of the community, and its idle cost grew with N (DESIGN/failure-detection.md).
//!
//! This wrapper marks gossipsub's streams as not counting for keep-alive
//! (`Stream::ignore_for_keep_alive`, as ping does). Gossipsub itself still
//! keeps the connections to its mesh peers open (its handler's
//! `connection_keep_alive` is true while the peer is in the mesh); every
//! other connection closes after the idle timeout once nothing else uses it.

use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound, FullyNegotiatedOutbound};
use libp2p::swarm::{
    ConnectionHandler, ConnectionHandlerEvent, NetworkBehaviour, SubstreamProtocol, THandler,
    THandlerInEvent, ToSwarm,
};
use libp2p::{gossipsub, Stream};
use std::convert::Infallible;
use std::task::{Context, Poll};

/// The output of a negotiated gossipsub stream: a framed [`Stream`].
pub trait HoldsStream {
    /// Stops the stream from keeping its connection open.
    fn release(&mut self);
}

impl<C, K> HoldsStream for (asynchronous_codec::Framed<Stream, C>, K) {
    fn release(&mut self) {
        // `Framed` derefs to the stream it wraps.
        let stream: &mut Stream = &mut self.0;
        stream.ignore_for_keep_alive();
    }
}

impl<A: HoldsStream> HoldsStream for futures::future::Either<A, Infallible> {
    fn release(&mut self) {
        if let futures::future::Either::Left(a) = self {
            a.release();
        }
    }
}

/// [`gossipsub::Behaviour`] with quiet streams; derefs to it.
#[derive(Debug)]
pub struct Behaviour(pub gossipsub::Behaviour);

impl std::ops::Deref for Behaviour {
    type Target = gossipsub::Behaviour;
    fn deref(&self) -> &gossipsub::Behaviour {
        &self.0
    }
}

impl std::ops::DerefMut for Behaviour {
    fn deref_mut(&mut self) -> &mut gossipsub::Behaviour {
        &mut self.0
    }
}

type Inner = THandler<gossipsub::Behaviour>;

/// Gossipsub's connection handler with its streams released.
pub struct Handler(Inner);

impl ConnectionHandler for Handler
where
    <<Inner as ConnectionHandler>::InboundProtocol as libp2p::core::upgrade::InboundUpgrade<
        Stream,
    >>::Output: HoldsStream,
    <<Inner as ConnectionHandler>::OutboundProtocol as libp2p::core::upgrade::OutboundUpgrade<
        Stream,
    >>::Output: HoldsStream,
{
    type FromBehaviour = <Inner as ConnectionHandler>::FromBehaviour;
    type ToBehaviour = <Inner as ConnectionHandler>::ToBehaviour;
    type InboundProtocol = <Inner as ConnectionHandler>::InboundProtocol;
    type OutboundProtocol = <Inner as ConnectionHandler>::OutboundProtocol;
    type InboundOpenInfo = <Inner as ConnectionHandler>::InboundOpenInfo;
    type OutboundOpenInfo = <Inner as ConnectionHandler>::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.0.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.0.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        self.0.poll(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.0.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.0.on_behaviour_event(event)
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        let event = match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                mut protocol,
                info,
            }) => {
                protocol.release();
                ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, info })
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                mut protocol,
                info,
            }) => {
                protocol.release();
                ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound { protocol, info })
            }
            other => other,
        };
        self.0.on_connection_event(event)
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = gossipsub::Event;

    crate::forward::forward_to_inner!(Handler);

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.0.poll(cx)
    }
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler").finish_non_exhaustive()
    }
}
