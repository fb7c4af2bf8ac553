//! Protocol ids and gossip topics of the overlay.

use libp2p::StreamProtocol;

/// Kademlia, under our own id so that our DHT does not merge with IPFS's.
pub const KAD: StreamProtocol = StreamProtocol::new("/cloudy/kad/1.0.0");
/// Membership anti-entropy: incremental table exchange (request-response, CBOR).
pub const MEMBERS_SYNC: StreamProtocol = StreamProtocol::new("/cloudy/members/2.0.0");
/// Failure-detector probes: a long-lived stream of 8-byte nonces, echoed.
pub const PROBE: StreamProtocol = StreamProtocol::new("/cloudy/probe/1.0.0");
/// Membership broadcast: a long-lived stream per link of the broadcast
/// tree (`broadcast.rs`, `tree_links.rs`), length-prefixed frames.
pub const BROADCAST: StreamProtocol = StreamProtocol::new("/cloudy/broadcast/1.0.0");
/// Identify's protocol-version string.
pub const IDENTIFY_VERSION: &str = "/cloudy/1.0.0";
/// Gossipsub topic of a private community's evictions.
pub const COMMUNITY_TOPIC: &str = "/cloudy/community/1";
/// Gossipsub topic of membership heartbeats and service announcements.
pub const MEMBERSHIP_TOPIC: &str = "/cloudy/membership/1";
