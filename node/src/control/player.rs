//! The player page (`/watch/stream/ID`, `/watch/vod/ID`): plays a live
//! channel or a video in the browser, with the dashboard's session. The
//! page, its script and the vendored remuxer (mux.js) are embedded in the
//! binary. See `web/player.js` and DESIGN/streaming.md.

use super::state::Shared;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

const PLAYER: &str = include_str!("web/player.html");
const PLAYER_JS: &str = include_str!("web/player.js");
const MUX_JS: &str = include_str!("web/vendor/mux-mp4.min.js");

/// `text` with the characters HTML gives a meaning escaped.
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The page for `kind` (`stream` or `vod`) and `id`; the login page (which
/// comes back here) without a session.
pub(crate) async fn page(
    State(s): State<Shared>,
    Path((kind, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if kind != "stream" && kind != "vod" {
        let msg = format!("no player for {kind:?}: /watch/stream/CHANNEL or /watch/vod/VIDEO");
        return (StatusCode::NOT_FOUND, msg).into_response();
    }
    if !super::ui::logged_in(&s, &headers) {
        let back = format!("/watch/{kind}/{}", super::client::encode(&id));
        return super::ui::login_page_to("", &back).into_response();
    }
    Html(PLAYER.replace("@KIND@", &kind).replace("@ID@", &escape(&id))).into_response()
}

pub(crate) async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], PLAYER_JS).into_response()
}

pub(crate) async fn remuxer() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
        (header::CACHE_CONTROL, "max-age=86400"),
    ];
    (headers, MUX_JS).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_escaped_in_the_page() {
        assert_eq!(escape(r#"<x y="1">&'"#), "&lt;x y=&quot;1&quot;&gt;&amp;&#39;");
    }
}
