//! How the event loop reacts to swarm events.

use crate::behaviour::BehaviourEvent;
use crate::event_loop::{EventLoop, KadPending};
use crate::membership::wire::Message;
use crate::Error;
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, identify, kad, mdns, ping, PeerId};
use tokio::time::Instant;
use tracing::{debug, info, warn};

impl EventLoop {
    pub(crate) fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        self.record(&ev);
        match ev {
            SwarmEvent::Behaviour(ev) => self.on_behaviour_event(ev),
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.swarm.add_external_address(address.clone());
                self.local.listen_addrs.push(address);
                self.dirty = true;
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.swarm.remove_external_address(&address);
                self.local.listen_addrs.retain(|a| a != &address);
                self.dirty = true;
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                endpoint,
                ..
            } => {
                debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                self.opened.insert(connection_id, (peer_id, crate::unix_ms()));
                self.dialing.remove(&connection_id);
                if self.banned.is_banned(&peer_id) {
                    let _ = self.swarm.close_connection(connection_id);
                    return;
                }
                if let Some((_, reply)) = self.pending_connects.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                // The dialer compares tables with the member it reached.
                if num_established.get() == 1 && endpoint.is_dialer() {
                    self.start_sync(peer_id);
                }
                if endpoint.is_dialer() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, endpoint.get_remote_address().clone());
                }
                self.dirty = true;
            }
            SwarmEvent::ConnectionClosed {
                peer_id, connection_id, num_established, cause, ..
            } => {
                self.opened.remove(&connection_id);
                if num_established == 0 {
                    debug!(peer = %peer_id, ?cause, "disconnected");
                    self.dirty = true;
                }
            }
            SwarmEvent::Dialing { peer_id: Some(peer), connection_id } => {
                self.dialing.insert(connection_id, peer);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, connection_id, error } => {
                debug!(peer = ?peer_id, "outgoing connection failed: {error}");
                self.dialing.remove(&connection_id);
                if let Some((target, reply)) = self.pending_connects.remove(&connection_id) {
                    let reason = crate::dial_error::reason(&error);
                    let _ = reply.send(Err(Error::Dial { target, reason }));
                }
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                debug!(addr = %send_back_addr, "incoming connection failed: {error}");
            }
            _ => {}
        }
    }

    /// Feeds libp2p's metrics.
    fn record(&self, ev: &SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder;
        let m = &self.metrics.libp2p;
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => m.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => m.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => m.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => m.record(e),
            SwarmEvent::Behaviour(_) => {}
            e => m.record(e),
        }
    }

    fn on_behaviour_event(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Gossipsub(ev) => self.on_gossip(ev),
            BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. }) => {
                self.on_rtt(peer, rtt);
                let changes = self.table.touch(&peer, Instant::now());
                self.apply_changes(changes);
            }
            BehaviourEvent::Ping(_) => {}
            BehaviourEvent::Addresses(never) => match never {},
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                for addr in crate::addresses::quic_first(&info.listen_addrs) {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
                if !info.protocols.contains(&crate::protocols::MEMBERS_SYNC) {
                    self.foreign.insert(peer_id);
                    self.greet(peer_id);
                }
            }
            BehaviourEvent::Identify(_) => {}
            BehaviourEvent::Kad(ev) => self.on_kad(ev),
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
                    if !self.swarm.is_connected(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            BehaviourEvent::Mdns(_) => {}
            BehaviourEvent::Members(ev) => self.on_members(ev),
            BehaviourEvent::Stream(()) => {}
            BehaviourEvent::IdleCheck(never) => match never {},
        }
    }

    fn on_gossip(&mut self, ev: gossipsub::Event) {
        match ev {
            gossipsub::Event::Message { propagation_source, message_id, message }
                if message.topic.as_str() == crate::protocols::COMMUNITY_TOPIC =>
            {
                let acceptance = match &self.cfg.community {
                    Some(gate) => match crate::community::revoke::Revocation::decode(&message.data)
                        .and_then(|r| gate.take(r))
                    {
                        Ok(_) => gossipsub::MessageAcceptance::Accept,
                        Err(e) => {
                            warn!(from = %propagation_source, "rejected a revocation: {e}");
                            gossipsub::MessageAcceptance::Reject
                        }
                    },
                    None => gossipsub::MessageAcceptance::Ignore,
                };
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                let _ = gs.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    acceptance,
                );
            }
            gossipsub::Event::Message { propagation_source, message_id, message } => {
                let verdict = self.accept_gossip(&message);
                let acceptance = match verdict {
                    // Over its rate: neither taken nor passed on.
                    Ok(msg) if !self.within_rate(msg.author()) => {
                        gossipsub::MessageAcceptance::Ignore
                    }
                    Ok(msg) => {
                        let changes = self.table.apply(msg, Instant::now());
                        self.apply_changes(changes);
                        gossipsub::MessageAcceptance::Accept
                    }
                    Err(reason) => {
                        warn!(from = %propagation_source, author = ?message.source, "rejected membership message: {reason}");
                        gossipsub::MessageAcceptance::Reject
                    }
                };
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                let _ = gs.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    acceptance,
                );
            }
            // Our join announcement goes out over our first broadcast link
            // (`tree_events.rs`); a foreign subscriber is greeted.
            gossipsub::Event::Subscribed { peer_id, topic } if topic == self.topic.hash() => {
                self.greet(peer_id);
            }
            _ => {}
        }
    }

    /// A foreign gossipsub peer (not a cloudy node: it does not take part
    /// in anti-entropy) learns our state from one heartbeat, once it has
    /// subscribed to the membership topic.
    fn greet(&mut self, peer: PeerId) {
        if !self.foreign.contains(&peer) || self.greeted.contains(&peer) {
            return;
        }
        let topic = self.topic.hash();
        let subscribed = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .any(|(p, topics)| *p == peer && topics.contains(&&topic));
        if subscribed {
            info!(%peer, "a gossipsub peer that is not a cloudy node subscribed; sending it our state");
            self.greeted.insert(peer);
            self.publish_alive();
        }
    }

    fn accept_gossip(&self, message: &gossipsub::Message) -> Result<Message, GossipRejected> {
        if message.topic != self.topic.hash() {
            return Err(GossipRejected::Topic(message.topic.to_string()));
        }
        let msg = Message::decode(&message.data)?;
        if message.source != Some(msg.author()) {
            let signer = message.source.map_or("nobody".into(), |p| p.to_string());
            return Err(GossipRejected::Forged { signer, author: msg.author().to_string() });
        }
        Ok(msg)
    }

    fn on_kad(&mut self, ev: kad::Event) {
        let kad::Event::OutboundQueryProgressed { id, result, step, .. } = ev else { return };
        match (result, self.pending_kad.remove(&id)) {
            (kad::QueryResult::StartProviding(res), Some(KadPending::Provide(reply))) => {
                let _ = reply.send(res.map(|_| ()).map_err(|e| Error::Dht(e.to_string())));
            }
            (kad::QueryResult::PutRecord(res), Some(KadPending::Put(reply))) => {
                let _ = reply.send(res.map(|_| ()).map_err(|e| Error::Dht(e.to_string())));
            }
            (kad::QueryResult::GetRecord(res), Some(KadPending::Get(reply))) => match res {
                Ok(kad::GetRecordOk::FoundRecord(found)) => {
                    let _ = reply.send(Ok(found.record.value));
                    if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                        q.finish();
                    }
                }
                Ok(kad::GetRecordOk::FinishedWithNoAdditionalRecord { .. }) => {
                    let _ = reply.send(Err(Error::Dht("no record under this key".into())));
                }
                Err(e) => {
                    let _ = reply.send(Err(Error::Dht(e.to_string())));
                }
            },
            (
                kad::QueryResult::GetProviders(res),
                Some(KadPending::Providers(mut found, reply)),
            ) => {
                if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = res {
                    found.extend(providers);
                }
                // Two providers are enough to go on with: the query would
                // otherwise wait out every silent peer it asked (a member
                // that died and is not yet seen failed). The caller asks
                // again for more when those do not do.
                if step.last || found.len() >= ENOUGH_PROVIDERS {
                    let _ = reply.send(Ok(found));
                    if !step.last {
                        if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                            q.finish();
                        }
                    }
                } else {
                    self.pending_kad.insert(id, KadPending::Providers(found, reply));
                }
            }
            (_, Some(other)) => {
                self.pending_kad.insert(id, other);
            }
            _ => {}
        }
    }
}

/// Providers a DHT query answers with before it finished.
const ENOUGH_PROVIDERS: usize = 2;

/// Why a gossip message was dropped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GossipRejected {
    /// Not our membership topic.
    #[error("unexpected topic {0}")]
    Topic(String),
    /// Not a membership message.
    #[error(transparent)]
    Garbage(#[from] crate::membership::wire::DecodeError),
    /// Signed by one peer, claiming to be another's.
    #[error("message signed by {signer} claims to be from {author}")]
    Forged {
        /// Who signed it.
        signer: String,
        /// Whom it names as author.
        author: String,
    },
}
