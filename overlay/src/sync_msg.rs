//! Membership anti-entropy ([`crate::protocols::MEMBERS_SYNC`]): the
//! messages of the exchange described in [`crate::membership::sync`].
//!
//! The dialer of every new connection starts one exchange, and every
//! `sync_interval` each node starts one with a random connected member.
//! A newcomer learns the whole community in its first exchange (two round
//! trips); members that agree spend a 32-byte hash and an `Equal`.

use crate::membership::sync::{DigestEntry, SyncEntry};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

/// Most entries accepted in one message: a whole digest of a community
/// of Guifi.net's size (33,800 nodes) fits.
pub const MAX_ENTRIES: usize = 50_000;

/// A request of the exchange.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Step 1: the summary of the sender's table.
    Hello {
        /// [`crate::membership::MemberTable::summary`].
        #[serde(with = "serde_bytes")]
        hash: Vec<u8>,
    },
    /// Step 2b, between large tables: the digest of these buckets only
    /// (those whose sums differ).
    Digest {
        /// [`crate::membership::sync::bucket`]s.
        #[serde(with = "serde_bytes")]
        buckets: Vec<u8>,
    },
    /// Step 3: what the sender knows better, and what it asks for.
    Exchange {
        /// Entries newer than the other side's.
        push: Vec<SyncEntry>,
        /// Members the other side knows better.
        want: Vec<PeerId>,
    },
}

/// A response of the exchange.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncResponse {
    /// Both tables agree.
    Equal,
    /// Step 2: the responder's digest.
    Digest(Vec<DigestEntry>),
    /// Step 2, from a large table: the sum of each bucket's entries
    /// ([`crate::membership::MemberTable::bucket_sums`]).
    Buckets(Vec<u64>),
    /// Step 2b: the digest of the buckets asked for.
    Part {
        /// The buckets it covers.
        #[serde(with = "serde_bytes")]
        buckets: Vec<u8>,
        /// Their up members and the responder, if in one of them.
        digest: Vec<DigestEntry>,
    },
    /// Step 4: the entries asked for.
    Entries(Vec<SyncEntry>),
}

impl SyncRequest {
    /// How many entries it carries (to bound what we accept).
    pub fn len(&self) -> usize {
        match self {
            SyncRequest::Hello { .. } => 0,
            SyncRequest::Digest { buckets } => buckets.len(),
            SyncRequest::Exchange { push, want } => push.len() + want.len(),
        }
    }

    /// Whether it carries no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SyncResponse {
    /// How many entries it carries (to bound what we accept).
    pub fn len(&self) -> usize {
        match self {
            SyncResponse::Equal => 0,
            SyncResponse::Digest(d) => d.len(),
            SyncResponse::Buckets(b) => b.len(),
            SyncResponse::Part { digest, .. } => digest.len(),
            SyncResponse::Entries(e) => e.len(),
        }
    }

    /// Whether it carries no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
