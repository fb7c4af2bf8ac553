//! Overlay configuration.

use crate::membership::Timing;
use libp2p::Multiaddr;
use std::path::PathBuf;
use std::time::Duration;

/// Overlay configuration.
///
/// Defaults (see [`Config::default`]):
/// - listen on QUIC v1 and TCP on all IPv4 addresses, port 7391;
/// - mDNS on; no bootstrap peers; empty zone label;
/// - every member probed every 1 s by 2 monitors, probe timeout 1 s, a
///   suspicion both monitors make fails a member after 2 s, one made by a
///   single monitor after 4 s (kill -9 is seen as failed by all within
///   probe interval + probe timeout + suspicion timeout ≈ 4 s, whatever N
///   is); failed and left members listed for 24 h. Two monitors rather
///   than three: probes are most of an idle node's packets, and a third
///   monitor cost about a third more CPU and wire bytes for no faster detection
///   (DESIGN/failure-detection.md);
/// - a member's state is gossiped when it changes; its coordinate again
///   when it moved, checked every 30 s; tables compared with one random
///   connected member every 10 s (anti-entropy);
/// - links to 3 random members besides the monitor ring, idle connections
///   closed after 10 s (a start's burst of connections then does not stay
///   in the heap; DESIGN/failure-detection.md), ping every connection
///   every 60 s (RTT samples; monitors also measure one with every probe);
/// - availability history saved every 30 s.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (with `/p2p/<peer id>` or without).
    pub bootstrap: Vec<Multiaddr>,
    /// Discover peers on the LAN with mDNS.
    pub mdns: bool,
    /// Zone label announced to others (e.g. a Guifi.net zone name).
    pub zone: String,
    /// Addresses to announce besides the listen addresses (public or NAT-mapped).
    pub external_addrs: Vec<Multiaddr>,
    /// How often we check whether our coordinate moved enough to gossip
    /// our state again (it is gossiped at once on every other change).
    pub heartbeat_interval: Duration,
    /// Period of anti-entropy: comparing tables with one random connected member.
    pub sync_interval: Duration,
    /// Period of failure-detector probes.
    pub probe_interval: Duration,
    /// A probe unanswered for this long fails.
    pub probe_timeout: Duration,
    /// How many members probe each member.
    pub monitors: usize,
    /// Failure-detector timing.
    pub timing: Timing,
    /// Random members to stay linked to, besides the monitor ring.
    pub target_peers: usize,
    /// Close connections idle for this long.
    pub idle_timeout: Duration,
    /// Period of libp2p pings (RTT samples).
    pub ping_interval: Duration,
    /// Where availability history is kept; `None` keeps it in memory.
    pub history_path: Option<PathBuf>,
    /// Period of availability-history saves.
    pub history_save_interval: Duration,
    /// The admission gate of a private community; `None` for an open one.
    pub community: Option<std::sync::Arc<crate::community::Gate>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![
                "/ip4/0.0.0.0/udp/7391/quic-v1".parse().expect("valid literal"),
                "/ip4/0.0.0.0/tcp/7391".parse().expect("valid literal"),
            ],
            bootstrap: Vec::new(),
            mdns: true,
            zone: String::new(),
            external_addrs: Vec::new(),
            heartbeat_interval: Duration::from_secs(30),
            sync_interval: Duration::from_secs(10),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(1),
            monitors: 2,
            timing: Timing {
                suspicion_timeout: Duration::from_secs(2),
                suspicion_max_factor: 2,
                expected_accusers: 2,
                reap_after: Duration::from_secs(24 * 3600),
            },
            target_peers: 3,
            idle_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(60),
            history_path: None,
            history_save_interval: Duration::from_secs(30),
            community: None,
        }
    }
}

impl Config {
    /// Settings for tests on one machine: QUIC on 127.0.0.1 port 0, no mDNS.
    pub fn for_test() -> Self {
        Config {
            listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("valid literal")],
            mdns: false,
            ..Config::default()
        }
    }

    /// Checks values that depend on each other.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let t = &self.timing;
        let bad = |what: &str| Err(crate::Error::Config(what.to_string()));
        let zero = [
            self.heartbeat_interval,
            self.sync_interval,
            self.probe_interval,
            self.probe_timeout,
            t.suspicion_timeout,
        ];
        if zero.iter().any(|d| d.is_zero()) {
            return bad("heartbeat_interval, sync_interval, probe_interval, probe_timeout and suspicion_timeout must be above zero");
        }
        if t.suspicion_max_factor == 0 {
            return bad("suspicion_max_factor must be at least 1");
        }
        if self.monitors == 0 {
            return bad("monitors must be at least 1");
        }
        if self.ping_interval.is_zero() || self.idle_timeout.is_zero() {
            return bad("ping_interval and idle_timeout must be above zero");
        }
        Ok(())
    }
}
