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
/// - heartbeat every 1 s, suspect after 2.5 s, failed after 4 s of silence,
///   failed and left members listed for 24 h;
/// - keep connections to at least 8 members, close idle connections after
///   300 s, ping every 5 s;
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
    /// Period of membership heartbeats.
    pub heartbeat_interval: Duration,
    /// Failure-detector timing.
    pub timing: Timing,
    /// Dial members until this many are connected.
    pub target_peers: usize,
    /// Close connections idle for this long.
    pub idle_timeout: Duration,
    /// Period of libp2p pings (RTT samples).
    pub ping_interval: Duration,
    /// Where availability history is kept; `None` keeps it in memory.
    pub history_path: Option<PathBuf>,
    /// Period of availability-history saves.
    pub history_save_interval: Duration,
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
            heartbeat_interval: Duration::from_secs(1),
            timing: Timing {
                suspect_after: Duration::from_millis(2500),
                fail_after: Duration::from_secs(4),
                reap_after: Duration::from_secs(24 * 3600),
            },
            target_peers: 8,
            idle_timeout: Duration::from_secs(300),
            ping_interval: Duration::from_secs(5),
            history_path: None,
            history_save_interval: Duration::from_secs(30),
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
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat_interval must be above zero");
        }
        if t.suspect_after < self.heartbeat_interval * 2 {
            return bad("suspect_after must be at least twice heartbeat_interval");
        }
        if t.fail_after <= t.suspect_after {
            return bad("fail_after must be longer than suspect_after");
        }
        if self.ping_interval.is_zero() || self.idle_timeout.is_zero() {
            return bad("ping_interval and idle_timeout must be above zero");
        }
        Ok(())
    }
}
