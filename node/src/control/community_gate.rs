//! `/v1/community`: the private community this node is in, and invites.

use super::api::{AddAdmin, CommunityStatus, Evict, InviteMade, MakeInvite};
use super::state::{parse_peer, ApiError, Shared};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use cloudy_overlay::community::gate::Refusal;
use cloudy_overlay::community::join::Ticket;
use cloudy_overlay::community::Gate;
use std::time::Duration;

/// Longest an invite may stay good: a year.
const MAX_INVITE_SECS: u64 = 365 * 86_400;

pub(super) async fn status(State(s): State<Shared>) -> Json<CommunityStatus> {
    let Some(gate) = &s.community else {
        return Json(CommunityStatus {
            kind: "open".into(),
            id: None,
            name: s.open_name.clone(),
            role: None,
            problem: None,
            expires: None,
            issuer: None,
            admins: Vec::new(),
            refused: 0,
            evicted: Vec::new(),
        });
    };
    let st = gate.status();
    Json(CommunityStatus {
        kind: "private".into(),
        id: Some(st.community.to_string()),
        name: gate.name().map(str::to_string),
        role: st.role.map(|r| r.to_string()),
        problem: st.problem,
        expires: st.expires,
        issuer: st.issuer.map(|p| p.to_string()),
        admins: st.admins.iter().map(ToString::to_string).collect(),
        refused: st.refused,
        evicted: st.evicted.iter().map(|(p, r)| (p.to_string(), r.clone())).collect(),
    })
}

pub(super) async fn invite(
    State(s): State<Shared>,
    Json(req): Json<MakeInvite>,
) -> Result<Json<InviteMade>, ApiError> {
    let Some(gate) = &s.community else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "this node is in an open community: its invite needs no secret (`cloudy-p2p invite` prints it)".into(),
        ));
    };
    if req.uses == 0 || req.expires_secs == 0 || req.expires_secs > MAX_INVITE_SECS {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "an invite needs at least one use and a lifetime of 1 s to {MAX_INVITE_SECS} s"
            ),
        ));
    }
    let (invite, secret, expires) =
        gate.make_invite(req.uses, Duration::from_secs(req.expires_secs)).map_err(refused)?;
    let me = s.overlay.local_peer_id();
    let addrs = s
        .overlay
        .snapshot()
        .local
        .listen_addrs
        .iter()
        .filter_map(|a| a.clone().with_p2p(me).ok())
        .collect();
    let ticket = Ticket { community: gate.community(), invite, secret };
    let text = crate::invite::encode_private(&crate::invite::shareable(addrs), &ticket);
    Ok(Json(InviteMade { invite: text, expires, uses: req.uses }))
}

/// The gate of this node's private community, or a 409 saying that in an
/// open community there is nothing to `what`.
fn private<'a>(s: &'a Shared, what: &str) -> Result<&'a Gate, ApiError> {
    s.community.as_deref().ok_or_else(|| {
        ApiError(
            StatusCode::CONFLICT,
            format!("this node is in an open community: {what} (`cloudy-p2p community create NAME` makes a private one)"),
        )
    })
}

/// A refusal of the gate as an API error: 403 for what the community's
/// rules forbid, 500 for a failure here.
fn refused(e: Refusal) -> ApiError {
    let status = match e {
        Refusal::Invite(_) | Refusal::SelfEviction | Refusal::Cert(_) => StatusCode::FORBIDDEN,
        Refusal::NotAnAdmin(_) | Refusal::LastAdmin => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError(status, e.to_string())
}

pub(super) async fn evict(
    State(s): State<Shared>,
    Json(req): Json<Evict>,
) -> Result<StatusCode, ApiError> {
    let gate = private(&s, "nobody can be evicted")?;
    let peer = parse_peer(&req.peer)?;
    if gate.is_revoked(&peer) {
        return Err(ApiError(StatusCode::CONFLICT, format!("{peer} was evicted already")));
    }
    let r = gate.evict(peer, &req.reason).map_err(refused)?;
    s.overlay.gossip_revocation(&r).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes an admin: it stays a member; every member learns it by gossip
/// (or at its next handshake).
pub(super) async fn remove_admin(
    State(s): State<Shared>,
    Json(req): Json<AddAdmin>,
) -> Result<StatusCode, ApiError> {
    let gate = private(&s, "it has no admins")?;
    let peer = parse_peer(&req.peer)?;
    let r = gate.remove_admin(peer).map_err(refused)?;
    s.overlay.gossip_revocation(&r).await;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn add_admin(
    State(s): State<Shared>,
    Json(req): Json<AddAdmin>,
) -> Result<StatusCode, ApiError> {
    let gate = private(&s, "it has no admins")?;
    let peer = parse_peer(&req.peer)?;
    if !s.overlay.snapshot().peers.contains_key(&peer) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("{peer} is not a member this node knows; it must have joined first"),
        ));
    }
    gate.promote(peer).map_err(refused)?;
    s.overlay.handshake_again(peer).await;
    Ok(StatusCode::NO_CONTENT)
}
