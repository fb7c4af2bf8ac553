//! What the API's handlers share: the state, the error type and small
//! helpers.

use super::api::ErrorBody;
use crate::announcements::Announcements;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState {
    /// The overlay.
    pub overlay: cloudy_overlay::Handle,
    /// The expected bearer token.
    pub token: String,
    /// When the node started.
    pub started: Instant,
    /// Cancelled by `POST /v1/shutdown`.
    pub shutdown: CancellationToken,
    /// The API's tasks (downloads it serves).
    pub tasks: cloudy_overlay::tasks::Tasks,
    /// Services announced through the API, persisted in the home.
    pub announcements: Announcements,
    /// The storage grid client.
    pub storage: cloudy_storage::client::Client,
    /// Directories on the grid, as this node reads and writes them.
    pub dirs: cloudy_storage::dirs::Dirs,
    /// Directories and mutable files maintained with all they reach.
    pub trees: crate::trees::Trees,
    /// The home's aliases file (shared with the CLI's `alias`).
    pub aliases: std::path::PathBuf,
    /// Folder sync.
    pub sync: cloudy_sync::service::SyncService,
    /// Live channels.
    pub streams: cloudy_streaming::service::Streaming,
    /// Video on demand.
    pub vod: cloudy_streaming::vod::service::Vod,
    /// Upkeep of maintained files.
    pub upkeep: cloudy_storage::upkeep::Upkeep,
    /// What this node keeps for one member at most (bytes).
    pub member_quota: u64,
    /// Put uploads on the maintained list.
    pub maintain_uploads: bool,
    /// Where uploads are spooled before encoding.
    pub spool: std::path::PathBuf,
    /// Grid requests counted for the metrics.
    pub requests: Arc<RequestCounters>,
    /// Conflict copies found in shared folders, reused for a few seconds.
    pub conflicts: super::ConflictCache,
    /// The admission gate of a private community; `None` in an open one.
    pub community: Option<Arc<cloudy_overlay::community::Gate>>,
    /// The name of an open community chosen with `community create --open`.
    pub open_name: Option<String>,
}

pub(crate) type Shared = Arc<ApiState>;

pub(crate) struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

/// `text` as a peer id, or a 400 saying it is not one.
pub(crate) fn parse_peer(text: &str) -> Result<cloudy_overlay::PeerId, ApiError> {
    text.parse().map_err(|e| {
        ApiError(StatusCode::BAD_REQUEST, format!("{text:?} is not a valid peer id: {e}"))
    })
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// Grid requests made through this node's API (the CLI's `put` and `get`,
/// the HTTP gateway), by outcome.
#[derive(Debug, Default)]
pub struct RequestCounters {
    /// Successful puts.
    pub puts: std::sync::atomic::AtomicU64,
    /// Failed puts.
    pub put_errors: std::sync::atomic::AtomicU64,
    /// Successful gets (a whole file or a range).
    pub gets: std::sync::atomic::AtomicU64,
    /// Failed gets.
    pub get_errors: std::sync::atomic::AtomicU64,
    /// Repairs asked for by hand (`cloudy-p2p repair`).
    pub repairs: std::sync::atomic::AtomicU64,
}

impl RequestCounters {
    /// Counts a put's outcome.
    pub fn put<T, E>(&self, r: &Result<T, E>) {
        let c = if r.is_ok() { &self.puts } else { &self.put_errors };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a get's outcome.
    pub fn get<T, E>(&self, r: &Result<T, E>) {
        let c = if r.is_ok() { &self.gets } else { &self.get_errors };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
