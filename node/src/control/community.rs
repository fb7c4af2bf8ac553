//! The community: status, members, the service directory, announcing
//! and withdrawing, and the shutdown request.

use super::api::{Announce, MemberCounts, PeerRow, ServiceRow, Status};
use super::state::{unavailable, ApiError, Shared};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use cloudy_overlay::{MemberState, PeerView};
use serde::Deserialize;

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
        community: s.community.as_ref().map(|g| g.community().to_string()),
        community_name: match &s.community {
            Some(g) => g.name().map(str::to_string),
            None => s.open_name.clone(),
        },
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

pub(super) async fn peer(
    State(s): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<PeerRow>, ApiError> {
    let peer = super::state::parse_peer(&id)?;
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

pub(super) async fn announce(
    State(s): State<Shared>,
    Json(req): Json<Announce>,
) -> Result<StatusCode, ApiError> {
    req.validate().map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    s.overlay.announce(&req.name, req.meta.clone()).await.map_err(unavailable)?;
    s.announcements
        .insert(req.name, req.meta)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn withdraw(
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

pub(super) async fn shutdown(State(s): State<Shared>) -> StatusCode {
    s.shutdown.cancel();
    StatusCode::ACCEPTED
}
