//! The node's home directory and the files in it.
//!
//! ```text
//! <home>/config.toml     configuration (see crate::config)
//! <home>/identity.key    ed25519 keypair, libp2p protobuf encoding, mode 0600
//! <home>/api.token       token for the local control API, mode 0600
//! <home>/api.addr        address the running node's API is bound to (removed on exit)
//! <home>/announcements.json  services announced through the API (restored at start)
//! <home>/data/           data directory (availability history, service data)
//! ```

use crate::config::{NodeConfig, CONFIG_TEMPLATE};
use crate::error::NodeError;
use cloudy_overlay::Keypair;
use std::fs;
use std::path::{Path, PathBuf};

/// Name of the environment variable that overrides the home directory.
pub const HOME_ENV: &str = "CLOUDY_HOME";

/// A node's home directory.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

/// Options of `cloudy-p2p init`.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Port for QUIC and TCP (0: chosen by the OS at each start).
    pub port: Option<u16>,
    /// Control API address.
    pub api: Option<String>,
    /// Bootstrap peers.
    pub bootstrap: Vec<String>,
    /// Zone label.
    pub zone: Option<String>,
    /// Turn mDNS off.
    pub no_mdns: bool,
    /// Listen on 127.0.0.1 only.
    pub loopback: bool,
}

impl InitOptions {
    /// Checks every option, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), NodeError> {
        let bad = |option: &'static str, value: &str, reason: String| NodeError::BadOption {
            option,
            value: value.to_string(),
            reason,
        };
        if let Some(api) = &self.api {
            api.parse::<std::net::SocketAddr>().map_err(|_| {
                bad("--api", api, "not an IP:PORT address (for example 127.0.0.1:7390)".into())
            })?;
        }
        for b in &self.bootstrap {
            b.parse::<cloudy_overlay::Multiaddr>().map_err(|e| {
                bad(
                    "--bootstrap",
                    b,
                    format!("not a multiaddr ({e}); for example /ip4/10.1.2.3/udp/7391/quic-v1"),
                )
            })?;
        }
        if let Some(zone) = &self.zone {
            if zone.chars().any(char::is_control) {
                return Err(bad("--zone", zone, "holds a control character".into()));
            }
        }
        Ok(())
    }
}

impl Home {
    /// The home at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Home { root: root.into() }
    }

    /// `explicit` (from `--home` or `CLOUDY_HOME`), else `$XDG_DATA_HOME/cloudy-p2p`.
    pub fn resolve(explicit: Option<PathBuf>) -> Self {
        let root = explicit.unwrap_or_else(|| {
            dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("cloudy-p2p")
        });
        Home { root }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// `identity.key`.
    pub fn identity_path(&self) -> PathBuf {
        self.root.join("identity.key")
    }
    /// `api.token`.
    pub fn token_path(&self) -> PathBuf {
        self.root.join("api.token")
    }
    /// `api.addr`.
    pub fn api_addr_path(&self) -> PathBuf {
        self.root.join("api.addr")
    }
    /// `convergence.secret`: keys convergent encryption (mode 0600).
    pub fn convergence_path(&self) -> PathBuf {
        self.root.join("convergence.secret")
    }

    /// The convergence secret, created on first use.
    pub fn convergence_secret(&self) -> Result<[u8; 32], NodeError> {
        let path = self.convergence_path();
        match fs::read(&path) {
            Ok(b) => b
                .try_into()
                .map_err(|_| NodeError::Identity { path, reason: "not 32 bytes".into() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret: [u8; 32] = rand::random();
                write_private(&path, &secret)?;
                Ok(secret)
            }
            Err(e) => Err(NodeError::io(&path, e)),
        }
    }

    /// `announcements.json`.
    pub fn announcements_path(&self) -> PathBuf {
        self.root.join("announcements.json")
    }

    /// Whether `init` has run here.
    pub fn is_initialised(&self) -> bool {
        self.missing().is_empty()
    }

    /// The files `init` writes that are not here.
    fn missing(&self) -> Vec<&'static str> {
        [
            ("config.toml", self.config_path()),
            ("identity.key", self.identity_path()),
            ("api.token", self.token_path()),
        ]
        .into_iter()
        .filter(|(_, p)| !p.exists())
        .map(|(name, _)| name)
        .collect()
    }

    fn require_initialised(&self) -> Result<(), NodeError> {
        let missing = self.missing();
        if missing.is_empty() {
            Ok(())
        } else if missing.len() == 3 {
            Err(NodeError::NotInitialised { home: self.root.clone() })
        } else {
            Err(NodeError::Incomplete { home: self.root.clone(), missing: missing.join(", ") })
        }
    }

    /// Creates the home: identity, API token and a commented config file.
    /// Every option is checked before anything is written, and each file is
    /// written whole or not at all. A home that lacks some of its files (an
    /// earlier `init` stopped midway, or a file was deleted) is completed:
    /// what is there is kept. Returns the files written.
    pub fn init(&self, opts: &InitOptions) -> Result<Vec<&'static str>, NodeError> {
        opts.validate()?;
        let text = render_config(opts);
        NodeConfig::parse(&text, &self.config_path())?;
        let missing = self.missing();
        if missing.is_empty() {
            return Err(NodeError::AlreadyInitialised { home: self.root.clone() });
        }
        fs::create_dir_all(self.root.join("data")).map_err(|e| NodeError::io(&self.root, e))?;
        if missing.contains(&"identity.key") {
            let key = Keypair::generate_ed25519();
            let encoded = key.to_protobuf_encoding().map_err(|e| NodeError::Identity {
                path: self.identity_path(),
                reason: e.to_string(),
            })?;
            write_private(&self.identity_path(), &encoded)?;
        } else {
            self.read_identity()?;
        }
        if missing.contains(&"api.token") {
            let token: [u8; 32] = rand::random();
            write_private(&self.token_path(), hex::encode(token).as_bytes())?;
        }
        self.convergence_secret()?;
        if missing.contains(&"config.toml") {
            write_whole(&self.config_path(), text.as_bytes(), 0o644)?;
        }
        Ok(missing)
    }

    /// Adds `addrs` to `bootstrap` in `config.toml`, keeping its comments;
    /// returns how many were new. The result must still parse.
    pub fn add_bootstrap(&self, addrs: &[String]) -> Result<usize, NodeError> {
        self.require_initialised()?;
        let path = self.config_path();
        let text = fs::read_to_string(&path).map_err(|e| NodeError::io(&path, e))?;
        let config_error = |message: String| NodeError::Config { path: path.clone(), message };
        let mut doc: toml_edit::DocumentMut =
            text.parse().map_err(|e: toml_edit::TomlError| config_error(e.to_string()))?;
        let list = doc
            .entry("bootstrap")
            .or_insert(toml_edit::value(toml_edit::Array::new()))
            .as_array_mut()
            .ok_or_else(|| config_error("`bootstrap` is not a list".into()))?;
        let mut added = 0;
        for a in addrs {
            if !list.iter().any(|v| v.as_str() == Some(a)) {
                list.push(a.as_str());
                added += 1;
            }
        }
        let text = doc.to_string();
        NodeConfig::parse(&text, &path)?;
        fs::write(&path, text).map_err(|e| NodeError::io(&path, e))?;
        Ok(added)
    }

    /// Reads and checks the configuration.
    pub fn load_config(&self) -> Result<NodeConfig, NodeError> {
        self.require_initialised()?;
        let path = self.config_path();
        let text = fs::read_to_string(&path).map_err(|e| NodeError::io(&path, e))?;
        NodeConfig::parse(&text, &path)
    }

    /// Reads the node's keypair.
    pub fn load_identity(&self) -> Result<Keypair, NodeError> {
        self.require_initialised()?;
        self.read_identity()
    }

    fn read_identity(&self) -> Result<Keypair, NodeError> {
        let path = self.identity_path();
        let bytes = fs::read(&path).map_err(|e| NodeError::io(&path, e))?;
        Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| NodeError::Identity { path, reason: e.to_string() })
    }

    /// Reads the API token.
    pub fn load_token(&self) -> Result<String, NodeError> {
        self.require_initialised()?;
        let path = self.token_path();
        let t = fs::read_to_string(&path).map_err(|e| NodeError::io(&path, e))?;
        Ok(t.trim().to_string())
    }

    /// Makes the home's secrets (identity key, API token, convergence
    /// secret, a community admin's key) readable by their owner only
    /// again where someone opened them up (a copy, a restore, a chmod);
    /// returns one line for each it had to close, for the log.
    pub fn tighten_secrets(&self) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt;
        let secrets = [
            self.identity_path(),
            self.token_path(),
            self.convergence_path(),
            self.community().key_path(),
        ];
        let mut said = Vec::new();
        for path in secrets {
            let Ok(meta) = fs::metadata(&path) else { continue };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 == 0 {
                continue;
            }
            let done = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
            said.push(match done {
                Ok(()) => format!(
                    "{} was readable by other users of this machine (mode {mode:o}); it is 600 now",
                    path.display()
                ),
                Err(e) => format!(
                    "{} is readable by other users of this machine (mode {mode:o}) and could not be made 600 ({e}): chmod 600 it",
                    path.display()
                ),
            });
        }
        said
    }

    /// The data directory named in the config (relative paths are under home).
    pub fn data_dir(&self, cfg: &NodeConfig) -> PathBuf {
        self.root.join(&cfg.data_dir)
    }
}

/// Writes a file readable by its owner only, whole or not at all.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    write_whole(path, bytes, 0o600)
}

/// Writes `path` through a temporary file renamed into place, so that a
/// failure leaves no half-written file behind.
fn write_whole(path: &Path, bytes: &[u8], mode: u32) -> Result<(), NodeError> {
    cloudy_overlay::fsutil::write_whole(path, bytes, Some(mode)).map_err(|e| NodeError::io(path, e))
}

fn render_config(opts: &InitOptions) -> String {
    let port = opts.port.unwrap_or(7391);
    let ip = if opts.loopback { "127.0.0.1" } else { "0.0.0.0" };
    let quote = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    CONFIG_TEMPLATE
        .replace(
            "@LISTEN@",
            &quote(&[format!("/ip4/{ip}/udp/{port}/quic-v1"), format!("/ip4/{ip}/tcp/{port}")]),
        )
        .replace("@BOOTSTRAP@", &quote(&opts.bootstrap))
        .replace("@MDNS@", if opts.no_mdns { "false" } else { "true" })
        .replace("@API@", opts.api.as_deref().unwrap_or("127.0.0.1:7390"))
        .replace("@ZONE@", &format!("{:?}", opts.zone.as_deref().unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn secrets_opened_to_other_users_are_closed_again() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        home.init(&InitOptions::default()).unwrap();
        assert!(home.tighten_secrets().is_empty(), "init writes them 600");
        // A restore from a backup, or a careless chmod.
        fs::set_permissions(home.identity_path(), fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(home.token_path(), fs::Permissions::from_mode(0o640)).unwrap();
        let said = home.tighten_secrets();
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(
            said[0].contains("identity.key was readable by other users") && said[0].contains("644")
        );
        assert!(said[1].contains("api.token") && said[1].contains("600 now"));
        assert_eq!((mode(&home.identity_path()), mode(&home.token_path())), (0o600, 0o600));
        assert!(home.tighten_secrets().is_empty());
        // config.toml is not a secret.
        assert_eq!(mode(&home.config_path()), 0o644);
    }
}
