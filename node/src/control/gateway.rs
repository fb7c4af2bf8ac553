//! The storage gateway on the control API's port: `PUT /uri` stores the
//! request body and answers its capability; `GET /uri/{cap}` streams the
//! file back (with Content-Length, so a cut transfer is detectable).

use super::api::Stored;
use super::state::{ApiError, Shared};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use cloudy_storage::capability::{Cap, ReadCap};
use cloudy_storage::client::{PutError, PutOptions};
use cloudy_storage::coding::Params;
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Query of `PUT /uri`.
#[derive(Default, Deserialize)]
pub(super) struct PutQuery {
    k: Option<u8>,
    n: Option<u8>,
    happy: Option<usize>,
    #[serde(default)]
    random_key: bool,
    /// Make a new mutable file holding the body (answers its write
    /// capability).
    #[serde(default)]
    mutable: bool,
}

pub(super) fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// The request body as an `AsyncRead`.
fn body_reader(body: Body) -> impl tokio::io::AsyncRead + Send + Unpin + 'static {
    tokio_util::io::StreamReader::new(
        body.into_data_stream().map(|r| r.map_err(std::io::Error::other)),
    )
}

/// Bodies up to this size are hashed in memory rather than spooled.
const IN_MEMORY_MAX: u64 = 4 << 20;

/// Spools the body under `data/spool/` (hashing it for the convergent key
/// unless the key is random), then encodes from the spool.
async fn spool_and_put(
    s: &Shared,
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    opts: PutOptions,
) -> Result<Result<Cap, PutError>, ApiError> {
    let spool = tempfile::NamedTempFile::new_in(&s.spool).map_err(internal)?;
    let mut file = tokio::fs::File::create(spool.path()).await.map_err(internal)?;
    let mut hasher = (!opts.random_key).then(|| s.storage.convergence(opts.params));
    let mut buf = vec![0u8; 256 << 10];
    let mut size = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| bad(format!("reading the request body: {e}")))?;
        if n == 0 {
            break;
        }
        if let Some(h) = &mut hasher {
            h.update(&buf[..n]);
        }
        file.write_all(&buf[..n])
            .await
            .map_err(|e| ApiError(StatusCode::INSUFFICIENT_STORAGE, e.to_string()))?;
        size += n as u64;
    }
    file.flush().await.map_err(|e| ApiError(StatusCode::INSUFFICIENT_STORAGE, e.to_string()))?;
    let source = std::fs::File::open(spool.path()).map_err(internal)?;
    let key = hasher.map(|h| h.finish());
    Ok(s.storage.put_source(Box::new(source), "spooled request body", size, key, opts).await)
}

/// `PUT /uri`, counted in the metrics.
pub(super) async fn put(
    state: State<Shared>,
    q: Query<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<Stored>, ApiError> {
    let requests = state.requests.clone();
    let r = put_file(state, q, headers, body).await;
    requests.put(&r);
    r
}

async fn put_file(
    State(s): State<Shared>,
    Query(q): Query<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<Stored>, ApiError> {
    let mutable = q.mutable;
    let (cap, note) = store_body(&s, q, &headers, body).await?;
    if mutable {
        let key = cloudy_storage::mutable::WriteKey::generate();
        s.storage.publish(&key, &cap).await.map_err(super::tree::mutable_error)?;
        let m = cloudy_storage::capability::MutCap {
            kind: cloudy_storage::capability::MutKind::File,
            access: cloudy_storage::capability::Access::Write(key),
        };
        let verify_cap = Some(Cap::Mutable(m.to_verify()).to_string());
        return Ok(axum::Json(Stored { cap: Cap::Mutable(m).to_string(), verify_cap, note }));
    }
    let verify_cap = match &cap {
        Cap::Read(r) => {
            if s.maintain_uploads {
                if let Err(e) = s.upkeep.add(&r.verify_cap()) {
                    tracing::warn!("cannot add the upload to the maintained list: {e}");
                }
            }
            Some(Cap::Verify(r.verify_cap()).to_string())
        }
        _ => None,
    };
    // A literal file sits in its capability, on no server: nothing to say.
    let note = note.filter(|_| verify_cap.is_some());
    Ok(axum::Json(Stored { cap: cap.to_string(), verify_cap, note }))
}

/// Stores a request body as an immutable file; returns its capability and
/// a note for the user (happiness lowered), if any.
pub(super) async fn store_body(
    s: &Shared,
    q: PutQuery,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Cap, Option<String>), ApiError> {
    let d = PutOptions::default();
    let params = Params {
        k: q.k.unwrap_or(d.params.k),
        n: q.n.unwrap_or(d.params.n),
        segment_size: d.params.segment_size,
    };
    params.validate().map_err(bad)?;
    let (happy, note) = match q.happy {
        Some(h) => (h, None),
        None => default_happy(d.happy, params.k, s.storage.servers().len()),
    };
    let opts = PutOptions { params, happy, random_key: q.random_key };
    let length =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let mut reader = body_reader(body);
    let result = match (q.random_key, length) {
        // A random key and a known length: encode straight from the body.
        (true, Some(len)) => {
            let source = tokio_util::io::SyncIoBridge::new(reader);
            s.storage.put_source(Box::new(source), "request body", len, None, opts).await
        }
        // A small body of known length: hash it in memory, no spool file.
        (false, Some(len)) if len <= IN_MEMORY_MAX => {
            let mut body = Vec::with_capacity(len as usize);
            reader
                .read_to_end(&mut body)
                .await
                .map_err(|e| bad(format!("reading the request body: {e}")))?;
            let mut hasher = s.storage.convergence(params);
            hasher.update(&body);
            let size = body.len() as u64;
            s.storage
                .put_source(
                    Box::new(std::io::Cursor::new(body)),
                    "request body",
                    size,
                    Some(hasher.finish()),
                    opts,
                )
                .await
        }
        // Otherwise spool it first (bounded memory), hashing for the
        // convergent key on the way, then encode from the spool.
        _ => spool_and_put(s, &mut reader, opts).await?,
    };
    let cap = result.map_err(|e| match e {
        PutError::Read { .. } | PutError::Coding(_) => bad(e),
        e => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    })?;
    Ok((cap, note))
}

/// Happiness when the user did not set it: the default, lowered to the
/// storage servers present (never below `k`) so that the first `put` on a
/// small community works, with a note saying so. Tahoe-LAFS refuses
/// instead; a user who wants that passes `--happy`.
pub(super) fn default_happy(default: usize, k: u8, servers: usize) -> (usize, Option<String>) {
    let happy = default.min(servers).max(usize::from(k));
    let note = (happy < default).then(|| {
        format!(
            "only {servers} storage servers are known, so the shares need only sit on {happy} \
             (happy {happy} instead of {default}); pass --happy {default} to insist"
        )
    });
    (happy, note)
}

/// Query of `GET /uri/{cap}`.
#[derive(Default, Deserialize)]
pub(super) struct GetQuery {
    /// A file name: sets Content-Type by its extension and a
    /// Content-Disposition naming it (as Tahoe's `?filename=`).
    pub(super) filename: Option<String>,
    /// `json`: a directory as JSON rather than HTML.
    pub(super) t: Option<String>,
}

/// Starts downloading bytes `range` of `r`; fails with the reason if not
/// even the first bytes arrive. Returns the first chunk and a body.
async fn download(
    s: &Shared,
    r: ReadCap,
    range: std::ops::Range<u64>,
) -> Result<(Vec<u8>, Body), ApiError> {
    let (mut tx, mut rx) = tokio::io::duplex(1 << 20);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let client = s.storage.clone();
    s.tasks.spawn("gateway download", async move {
        let result = client.get_range(&r, range, &mut tx).await;
        if let Err(e) = &result {
            // Dropping the pipe early cuts the body short of its length.
            tracing::warn!("download failed: {e}");
        }
        drop(tx);
        let _ = done_tx.send(result.map_err(|e| e.to_string()));
    });
    let mut first = vec![0u8; 64 << 10];
    let n = rx.read(&mut first).await.map_err(internal)?;
    if n == 0 {
        let reason = match done_rx.await {
            Ok(Err(e)) => e,
            _ => "download ended without data".to_string(),
        };
        return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, reason));
    }
    first.truncate(n);
    let head = futures::stream::once({
        let first = first.clone();
        async move { Ok::<_, std::io::Error>(axum::body::Bytes::from(first)) }
    });
    Ok((first, Body::from_stream(head.chain(tokio_util::io::ReaderStream::new(rx)))))
}

/// `GET /uri/{cap}`, counted in the metrics.
pub(super) async fn get(
    state: State<Shared>,
    cap: Path<String>,
    q: Query<GetQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let requests = state.requests.clone();
    let r = get_file(state, cap, q, headers).await;
    requests.get(&r);
    r
}

async fn get_file(
    State(s): State<Shared>,
    Path(cap): Path<String>,
    Query(q): Query<GetQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let parsed: Cap = cap.parse().map_err(bad)?;
    super::tree::serve(&s, parsed, &cap, "", q, headers).await
}

/// Sends the contents of the file of `cap` (an immutable or literal
/// file), honouring a Range header.
pub(super) async fn serve_contents(
    s: &Shared,
    cap: Cap,
    q: GetQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let size = match &cap {
        Cap::Literal(data) => data.len() as u64,
        Cap::Read(r) => r.size,
        Cap::Verify(_) | Cap::Mutable(_) => {
            return Err(bad("a verify capability cannot read a file; use the read capability"))
        }
    };
    let Some((start, end, partial)) = super::range::asked(&headers, size) else {
        return Ok(super::range::unsatisfiable(size));
    };
    let (first, body) = match cap {
        Cap::Literal(data) => {
            let part = data[start as usize..end as usize].to_vec();
            (part.clone(), Body::from(part))
        }
        Cap::Read(r) => download(s, r, start..end).await?,
        Cap::Verify(_) | Cap::Mutable(_) => unreachable!("refused above"),
    };
    let content_type = match &q.filename {
        Some(name) => mime_guess::from_path(name).first_or_octet_stream().to_string(),
        None if start == 0 => {
            infer::get(&first).map_or("application/octet-stream", |t| t.mime_type()).to_string()
        }
        None => "application/octet-stream".to_string(),
    };
    let mut resp = super::range::headers(
        Response::builder().header(header::CONTENT_TYPE, content_type),
        start,
        end,
        size,
        partial,
    );
    if let Some(name) = &q.filename {
        let safe: String =
            name.chars().filter(|c| !c.is_control() && *c != '"' && *c != '\\').collect();
        resp = resp.header(header::CONTENT_DISPOSITION, format!("inline; filename=\"{safe}\""));
    }
    resp.body(body).map_err(internal)
}

use super::upkeep::verify_cap;

fn report(r: cloudy_storage::client::Report) -> super::api::CheckReport {
    super::api::CheckReport {
        k: r.k,
        n: r.n,
        good_shares: r.good_shares(),
        healthy: r.healthy(),
        recoverable: r.recoverable(),
        verified: r.verified,
        shares: r
            .good
            .iter()
            .map(|(s, p)| (*s, p.iter().map(|p| p.to_string()).collect()))
            .collect(),
        corrupt: r
            .corrupt
            .into_iter()
            .map(|(share, peer, reason)| super::api::BadCopy {
                share,
                peer_id: peer.to_string(),
                reason,
            })
            .collect(),
    }
}

pub(super) async fn check(
    State(s): State<Shared>,
    axum::Json(req): axum::Json<super::api::CheckRequest>,
) -> Result<axum::Json<super::api::CheckReport>, ApiError> {
    let cap = verify_cap(&req.cap)?;
    let r = s
        .storage
        .check(&cap, req.verify)
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(axum::Json(report(r)))
}

pub(super) async fn repair(
    State(s): State<Shared>,
    axum::Json(req): axum::Json<super::api::CheckRequest>,
) -> Result<axum::Json<super::api::RepairResult>, ApiError> {
    let cap = verify_cap(&req.cap)?;
    let r = s
        .storage
        .repair(&cap)
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    if !r.placed.is_empty() {
        s.requests.repairs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(axum::Json(super::api::RepairResult {
        before: report(r.before),
        placed: r.placed.into_iter().map(|(s, p)| (s, p.to_string())).collect(),
        failures: r.failures,
    }))
}

#[cfg(test)]
mod tests {
    use super::default_happy;

    #[test]
    fn happiness_follows_the_servers_present_when_not_set() {
        // The demo community: 3 servers, 3-of-5, happy 4 by default.
        let (happy, note) = default_happy(4, 3, 3);
        assert_eq!(happy, 3);
        assert!(note.is_some_and(|n| n.contains("only 3 storage servers")));
        // Enough servers: the default, and nothing to say.
        assert_eq!(default_happy(4, 3, 7), (4, None));
        // Never below k: too few servers still fails, at placement.
        assert_eq!(default_happy(4, 3, 1).0, 3);
    }
}
