//! Reads, and throws away, what a handler left of a large request body.
//!
//! A handler that refuses an upload (no token, not enough storage servers,
//! a full disk, a bad capability) answers at once and drops the body. The
//! connection then closed with the rest of the file unread, and a client
//! still sending it got "broken pipe" on its next write instead of the
//! answer that said why. Large bodies are therefore read by a task of their
//! own that feeds the handler; once the handler lets go, the task reads on
//! and discards, for a bounded time and size, so that the client finishes
//! sending and reads the answer.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;

/// Bodies smaller than this fit the sockets' buffers: nothing to do.
const SMALL: u64 = 256 << 10;
/// How long a refused body is read for, at most.
const DRAIN_FOR: Duration = Duration::from_secs(10);
/// How much of a refused body is read, at most.
const DRAIN_MAX: u64 = 1 << 30;

/// Middleware: large (or unsized) bodies go through [`feed`].
pub(super) async fn drain_unread(req: Request, next: Next) -> Response {
    if !large(&req) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(feed(body, tx));
    let body = Body::from_stream(chunks_of(rx));
    next.run(Request::from_parts(parts, body)).await
}

/// Whether the request's body is larger than [`SMALL`] or of unknown size.
fn large(req: &Request) -> bool {
    let h = req.headers();
    match h.get(header::CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(|v| v.parse::<u64>().ok()).is_none_or(|n| n > SMALL),
        None => h.contains_key(header::TRANSFER_ENCODING),
    }
}

type Chunk = Result<Bytes, axum::Error>;

/// Passes the body on to the handler; if the handler drops it before its
/// end, reads the rest and throws it away (within the bounds above).
async fn feed(body: Body, tx: mpsc::Sender<Chunk>) {
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() {
            break;
        }
        if failed {
            return;
        }
    }
    let mut left = DRAIN_MAX;
    let drain = async {
        while let Some(Ok(chunk)) = chunks.next().await {
            left = left.saturating_sub(chunk.len() as u64);
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_FOR, drain).await;
}

/// The receiving end as a stream of chunks.
fn chunks_of(mut rx: mpsc::Receiver<Chunk>) -> impl futures::Stream<Item = Chunk> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
