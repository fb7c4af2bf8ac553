//! Connections whose last stream was dropped close after the idle timeout.
//!
//! The Swarm closes a connection once it has been idle (no handler keeping
//! it alive, no open stream) for the idle timeout, but it only looks when
//! the connection's task runs. Dropping a stream does not wake that task
//! (the stream count is a bare `Arc`, libp2p-swarm's `ActiveStreamCounter`):
//! a connection whose last use was a stream of ours (a probe, a link, a
//! storage session) stayed open until something else woke it, on an idle
//! connection the next ping, 60 s later. The bootstrap member of 200 held
//! some 30 newcomers' connections that way, each 70 s after the join.
//!
//! This behaviour's handler wakes its connection every `every`, so an
//! unused connection closes within the idle timeout plus `every`.

use libp2p::core::{transport::PortUse, upgrade::DeniedUpgrade, Endpoint};
use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Wakes every connection every `every`.
#[derive(Debug)]
pub struct Behaviour {
    every: Duration,
}

impl Behaviour {
    /// A behaviour whose connections are woken every `every`.
    pub fn new(every: Duration) -> Self {
        Behaviour { every }
    }

    fn handler(&self) -> Handler {
        Handler { every: self.every, timer: Box::pin(tokio::time::sleep(self.every)) }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
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

/// A handler with no protocol and a timer: its only job is to have its
/// connection's task run every `every`.
#[derive(Debug)]
pub struct Handler {
    every: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade, ()> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        false
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, Infallible, Infallible>> {
        // Polling the rearmed timer registers the task's waker again.
        while self.timer.as_mut().poll(cx).is_ready() {
            let next = tokio::time::Instant::now() + self.every;
            self.timer.as_mut().reset(next);
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, ev: Infallible) {
        match ev {}
    }

    fn on_connection_event(
        &mut self,
        _: ConnectionEvent<DeniedUpgrade, DeniedUpgrade, (), Infallible>,
    ) {
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed run
    use super::*;
    use futures::StreamExt;
    use libp2p::swarm::SwarmEvent;
    use libp2p::{StreamProtocol, Swarm};
    use tokio::time::Instant;

    const PROTOCOL: StreamProtocol = StreamProtocol::new("/cloudy-test/idle/1");
    const IDLE: Duration = Duration::from_millis(500);

    #[derive(libp2p::swarm::NetworkBehaviour)]
    #[behaviour(prelude = "libp2p::swarm::derive_prelude")]
    struct Node {
        stream: libp2p_stream::Behaviour,
        idle_check: libp2p::swarm::behaviour::toggle::Toggle<Behaviour>,
    }

    fn swarm(check: bool) -> Swarm<Node> {
        libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_quic()
            .with_behaviour(|_| Node {
                stream: libp2p_stream::Behaviour::new(),
                idle_check: check.then(|| Behaviour::new(IDLE)).into(),
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE))
            .build()
    }

    /// Opens a stream from a dialer to a listener, drops it on both sides
    /// and returns how long the connection then stayed open (`None`: still
    /// open after 5 s).
    async fn open_after_last_stream(check: bool) -> Option<Duration> {
        let mut server = swarm(check);
        let mut client = swarm(check);
        let mut incoming = server.behaviour().stream.new_control().accept(PROTOCOL).unwrap();
        server.listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()).unwrap();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
                break address;
            }
        };
        let server_id = *server.local_peer_id();
        client.dial(addr).unwrap();
        let mut control = client.behaviour().stream.new_control();
        let (closed_tx, mut closed) = tokio::sync::mpsc::channel(4);
        let drive = |mut s: Swarm<Node>, tx: tokio::sync::mpsc::Sender<Instant>| {
            tokio::spawn(async move {
                loop {
                    if let SwarmEvent::ConnectionClosed { .. } = s.select_next_some().await {
                        let _ = tx.try_send(Instant::now());
                    }
                }
            })
        };
        let server_task = drive(server, closed_tx.clone());
        loop {
            if let SwarmEvent::ConnectionEstablished { .. } = client.select_next_some().await {
                break;
            }
        }
        let client_task = drive(client, closed_tx);
        let out = control.open_stream(server_id, PROTOCOL).await.unwrap();
        let (_, inbound) = incoming.next().await.unwrap();
        // Both ends keep the connection busy for a while, then drop it.
        tokio::time::sleep(2 * IDLE).await;
        drop(out);
        drop(inbound);
        let dropped = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(5), closed.recv()).await;
        server_task.abort();
        client_task.abort();
        closed.ok().flatten().map(|at| at - dropped)
    }

    #[tokio::test]
    async fn a_connection_closes_after_the_idle_timeout_once_its_last_stream_is_dropped() {
        let after = open_after_last_stream(true).await.expect("the connection closed");
        assert!(after <= 2 * IDLE + Duration::from_millis(500), "closed {after:?} after");
    }

    #[tokio::test]
    async fn without_the_check_a_dropped_stream_leaves_its_connection_open() {
        // What the check is for: libp2p-swarm does not notice the drop.
        assert_eq!(open_after_last_stream(false).await, None);
    }
}
