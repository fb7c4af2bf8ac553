//! The control API server (axum), bound to a local address and guarded by
//! the token in `api.token`. Reads come from the overlay's snapshot; writes
//! go through `overlay::Handle`.

use super::api::{Announce, ErrorBody, MemberCounts, PeerRow, ServiceRow, Status};
use crate::announcements::Announcements;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cloudy_overlay::{MemberState, PeerId, PeerView};
use serde::Deserialize;
use std::str::FromStr;
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
    /// Folder sync.
    pub sync: cloudy_sync::service::SyncService,
    /// Live channels.
    pub streams: cloudy_streaming::service::Streaming,
    /// Video on demand.
    pub vod: cloudy_streaming::vod::service::Vod,
    /// Upkeep of maintained files.
    pub upkeep: cloudy_storage::upkeep::Upkeep,
    /// Put uploads on the maintained list.
    pub maintain_uploads: bool,
    /// Where uploads are spooled before encoding.
    pub spool: std::path::PathBuf,
    /// Grid requests counted for the metrics.
    pub requests: Arc<super::metrics::RequestCounters>,
    /// Conflict copies found in shared folders, reused for a few seconds.
    pub conflicts: super::ConflictCache,
}

pub(crate) type Shared = Arc<ApiState>;

pub(crate) struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

/// The routes of the API (see [`super::api`]).
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers))
        .route("/v1/peers/{id}", get(peer))
        .route("/v1/services", get(services).post(announce))
        .route("/v1/services/{name}", axum::routing::delete(withdraw))
        .route("/v1/shutdown", post(shutdown))
        .route("/metrics", get(super::metrics::metrics))
        .route("/", get(super::ui::index))
        .route("/ui/login", post(super::ui::login))
        .route("/ui/logout", post(super::ui::logout))
        .route("/ui/app.js", get(super::ui::app_js))
        .route("/ui/style.css", get(super::ui::style))
        .route("/ui/overview", get(super::ui::overview))
        .route("/ui/events", get(super::ui::events))
        .route("/v1/connect", post(super::dht::connect))
        .route("/v1/ping", post(super::dht::ping))
        .route("/v1/dht/put", post(super::dht::put))
        .route("/v1/dht/get", post(super::dht::get))
        .route("/v1/dht/provide", post(super::dht::provide))
        .route("/v1/dht/providers", post(super::dht::providers))
        .route("/v1/check", post(super::gateway::check))
        .route("/v1/repair", post(super::gateway::repair))
        .route("/v1/maintained", get(super::upkeep::list).post(super::upkeep::add))
        .route("/v1/maintained/{cap}", axum::routing::delete(super::upkeep::remove))
        .route("/v1/maintained/run", post(super::upkeep::run))
        .route("/v1/sync", get(super::sync::list).post(super::sync::add))
        .route("/v1/sync/join", post(super::sync::join))
        .route("/v1/sync/{id}/admit", post(super::sync::admit))
        .route("/v1/sync/{id}", axum::routing::delete(super::sync::remove))
        .route("/v1/streams", get(super::streams::list).post(super::streams::create))
        .route("/v1/streams/{id}", get(super::streams::status))
        .route("/v1/streams/{id}/input", axum::routing::put(super::streams::input))
        .route("/stream/{channel}", get(super::streams::play))
        .route("/v1/vod", get(super::vod::list).post(super::vod::publish))
        .route("/vod/{id}", get(super::vod::get))
        .route("/uri", axum::routing::put(super::gateway::put))
        .route("/uri/{cap}", get(super::gateway::get))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// Checks the caller: the token in the `Authorization: Bearer` header; or,
/// for the URLs a player opens (`/stream/…`, `/vod/…`, and reading a file
/// at `/uri/…`), in a `token` query parameter; or the dashboard's session cookie, with the CSRF
/// header and our own origin on anything but reads (see [`super::ui`]).
async fn auth(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if super::ui::is_public(path) {
        return next.run(req).await;
    }
    let reads = matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let in_query = || {
        let media = path.starts_with("/stream/")
            || path.starts_with("/vod/")
            || (path.starts_with("/uri/") && reads);
        let query = req.uri().query().unwrap_or("");
        query.split('&').find_map(|kv| kv.strip_prefix("token=")).filter(|_| media)
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(in_query)
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), s.token.as_bytes()) {
        return next.run(req).await;
    }
    if !super::ui::logged_in(&s, req.headers()) {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token (see api.token in the node's home)".into(),
        )
        .into_response();
    }
    if !reads {
        let h = req.headers();
        let marked = h.get(super::ui::CSRF_HEADER).is_some_and(|v| v == "1");
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let same_origin = h
            .get(header::ORIGIN)
            .is_none_or(|o| o.to_str().is_ok_and(|o| o == format!("http://{host}")));
        if !marked || !same_origin {
            return super::ui::refused("cross-site request refused: the dashboard's requests carry x-cloudy-csrf and come from its own origin");
        }
    }
    next.run(req).await
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) async fn status(State(s): State<Shared>) -> Json<Status> {
    let snap = s.overlay.snapshot();
    let me = s.overlay.local_peer_id();
    let listen_addrs = snap
        .local
        .listen_addrs
        .iter()
        .map(|a| a.clone().with_p2p(me).map_or_else(|a| a.to_string(), |a| a.to_string()))
        .collect();
    Json(Status {
        peer_id: me.to_string(),
        listen_addrs,
        zone: snap.local.zone.clone(),
        members: MemberCounts {
            alive: snap.count(MemberState::Alive),
            suspect: snap.count(MemberState::Suspect),
            failed: snap.count(MemberState::Failed),
            left: snap.count(MemberState::Left),
        },
        uptime_secs: s.started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        coord: snap.local.coordinate.as_ref().map(plane),
    })
}

fn peer_row(v: &PeerView) -> PeerRow {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    PeerRow {
        peer_id: v.peer.to_string(),
        addrs: v.addrs.iter().map(|a| a.to_string()).collect(),
        state: v.state.to_string(),
        rtt_ms: v.rtt_measured.map(ms),
        est_rtt_ms: v.rtt_estimated.map(ms),
        availability: (v.observed.as_secs() >= super::api::AVAILABILITY_AFTER_SECS)
            .then(|| v.seen_up.as_secs_f64() / v.observed.as_secs_f64()),
        observed_secs: v.observed.as_secs(),
        failures: v.failures,
        zone: v.zone.clone(),
        score: v.score,
        connected: v.connected,
        last_heard_ms: v.last_heard_ago.as_millis() as u64,
        services: v.services.keys().cloned().collect(),
        coord: v.coordinate.as_ref().map(plane),
    }
}

/// A coordinate's first two components, in ms.
fn plane(c: &cloudy_overlay::scoring::vivaldi::Coordinate) -> [f64; 2] {
    [c.vec[0] * 1000.0, c.vec[1] * 1000.0]
}

pub(crate) async fn peers(State(s): State<Shared>) -> Json<Vec<PeerRow>> {
    Json(s.overlay.snapshot().ranked().into_iter().map(peer_row).collect())
}

async fn peer(State(s): State<Shared>, Path(id): Path<String>) -> Result<Json<PeerRow>, ApiError> {
    let peer = PeerId::from_str(&id).map_err(|e| {
        ApiError(StatusCode::BAD_REQUEST, format!("{id:?} is not a valid peer id: {e}"))
    })?;
    let snap = s.overlay.snapshot();
    let view = snap.peers.get(&peer).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown peer {peer}: not a member of this community"),
        )
    })?;
    Ok(Json(peer_row(view)))
}

#[derive(Deserialize)]
pub(crate) struct ServicesQuery {
    pub(crate) name: Option<String>,
}

pub(crate) async fn services(
    State(s): State<Shared>,
    Query(q): Query<ServicesQuery>,
) -> Json<Vec<ServiceRow>> {
    let rows = s
        .overlay
        .snapshot()
        .providers(q.name.as_deref())
        .into_iter()
        .map(|(name, p)| ServiceRow {
            internal: super::api::is_internal(&name),
            name,
            peer_id: p.peer.to_string(),
            local: p.local,
            score: p.score,
            meta: p.meta,
            addrs: p.addrs.iter().map(|a| a.to_string()).collect(),
        })
        .collect();
    Json(rows)
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

async fn announce(
    State(s): State<Shared>,
    Json(req): Json<Announce>,
) -> Result<StatusCode, ApiError> {
    req.validate().map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    s.overlay.announce(&req.name, req.meta.clone()).await.map_err(unavailable)?;
    s.announcements
        .insert(req.name, req.meta)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn withdraw(
    State(s): State<Shared>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !s.overlay.withdraw(&name).await.map_err(unavailable)? {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("service {name:?} is not announced by this node"),
        ));
    }
    s.announcements
        .remove(&name)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn shutdown(State(s): State<Shared>) -> StatusCode {
    s.shutdown.cancel();
    StatusCode::ACCEPTED
}
