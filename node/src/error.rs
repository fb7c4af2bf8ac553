//! Node errors: each names what was wrong and where.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Errors starting or managing a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// `init` has not run for this home.
    #[error("{} is not an initialised cloudy-p2p home; run `cloudy-p2p init` first (or pass --home / set CLOUDY_HOME)", home.display())]
    NotInitialised {
        /// The home.
        home: PathBuf,
    },
    /// Some of the files `init` writes are missing.
    #[error("{} lacks {missing}; run `cloudy-p2p --home {} init` to recreate what is missing (what is there is kept)", home.display(), home.display())]
    Incomplete {
        /// The home.
        home: PathBuf,
        /// The missing files, comma-separated.
        missing: String,
    },
    /// An option given on the command line is wrong.
    #[error("{option} {value:?}: {reason}")]
    BadOption {
        /// The option, as typed (`--api`).
        option: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `init` already ran here.
    #[error("{} is already initialised; remove it first to start over", home.display())]
    AlreadyInitialised {
        /// The home.
        home: PathBuf,
    },
    /// The config file does not parse or holds a bad value.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line when known.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The identity file is corrupt.
    #[error("{}: not a valid identity key: {reason}", path.display())]
    Identity {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The control API could not be served.
    #[error("cannot serve the control API on {addr}: {}", describe_bind(source))]
    ApiBind {
        /// The address from the config.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// The community files could not be read or written.
    #[error("community: {0}")]
    Community(#[from] cloudy_overlay::community::store::StoreError),
    /// Joining a private community failed.
    #[error("join: {0}")]
    Join(#[from] Box<cloudy_overlay::community::join::JoinError>),
    /// A community command that does not apply here.
    #[error("{0}")]
    CommunityState(String),
    /// The share store could not be opened.
    #[error("storage: {0}")]
    Store(#[from] cloudy_storage::store::StoreError),
    /// The storage server could not start.
    #[error("storage: {0}")]
    StorageService(#[from] cloudy_storage::service::ServiceError),
    /// The list of maintained files could not be opened.
    #[error("storage: {0}")]
    Maintained(#[from] cloudy_storage::upkeep::ListError),
    /// Folder sync could not start.
    #[error("sync: {0}")]
    Sync(#[from] cloudy_sync::service::SyncError),
    /// Live streaming could not start.
    #[error("streaming: {0}")]
    Streaming(#[from] cloudy_streaming::service::StreamError),
    /// Video on demand could not start.
    #[error("video: {0}")]
    Vod(#[from] cloudy_streaming::vod::service::VodError),
    /// The overlay failed.
    #[error(transparent)]
    Overlay(#[from] cloudy_overlay::Error),
}

impl NodeError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        NodeError::Io { path: path.to_path_buf(), source }
    }
}

fn describe_bind(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "address already in use (is another node running? set `api` in config.toml)".into()
        }
        _ => e.to_string(),
    }
}
