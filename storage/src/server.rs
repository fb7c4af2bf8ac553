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

use crate::mutable::Slot;
use crate::protocol::{read_frame_paced, write_frame, ErrorKind, ProtocolError, Request, Response};
use crate::protocol::{FoundMeta, FOUND_BLOCK_MAX, FOUND_META_BUDGET};
use crate::store::now_secs;
use crate::store::{PipedWriter, ShareStore, StorageIndex, StoreError, LEASE_SECS};
use crate::store::{SlotPut, SlotRow, MAX_WRITERS};
use cloudy_overlay::limits::Pace;
use cloudy_overlay::PeerId;
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
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ProtocolError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ProtocolError::Io(std::io::Error::other(e)))
}

/// Serves requests of peer `owner` until it closes the stream; shares it
/// uploads or renews carry its lease. With a `quota`, an upload that would
/// take the bytes under `owner`'s leases past it is refused.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    store: SharedStore,
    owner: &str,
    stream: &mut S,
    quota: Option<u64>,
    pace: Option<(&Pace, PeerId)>,
) -> Result<(), ProtocolError> {
    while let Some(frame) = read_frame_paced(stream, pace).await? {
        if let Some((pace, peer)) = pace {
            pace.request(peer).await?;
        }
        match Request::decode(&frame)? {
            Request::Put { si, share, len } => {
                if let Some(refused) = over_quota(&store, owner, len, quota).await? {
                    write_frame(stream, &refused.encode()).await?;
                    continue;
                }
                upload(store.clone(), owner, stream, (si, share, len), pace).await?
            }
            Request::SlotPut(bytes) => {
                let len = bytes.len() as u64;
                let resp = match over_quota(&store, owner, len, quota).await? {
                    Some(refused) => refused,
                    None => put_slot(store.clone(), owner, bytes).await?,
                };
                write_frame(stream, &resp.encode()).await?;
            }
            Request::Usage => {
                let bytes = used_by(&store, owner).await?;
                let quota = quota.unwrap_or(u64::MAX);
                write_frame(stream, &Response::Usage { bytes, quota }.encode()).await?;
            }
            req @ (Request::Block(_) | Request::Finish { .. }) => {
                write_frame(stream, &answer(store.clone(), owner, req).await?.encode()).await?;
                return Err(ProtocolError::Malformed("block or finish outside an upload".into()));
            }
            req => write_frame(stream, &answer(store.clone(), owner, req).await?.encode()).await?,
        }
    }
    Ok(())
}

/// Gives `owner` a lease on the shares of `si` held in `store`, ending
/// [`LEASE_SECS`] from now.
pub async fn renew(
    store: SharedStore,
    owner: &str,
    si: StorageIndex,
) -> Result<Response, ProtocolError> {
    let until = now_secs() + LEASE_SECS;
    let owner = owner.to_string();
    Ok(match blocking(move || store.renew(&si, &owner, until)).await? {
        Ok(0) => Response::Error {
            kind: ErrorKind::NotFound,
            message: format!("no share of {} here", hex::encode(si)),
        },
        Ok(n) => Response::Renewed { shares: n.min(255) as u8, until },
        Err(e) => refusal(&e),
    })
}

/// Removes every share whose leases all ended before `now` (lease
/// expiry, when the server turned it on); returns what it removed.
pub fn collect_garbage(
    store: &dyn ShareStore,
    now: u64,
) -> Result<Vec<(StorageIndex, u8)>, StoreError> {
    let mut removed = Vec::new();
    store.expire_slots(now)?;
    for si in store.expired(now)? {
        for share in store.list(&si)? {
            if store.remove(&si, share)? {
                removed.push((si, share));
            }
        }
    }
    Ok(removed)
}

/// Verifies a slot and keeps it unless a newer one is held.
async fn put_slot(
    store: SharedStore,
    owner: &str,
    bytes: Vec<u8>,
) -> Result<Response, ProtocolError> {
    let slot = match Slot::decode(&bytes).and_then(|s| s.verify().map(|()| s)) {
        Ok(s) => s,
        Err(e) => {
            return Ok(Response::Error { kind: ErrorKind::BadRequest, message: e.to_string() })
        }
    };
    let row = SlotRow {
        si: slot.si,
        writer: slot.writer,
        seqnum: slot.seqnum,
        bytes,
        owner: owner.to_string(),
        until: now_secs() + LEASE_SECS,
    };
    Ok(match blocking(move || store.put_slot(row)).await? {
        Ok(SlotPut::Stored) => Response::SlotStored,
        Ok(SlotPut::Stale { held }) => Response::SlotStale { held },
        Ok(SlotPut::TooManyWriters) => Response::Error {
            kind: ErrorKind::Full,
            message: format!("this server keeps at most {MAX_WRITERS} writers per directory"),
        },
        Err(e) => refusal(&e),
    })
}

/// Bytes of the shares under `owner`'s leases in `store`.
pub async fn used_by(store: &SharedStore, owner: &str) -> Result<u64, ProtocolError> {
    let (s, o) = (store.clone(), owner.to_string());
    Ok(blocking(move || s.used_by(&o)).await?.unwrap_or(0))
}

/// The refusal of a `len`-byte share that would take `owner` past its
/// `quota` here, if it would.
async fn over_quota(
    store: &SharedStore,
    owner: &str,
    len: u64,
    quota: Option<u64>,
) -> Result<Option<Response>, ProtocolError> {
    let Some(quota) = quota else { return Ok(None) };
    let used = used_by(store, owner).await?;
    if used.saturating_add(len) <= quota {
        return Ok(None);
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let message = format!(
        "member quota reached: this server keeps at most {:.1} MiB for each member and holds {:.1} MiB for {owner}; the share needs {:.1} MiB more",
        mib(quota),
        mib(used),
        mib(len)
    );
    Ok(Some(Response::Error { kind: ErrorKind::Full, message }))
}

/// Answers a request outside an upload (`Meta`, `Get`, `List`, `Renew`)
/// from `store` for peer `owner`; anything else is a bad request here.
/// Used by sessions and for the node's own store.
pub async fn answer(
    store: SharedStore,
    owner: &str,
    req: Request,
) -> Result<Response, ProtocolError> {
    let resp = match req {
        Request::Renew { si } => renew(store, owner, si).await?,
        Request::Meta { si, share } => match blocking(move || store.read_meta(&si, share)).await? {
            Ok(m) => Response::Meta { root: m.root, hashes: m.hashes },
            Err(e) => refusal(&e),
        },
        Request::Get { si, share, segment } => {
            match blocking(move || store.read_block(&si, share, segment)).await? {
                Ok(b) => Response::Block(b),
                Err(e) => refusal(&e),
            }
        }
        Request::List { si } => match blocking(move || store.list(&si)).await? {
            Ok(v) => Response::Shares(v),
            Err(e) => refusal(&e),
        },
        Request::Find { si } => match blocking(move || find(&store, &si)).await? {
            Ok(found) => found,
            Err(e) => refusal(&e),
        },
        Request::Usage => Response::Usage { bytes: used_by(&store, owner).await?, quota: u64::MAX },
        Request::SlotPut(bytes) => put_slot(store, owner, bytes).await?,
        Request::Slots { si } => match blocking(move || store.slots(&si)).await? {
            Ok(v) => Response::Slots(v),
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
        Request::Find { .. } => "find",
        Request::Renew { .. } => "renew",
        Request::Usage => "usage",
        Request::SlotPut(_) => "slot put",
        Request::Slots { .. } => "slots",
    }
}

/// The answer to `Find`: the shares of `si` held here, with the root
/// record and hash list of each that reads back and fits in
/// [`FOUND_META_BUDGET`], and its block if it is a one-segment share of at
/// most [`FOUND_BLOCK_MAX`] bytes. A share whose record does not read
/// (damaged) is listed without it, so that the client's `Meta` gets the
/// refusal that names the damage; a block that does not read is left out
/// (the client asks for it and gets the refusal).
fn find(store: &SharedStore, si: &StorageIndex) -> Result<Response, StoreError> {
    let shares = store.list(si)?;
    let mut metas = Vec::new();
    let mut budget = FOUND_META_BUDGET;
    for &share in &shares {
        let Ok(m) = store.read_meta(si, share) else { continue };
        let size = m.root.len() + 32 * m.hashes.len();
        if size > budget {
            break;
        }
        budget -= size;
        let block = match m.hashes.len() {
            1 => store.read_block(si, share, 0).ok(),
            _ => None,
        }
        .filter(|b| b.len() <= FOUND_BLOCK_MAX.min(budget));
        budget -= block.as_ref().map_or(0, Vec::len);
        metas.push(FoundMeta { share, root: m.root, hashes: m.hashes, block });
    }
    Ok(Response::Found { shares, metas })
}

/// One upload: `Ready`, blocks, `Finish`, `Stored` (or a refusal).
async fn upload<S: AsyncRead + AsyncWrite + Unpin>(
    store: SharedStore,
    owner: &str,
    stream: &mut S,
    (si, share, len): (crate::store::StorageIndex, u8, u64),
    pace: Option<(&Pace, PeerId)>,
) -> Result<(), ProtocolError> {
    let creating = store.clone();
    let mut writer = match blocking(move || creating.create(&si, share, len)).await? {
        Ok(w) => PipedWriter::new(w),
        Err(e) => return write_frame(stream, &refusal(&e).encode()).await,
    };
    write_frame(stream, &Response::Ready.encode()).await?;
    loop {
        let Some(frame) = read_frame_paced(stream, pace).await? else {
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
                    Ok(()) => match renew(store, owner, si).await? {
                        Response::Renewed { .. } => Response::Stored,
                        other => other,
                    },
                    Err(e) => refusal(&e),
                };
                return write_frame(stream, &resp.encode()).await;
            }
            other => {
                return Err(ProtocolError::Malformed(format!(
                    "{other:?} in the middle of an upload"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests;
