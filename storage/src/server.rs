//! The storage server side of [`crate::protocol`]: serves one session on
//! any byte stream (an overlay stream in the node, a pipe in tests).
//!
//! - Requests are answered in order. Store calls block on disk, so they run
//!   on tokio's blocking pool, never on the async threads.
//! - An upload (`Put` … `Finish`) writes through a [`PipedWriter`]; if the
//!   client vanishes or misbehaves mid-upload the writer is dropped and
//!   nothing becomes visible.
//! - A malformed frame ends the session with an error the caller logs; the
//!   store is untouched.

use crate::protocol::{read_frame, write_frame, ErrorKind, ProtocolError, Request, Response};
use crate::store::{PipedWriter, ShareStore, StoreError};
use futures::{AsyncRead, AsyncWrite};
use std::sync::Arc;

/// A store shared by the sessions of one server.
pub type SharedStore = Arc<dyn ShareStore>;

fn refusal(e: &StoreError) -> Response {
    let kind = match e {
        StoreError::Full { .. } => ErrorKind::Full,
        StoreError::NotFound { .. } => ErrorKind::NotFound,
        StoreError::Damaged { .. } => ErrorKind::Damaged,
        StoreError::BadUpload { .. } => ErrorKind::BadRequest,
        _ => ErrorKind::Internal,
    };
    Response::Error { kind, message: e.to_string() }
}

/// Runs `f` on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ProtocolError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ProtocolError::Io(std::io::Error::other(e)))
}

/// Serves requests until the client closes the stream.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(store: SharedStore, stream: &mut S) -> Result<(), ProtocolError> {
    while let Some(frame) = read_frame(stream).await? {
        match Request::decode(&frame)? {
            Request::Put { si, share, len } => upload(store.clone(), stream, si, share, len).await?,
            req @ (Request::Block(_) | Request::Finish { .. }) => {
                write_frame(stream, &answer(store.clone(), req).await?.encode()).await?;
                return Err(ProtocolError::Malformed("block or finish outside an upload".into()));
            }
            req => write_frame(stream, &answer(store.clone(), req).await?.encode()).await?,
        }
    }
    Ok(())
}

/// Answers a read request (`Meta`, `Get`, `List`) from `store`; anything
/// else is a bad request here. Used by sessions and for the node's own store.
pub async fn answer(store: SharedStore, req: Request) -> Result<Response, ProtocolError> {
    let resp = match req {
        Request::Meta { si, share } => match blocking(move || store.read_meta(&si, share)).await? {
            Ok(m) => Response::Meta { root: m.root, hashes: m.hashes },
            Err(e) => refusal(&e),
        },
        Request::Get { si, share, segment } => match blocking(move || store.read_block(&si, share, segment)).await? {
            Ok(b) => Response::Block(b),
            Err(e) => refusal(&e),
        },
        Request::List { si } => match blocking(move || store.list(&si)).await? {
            Ok(v) => Response::Shares(v),
            Err(e) => refusal(&e),
        },
        other => {
            let message = format!("{} outside an upload", request_name(&other));
            Response::Error { kind: ErrorKind::BadRequest, message }
        }
    };
    Ok(resp)
}

fn request_name(r: &Request) -> &'static str {
    match r {
        Request::Put { .. } => "put",
        Request::Block(_) => "block",
        Request::Finish { .. } => "finish",
        Request::Meta { .. } => "meta",
        Request::Get { .. } => "get",
        Request::List { .. } => "list",
    }
}

/// One upload: `Ready`, blocks, `Finish`, `Stored` (or a refusal).
async fn upload<S: AsyncRead + AsyncWrite + Unpin>(
    store: SharedStore,
    stream: &mut S,
    si: crate::store::StorageIndex,
    share: u8,
    len: u64,
) -> Result<(), ProtocolError> {
    let mut writer = match blocking(move || store.create(&si, share, len)).await? {
        Ok(w) => PipedWriter::new(w),
        Err(e) => return write_frame(stream, &refusal(&e).encode()).await,
    };
    write_frame(stream, &Response::Ready.encode()).await?;
    loop {
        let Some(frame) = read_frame(stream).await? else {
            return Err(ProtocolError::Malformed("stream ended in the middle of an upload".into()));
        };
        match Request::decode(&frame)? {
            Request::Block(b) => {
                if let Err(e) = writer.write(b).await {
                    write_frame(stream, &refusal(&e).encode()).await?;
                    return Err(ProtocolError::Malformed(e.to_string()));
                }
            }
            Request::Finish { root, hashes } => {
                let resp = match writer.finish(root, hashes).await {
                    Ok(()) => Response::Stored,
                    Err(e) => refusal(&e),
                };
                return write_frame(stream, &resp.encode()).await;
            }
            other => return Err(ProtocolError::Malformed(format!("{other:?} in the middle of an upload"))),
        }
    }
}

#[cfg(test)]
mod tests;
