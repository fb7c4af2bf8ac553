//! Directories and mutable files through the API: `/v1/fs/…` for the CLI,
//! and paths under `/uri/DIRCAP/…` for browsers and tools (as Tahoe's web
//! gateway).

use super::api::{DeepCheck, DeepCheckReport, DeepProblem};
use super::api::{DirEntry, DirListing, FsPath, Link, Made, Mkdir, Move, Stat, Stored};
use super::gateway::{bad, serve_contents, store_body, GetQuery, PutQuery};
use super::state::{ApiError, Shared};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cloudy_storage::capability::{Cap, MutCap, MutKind};
use cloudy_storage::client::{MutableError, SlotWriteError};
use cloudy_storage::dirs::{split, DirError, Kind, Listing, NewEntry};

fn mutable_status(e: &MutableError) -> StatusCode {
    match e {
        MutableError::NotFound { .. } => StatusCode::NOT_FOUND,
        MutableError::Open(_) | MutableError::Payload(_) => StatusCode::BAD_REQUEST,
        MutableError::Write(SlotWriteError::Stale { .. }) => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A mutable-file failure as an API error.
pub(crate) fn mutable_error(e: MutableError) -> ApiError {
    ApiError(mutable_status(&e), e.to_string())
}

/// A directory failure as an API error.
pub(crate) fn dir_error(e: DirError) -> ApiError {
    let status = match &e {
        DirError::Mutable(m) => mutable_status(m),
        DirError::NoEntry(_) => StatusCode::NOT_FOUND,
        DirError::NotADirectory(_) | DirError::BadName(_) => StatusCode::BAD_REQUEST,
        DirError::ReadOnly | DirError::VerifyOnly => StatusCode::FORBIDDEN,
        DirError::Exists(_) => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError(status, e.to_string())
}

fn parse(cap: &str) -> Result<Cap, ApiError> {
    cap.parse().map_err(bad)
}

fn now() -> u64 {
    cloudy_storage::store::now_secs()
}

fn read_form(cap: &Cap) -> Cap {
    match cap {
        Cap::Mutable(m) => Cap::Mutable(m.to_read()),
        other => other.clone(),
    }
}

fn kind_name(k: Kind) -> String {
    match k {
        Kind::File => "file".into(),
        Kind::Dir => "dir".into(),
    }
}

fn listing_json(cap: &Cap, l: Listing) -> DirListing {
    let writable = matches!(cap, Cap::Mutable(m) if m.write_key().is_some());
    DirListing {
        cap: cap.to_string(),
        read_cap: read_form(cap).to_string(),
        writable,
        writers: l.writers,
        entries: l
            .entries
            .into_iter()
            .map(|c| DirEntry {
                read_cap: read_form(&c.cap).to_string(),
                cap: c.cap.to_string(),
                name: c.name,
                kind: kind_name(c.kind),
                size: c.size,
                mtime: c.mtime,
                conflict: c.conflict,
            })
            .collect(),
        bad: l.bad,
    }
}

/// `path` split into its parent's components and its last name.
fn parent_and_name(path: &str) -> Result<(Vec<&str>, &str), ApiError> {
    let mut parts = split(path);
    let name = parts
        .pop()
        .ok_or_else(|| bad("the path names the directory itself, not an entry in it"))?;
    Ok((parts, name))
}

/// `POST /v1/fs/ls`.
pub(super) async fn ls(
    State(s): State<Shared>,
    Json(p): Json<FsPath>,
) -> Result<Json<DirListing>, ApiError> {
    let root = parse(&p.cap)?;
    let cap = s.dirs.lookup(&root, &split(&p.path)).await.map_err(dir_error)?;
    let l = s.dirs.list(&cap).await.map_err(dir_error)?;
    Ok(Json(listing_json(&cap, l)))
}

/// `POST /v1/fs/stat`.
pub(super) async fn stat(
    State(s): State<Shared>,
    Json(p): Json<FsPath>,
) -> Result<Json<Stat>, ApiError> {
    let root = parse(&p.cap)?;
    if split(&p.path).is_empty() {
        s.dirs.list(&root).await.map_err(dir_error)?;
        return Ok(Json(Stat { kind: "dir".into(), cap: root.to_string(), size: 0, mtime: 0 }));
    }
    let (parent, name) = parent_and_name(&p.path)?;
    let dir = s.dirs.lookup(&root, &parent).await.map_err(dir_error)?;
    let c = s.dirs.child(&dir, name).await.map_err(dir_error)?;
    Ok(Json(Stat { kind: kind_name(c.kind), cap: c.cap.to_string(), size: c.size, mtime: c.mtime }))
}

fn made(cap: Cap) -> Json<Made> {
    Json(Made { read_cap: read_form(&cap).to_string(), cap: cap.to_string() })
}

/// `POST /v1/fs/mkdir`.
pub(super) async fn mkdir(
    State(s): State<Shared>,
    Json(m): Json<Mkdir>,
) -> Result<Json<Made>, ApiError> {
    let cap = match &m.cap {
        None => {
            let cap = s.dirs.create().await.map_err(dir_error)?;
            // A new top directory (an alias) is maintained with all it holds.
            if s.maintain_uploads {
                if let Err(e) = s.trees.add(&cap) {
                    tracing::warn!("cannot add the directory to the maintained trees: {e}");
                }
            }
            cap
        }
        Some(root) => s.dirs.mkdir_p(&parse(root)?, &split(&m.path)).await.map_err(dir_error)?,
    };
    Ok(made(cap))
}

/// `POST /v1/fs/link`.
pub(super) async fn link(
    State(s): State<Shared>,
    Json(l): Json<Link>,
) -> Result<Json<DirListing>, ApiError> {
    let root = parse(&l.cap)?;
    let mut entries = Vec::with_capacity(l.entries.len());
    for e in l.entries {
        entries.push(NewEntry { cap: parse(&e.cap)?, name: e.name, size: e.size, mtime: e.mtime });
    }
    let dir = s.dirs.mkdir_p(&root, &split(&l.path)).await.map_err(dir_error)?;
    let after = s.dirs.link_many(&dir, entries, l.replace).await.map_err(dir_error)?;
    Ok(Json(listing_json(&dir, after)))
}

/// `POST /v1/fs/mv`.
pub(super) async fn mv(
    State(s): State<Shared>,
    Json(m): Json<Move>,
) -> Result<StatusCode, ApiError> {
    let (from_parent, from_name) = parent_and_name(&m.from.path)?;
    let from_dir = s.dirs.lookup(&parse(&m.from.cap)?, &from_parent).await.map_err(dir_error)?;
    let to_root = parse(&m.to.cap)?;
    // Into an existing directory under the same name, or to a new name.
    let (to_dir, to_name) = match s.dirs.lookup(&to_root, &split(&m.to.path)).await {
        Ok(c @ Cap::Mutable(MutCap { kind: MutKind::Dir, .. })) => (c, from_name.to_string()),
        _ => {
            let (parent, name) = parent_and_name(&m.to.path)?;
            (s.dirs.lookup(&to_root, &parent).await.map_err(dir_error)?, name.to_string())
        }
    };
    s.dirs.rename(&from_dir, from_name, &to_dir, &to_name).await.map_err(dir_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/fs/rm`.
pub(super) async fn rm(
    State(s): State<Shared>,
    Json(p): Json<FsPath>,
) -> Result<StatusCode, ApiError> {
    unlink_at(&s, &p.cap, &p.path).await
}

/// Removes the entry `path` names under directory `cap`.
async fn unlink_at(s: &Shared, cap: &str, path: &str) -> Result<StatusCode, ApiError> {
    let (parent, name) = parent_and_name(path)?;
    let dir = s.dirs.lookup(&parse(cap)?, &parent).await.map_err(dir_error)?;
    s.dirs.unlink(&dir, name).await.map_err(dir_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends what `cap` names: a directory as HTML or JSON, a file's contents.
/// `path` is where it was reached from (for links and the file name).
pub(super) async fn serve(
    s: &Shared,
    cap: Cap,
    root: &str,
    path: &str,
    mut q: GetQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    match &cap {
        Cap::Mutable(m) if m.kind == MutKind::Dir => {
            let l = s.dirs.list(&cap).await.map_err(dir_error)?;
            let listing = listing_json(&cap, l);
            if q.t.as_deref() == Some("json") {
                return Ok(Json(listing).into_response());
            }
            Ok(super::tree_html::page(&listing, root, path))
        }
        Cap::Mutable(m) => {
            let rk = m.read_key().ok_or_else(|| {
                bad("a verify capability cannot read a file; use the read capability")
            })?;
            let (_, contents) = s.storage.resolve(&rk).await.map_err(mutable_error)?;
            serve_contents(s, contents, q, headers).await
        }
        _ => {
            if q.filename.is_none() {
                q.filename = split(path).last().map(|n| n.to_string());
            }
            serve_contents(s, cap, q, headers).await
        }
    }
}

/// `GET /uri/{cap}/{*path}`.
pub(super) async fn get_path(
    State(s): State<Shared>,
    Path((cap, path)): Path<(String, String)>,
    Query(q): Query<GetQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let root = parse(&cap)?;
    let target = s.dirs.lookup(&root, &split(&path)).await.map_err(dir_error)?;
    serve(&s, target, &cap, &path, q, headers).await
}

/// Stores `body` as the new contents of the mutable file `key`.
async fn update_mutable(
    s: &Shared,
    m: &MutCap,
    q: PutQuery,
    headers: &HeaderMap,
    body: Body,
) -> Result<Json<Stored>, ApiError> {
    let key = m.write_key().ok_or_else(|| {
        ApiError(
            StatusCode::FORBIDDEN,
            "this is a read-only capability; changing the file needs its write capability".into(),
        )
    })?;
    let (contents, note) = store_body(s, q, headers, body).await?;
    s.storage.publish(key, &contents).await.map_err(mutable_error)?;
    let cap = Cap::Mutable(m.clone());
    Ok(Json(Stored {
        cap: cap.to_string(),
        verify_cap: Some(Cap::Mutable(m.to_verify()).to_string()),
        note,
    }))
}

/// `PUT /uri/{cap}`: new contents for a mutable file.
pub(super) async fn put_cap(
    State(s): State<Shared>,
    Path(cap): Path<String>,
    Query(q): Query<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Stored>, ApiError> {
    match parse(&cap)? {
        Cap::Mutable(m) if m.kind == MutKind::File => update_mutable(&s, &m, q, &headers, body).await,
        _ => Err(bad("PUT /uri/CAP changes a mutable file; give its write capability (or PUT /uri/DIRCAP/path to store into a directory)")),
    }
}

/// `PUT /uri/{dircap}/{*path}`: store the body at the path (parents made);
/// a mutable file already there is changed in place.
pub(super) async fn put_path(
    State(s): State<Shared>,
    Path((cap, path)): Path<(String, String)>,
    Query(q): Query<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Stored>, ApiError> {
    let root = parse(&cap)?;
    let (parent, name) = parent_and_name(&path)?;
    let dir = s.dirs.mkdir_p(&root, &parent).await.map_err(dir_error)?;
    if let Ok(existing) = s.dirs.child(&dir, name).await {
        if let Cap::Mutable(m) = &existing.cap {
            if m.kind == MutKind::File && m.write_key().is_some() {
                return update_mutable(&s, m, q, &headers, body).await;
            }
        }
    }
    let (contents, note) = store_body(&s, q, &headers, body).await?;
    let size = match &contents {
        Cap::Read(r) => r.size,
        Cap::Literal(d) => d.len() as u64,
        _ => 0,
    };
    let entry = NewEntry { name: name.to_string(), cap: contents.clone(), size, mtime: now() };
    s.dirs.link_many(&dir, vec![entry], true).await.map_err(dir_error)?;
    let verify_cap = match &contents {
        Cap::Read(r) => Some(Cap::Verify(r.verify_cap()).to_string()),
        _ => None,
    };
    Ok(Json(Stored { cap: contents.to_string(), verify_cap, note }))
}

/// `DELETE /uri/{dircap}/{*path}`.
pub(super) async fn delete_path(
    State(s): State<Shared>,
    Path((cap, path)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    unlink_at(&s, &cap, &path).await
}

/// Query of `POST /uri…`.
#[derive(serde::Deserialize)]
pub(super) struct PostQuery {
    t: Option<String>,
}

fn only_mkdir(q: &PostQuery) -> Result<(), ApiError> {
    match q.t.as_deref() {
        Some("mkdir") => Ok(()),
        _ => Err(bad("POST /uri… takes ?t=mkdir")),
    }
}

/// `POST /uri?t=mkdir`: a new, unlinked directory.
pub(super) async fn post_root(
    State(s): State<Shared>,
    Query(q): Query<PostQuery>,
) -> Result<Json<Made>, ApiError> {
    only_mkdir(&q)?;
    Ok(made(s.dirs.create().await.map_err(dir_error)?))
}

/// `POST /uri/{dircap}/{*path}?t=mkdir`.
pub(super) async fn post_path(
    State(s): State<Shared>,
    Path((cap, path)): Path<(String, String)>,
    Query(q): Query<PostQuery>,
) -> Result<Json<Made>, ApiError> {
    only_mkdir(&q)?;
    Ok(made(s.dirs.mkdir_p(&parse(&cap)?, &split(&path)).await.map_err(dir_error)?))
}

/// A `Content-Type` header for HTML.
pub(super) fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// `POST /v1/fs/deep-check`.
pub(super) async fn deep_check(
    State(s): State<Shared>,
    Json(d): Json<DeepCheck>,
) -> Result<Json<DeepCheckReport>, ApiError> {
    let root = s.dirs.lookup(&parse(&d.cap)?, &split(&d.path)).await.map_err(dir_error)?;
    let r = s.dirs.deep_check(&root, d.verify, d.repair).await;
    Ok(Json(DeepCheckReport {
        dirs: r.dirs,
        files: r.files,
        healthy: r.healthy,
        problems: r
            .problems
            .into_iter()
            .map(|p| DeepProblem {
                path: p.path,
                what: p.what,
                recoverable: p.recoverable,
                repaired: p.repaired,
            })
            .collect(),
    }))
}

fn read_aliases(s: &Shared) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
    match std::fs::read(&s.aliases) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{} is not valid: {e}", s.aliases.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(e) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", s.aliases.display()),
        )),
    }
}

/// `GET /v1/fs/aliases`: the home's aliases (name → directory capability).
pub(super) async fn aliases(
    State(s): State<Shared>,
) -> Result<Json<std::collections::BTreeMap<String, String>>, ApiError> {
    Ok(Json(read_aliases(&s)?))
}

/// Body of `POST /v1/fs/aliases`.
#[derive(serde::Deserialize)]
pub(super) struct NewAlias {
    name: String,
}

/// `POST /v1/fs/aliases`: a new directory under a new alias (as `alias
/// create`).
pub(super) async fn create_alias(
    State(s): State<Shared>,
    Json(a): Json<NewAlias>,
) -> Result<Json<Made>, ApiError> {
    if !super::api::valid_alias(&a.name) {
        return Err(bad(format!("{:?} cannot be an alias: use letters, digits, - and _", a.name)));
    }
    let mut all = read_aliases(&s)?;
    if all.contains_key(&a.name) {
        return Err(ApiError(StatusCode::CONFLICT, format!("alias {:?} already exists", a.name)));
    }
    let cap = s.dirs.create().await.map_err(dir_error)?;
    if s.maintain_uploads {
        if let Err(e) = s.trees.add(&cap) {
            tracing::warn!("cannot add the directory to the maintained trees: {e}");
        }
    }
    all.insert(a.name, cap.to_string());
    let json = serde_json::to_vec_pretty(&all).map_err(super::gateway::internal)?;
    cloudy_overlay::fsutil::write_whole(&s.aliases, &json, Some(0o600)).map_err(|e| {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{}: {e}", s.aliases.display()))
    })?;
    Ok(made(cap))
}
