//! The control API's types for live channels and videos
//! (`/v1/streams`, `/v1/vod`). The streaming crate's own types are
//! converted into these in `control::streams` and `control::vod`, so the
//! JSON is defined here, once.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How a live channel is doing here (the streaming crate's enum: its
/// lowercase text is the JSON).
pub use cloudy_streaming::live::state::Phase;

/// What feeding a channel did (`PUT /v1/streams/{id}/input`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FeedSummary {
    /// Chunks published (the end chunk included).
    pub chunks: u64,
    /// Input bytes.
    pub bytes: u64,
    /// The input was MPEG-TS (cut at picture groups).
    pub mpeg_ts: bool,
    /// The input broke off instead of ending (the channel was ended anyway).
    pub error: Option<String>,
}

/// Counters of one channel on this node.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Distinct chunks received (viewer) or cut (publisher).
    pub chunks: u64,
    /// Chunk bytes received from neighbours.
    pub bytes_down: u64,
    /// Chunk bytes sent to neighbours.
    pub bytes_up: u64,
    /// Chunks sent to neighbours.
    #[serde(default)]
    pub chunks_up: u64,
    /// Chunks received twice.
    pub duplicates: u64,
    /// Their bytes.
    pub bytes_dup: u64,
    /// Requests that went unanswered in time.
    pub timeouts: u64,
    /// Requests the publisher turned down to keep its upload low.
    pub spared: u64,
    /// Chunks refused: forged, altered or malformed.
    pub rejected: u64,
    /// Chunks written to players.
    pub played: u64,
    /// Chunks skipped by players (late or undecodable after a loss).
    pub skipped: u64,
    /// Neighbour sessions opened since the start.
    pub sessions_opened: u64,
    /// Sessions closed.
    pub sessions_closed: u64,
    /// Chunk bytes by neighbour (peer id): `(sent to it, received from it)`.
    #[serde(default)]
    pub by_peer: std::collections::BTreeMap<String, (u64, u64)>,
    /// The first chunk played here.
    pub first_played: Option<u64>,
    /// The latest chunks: `(seq, publisher's timestamp ms, ms from that
    /// timestamp to arrival here)`.
    pub arrivals: VecDeque<(u64, u64, u64)>,
}

/// A live channel as this node takes part in it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChannelStatus {
    /// The channel id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `publisher` or `viewer`.
    pub role: String,
    /// Starting, live, ended (the publisher ended it) or lost (no chunk
    /// for a while: the publisher is gone).
    pub state: Phase,
    /// Current neighbours.
    pub neighbours: Vec<String>,
    /// Local players.
    pub players: usize,
    /// Latency from the publisher's cut to arrival here, ms: p50, p95, max.
    pub latency_ms: Option<(u64, u64, u64)>,
    /// Share of chunks since playback started that arrived within 3 s.
    pub continuity: Option<f64>,
    /// When this node stopped taking part (Unix ms).
    pub stopped_ms: Option<u64>,
    /// Counters.
    pub stats: ChannelStats,
}

/// A channel of the community (`GET /v1/streams`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChannelRow {
    /// The channel id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The publishing node.
    pub publisher: String,
    /// Nodes watching it (as announced).
    pub viewers: usize,
    /// How this node takes part, if it does.
    pub local: Option<ChannelStatus>,
}

/// A video held here (`GET /v1/vod`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VideoRow {
    /// Its id.
    pub id: String,
    /// Bytes.
    pub size: u64,
    /// Pieces held here, of all.
    pub held: u64,
    /// Pieces in all.
    pub pieces: u64,
    /// Published from this node.
    pub published: bool,
}

/// A video of the community's catalogue (`GET /v1/vod`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CatalogueRow {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its description.
    pub description: String,
    /// `mpegts`, `mp4` or `unknown`.
    pub format: String,
    /// What it holds, in words.
    pub found: String,
    /// Whether browsers play it (the player page).
    pub browser: bool,
    /// How long it plays, seconds, when known.
    pub duration_s: Option<f64>,
    /// Bytes.
    pub size: u64,
    /// The member that published it.
    pub publisher: String,
    /// Pieces of it held on this node.
    pub held_here: u64,
    /// Its pieces in all.
    pub pieces: u64,
    /// The members that hold pieces of it (its providers in the DHT), when
    /// asked for (`GET /v1/vod?holders=true`).
    #[serde(default)]
    pub holders: Option<Vec<String>>,
}

/// Video bytes moved since the node started.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct VodStats {
    /// Piece bytes sent to other nodes.
    pub served: u64,
    /// Piece bytes fetched from other nodes.
    pub fetched: u64,
}

/// Answer of `GET /v1/vod`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Videos {
    /// Videos held here.
    pub videos: Vec<VideoRow>,
    /// Every member's published videos (the community's catalogue).
    #[serde(default)]
    pub catalogue: Vec<CatalogueRow>,
    /// Bytes served and fetched since start.
    pub stats: VodStats,
}
