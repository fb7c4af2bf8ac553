//! How the event loop reacts to swarm events.

use crate::behaviour::BehaviourEvent;
use crate::event_loop::{EventLoop, KadPending};
use crate::membership::wire::Message;
use crate::rpc::{InboundRequest, RpcResponse};
use crate::sync_msg::{SyncEntry, SyncMessage};
use crate::Error;
use futures::FutureExt;
use libp2p::request_response::{self, Message as RrMessage};
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, identify, kad, mdns, ping, PeerId};
use std::time::Duration;
use tokio::sync::{mpsc::error::TrySendError, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Most entries accepted in one state exchange.
const MAX_SYNC_ENTRIES: usize = 10_000;
/// Minimum spacing of heartbeats triggered by new subscribers.
const EAGER_HEARTBEAT_SPACING: Duration = Duration::from_millis(100);

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
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, num_established, endpoint, .. } => {
                debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                if let Some(reply) = self.pending_connects.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                if num_established.get() == 1 {
                    let msg = self.sync_message();
                    self.swarm.behaviour_mut().members.send_request(&peer_id, msg);
                }
                if endpoint.is_dialer() {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, endpoint.get_remote_address().clone());
                }
                if !self.bootstrapped {
                    self.bootstrapped = true;
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
                self.dirty = true;
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. } => {
                debug!(peer = %peer_id, ?cause, "disconnected");
                self.dirty = true;
            }
            SwarmEvent::OutgoingConnectionError { peer_id, connection_id, error } => {
                debug!(peer = ?peer_id, "outgoing connection failed: {error}");
                if let Some(reply) = self.pending_connects.remove(&connection_id) {
                    let target = peer_id.map_or_else(|| "the address".to_string(), |p| p.to_string());
                    let _ = reply.send(Err(Error::Dial { target, reason: error.to_string() }));
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
            BehaviourEvent::Rpc(ev) => self.on_rpc(ev),
            BehaviourEvent::Stream(()) => {}
        }
    }

    fn on_gossip(&mut self, ev: gossipsub::Event) {
        match ev {
            gossipsub::Event::Message { propagation_source, message_id, message } => {
                let verdict = self.accept_gossip(&message);
                let acceptance = match verdict {
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
                let _ = gs.report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            // Tell a newcomer about us now rather than at the next beat.
            gossipsub::Event::Subscribed { topic, .. }
                if topic == self.topic.hash() && self.last_heartbeat.elapsed() >= EAGER_HEARTBEAT_SPACING =>
            {
                self.publish_alive();
            }
            _ => {}
        }
    }

    fn accept_gossip(&self, message: &gossipsub::Message) -> Result<Message, String> {
        if message.topic != self.topic.hash() {
            return Err(format!("unexpected topic {}", message.topic));
        }
        let msg = Message::decode(&message.data).map_err(|e| e.to_string())?;
        if message.source != Some(msg.author()) {
            return Err(format!("message signed by {:?} claims to be from {}", message.source, msg.author()));
        }
        Ok(msg)
    }

    /// Our view of up members, ourselves included, for a state exchange.
    pub(crate) fn sync_message(&self) -> SyncMessage {
        let now = Instant::now();
        let mut entries: Vec<SyncEntry> = self
            .table
            .up_entries(now)
            .into_iter()
            .map(|(alive, age)| SyncEntry { alive, age_ms: age.as_millis() as u64 })
            .collect();
        entries.push(SyncEntry { alive: self.local.alive_info(&self.cfg.external_addrs), age_ms: 0 });
        SyncMessage { entries }
    }

    fn merge_sync(&mut self, from: PeerId, msg: SyncMessage) {
        if msg.entries.len() > MAX_SYNC_ENTRIES {
            warn!(peer = %from, entries = msg.entries.len(), "membership state exchange too large, ignored");
            return;
        }
        let now = Instant::now();
        let too_old = self.table.timing().silence_timeout;
        for e in msg.entries {
            let age = Duration::from_millis(e.age_ms);
            if age >= too_old || e.alive.coord.as_ref().is_some_and(|c| !c.is_valid()) {
                continue;
            }
            let heard = now.checked_sub(age).unwrap_or(now);
            let changes = self.table.apply(Message::Alive(e.alive), heard);
            self.apply_changes(changes);
        }
    }

    fn on_members(&mut self, ev: request_response::Event<crate::sync_msg::SyncMessage, crate::sync_msg::SyncMessage>) {
        match ev {
            request_response::Event::Message { peer, message: RrMessage::Request { request, channel, .. }, .. } => {
                self.merge_sync(peer, request);
                let reply = self.sync_message();
                let _ = self.swarm.behaviour_mut().members.send_response(channel, reply);
            }
            request_response::Event::Message { peer, message: RrMessage::Response { response, .. }, .. } => {
                self.merge_sync(peer, response)
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                debug!(%peer, "membership state exchange failed: {error}")
            }
            _ => {}
        }
    }

    fn on_rpc(&mut self, ev: request_response::Event<crate::rpc::RpcRequest, RpcResponse>) {
        match ev {
            request_response::Event::Message { peer, message: RrMessage::Request { request, channel, .. }, .. } => {
                let Some(inbox) = self.routes.get(&request.service) else {
                    let _ = self.swarm.behaviour_mut().rpc.send_response(channel, RpcResponse::NoSuchService(request.service));
                    return;
                };
                let (reply, rx) = oneshot::channel();
                match inbox.try_send(InboundRequest { peer, body: request.body, reply }) {
                    Ok(()) => self.pending_replies.push(async move { (channel, rx.await.ok()) }.boxed()),
                    Err(TrySendError::Full(_)) => {
                        let _ = self.swarm.behaviour_mut().rpc.send_response(channel, RpcResponse::Busy);
                    }
                    Err(TrySendError::Closed(_)) => {
                        let resp = RpcResponse::NoSuchService(request.service);
                        let _ = self.swarm.behaviour_mut().rpc.send_response(channel, resp);
                    }
                }
            }
            request_response::Event::Message { message: RrMessage::Response { request_id, response }, .. } => {
                let Some(p) = self.pending_rpc.remove(&request_id) else { return };
                let result = match response {
                    RpcResponse::Ok(body) => {
                        self.on_rtt(p.peer, p.sent.elapsed());
                        Ok(body)
                    }
                    RpcResponse::NoSuchService(s) => Err(format!("peer does not run service {s:?}")),
                    RpcResponse::Busy => Err("peer is busy".to_string()),
                    RpcResponse::Dropped => Err("peer dropped the request".to_string()),
                };
                let _ = p.reply.send(result.map_err(|reason| Error::Request { peer: p.peer, reason }));
            }
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                let Some(p) = self.pending_rpc.remove(&request_id) else { return };
                self.history.entry(p.peer).or_default().record_failure(crate::unix_ms());
                let _ = p.reply.send(Err(Error::Request { peer: p.peer, reason: error.to_string() }));
            }
            _ => {}
        }
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
            (kad::QueryResult::GetProviders(res), Some(KadPending::Providers(mut found, reply))) => {
                if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = res {
                    found.extend(providers);
                }
                if step.last {
                    let _ = reply.send(Ok(found));
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
