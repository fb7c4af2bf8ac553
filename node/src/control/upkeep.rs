//! `/v1/maintained`: the files this node keeps healthy on its own.

use super::api::{CapBody, Changed, MaintainedRow};
use super::state::{ApiError, Shared};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use cloudy_storage::capability::{Cap, VerifyCap};

/// The verify capability of a read or verify capability.
pub(crate) fn verify_cap(cap: &str) -> Result<VerifyCap, ApiError> {
    match cap.parse::<Cap>().map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))? {
        Cap::Read(r) => Ok(r.verify_cap()),
        Cap::Verify(v) => Ok(v),
        Cap::Literal(_) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            "a literal capability holds its file itself: nothing to check or repair".into(),
        )),
        Cap::Mutable(_) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            "this is a mutable file or directory: check it with `deep-check` (`check` and `repair` in the CLI do that for you)".into(),
        )),
    }
}

fn list_error(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

pub(super) async fn list(State(s): State<Shared>) -> Result<Json<Vec<MaintainedRow>>, ApiError> {
    let rows = s.upkeep.list().all().map_err(list_error)?;
    Ok(Json(
        rows.into_iter()
            .map(|e| MaintainedRow {
                verify_cap: Cap::Verify(e.cap.clone()).to_string(),
                k: e.cap.k,
                n: e.cap.n,
                size: e.cap.size,
                added: e.added,
                checked: e.checked,
                good_shares: e.good,
                status: e.status.to_string(),
            })
            .collect(),
    ))
}

pub(super) async fn add(
    State(s): State<Shared>,
    Json(body): Json<CapBody>,
) -> Result<Json<Changed>, ApiError> {
    if let Some(tree) = tree_cap(&body.cap)? {
        return Ok(Json(Changed { changed: s.trees.add(&tree).map_err(list_error)? }));
    }
    let cap = verify_cap(&body.cap)?;
    Ok(Json(Changed { changed: s.upkeep.add(&cap).map_err(list_error)? }))
}

pub(super) async fn remove(
    State(s): State<Shared>,
    Path(cap): Path<String>,
) -> Result<Json<Changed>, ApiError> {
    if let Some(tree) = tree_cap(&cap)? {
        return Ok(Json(Changed { changed: s.trees.remove(&tree).map_err(list_error)? }));
    }
    let cap = verify_cap(&cap)?;
    Ok(Json(Changed { changed: s.upkeep.list().remove(&cap).map_err(list_error)? }))
}

pub(super) async fn run(State(s): State<Shared>) -> Json<Changed> {
    s.upkeep.run_now();
    s.trees.run_now();
    Json(Changed { changed: true })
}

/// A directory or mutable file capability (maintained as a tree), a verify
/// one refused (its contents cannot be walked).
fn tree_cap(text: &str) -> Result<Option<Cap>, ApiError> {
    match text.parse::<Cap>() {
        Ok(Cap::Mutable(m)) if m.read_key().is_none() => Err(ApiError(
            StatusCode::BAD_REQUEST,
            "a verify capability of a directory or mutable file cannot be walked; give its read or write capability".into(),
        )),
        Ok(c @ Cap::Mutable(_)) => Ok(Some(c)),
        _ => Ok(None),
    }
}

/// `GET /v1/maintained/trees`.
pub(super) async fn trees(State(s): State<Shared>) -> Json<Vec<crate::trees::TreeRow>> {
    Json(s.trees.all())
}
