//! `config.toml`: the node's configuration, with documented defaults
//! (the commented template in `config.toml.in` is what `init` writes).

use crate::error::NodeError;
use cloudy_overlay::membership::Timing;
use cloudy_overlay::Multiaddr;
use serde::{de::Error as _, Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The commented configuration file `init` writes (placeholders `@…@`).
pub const CONFIG_TEMPLATE: &str = include_str!("config.toml.in");

/// The whole node configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NodeConfig {
    /// Listen addresses.
    #[serde(default = "default_listen", deserialize_with = "multiaddrs")]
    pub listen: Vec<Multiaddr>,
    /// Bootstrap peers.
    #[serde(default, deserialize_with = "multiaddrs")]
    pub bootstrap: Vec<Multiaddr>,
    /// Extra addresses to announce.
    #[serde(default, deserialize_with = "multiaddrs")]
    pub external_addrs: Vec<Multiaddr>,
    /// mDNS on or off.
    #[serde(default = "yes")]
    pub mdns: bool,
    /// Control API address.
    #[serde(default = "default_api")]
    pub api: SocketAddr,
    /// Zone label.
    #[serde(default)]
    pub zone: String,
    /// Data directory (relative to home unless absolute).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Failure-detector settings.
    #[serde(default)]
    pub membership: MembershipConfig,
    /// Connection settings.
    #[serde(default)]
    pub connections: ConnectionsConfig,
    /// Storage server settings.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Folder sync settings.
    #[serde(default)]
    pub sync: SyncSettings,
    /// Video on demand settings.
    #[serde(default)]
    pub vod: VodSettings,
}

/// `[vod]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VodSettings {
    /// Most MiB of videos watched here kept to serve others (published
    /// videos do not count).
    pub cache_mib: u64,
}

impl Default for VodSettings {
    fn default() -> Self {
        VodSettings { cache_mib: 1024 }
    }
}

/// `[sync]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSettings {
    /// Full rescan period of every folder.
    #[serde(with = "humantime_serde")]
    pub rescan_interval: Duration,
    /// Replaced and deleted files are kept in `.cloudy-versions/` this long
    /// (zero: for ever).
    #[serde(with = "humantime_serde")]
    pub keep_versions: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        let d = cloudy_sync::service::SyncConfig::default();
        SyncSettings { rescan_interval: d.rescan, keep_versions: d.keep_versions }
    }
}

/// `[storage]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Serve storage to the community.
    pub enabled: bool,
    /// Space offered for shares, MiB.
    pub capacity_mib: u64,
    /// Most kept for one member, MiB; `None`: a quarter of the capacity.
    pub member_quota_mib: Option<u64>,
    /// Maintain files uploaded through this node.
    pub maintain_uploads: bool,
    /// Period of the full check of maintained files.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// Wait after a server fails before checking its files.
    #[serde(with = "humantime_serde")]
    pub repair_delay: Duration,
    /// Missing shares tolerated before a repair.
    pub repair_tolerance: u8,
    /// Delete shares whose leases all ended.
    pub expire_leases: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let u = cloudy_storage::upkeep::UpkeepConfig::default();
        StorageConfig {
            enabled: true,
            capacity_mib: 10 * 1024,
            member_quota_mib: None,
            maintain_uploads: true,
            check_interval: u.interval,
            repair_delay: u.after_failure,
            repair_tolerance: u.tolerance,
            expire_leases: false,
        }
    }
}

impl StorageConfig {
    /// The per-member quota in bytes: as set, or a quarter of the capacity.
    pub fn member_quota(&self) -> u64 {
        self.member_quota_mib.unwrap_or(self.capacity_mib / 4) << 20
    }

    /// The upkeep part.
    pub fn upkeep(&self) -> cloudy_storage::upkeep::UpkeepConfig {
        cloudy_storage::upkeep::UpkeepConfig {
            interval: self.check_interval,
            after_failure: self.repair_delay,
            tolerance: self.repair_tolerance,
            ..Default::default()
        }
    }
}

/// `[membership]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MembershipConfig {
    /// How often to check whether our coordinate moved enough to gossip it.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Anti-entropy period: tables compared with one random member.
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// Probe period.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// Probe timeout.
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
    /// Members probing each member.
    pub monitors: usize,
    /// Time a suspect has to refute once all its monitors accuse it, in a
    /// community of 100 members or more; a smaller one waits less (log N,
    /// down to three quarters of it at 32 members and below).
    #[serde(with = "humantime_serde")]
    pub suspicion_timeout: Duration,
    /// How many times longer a suspicion made by one monitor alone lasts.
    pub suspicion_max_factor: u32,
    /// No longer used: members are not failed for silence since state is
    /// gossiped on change (DESIGN/failure-detection.md). Accepted so that
    /// homes made by earlier versions still start; `up` warns.
    #[serde(default, with = "humantime_serde")]
    pub silence_timeout: Option<Duration>,
    /// How long failed and left members stay listed.
    #[serde(with = "humantime_serde")]
    pub reap_after: Duration,
}

/// `[connections]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// Random members to stay linked to, besides the monitor ring.
    pub target_peers: usize,
    /// Idle connection timeout.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Ping period.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        let d = cloudy_overlay::Config::default();
        MembershipConfig {
            heartbeat_interval: d.heartbeat_interval,
            sync_interval: d.sync_interval,
            probe_interval: d.probe_interval,
            probe_timeout: d.probe_timeout,
            monitors: d.monitors,
            suspicion_timeout: d.timing.suspicion_timeout,
            suspicion_max_factor: d.timing.suspicion_max_factor,
            silence_timeout: None,
            reap_after: d.timing.reap_after,
        }
    }
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        let d = cloudy_overlay::Config::default();
        ConnectionsConfig {
            target_peers: d.target_peers,
            idle_timeout: d.idle_timeout,
            ping_interval: d.ping_interval,
        }
    }
}

fn default_listen() -> Vec<Multiaddr> {
    cloudy_overlay::Config::default().listen
}
fn yes() -> bool {
    true
}
fn default_api() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7390))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

fn multiaddrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Multiaddr>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|s| s.parse().map_err(|e| D::Error::custom(format!("invalid multiaddr {s:?}: {e}"))))
        .collect()
}

/// For "unknown field `k`" errors toml's span covers the whole table; find
/// the line where the key is set instead.
fn unknown_key_line(text: &str, msg: &str) -> Option<usize> {
    let key = msg.strip_prefix("unknown field `")?.split('`').next()?;
    text.lines()
        .position(|l| {
            l.trim_start().strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// Folds a multi-line parser message into one line.
fn one_line(msg: &str) -> String {
    msg.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

impl NodeConfig {
    /// Parses config text; errors name the file and the line.
    pub fn parse(text: &str, path: &Path) -> Result<NodeConfig, NodeError> {
        let cfg: NodeConfig = toml::from_str(text).map_err(|e| {
            let line = unknown_key_line(text, e.message()).or_else(|| {
                e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            });
            let where_ = line.map_or(String::new(), |l| format!("line {l}: "));
            NodeError::Config {
                path: path.to_path_buf(),
                message: format!("{where_}{}", one_line(e.message())),
            }
        })?;
        cfg.overlay(None)
            .validate()
            .map_err(|e| NodeError::Config { path: path.to_path_buf(), message: e.to_string() })?;
        if cfg.sync.rescan_interval < Duration::from_secs(1) {
            let message = "[sync] rescan_interval must be at least 1s".to_string();
            return Err(NodeError::Config { path: path.to_path_buf(), message });
        }
        if cfg.storage.check_interval < Duration::from_secs(1) {
            let message = "[storage] check_interval must be at least 1s".to_string();
            return Err(NodeError::Config { path: path.to_path_buf(), message });
        }
        Ok(cfg)
    }

    /// The overlay part, with availability history at `history_path`.
    pub fn overlay(&self, history_path: Option<PathBuf>) -> cloudy_overlay::Config {
        let mut c = cloudy_overlay::Config::default();
        c.listen = self.listen.clone();
        c.bootstrap = self.bootstrap.clone();
        c.external_addrs = self.external_addrs.clone();
        c.mdns = self.mdns;
        c.zone = self.zone.clone();
        let m = &self.membership;
        c.heartbeat_interval = m.heartbeat_interval;
        c.sync_interval = m.sync_interval;
        c.probe_interval = m.probe_interval;
        c.probe_timeout = m.probe_timeout;
        c.monitors = m.monitors;
        c.timing = Timing {
            suspicion_timeout: m.suspicion_timeout,
            suspicion_max_factor: m.suspicion_max_factor,
            expected_accusers: m.monitors,
            reap_after: m.reap_after,
        };
        c.target_peers = self.connections.target_peers;
        c.idle_timeout = self.connections.idle_timeout;
        c.ping_interval = self.connections.ping_interval;
        c.history_path = history_path;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeConfig, String> {
        NodeConfig::parse(text, Path::new("/h/config.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.api, default_api());
        assert!(c.mdns);
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.membership.suspicion_timeout, Duration::from_secs(2));
        assert_eq!(c.membership.probe_interval, Duration::from_secs(1));
    }

    #[test]
    fn template_parses() {
        let t = CONFIG_TEMPLATE
            .replace("@LISTEN@", "\"/ip4/0.0.0.0/udp/0/quic-v1\"")
            .replace("@BOOTSTRAP@", "")
            .replace("@MDNS@", "false")
            .replace("@API@", "127.0.0.1:0")
            .replace("@ZONE@", "\"z\"");
        let c = parse(&t).unwrap();
        assert_eq!(c.zone, "z");
        assert!(!c.mdns);
        assert_eq!(
            c.sync.keep_versions,
            Duration::from_secs(30 * 86_400),
            "the template states the default"
        );
        assert_eq!(
            c.vod.cache_mib,
            VodSettings::default().cache_mib,
            "the template states the default"
        );
    }

    #[test]
    fn malformed_multiaddr_names_file_line_and_value() {
        let err = parse("mdns = true\n\nbootstrap = [\"/ip4/1.2.3.4/udp/x\"]\n").unwrap_err();
        assert!(
            err.starts_with("/h/config.toml: line 3: invalid multiaddr \"/ip4/1.2.3.4/udp/x\""),
            "{err}"
        );
        assert!(!err.contains('\n'), "one line: {err}");
    }

    #[test]
    fn bad_toml_and_unknown_keys_name_the_line() {
        let err = parse("zone = \"a\"\nlisten = [oops\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let err = parse("zone = \"a\"\nlistn = []\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("unknown field `listn`"), "{err}");
        let err = parse("[membership]\nsuspicion_timeout = \"soon\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn inconsistent_timing_is_rejected() {
        let err = parse("[membership]\nsync_interval = \"0s\"\n").unwrap_err();
        assert!(err.contains("sync_interval"), "{err}");
    }

    #[test]
    fn a_home_made_by_an_earlier_version_still_parses() {
        // Earlier templates wrote silence_timeout; it is accepted (and `up` warns).
        let c = parse("[membership]\nheartbeat_interval = \"30s\"\nsilence_timeout = \"90s\"\n")
            .unwrap();
        assert_eq!(c.membership.silence_timeout, Some(Duration::from_secs(90)));
        assert!(parse("").unwrap().membership.silence_timeout.is_none());
    }
}
