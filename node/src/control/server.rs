//! The control API server (axum), bound to a local address and guarded by
//! the token in `api.token`: the routes and the guard. The handlers live
//! by subject (`community`, `gateway`, `sync`, `streams`, `vod`, `dht`,
//! `upkeep`, `metrics`, `ui`); what they share is in `state`.

use super::community::{announce, peer, peers, services, shutdown, status, withdraw};
pub use super::state::ApiState;
use super::state::Shared;
use super::state::{constant_time_eq, ApiError};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

/// The routes of the API (see [`super::api`]).
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers))
        .route("/v1/peers/{id}", get(peer))
        .route("/v1/services", get(services).post(announce))
        .route("/v1/services/{name}", axum::routing::delete(withdraw))
        .route("/v1/shutdown", post(shutdown))
        .route("/v1/community", get(super::community_gate::status))
        .route("/v1/community/invites", post(super::community_gate::invite))
        .route("/v1/community/evict", post(super::community_gate::evict))
        .route("/v1/community/admins", post(super::community_gate::add_admin))
        .route("/v1/community/admins/remove", post(super::community_gate::remove_admin))
        .route("/v1/usage", get(super::usage::usage))
        .route("/metrics", get(super::metrics::metrics))
        .route("/", get(super::ui::index))
        .route("/ui/login", post(super::ui::login))
        .route("/ui/logout", post(super::ui::logout))
        .route("/ui/app.js", get(super::ui::app_js))
        .route("/ui/style.css", get(super::ui::style))
        .route("/ui/player.js", get(super::player::script))
        .route("/ui/vendor/mux-mp4.min.js", get(super::player::remuxer))
        .route("/watch/{kind}/{id}", get(super::player::page))
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
        .route("/v1/maintained/trees", get(super::upkeep::trees))
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
        .route("/uri", axum::routing::put(super::gateway::put).post(super::tree::post_root))
        .route("/uri/{cap}", get(super::gateway::get).put(super::tree::put_cap))
        .route(
            "/uri/{cap}/{*path}",
            get(super::tree::get_path)
                .put(super::tree::put_path)
                .delete(super::tree::delete_path)
                .post(super::tree::post_path),
        )
        .route("/dav/{cap}", axum::routing::any(super::dav::handle))
        .route("/dav/{cap}/", axum::routing::any(super::dav::handle))
        .route("/dav/{cap}/{*path}", axum::routing::any(super::dav::handle))
        .route("/v1/fs/aliases", get(super::tree::aliases).post(super::tree::create_alias))
        .route("/v1/fs/ls", post(super::tree::ls))
        .route("/v1/fs/stat", post(super::tree::stat))
        .route("/v1/fs/mkdir", post(super::tree::mkdir))
        .route("/v1/fs/link", post(super::tree::link))
        .route("/v1/fs/mv", post(super::tree::mv))
        .route("/v1/fs/rm", post(super::tree::rm))
        .route("/v1/fs/deep-check", post(super::tree::deep_check))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        // Outermost: a body a handler (or the guard) refused is still read.
        .layer(middleware::from_fn(super::drain::drain_unread))
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
