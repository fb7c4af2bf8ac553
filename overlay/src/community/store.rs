//! A node's community files, in a directory of its home:
//!
//! - `community.json`: the community's id and name;
//! - `cert.json`: this node's certificate chain (replaced on renewal);
//! - `invites.json`: the invites this node made (admins);
//! - `revoked.json`: the evictions this node knows of;
//! - `community.key`: the community's secret key (only on the founder's
//!   node, mode 0600);
//! - `open.json`: the name of an open community, when one was chosen
//!   explicitly (`community create --open`).
//!
//! Every file is written to a temporary file and renamed into place.

use super::cert::Chain;
use super::invites::Book;
use super::revoke::Revocation;
use libp2p::identity::Keypair;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The community's secret key, mode 0600, on the founder's node only.
const KEY_FILE: &str = "community.key";

/// What `community.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Info {
    /// The community id.
    pub id: PeerId,
    /// Its name.
    pub name: String,
}

/// What `open.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpenInfo {
    /// The open community's name.
    pub name: String,
}

/// Why a community file cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Disk trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what this program writes.
    #[error("{path} is damaged: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The community directory of a home.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The files in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether this node belongs to a private community.
    pub fn exists(&self) -> bool {
        self.path("community.json").exists()
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<Option<T>, StoreError> {
        let path = self.path(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Damaged { path, reason: e.to_string() })
    }

    fn write(&self, name: &str, bytes: &[u8], private: bool) -> Result<(), StoreError> {
        let path = self.path(name);
        let io = |source| StoreError::Io { path: path.clone(), source };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        crate::fsutil::write_whole(&path, bytes, private.then_some(0o600)).map_err(io)
    }

    fn write_json<T: Serialize>(&self, name: &str, v: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(v).expect("community files serialise");
        self.write(name, &bytes, false)
    }

    /// `community.json`.
    pub fn info(&self) -> Result<Option<Info>, StoreError> {
        self.read_json("community.json")
    }

    /// Writes `community.json`.
    pub fn set_info(&self, info: &Info) -> Result<(), StoreError> {
        self.write_json("community.json", info)
    }

    /// `open.json`: the open community chosen explicitly, if any.
    pub fn open_info(&self) -> Result<Option<OpenInfo>, StoreError> {
        self.read_json("open.json")
    }

    /// Writes `open.json`.
    pub fn set_open_info(&self, info: &OpenInfo) -> Result<(), StoreError> {
        self.write_json("open.json", info)
    }

    /// Removes `open.json` (the community was made private).
    pub fn clear_open_info(&self) -> Result<(), StoreError> {
        let path = self.path("open.json");
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// This node's chain (empty until it was admitted).
    pub fn chain(&self) -> Result<Chain, StoreError> {
        Ok(self.read_json("cert.json")?.unwrap_or_default())
    }

    /// Replaces this node's chain.
    pub fn set_chain(&self, chain: &Chain) -> Result<(), StoreError> {
        self.write_json("cert.json", chain)
    }

    /// The invites this node made.
    pub fn book(&self) -> Result<Book, StoreError> {
        Ok(self.read_json("invites.json")?.unwrap_or_default())
    }

    /// Saves the invites.
    pub fn set_book(&self, book: &Book) -> Result<(), StoreError> {
        self.write_json("invites.json", book)
    }

    /// The revocations this node keeps.
    pub fn revoked(&self) -> Result<Vec<Revocation>, StoreError> {
        Ok(self.read_json("revoked.json")?.unwrap_or_default())
    }

    /// Saves the revocations.
    pub fn set_revoked(&self, list: &[Revocation]) -> Result<(), StoreError> {
        self.write_json("revoked.json", &list)
    }

    /// Where the community's secret key is kept (on the founder's node).
    pub fn key_path(&self) -> PathBuf {
        self.path(KEY_FILE)
    }

    /// The community's secret key, on the founder's node.
    pub fn community_key(&self) -> Result<Option<Keypair>, StoreError> {
        let path = self.key_path();
        match std::fs::read(&path) {
            Ok(b) => Keypair::from_protobuf_encoding(&b)
                .map(Some)
                .map_err(|e| StoreError::Damaged { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Saves the community's secret key (mode 0600).
    pub fn set_community_key(&self, key: &Keypair) -> Result<(), StoreError> {
        let bytes = key.to_protobuf_encoding().expect("ed25519 keys encode");
        self.write(KEY_FILE, &bytes, true)
    }
}
