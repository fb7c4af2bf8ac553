//! `/v1/sync`: shared folders.

use super::api::{AddFolder, Admit, FolderRow, JoinFolder};
use super::state::{ApiError, Shared};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use cloudy_sync::folders::Folder;
use cloudy_sync::service::{Status, SyncError};

/// Most conflict copies listed per folder, and most entries looked at.
const MAX_CONFLICTS: usize = 100;
const MAX_ENTRIES: usize = 20_000;

/// Conflict copies (`*.sync-conflict-*`) in `dir`, relative to it, kept
/// versions left out.
fn conflicts(dir: &std::path::Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".cloudy-versions")
        .take(MAX_ENTRIES)
        .flatten()
        .filter(|e| {
            e.file_type().is_file() && e.file_name().to_string_lossy().contains(".sync-conflict-")
        })
        .filter_map(|e| e.path().strip_prefix(dir).ok().map(|p| p.display().to_string()))
        .take(MAX_CONFLICTS)
        .collect()
}

/// How long a folder's list of conflict copies is reused: the dashboard
/// asks every second, and a folder may hold many files.
const CONFLICTS_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Conflict lists by folder path, with when they were made.
#[derive(Debug, Default)]
pub struct ConflictCache(
    std::sync::Mutex<
        std::collections::HashMap<std::path::PathBuf, (std::time::Instant, Vec<String>)>,
    >,
);

/// [`conflicts`] of `dir`, walked on the blocking pool at most every
/// [`CONFLICTS_TTL`].
async fn conflicts_of(s: &Shared, dir: &std::path::Path) -> Vec<String> {
    let cache = &s.conflicts.0;
    if let Some((at, v)) = cache.lock().expect("conflict cache").get(dir) {
        if at.elapsed() < CONFLICTS_TTL {
            return v.clone();
        }
    }
    let d = dir.to_path_buf();
    let v = tokio::task::spawn_blocking(move || conflicts(&d)).await.unwrap_or_default();
    cache
        .lock()
        .expect("conflict cache")
        .insert(dir.to_path_buf(), (std::time::Instant::now(), v.clone()));
    v
}

async fn row(s: &Shared, f: Folder, st: Status) -> FolderRow {
    FolderRow {
        conflicts: conflicts_of(s, &f.path).await,
        invite: f.invite(),
        id: f.id,
        name: f.name,
        path: f.path.display().to_string(),
        owner: f.owner,
        members: f.members,
        pending: f.pending,
        status: st.into(),
    }
}

fn api_error(e: SyncError) -> ApiError {
    let status = match e {
        SyncError::NoFolder(_) => StatusCode::NOT_FOUND,
        SyncError::BadPath { .. }
        | SyncError::Private { .. }
        | SyncError::BadPeer(_)
        | SyncError::Folders(cloudy_sync::folders::FolderError::Invite(_)) => {
            StatusCode::BAD_REQUEST
        }
        SyncError::NotOwner(_) => StatusCode::FORBIDDEN,
        SyncError::AlreadyShared { .. } | SyncError::AlreadyJoined { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError(status, e.to_string())
}

/// The row of folder `id` after a change.
async fn current(s: &Shared, id: &str) -> Result<FolderRow, ApiError> {
    let (f, st) = s
        .sync
        .list()
        .into_iter()
        .find(|(f, _)| f.id == id)
        .ok_or_else(|| api_error(SyncError::NoFolder(id.into())))?;
    Ok(row(s, f, st).await)
}

pub(super) async fn list(State(s): State<Shared>) -> Json<Vec<FolderRow>> {
    let mut rows = Vec::new();
    for (f, st) in s.sync.list() {
        rows.push(row(&s, f, st).await);
    }
    Json(rows)
}

pub(super) async fn add(
    State(s): State<Shared>,
    Json(req): Json<AddFolder>,
) -> Result<Json<FolderRow>, ApiError> {
    let f =
        s.sync.add(std::path::Path::new(&req.path), req.name, req.members).map_err(api_error)?;
    current(&s, &f.id).await.map(Json)
}

pub(super) async fn join(
    State(s): State<Shared>,
    Json(req): Json<JoinFolder>,
) -> Result<Json<FolderRow>, ApiError> {
    let f = s.sync.join(&req.invite, std::path::Path::new(&req.path)).map_err(api_error)?;
    current(&s, &f.id).await.map(Json)
}

pub(super) async fn admit(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Json(req): Json<Admit>,
) -> Result<Json<FolderRow>, ApiError> {
    s.sync.admit(&id, &req.peer).map_err(api_error)?;
    current(&s, &id).await.map(Json)
}

pub(super) async fn remove(
    State(s): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<FolderRow>, ApiError> {
    let row_before = current(&s, &id).await?;
    s.sync.remove(&id).map_err(api_error)?;
    Ok(Json(row_before))
}
