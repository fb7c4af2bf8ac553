//! `/v1/streams` (live channels) and `GET /stream/{channel}`, the URL a
//! player opens.

use super::api::{ChannelRow, ChannelStatus, CreateChannel, FeedSummary, CHANNEL_HEADER};
use super::state::{ApiError, Shared};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cloudy_streaming::playout::Out;
use cloudy_streaming::service::StreamError;
use futures::StreamExt;

fn api_error(e: StreamError) -> ApiError {
    let status = match e {
        StreamError::Unknown(_) | StreamError::NotPublishing(_) => StatusCode::NOT_FOUND,
        StreamError::BadChannel(_) | StreamError::BadName(_) | StreamError::Ambiguous(..) => {
            StatusCode::BAD_REQUEST
        }
        StreamError::Busy(_) | StreamError::Over(_) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError(status, e.to_string())
}

pub(super) async fn list(State(s): State<Shared>) -> Json<Vec<ChannelRow>> {
    Json(s.streams.list().into_iter().map(Into::into).collect())
}

pub(super) async fn create(
    State(s): State<Shared>,
    Json(req): Json<CreateChannel>,
) -> Result<Json<ChannelStatus>, ApiError> {
    s.streams.create(&req.name).map(|c| Json(c.into())).map_err(api_error)
}

pub(super) async fn status(
    State(s): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<ChannelStatus>, ApiError> {
    s.streams.status(&id).map(|c| Json(c.into())).ok_or_else(|| {
        ApiError(StatusCode::NOT_FOUND, format!("this node takes no part in channel {id}"))
    })
}

/// The publisher's input, to its end.
pub(super) async fn input(
    State(s): State<Shared>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<FeedSummary>, ApiError> {
    let reader = tokio_util::io::StreamReader::new(
        body.into_data_stream().map(|r| r.map_err(std::io::Error::other)),
    );
    let summary = s.streams.feed(&id, reader).await.map_err(api_error)?;
    if let Some(e) = &summary.error {
        tracing::warn!(channel = %id, "publisher input broke off ({e}); the channel was ended");
    }
    Ok(Json(summary.into()))
}

/// Plays a channel (by id or name) as one long HTTP body.
pub(super) async fn play(
    State(s): State<Shared>,
    Path(channel): Path<String>,
) -> Result<Response, ApiError> {
    let player = s.streams.watch(&channel).await.map_err(api_error)?;
    let id = player.id.clone();
    let body = futures::stream::unfold(player, |mut p| async move {
        match p.rx.recv().await {
            Some(Out::Bytes(b)) => {
                Some((Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(b)), p))
            }
            Some(Out::End) | None => None,
        }
    });
    let headers = [
        (header::CONTENT_TYPE, "video/mp2t".to_string()),
        (header::CACHE_CONTROL, "no-store".to_string()),
    ];
    Ok((headers, [(CHANNEL_HEADER, id)], Body::from_stream(body)).into_response())
}
