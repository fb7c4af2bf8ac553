//! `/v1/vod` (publish, list) and `GET /vod/{id}`, with HTTP Range so a
//! player can seek.

use super::api::{PublishVideo, Published, Videos};
use super::state::{ApiError, Shared};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use cloudy_streaming::vod::manifest::VodId;
use cloudy_streaming::vod::probe::probe;
use cloudy_streaming::vod::service::VodError;
use futures::StreamExt;

fn api_error(e: VodError) -> ApiError {
    let status = match e {
        VodError::Manifest(cloudy_streaming::vod::manifest::ManifestError::BadId(_)) => {
            StatusCode::BAD_REQUEST
        }
        VodError::Unknown(_) => StatusCode::NOT_FOUND,
        VodError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        VodError::Cache(cloudy_streaming::vod::cache::CacheError::Io { .. }) => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError(status, e.to_string())
}

/// `GET /v1/vod` query.
#[derive(serde::Deserialize, Default)]
pub(super) struct ListQuery {
    /// Also look up who holds each catalogue video (a DHT query each).
    #[serde(default)]
    holders: bool,
}

/// How long the holders of one video are looked up.
const HOLDERS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

pub(super) async fn list(
    State(s): State<Shared>,
    axum::extract::Query(query): axum::extract::Query<ListQuery>,
) -> Json<Videos> {
    let here = s.vod.list();
    let mut catalogue = super::catalogue::rows(&s, &here);
    if query.holders {
        let overlay = &s.overlay;
        let lookups = catalogue.iter().map(|r| async move {
            let id = VodId::parse(&r.id).ok()?;
            let found = tokio::time::timeout(HOLDERS_TIMEOUT, overlay.get_providers(id.dht_key()));
            let mut peers: Vec<String> =
                found.await.ok()?.ok()?.into_iter().map(|p| p.to_string()).collect();
            peers.sort();
            Some(peers)
        });
        let found = futures::future::join_all(lookups).await;
        for (row, holders) in catalogue.iter_mut().zip(found) {
            row.holders = holders;
        }
    }
    Json(Videos {
        videos: here.into_iter().map(Into::into).collect(),
        catalogue,
        stats: s.vod.stats().into(),
    })
}

pub(super) async fn publish(
    State(s): State<Shared>,
    Json(req): Json<PublishVideo>,
) -> Result<Json<Published>, ApiError> {
    let path = std::path::PathBuf::from(&req.path);
    let m = s.vod.publish(&path).await.map_err(api_error)?;
    let id = m.id().to_string();
    let probed = path.clone();
    let found = tokio::task::spawn_blocking(move || probe(&probed))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{}: {e}", path.display())))?;
    let stem = path.file_stem().map_or(id.clone(), |s| s.to_string_lossy().into_owned());
    let title = req.title.filter(|t| !t.trim().is_empty()).unwrap_or(stem);
    let description = req.description.unwrap_or_default();
    let meta = super::catalogue::entry(&found, &title, &description, m.size);
    let name = format!("{}{id}", super::api::CATALOGUE_PREFIX);
    let failed = |e: String| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e);
    s.overlay.announce(&name, meta.clone()).await.map_err(|e| failed(e.to_string()))?;
    s.announcements.insert(name, meta).await.map_err(|e| failed(e.to_string()))?;
    Ok(Json(Published { id, size: m.size, pieces: m.pieces(), found: found.describe() }))
}

pub(super) async fn get(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = VodId::parse(&id).map_err(|e| api_error(e.into()))?;
    let m = s.vod.manifest(&id).await.map_err(api_error)?;
    let size = m.size;
    let Some((start, end, partial)) = super::range::asked(&headers, size) else {
        return Ok(super::range::unsatisfiable(size));
    };
    // The first piece before the headers: a video nobody can serve is an
    // error status, not a truncated body.
    let mut bytes = s.vod.read(m, start..end).boxed();
    let first = match bytes.next().await {
        Some(r) => r.map_err(api_error)?,
        None => Vec::new(),
    };
    let rest = bytes.map(|r| {
        r.map_err(|e| {
            tracing::warn!("video download stopped: {e}");
            std::io::Error::other(e.to_string())
        })
    });
    let body = futures::stream::once(async move { Ok(first) }).chain(rest);
    let resp = super::range::headers(
        Response::builder().header(
            header::CONTENT_TYPE,
            super::catalogue::container_of(&s, &id.to_string()).content_type(),
        ),
        start,
        end,
        size,
        partial,
    );
    resp.body(Body::from_stream(body))
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
