//! The web dashboard, served on the control API's port: everything it
//! needs is embedded in the binary (`web/`), nothing comes from the
//! internet.
//!
//! - `GET /` is the dashboard once logged in, else the login page.
//!   `POST /ui/login` takes the API token (from `api.token`) and answers
//!   with a session cookie (`HttpOnly`, `SameSite=Strict`) derived from it;
//!   `POST /ui/logout` (from the page, so with the CSRF header) drops it.
//! - With the cookie, the page uses the same API as the CLI. Requests that
//!   change something must also carry `x-cloudy-csrf: 1` and, if the
//!   browser sends an `Origin`, come from the node's own origin; a custom
//!   header cannot be sent by another origin's page without a CORS
//!   preflight, and the API answers none (no CORS headers at all). So
//!   neither a web page elsewhere nor another local user's page on another
//!   port can act on the node.
//! - `GET /ui/overview` is everything the page shows, as JSON;
//!   `GET /ui/events` streams it (server-sent events) when it changes.

use super::state::{ApiError, Shared};
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const INDEX: &str = include_str!("web/index.html");
const LOGIN: &str = include_str!("web/login.html");
const APP_JS: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/style.css");

/// The session cookie's name.
pub const COOKIE: &str = "cloudy_session";
/// The header that state-changing requests with the cookie must carry.
pub const CSRF_HEADER: &str = "x-cloudy-csrf";
/// How often the event stream looks for changes.
const EVENT_PERIOD: Duration = Duration::from_secs(1);

/// The session cookie's value for `token`: a key derived from it, so the
/// cookie is not the token itself.
pub fn session_value(token: &str) -> String {
    hex::encode(blake3::derive_key("cloudy-p2p dashboard session v1", token.as_bytes()))
}

/// The session cookie in `headers`, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')))
}

/// Paths served without a session: the pages decide themselves.
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/" | "/ui/login"
            | "/ui/app.js"
            | "/ui/style.css"
            | "/ui/player.js"
            | "/ui/vendor/mux-mp4.min.js"
    ) || path.starts_with("/watch/")
}

/// Whether `headers` carry this node's session cookie.
pub(crate) fn logged_in(s: &Shared, headers: &HeaderMap) -> bool {
    session_cookie(headers).is_some_and(|c| {
        super::state::constant_time_eq(c.as_bytes(), session_value(&s.token).as_bytes())
    })
}

fn login_page(error: &str) -> Html<String> {
    login_page_to(error, "/")
}

/// The login page, which goes on to `next` (a path of this node).
pub(crate) fn login_page_to(error: &str, next: &str) -> Html<String> {
    let next = next.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
    Html(LOGIN.replace("@ERROR@", error).replace("@NEXT@", &next))
}

/// Where to go after logging in: `next` if it is a path of this node.
fn after_login(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

pub(crate) async fn index(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if logged_in(&s, &headers) {
        Html(INDEX).into_response()
    } else {
        login_page("").into_response()
    }
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    /// Where to go then (a path of this node).
    next: Option<String>,
}

pub(crate) async fn login(State(s): State<Shared>, Form(f): Form<LoginForm>) -> Response {
    let next = after_login(f.next.as_deref());
    if !super::state::constant_time_eq(f.token.trim().as_bytes(), s.token.as_bytes()) {
        let page = login_page_to("That is not this node's API token.", next);
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=31536000",
        session_value(&s.token)
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
}

pub(crate) async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

pub(crate) async fn app_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS).into_response()
}

pub(crate) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// This node's share store.
#[derive(Serialize)]
struct StorageUse {
    /// It serves storage.
    server: bool,
    used: u64,
    free: u64,
}

/// Everything the dashboard shows.
#[derive(Serialize)]
struct Overview {
    status: super::api::Status,
    peers: Vec<super::api::PeerRow>,
    services: Vec<super::api::ServiceRow>,
    storage: StorageUse,
    maintained: Vec<super::api::MaintainedRow>,
    folders: Vec<super::api::FolderRow>,
    channels: Vec<super::api::ChannelRow>,
    community: super::api::CommunityStatus,
    videos: super::api::Videos,
}

async fn overview_json(s: &Shared) -> Result<String, ApiError> {
    let st = || State(s.clone());
    let store = s.storage.local_store();
    let o = Overview {
        status: super::community::status(st()).await.0,
        peers: super::community::peers(st()).await.0,
        services: super::community::services(
            st(),
            axum::extract::Query(super::community::ServicesQuery { name: None }),
        )
        .await
        .0,
        storage: StorageUse {
            server: store.is_some(),
            used: store.map_or(0, |s| s.used()),
            free: store.map_or(0, |s| s.free()),
        },
        maintained: super::upkeep::list(st()).await?.0,
        folders: super::sync::list(st()).await.0,
        community: super::community_gate::status(st()).await.0,
        channels: super::streams::list(st()).await.0,
        videos: super::vod::list(st(), axum::extract::Query(Default::default())).await.0,
    };
    serde_json::to_string(&o)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

pub(crate) async fn overview(State(s): State<Shared>) -> Result<Response, ApiError> {
    let json = overview_json(&s).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// The overview as server-sent events: one at once, then one whenever it
/// changed (uptime aside), looked at every second.
pub(crate) async fn events(
    State(s): State<Shared>,
) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let stream =
        futures::stream::unfold((s, String::new(), true), |(s, last, mut first)| async move {
            loop {
                if !first {
                    tokio::time::sleep(EVENT_PERIOD).await;
                }
                first = false;
                if let Ok(json) = overview_json(&s).await {
                    let key = without_uptime(&json);
                    if key != last {
                        return Some((
                            Ok(Event::default().event("overview").data(json)),
                            (s, key, false),
                        ));
                    }
                }
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The overview without the ever-changing uptime and heard-ago fields.
fn without_uptime(json: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    v["status"]["uptime_secs"] = serde_json::Value::Null;
    if let Some(peers) = v["peers"].as_array_mut() {
        for p in peers {
            p["last_heard_ms"] = serde_json::Value::Null;
        }
    }
    v.to_string()
}

/// `Json` of an error the page shows.
pub(crate) fn refused(why: &str) -> Response {
    (StatusCode::FORBIDDEN, Json(super::api::ErrorBody { error: why.to_string() })).into_response()
}
