//! Types of the local control API (HTTP + JSON), shared by server and client.
//!
//! Every request carries `Authorization: Bearer <api.token>`.
//!
//! | method and path | body / query | answer |
//! |---|---|---|
//! | `GET /v1/status` | | [`Status`] |
//! | `GET /v1/peers` | | `[PeerRow]`, best score first |
//! | `GET /v1/peers/{peer id}` | | [`PeerRow`]; 400 malformed id, 404 unknown |
//! | `GET /v1/services` | `?name=NAME` | `[ServiceRow]`, by name then score |
//! | `POST /v1/services` | [`Announce`] | 204 |
//! | `DELETE /v1/services/{name}` | | 204; 404 if not announced here |
//! | `POST /v1/shutdown` | | 202; the node leaves and exits |
//! | `PUT /uri` | body: the file; `?k=&n=&happy=&random_key=true` | [`Stored`] |
//! | `POST /v1/check` | [`CheckRequest`] | [`CheckReport`] |
//! | `POST /v1/repair` | [`CheckRequest`] (verify ignored) | [`RepairResult`] |
//! | `GET /uri/{cap}` | | the file (Content-Length = its size); 503 with the reason if it cannot be read |
//! | `PUT /uri?mutable=true` | body: the file | [`Stored`] with a new mutable file's write capability |
//! | `PUT /uri/{mutable write cap}` | body | [`Stored`]: the file's new contents |
//! | `GET /uri/{dircap}[/path]` | `?t=json` | the file at the path; a directory as HTML, or [`DirListing`] |
//! | `PUT /uri/{dircap}/path` | body | [`Stored`]; linked at the path (parents made) |
//! | `DELETE /uri/{dircap}/path` | | 204 |
//! | `POST /uri[/{dircap}/path]?t=mkdir` | | [`Made`] |
//! | `POST /v1/fs/mkdir` | [`Mkdir`] | [`Made`] |
//! | `POST /v1/fs/ls` | [`FsPath`] | [`DirListing`] |
//! | `POST /v1/fs/stat` | [`FsPath`] | [`Stat`]; 404 if nothing is there |
//! | `POST /v1/fs/link` | [`Link`] | [`DirListing`] of the directory after |
//! | `POST /v1/fs/mv` | [`Move`] | 204 |
//! | `POST /v1/fs/rm` | [`FsPath`] | 204 |
//! | `POST /v1/fs/deep-check` | [`DeepCheck`] | [`DeepCheckReport`] |
//!
//! Errors are `{"error": "…"}` with a 4xx/5xx status.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `GET /v1/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// Our peer id.
    pub peer_id: String,
    /// Listen addresses (with `/p2p/<id>`, ready to paste as a bootstrap peer).
    pub listen_addrs: Vec<String>,
    /// Zone label.
    pub zone: String,
    /// Members by state (not counting ourselves).
    pub members: MemberCounts,
    /// Seconds since the node started.
    pub uptime_secs: u64,
    /// Program version.
    pub version: String,
    /// The first two components of this node's network coordinate, in ms.
    #[serde(default)]
    pub coord: Option<[f64; 2]>,
    /// The private community's id; `None` in an open community.
    #[serde(default)]
    pub community: Option<String>,
    /// The community's name: a private one's when this node made it, an
    /// open one's when it was chosen with `community create --open`.
    #[serde(default)]
    pub community_name: Option<String>,
}

/// Members by state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MemberCounts {
    /// Alive.
    pub alive: usize,
    /// Suspect.
    pub suspect: usize,
    /// Failed.
    pub failed: usize,
    /// Left.
    pub left: usize,
}

/// Availability is shown once a member was watched this long.
pub const AVAILABILITY_AFTER_SECS: u64 = 60;

/// One member in `GET /v1/peers`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerRow {
    /// Peer id.
    pub peer_id: String,
    /// Announced addresses.
    pub addrs: Vec<String>,
    /// alive / suspect / failed / left.
    pub state: String,
    /// Measured RTT (EWMA), milliseconds.
    pub rtt_ms: Option<f64>,
    /// RTT estimated from network coordinates, milliseconds.
    pub est_rtt_ms: Option<f64>,
    /// Fraction of the time this node watched the member that it was up;
    /// `None` until it has watched for [`AVAILABILITY_AFTER_SECS`] (before
    /// that the figure means nothing).
    pub availability: Option<f64>,
    /// Seconds this node has watched the member (across restarts).
    #[serde(default)]
    pub observed_secs: u64,
    /// Decayed recent failures.
    pub failures: f64,
    /// Zone label.
    pub zone: String,
    /// Locality score in [0, 1].
    pub score: f64,
    /// Directly connected.
    pub connected: bool,
    /// Milliseconds since last heard.
    pub last_heard_ms: u64,
    /// Announced service names.
    pub services: Vec<String>,
    /// The first two components of its network coordinate, in ms (for a
    /// picture of who is near whom).
    #[serde(default)]
    pub coord: Option<[f64; 2]>,
}

/// One provider in `GET /v1/services`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceRow {
    /// Service name.
    pub name: String,
    /// Provider's peer id.
    pub peer_id: String,
    /// Whether the provider is this node.
    pub local: bool,
    /// Provider's score (1 for this node).
    pub score: f64,
    /// Announced metadata.
    pub meta: BTreeMap<String, String>,
    /// Provider's addresses.
    pub addrs: Vec<String>,
    /// A service of the node itself (the storage server, a live channel),
    /// not one a person announced.
    #[serde(default)]
    pub internal: bool,
}

/// Whether `name` is a service the node announces itself: the storage
/// server and live channels (`stream/<id>`). People cannot announce these.
pub fn is_internal(name: &str) -> bool {
    name == cloudy_storage::client::SERVICE
        || name.starts_with("stream/")
        || name.starts_with(CATALOGUE_PREFIX)
}

/// Services named `video/ID` are the community's video catalogue: the
/// publisher announces each video it published, with its title.
pub const CATALOGUE_PREFIX: &str = "video/";

/// `POST /v1/services`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Announce {
    /// Service name: 1–64 characters of `A-Z a-z 0-9 . _ - /`.
    pub name: String,
    /// Metadata: up to 32 pairs, keys like names, values up to 256 bytes.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

/// Error body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}

/// What is wrong with an [`Announce`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadAnnounce {
    /// A name or key with characters or a length not allowed.
    #[error("invalid {what} {text:?}: use 1-64 characters of A-Z a-z 0-9 . _ - /")]
    Name {
        /// `service name` or `metadata key`.
        what: &'static str,
        /// What was given.
        text: String,
    },
    /// A name the node uses itself.
    #[error(
        "service name {0:?} is used by the node itself (storage, live channels); pick another"
    )]
    Internal(String),
    /// More than 32 metadata pairs.
    #[error("too much metadata: {0} pairs, at most 32")]
    TooManyPairs(usize),
    /// A metadata value over 256 bytes.
    #[error("metadata value of {key:?} is {len} bytes, at most 256")]
    LongValue {
        /// Its key.
        key: String,
        /// Its length.
        len: usize,
    },
}

/// Checks a service name or metadata key.
pub fn check_name(what: &'static str, s: &str) -> Result<(), BadAnnounce> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-/".contains(c);
    if s.is_empty() || s.len() > 64 || !s.chars().all(ok_char) {
        return Err(BadAnnounce::Name { what, text: s.to_string() });
    }
    Ok(())
}

impl Announce {
    /// Checks name and metadata.
    pub fn validate(&self) -> Result<(), BadAnnounce> {
        check_name("service name", &self.name)?;
        if is_internal(&self.name) {
            return Err(BadAnnounce::Internal(self.name.clone()));
        }
        if self.meta.len() > 32 {
            return Err(BadAnnounce::TooManyPairs(self.meta.len()));
        }
        for (k, v) in &self.meta {
            check_name("metadata key", k)?;
            if v.len() > 256 {
                return Err(BadAnnounce::LongValue { key: k.clone(), len: v.len() });
            }
        }
        Ok(())
    }
}

/// Answer of `PUT /uri`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stored {
    /// Read capability.
    pub cap: String,
    /// Verify capability (absent for literal files).
    pub verify_cap: Option<String>,
    /// Something the user should know about how it was stored (happiness
    /// lowered to the servers present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `POST /v1/check` and `/v1/repair`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckRequest {
    /// A read or verify capability.
    pub cap: String,
    /// Fetch and verify every block.
    #[serde(default)]
    pub verify: bool,
}

/// One copy that failed verification.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BadCopy {
    /// Share number.
    pub share: u8,
    /// Server holding it.
    pub peer_id: String,
    /// What is wrong.
    pub reason: String,
}

/// Health of a stored file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckReport {
    /// Shares needed.
    pub k: u8,
    /// Shares made.
    pub n: u8,
    /// Share numbers with a good copy.
    pub good_shares: usize,
    /// All n present.
    pub healthy: bool,
    /// At least k present.
    pub recoverable: bool,
    /// Whether blocks were verified.
    pub verified: bool,
    /// Share number → servers holding a good copy.
    pub shares: BTreeMap<u8, Vec<String>>,
    /// Copies that failed verification.
    pub corrupt: Vec<BadCopy>,
}

/// Result of a repair.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RepairResult {
    /// Health before the repair.
    pub before: CheckReport,
    /// Regenerated shares: (share, server).
    pub placed: Vec<(u8, String)>,
    /// What failed.
    pub failures: Vec<String>,
}

/// `POST /v1/maintained` body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CapBody {
    /// A read or verify capability.
    pub cap: String,
}

/// Whether an add or remove changed the list.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Changed {
    /// `false` when the file was already (or not) on the list.
    pub changed: bool,
}

/// One maintained file (`GET /v1/maintained`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MaintainedRow {
    /// Its verify capability.
    pub verify_cap: String,
    /// Shares needed.
    pub k: u8,
    /// Shares made.
    pub n: u8,
    /// File size.
    pub size: u64,
    /// When it was added (Unix seconds).
    pub added: u64,
    /// When it was last checked (Unix seconds).
    pub checked: Option<u64>,
    /// Good shares at the last check.
    pub good_shares: Option<u8>,
    /// `unchecked`, `healthy`, `repaired`, `degraded`, `unrecoverable` or `error: …`.
    pub status: String,
}

/// `POST /v1/sync`: share a folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AddFolder {
    /// Absolute path on the node's machine.
    pub path: String,
    /// A label.
    #[serde(default)]
    pub name: Option<String>,
    /// Peers admitted in advance.
    #[serde(default)]
    pub members: Vec<String>,
}

/// `POST /v1/sync/join`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinFolder {
    /// The invite printed by `sync add`.
    pub invite: String,
    /// Absolute path on the node's machine.
    pub path: String,
}

/// `POST /v1/sync/{id}/admit`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Admit {
    /// The peer to admit.
    pub peer: String,
}

/// A shared folder (`GET /v1/sync`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FolderRow {
    /// Folder id.
    pub id: String,
    /// Label.
    pub name: String,
    /// Local path.
    pub path: String,
    /// Owner peer id.
    pub owner: String,
    /// Members.
    pub members: Vec<String>,
    /// Peers waiting for `sync admit`.
    pub pending: Vec<String>,
    /// The invite to give others.
    pub invite: String,
    /// Conflict copies in the folder (paths relative to it; at most 100).
    #[serde(default)]
    pub conflicts: Vec<String>,
    /// State, totals, what is left, recent errors.
    #[serde(flatten)]
    pub status: FolderStatus,
}

/// How a folder is doing (part of [`FolderRow`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FolderStatus {
    /// What it is doing (written as text: `"in sync"`, …).
    pub state: FolderState,
    /// Files in the local index (not deleted).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files still to fetch in the batch being applied.
    pub need_files: u64,
    /// Their bytes.
    pub need_bytes: u64,
    /// Block bytes downloaded from members since the node started.
    #[serde(default)]
    pub downloaded: u64,
    /// Block bytes served to members since the node started.
    #[serde(default)]
    pub uploaded: u64,
    /// The local index's sequence (it grows with every change there).
    #[serde(default)]
    pub sequence: u64,
    /// Per member, how far its index (its `sequence`) is applied here.
    #[serde(default)]
    pub applied: BTreeMap<String, u64>,
    /// Outstanding errors.
    pub errors: Vec<String>,
}

/// Body of `POST /v1/streams`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateChannel {
    /// The channel's name (a channel published again under the same name
    /// keeps its id).
    pub name: String,
}

/// Header naming the channel a `GET /stream/…` plays.
pub const CHANNEL_HEADER: &str = "x-cloudy-channel";

/// Body of `POST /v1/vod`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PublishVideo {
    /// The file, as the node sees it (an absolute path).
    pub path: String,
    /// Its title in the community's catalogue (default: the file's name).
    #[serde(default)]
    pub title: Option<String>,
    /// A description.
    #[serde(default)]
    pub description: Option<String>,
}

/// Answer of `POST /v1/vod`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Published {
    /// The video id.
    pub id: String,
    /// Bytes.
    pub size: u64,
    /// Pieces.
    pub pieces: u64,
    /// What the file holds, in words (container, codecs, duration, and
    /// where it plays).
    #[serde(default)]
    pub found: String,
}

/// A capability, as the CLI reads it to check it before asking the node
/// (the storage crate's type: the text form is the API).
pub use cloudy_storage::capability::{Cap, MutKind};
/// A folder's state (the sync crate's enum: its text is the JSON).
pub use cloudy_sync::folder_state::FolderState;

mod community;
mod fs;
pub use community::{
    AddAdmin, CommunityStatus, Evict, InviteMade, MakeInvite, UsageRow, UsageTable,
};
pub use fs::valid_alias;
pub use fs::{
    DeepCheck, DeepCheckReport, DeepProblem, DirEntry, DirListing, FsPath, Link, Made, Mkdir, Move,
    NewLink, Stat,
};
mod streams;
pub use streams::{
    CatalogueRow, ChannelRow, ChannelStats, ChannelStatus, FeedSummary, Phase, VideoRow, Videos,
    VodStats,
};

/// Whether `text` is a video id (64 hex characters) rather than a
/// channel's id or name.
pub fn is_video_id(text: &str) -> bool {
    cloudy_streaming::vod::manifest::VodId::looks_like(text)
}
