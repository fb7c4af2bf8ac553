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
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
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
        self.config_path().exists() && self.identity_path().exists() && self.token_path().exists()
    }

    fn require_initialised(&self) -> Result<(), NodeError> {
        if self.is_initialised() {
            Ok(())
        } else {
            Err(NodeError::NotInitialised { home: self.root.clone() })
        }
    }

    /// Creates the home: identity, API token and a commented config file.
    pub fn init(&self, opts: &InitOptions) -> Result<(), NodeError> {
        if self.is_initialised() {
            return Err(NodeError::AlreadyInitialised { home: self.root.clone() });
        }
        fs::create_dir_all(self.root.join("data")).map_err(|e| NodeError::io(&self.root, e))?;
        let key = Keypair::generate_ed25519();
        let encoded = key.to_protobuf_encoding().map_err(|e| NodeError::Identity {
            path: self.identity_path(),
            reason: e.to_string(),
        })?;
        write_private(&self.identity_path(), &encoded)?;
        let token: [u8; 32] = rand::random();
        write_private(&self.token_path(), hex::encode(token).as_bytes())?;
        self.convergence_secret()?;
        let text = render_config(opts);
        // Make sure what we write parses, so a bad --bootstrap fails here.
        NodeConfig::parse(&text, &self.config_path())?;
        fs::write(self.config_path(), text).map_err(|e| NodeError::io(&self.config_path(), e))?;
        Ok(())
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

    /// The data directory named in the config (relative paths are under home).
    pub fn data_dir(&self, cfg: &NodeConfig) -> PathBuf {
        self.root.join(&cfg.data_dir)
    }
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| NodeError::io(path, e))?;
    f.write_all(bytes).map_err(|e| NodeError::io(path, e))
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
