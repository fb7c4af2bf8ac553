//! Join-time membership state exchange ([`crate::protocols::MEMBERS_SYNC`]).
//!
//! When two nodes connect, each sends the other the heartbeats of every
//! member it believes up (its own included), with their age; the answer
//! carries the same from the other side. A newcomer thus knows the whole
//! community after one round trip instead of waiting for every heartbeat.

use crate::membership::wire::Alive;
use serde::{Deserialize, Serialize};

/// One member's latest heartbeat and how long ago the sender heard it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncEntry {
    /// The heartbeat, as received (or our own).
    pub alive: Alive,
    /// Milliseconds since the sender heard it.
    pub age_ms: u64,
}

/// Request and response of the exchange.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SyncMessage {
    /// The sender's view of up members.
    pub entries: Vec<SyncEntry>,
}
