//! Overlay errors.

use libp2p::{Multiaddr, PeerId};

/// Errors of the overlay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The event loop is gone (node shutting down).
    #[error("the overlay has shut down")]
    Closed,
    /// Inconsistent configuration.
    #[error("invalid overlay configuration: {0}")]
    Config(String),
    /// Could not listen on an address.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why (e.g. "address already in use").
        reason: String,
    },
    /// Building the transport failed.
    #[error("cannot set up the libp2p transport: {0}")]
    Transport(String),
    /// The availability history could not be read or written.
    #[error(transparent)]
    History(#[from] crate::scoring::history::HistoryError),
    /// Dialing failed.
    #[error("cannot dial {target}: {reason}")]
    Dial {
        /// Address or peer dialed.
        target: String,
        /// Why.
        reason: String,
    },
    /// A request to a peer failed.
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A DHT query failed.
    #[error("DHT query failed: {0}")]
    Dht(String),
}
