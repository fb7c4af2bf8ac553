//! The composed libp2p behaviour.

use crate::config::Config;
use crate::protocols;
use crate::sync_msg::{SyncRequest, SyncResponse};
use libp2p::swarm::{behaviour::toggle::Toggle, NetworkBehaviour};
use libp2p::{gossipsub, identify, identity::Keypair, kad, mdns, ping, request_response};
use std::time::Duration;

/// Gossipsub's heartbeat (mesh upkeep, gossip to non-mesh peers).
const GOSSIP_HEARTBEAT: Duration = Duration::from_secs(5);

/// A gossip message's id: 16 bytes of BLAKE3 over its author and sequence
/// number, which identify it as gossipsub's default id does (the author's
/// base58 peer id followed by the decimal sequence number, 71 bytes).
/// Every IHAVE, IWANT and duplicate-cache entry holds ids, and under churn
/// IHAVEs were about a third of the membership gossip (DESIGN/simulation.md).
/// Messages are signed (strict mode), so both fields are always there; the
/// data stands in for them otherwise.
pub(crate) fn message_id(m: &gossipsub::Message) -> gossipsub::MessageId {
    let mut h = blake3::Hasher::new();
    match (m.source, m.sequence_number) {
        (Some(source), Some(seq)) => {
            h.update(&source.to_bytes());
            h.update(&seq.to_be_bytes());
        }
        _ => {
            h.update(b"unsigned");
            h.update(m.topic.as_str().as_bytes());
            h.update(&m.data);
        }
    }
    gossipsub::MessageId::new(&h.finalize().as_bytes()[..16])
}

/// Every protocol the node speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// First, so that its QUIC-first addresses lead every dial.
    pub(crate) addresses: crate::addresses::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: crate::quiet_kad::Behaviour,
    pub(crate) gossipsub: crate::quiet_gossip::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) members: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    pub(crate) stream: libp2p_stream::Behaviour,
    /// Wakes every connection once per idle timeout, so that the Swarm
    /// sees it idle soon after its last stream was dropped (`idle_check.rs`).
    pub(crate) idle_check: crate::idle_check::Behaviour,
}

impl Behaviour {
    pub(crate) fn new(key: &Keypair, cfg: &Config) -> Result<Self, BuildError> {
        let peer = key.public().to_peer_id();
        let identify = identify::Behaviour::new(
            identify::Config::new(protocols::IDENTIFY_VERSION.to_string(), key.public())
                .with_agent_version(format!("cloudy-p2p/{}", env!("CARGO_PKG_VERSION")))
                // Identify runs on every new connection; again on a long-lived
                // one every 30 minutes, not 5 (members' addresses come from
                // the member table, and were half the idle stream bytes of
                // a 100-node community after its gossip stopped).
                .with_interval(Duration::from_secs(1800)),
        );
        let ping = ping::Behaviour::new(ping::Config::new().with_interval(cfg.ping_interval));
        let mut kad_cfg = kad::Config::new(protocols::KAD);
        kad_cfg.set_query_timeout(Duration::from_secs(30));
        // Members' addresses reach the routing table from the member table
        // (`learn_addresses`), so bootstrap random walks, each dialing a
        // score of members, would only add connections: at N = 100 every
        // newcomer's first walk opened about 20 QUIC connections.
        kad_cfg.set_periodic_bootstrap_interval(None);
        let mut kad =
            kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), kad_cfg);
        kad.set_mode(Some(kad::Mode::Server));
        let gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Strict)
                .validate_messages()
                .max_transmit_size(crate::membership::wire::MAX_MESSAGE_BYTES)
                // Every member's heartbeat reaches every member, so each
                // mesh link carries it once or twice: the traffic grows
                // with the mesh degree. Over reliable QUIC streams a
                // degree of 4 (default 6, up to 12) and gossip to 3 peers
                // (default 6, or a quarter of all) lose nothing, and the
                // full-state heartbeats repair the rest every 30 s. The
                // author sends to its mesh, not to every subscriber.
                // (Measured, DESIGN/streaming.md: 13.7 → 7.1 MB of gossip
                // in a 30 s stream to 30 viewers.)
                .mesh_n(4)
                .mesh_n_low(3)
                .mesh_n_high(6)
                .mesh_outbound_min(2)
                .gossip_lazy(3)
                .gossip_factor(0.0)
                .flood_publish(false)
                .message_id_fn(message_id)
                // Membership crosses the broadcast tree; gossipsub carries
                // only foreign peers' messages and evictions, and its mesh
                // forms on subscription. A heartbeat every second (the
                // default) woke every idle node once more a second, on a
                // timer thread of its own.
                .heartbeat_interval(GOSSIP_HEARTBEAT)
                .build()?,
        )
        .map_err(BuildError::Gossip)?;
        let mdns = match cfg.mdns {
            true => Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer)
                    .map_err(BuildError::Mdns)?,
            ),
            false => None,
        };
        let rr_cfg =
            request_response::Config::default().with_request_timeout(Duration::from_secs(30));
        Ok(Behaviour {
            addresses: Default::default(),
            identify,
            ping,
            kad: crate::quiet_kad::Behaviour(kad),
            gossipsub: crate::quiet_gossip::Behaviour(gossipsub),
            mdns: mdns.into(),
            members: request_response::cbor::Behaviour::new(
                [(protocols::MEMBERS_SYNC, request_response::ProtocolSupport::Full)],
                rr_cfg,
            ),
            stream: libp2p_stream::Behaviour::new(),
            idle_check: crate::idle_check::Behaviour::new(cfg.idle_timeout),
        })
    }
}

/// Why the behaviour could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    /// The gossipsub settings are inconsistent.
    #[error("gossipsub settings: {0}")]
    GossipConfig(#[from] gossipsub::ConfigBuilderError),
    /// Gossipsub refused the settings.
    #[error("gossipsub: {0}")]
    Gossip(&'static str),
    /// mDNS could not start (no socket for it).
    #[error("mDNS: {0}")]
    Mdns(std::io::Error),
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;

    fn msg(source: Option<PeerId>, seq: Option<u64>, data: &[u8]) -> gossipsub::Message {
        gossipsub::Message {
            source,
            data: data.to_vec(),
            sequence_number: seq,
            topic: gossipsub::TopicHash::from_raw(protocols::MEMBERSHIP_TOPIC),
        }
    }

    #[test]
    fn a_message_id_is_16_bytes_naming_author_and_sequence_number() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let id = message_id(&msg(Some(a), Some(7), b"x"));
        assert_eq!(id.0.len(), 16);
        // The same author and number: the same message, whatever the data.
        assert_eq!(id, message_id(&msg(Some(a), Some(7), b"y")));
        assert_ne!(id, message_id(&msg(Some(a), Some(8), b"x")));
        assert_ne!(id, message_id(&msg(Some(b), Some(7), b"x")));
        // Without author and number, the data decides.
        let anon = message_id(&msg(None, None, b"x"));
        assert_eq!(anon, message_id(&msg(None, None, b"x")));
        assert_ne!(anon, message_id(&msg(None, None, b"y")));
    }
}
