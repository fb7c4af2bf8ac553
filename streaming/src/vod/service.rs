//! Video on demand on a node: publishing a file, fetching a video's pieces
//! in playback order from whoever holds them, caching and serving them.
//!
//! Providers are found in the DHT (every node holding pieces of a video
//! provides its key). For each piece, providers that hold it (their `Have`
//! maps, refreshed every second) are asked first, near ones first, the
//! publisher's own copy last (see [`super::pick`]); a reader keeps
//! [`READ_AHEAD`] pieces in flight ahead of its position, so a player
//! seeking with an HTTP Range gets the bytes it asked for first.

use super::cache::{Cache, CacheError};
use super::manifest::{Manifest, ManifestError, VodId};
use super::protocol::{recv_answer, recv_request, send, Req, Resp, PROTOCOL};
use cloudy_overlay::tasks::{serve_streams, Limits, Tasks};
use cloudy_overlay::{Handle, PeerId, StreamProtocol};
use futures::{AsyncWriteExt, StreamExt};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Pieces fetched at once ahead of a reader.
pub const READ_AHEAD: usize = 4;
/// Time for one request to a provider.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a provider to say which pieces it holds (a slow one is simply
/// asked later, without a map).
pub const HAVE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a provider with no round-trip figure may take to start
/// answering.
pub const FIRST_BYTE_DEFAULT: Duration = Duration::from_secs(1);
/// Added to eight round trips for a provider's first byte (its disk, a
/// busy box).
pub const FIRST_BYTE_SLACK: Duration = Duration::from_millis(300);
/// Providers and their maps are looked up again after this long.
pub const REFRESH: Duration = Duration::from_secs(1);

/// Errors of video on demand.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VodError {
    /// Id or manifest problems.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Nobody provides it.
    #[error("unknown video {0}: no member has it (publish it with `stream vod publish`)")]
    Unknown(String),
    /// A piece could not be fetched from anyone.
    #[error("piece {piece} of video {id} is not available from any member right now ({why})")]
    Unavailable {
        /// The video.
        id: String,
        /// The piece.
        piece: u64,
        /// The last failure.
        why: String,
    },
    /// The cache.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The protocol is already served.
    #[error("the video protocol is already being served")]
    AlreadyServing,
}

#[derive(Default)]
struct Providers {
    at: Option<Instant>,
    peers: Vec<(PeerId, f64)>,
    have: HashMap<PeerId, Vec<u8>>,
}

struct Inner {
    overlay: Handle,
    cache: Arc<Cache>,
    providers: Mutex<HashMap<VodId, Providers>>,
    providing: Mutex<std::collections::HashSet<VodId>>,
    /// Bytes of pieces served to others and fetched from them.
    served: std::sync::atomic::AtomicU64,
    fetched: std::sync::atomic::AtomicU64,
    /// The same, by peer: `(served to it, fetched from it)`.
    by_peer: Mutex<HashMap<cloudy_overlay::PeerId, (u64, u64)>>,
    tasks: Tasks,
}

/// Handle on the video service.
#[derive(Clone)]
pub struct Vod(Arc<Inner>);

/// A video as listed.
#[derive(Clone, Debug)]
pub struct VideoRow {
    /// Its id.
    pub id: String,
    /// Bytes.
    pub size: u64,
    /// Pieces held here, of all.
    pub held: u64,
    /// Pieces in all.
    pub pieces: u64,
    /// Published from this node.
    pub published: bool,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct VodStats {
    /// Piece bytes sent to other nodes.
    pub served: u64,
    /// Piece bytes fetched from other nodes.
    pub fetched: u64,
}

/// Why a provider gave no answer.
#[derive(Debug, thiserror::Error)]
enum AskError {
    /// No stream to it.
    #[error("cannot open a stream: {0}")]
    Open(#[from] cloudy_overlay::stream::OpenStreamError),
    /// The stream failed or carried garbage.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// It closed the stream without answering.
    #[error("closed without an answer")]
    Closed,
    /// It did not answer in time.
    #[error("no answer in {0:?}")]
    Timeout(Duration),
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

impl Vod {
    /// Starts the service with its cache in `dir` (at most `capacity`
    /// bytes of fetched pieces); provides every video already held.
    pub async fn start(
        overlay: Handle,
        dir: &Path,
        capacity: u64,
        tasks: &Tasks,
    ) -> Result<Vod, VodError> {
        let d = dir.to_path_buf();
        let cache = Arc::new(blocking(move || Cache::open(&d, capacity)).await?);
        let incoming = overlay
            .stream_control()
            .accept(StreamProtocol::new(PROTOCOL))
            .map_err(|_| VodError::AlreadyServing)?;
        let vod = Vod(Arc::new(Inner {
            overlay,
            cache,
            providers: Mutex::default(),
            providing: Mutex::default(),
            served: Default::default(),
            fetched: Default::default(),
            by_peer: Default::default(),
            tasks: tasks.clone(),
        }));
        for (id, _, held, _) in vod.0.cache.list() {
            if held > 0 {
                vod.provide(id);
            }
        }
        let served = vod.clone();
        let limits = Limits::new(MAX_REQUESTS).reporting(vod.0.overlay.clone());
        serve_streams(tasks, "video request", incoming, limits, move |peer, s| {
            answer(served.clone(), peer, s)
        });
        Ok(vod)
    }

    /// Announces in the DHT that this node holds pieces of `id` (once).
    fn provide(&self, id: VodId) {
        if !self.0.providing.lock().expect("lock").insert(id) {
            return;
        }
        let overlay = self.0.overlay.clone();
        self.0.tasks.spawn("video provider record", async move {
            if let Err(e) = overlay.start_providing(id.dht_key()).await {
                debug!(video = %id, "cannot announce the video in the DHT yet: {e}");
            }
        });
    }

    /// Publishes the file at `path` (copied into the cache) and returns its manifest.
    pub async fn publish(&self, path: &Path) -> Result<Arc<Manifest>, VodError> {
        let cache = self.0.cache.clone();
        let p = path.to_path_buf();
        let m = blocking(move || cache.publish(&p)).await?;
        self.provide(m.id());
        Ok(m)
    }

    /// Videos held here.
    pub fn list(&self) -> Vec<VideoRow> {
        let mut rows: Vec<VideoRow> = self
            .0
            .cache
            .list()
            .into_iter()
            .map(|(id, size, held, published)| VideoRow {
                id: id.to_string(),
                size,
                held,
                pieces: size.div_ceil(super::manifest::PIECE),
                published,
            })
            .collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows
    }

    /// Counters since start.
    pub fn stats(&self) -> VodStats {
        use std::sync::atomic::Ordering::Relaxed;
        VodStats { served: self.0.served.load(Relaxed), fetched: self.0.fetched.load(Relaxed) }
    }

    /// Piece bytes by peer since start: `(served to it, fetched from it)`.
    pub fn by_peer(&self) -> Vec<(cloudy_overlay::PeerId, u64, u64)> {
        let m = self.0.by_peer.lock().expect("vod lock");
        m.iter().map(|(p, (s, f))| (*p, *s, *f)).collect()
    }

    /// Providers of `id`, best first, with their maps (refreshed every
    /// [`REFRESH`]).
    async fn providers(&self, id: &VodId, force: bool) -> Vec<(PeerId, f64, Option<Vec<u8>>)> {
        let fresh = {
            let map = self.0.providers.lock().expect("lock");
            map.get(id).and_then(|p| p.at).is_some_and(|t| t.elapsed() < REFRESH)
        };
        if !fresh || force {
            let found = self.0.overlay.get_providers(id.dht_key()).await.unwrap_or_default();
            let me = self.0.overlay.local_peer_id();
            let snap = self.0.overlay.snapshot();
            // Members known to have failed or left are not asked.
            let gone = |p: &PeerId| {
                snap.peers.get(p).is_some_and(|v| {
                    matches!(
                        v.state,
                        cloudy_overlay::MemberState::Failed | cloudy_overlay::MemberState::Left
                    )
                })
            };
            let mut peers: Vec<(PeerId, f64)> = found
                .into_iter()
                .filter(|p| *p != me && !gone(p))
                .map(|p| (p, snap.peers.get(&p).map_or(0.1, |v| v.score)))
                .collect();
            peers.sort_by(|a, b| b.1.total_cmp(&a.1));
            let asks = peers.iter().map(|(p, _)| {
                let me = self.clone();
                let (p, id) = (*p, *id);
                async move { (p, me.ask_within(p, Req::Have(id.0), HAVE_TIMEOUT).await) }
            });
            let have: HashMap<PeerId, Vec<u8>> = futures::future::join_all(asks)
                .await
                .into_iter()
                .filter_map(|(p, r)| match r {
                    Ok(Resp::Have(h)) => Some((p, h)),
                    _ => None,
                })
                .collect();
            let mut map = self.0.providers.lock().expect("lock");
            map.insert(*id, Providers { at: Some(Instant::now()), peers, have });
        }
        let map = self.0.providers.lock().expect("lock");
        let p = &map[id];
        p.peers.iter().map(|(peer, score)| (*peer, *score, p.have.get(peer).cloned())).collect()
    }

    async fn ask(&self, peer: PeerId, req: Req) -> Result<Resp, AskError> {
        self.ask_within(peer, req, ASK_TIMEOUT).await
    }

    /// How long `peer` may take to start answering: a few of its round
    /// trips (measured, else estimated), so a silent provider (one that
    /// died and is not yet seen failed) costs a fraction of a second, not
    /// the whole [`ASK_TIMEOUT`].
    fn first_byte_limit(&self, peer: &PeerId) -> Duration {
        let snap = self.0.overlay.snapshot();
        let rtt = snap.peers.get(peer).and_then(|v| v.rtt_measured.or(v.rtt_estimated));
        rtt.map_or(FIRST_BYTE_DEFAULT, |r| (r * 8 + FIRST_BYTE_SLACK).min(ASK_TIMEOUT))
    }

    async fn ask_within(&self, peer: PeerId, req: Req, limit: Duration) -> Result<Resp, AskError> {
        let overlay = &self.0.overlay;
        let first_byte = self.first_byte_limit(&peer).min(limit);
        let attempt = async {
            // Opening waits for the other side to accept the protocol: a
            // silent provider is given as long as for its first byte.
            let open = async {
                let mut s = overlay.open_stream(peer, StreamProtocol::new(PROTOCOL)).await?;
                send(&mut s, &req).await?;
                Ok::<_, AskError>(s)
            };
            let silent = || {
                let msg = format!("no answer within {first_byte:?}");
                AskError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, msg))
            };
            let mut s = tokio::time::timeout(first_byte, open).await.map_err(|_| silent())??;
            let resp = recv_answer(&mut s, first_byte).await?.ok_or(AskError::Closed)?;
            let _ = s.close().await;
            Ok::<_, AskError>(resp)
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(Err(AskError::Io(e))) if e.kind() == std::io::ErrorKind::TimedOut => {
                debug!(%peer, "silent: {e}");
                self.0.overlay.report_failure(peer);
                Err(AskError::Io(e))
            }
            Ok(r) => r,
            Err(_) => {
                self.0.overlay.report_failure(peer);
                Err(AskError::Timeout(limit))
            }
        }
    }

    /// The manifest of `id`, from the cache or from a provider.
    pub async fn manifest(&self, id: &VodId) -> Result<Arc<Manifest>, VodError> {
        if let Some(m) = self.0.cache.manifest(id) {
            return Ok(m);
        }
        let mut last = None;
        for attempt in 0..3 {
            for (peer, _, _) in self.providers(id, attempt > 0).await {
                match self.ask(peer, Req::Manifest(id.0)).await {
                    Ok(Resp::Manifest(bytes)) => match Manifest::decode(id, &bytes) {
                        Ok(m) => {
                            let cache = self.0.cache.clone();
                            return Ok(blocking(move || cache.add(m)).await?);
                        }
                        Err(e) => {
                            warn!(%peer, video = %id, "provider sent a bad manifest: {e}");
                            self.0.overlay.report_failure(peer);
                            last = Some(e.to_string());
                        }
                    },
                    Ok(_) => last = Some(format!("{peer} does not have it")),
                    Err(e) => last = Some(format!("{peer}: {e}")),
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        debug!(video = %id, "no manifest: {last:?}");
        Err(VodError::Unknown(id.to_string()))
    }

    /// Piece `i` of the video of `m`: from the cache, or fetched (checked,
    /// cached, and from then on served to others).
    pub async fn piece(&self, m: &Arc<Manifest>, i: u64) -> Result<Vec<u8>, VodError> {
        let id = m.id();
        let cache = self.0.cache.clone();
        if let Ok(Some(data)) = blocking(move || cache.read(&id, i)).await {
            return Ok(data);
        }
        let mut why = "no provider".to_string();
        for attempt in 0..3 {
            let providers = self.providers(&id, attempt > 0).await;
            let snap = self.0.overlay.snapshot();
            let candidates: Vec<super::pick::Candidate<PeerId>> = providers
                .into_iter()
                .map(|(peer, _, have)| {
                    let rtt =
                        snap.peers.get(&peer).and_then(|v| v.rtt_measured.or(v.rtt_estimated));
                    super::pick::Candidate { peer, rtt, have }
                })
                .collect();
            for peer in super::pick::order(&candidates, i, rand::random::<u32>) {
                match self.ask(peer, Req::Piece(id.0, i)).await {
                    Ok(Resp::Piece(data)) => {
                        if let Err(e) = m.verify(i, &data) {
                            warn!(%peer, "dropping a bad piece: {e}");
                            self.0.overlay.report_failure(peer);
                            why = e.to_string();
                            continue;
                        }
                        debug!(video = %id, piece = i, %peer, "piece fetched");
                        self.0
                            .fetched
                            .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        self.0.by_peer.lock().expect("vod lock").entry(peer).or_default().1 +=
                            data.len() as u64;
                        let cache = self.0.cache.clone();
                        let copy = data.clone();
                        if let Err(e) = blocking(move || cache.write(&id, i, &copy)).await {
                            warn!(video = %id, "cannot cache a piece: {e}");
                        } else {
                            self.provide(id);
                        }
                        return Ok(data);
                    }
                    Ok(_) => why = format!("{peer} does not have it"),
                    Err(e) => why = format!("{peer}: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(VodError::Unavailable { id: id.to_string(), piece: i, why })
    }

    /// Bytes `range` of the video, in order, fetched [`READ_AHEAD`] pieces ahead.
    pub fn read(
        &self,
        m: Arc<Manifest>,
        range: std::ops::Range<u64>,
    ) -> impl futures::Stream<Item = Result<Vec<u8>, VodError>> + Send + 'static {
        let me = self.clone();
        let (first, last) = (
            m.piece_at(range.start),
            if range.is_empty() { 0 } else { m.piece_at(range.end - 1) + 1 },
        );
        futures::stream::iter(first..last.max(first))
            .map(move |i| {
                let me = me.clone();
                let m = m.clone();
                async move {
                    let data = me.piece(&m, i).await?;
                    let r = m.range(i);
                    let from = range.start.max(r.start) - r.start;
                    let to = range.end.min(r.end) - r.start;
                    Ok(data[from as usize..to as usize].to_vec())
                }
            })
            .buffered(READ_AHEAD)
    }
}

/// Video requests answered at once.
pub const MAX_REQUESTS: usize = 64;

/// Answers one request of another node from the cache.
async fn answer(vod: Vod, peer: cloudy_overlay::PeerId, mut s: cloudy_overlay::Stream) {
    let req = match tokio::time::timeout(ASK_TIMEOUT, recv_request(&mut s)).await {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return debug!(%peer, "bad video request: {e}"),
        Err(_) => return,
    };
    let cache = vod.0.cache.clone();
    let resp = blocking(move || match req {
        Req::Manifest(id) => {
            cache.manifest(&VodId(id)).map_or(Resp::NotHere, |m| Resp::Manifest(m.encode()))
        }
        Req::Have(id) => {
            let have = cache.have(&VodId(id));
            let held = if cache.pinned(&VodId(id)) { 2 } else { 1 };
            if have.is_empty() {
                Resp::NotHere
            } else {
                Resp::Have(have.iter().map(|h| if *h { held } else { 0 }).collect())
            }
        }
        Req::Piece(id, i) => match cache.read(&VodId(id), i) {
            Ok(Some(data)) => Resp::Piece(data),
            _ => Resp::NotHere,
        },
    })
    .await;
    if let Resp::Piece(d) = &resp {
        vod.0.served.fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
        vod.0.by_peer.lock().expect("vod lock").entry(peer).or_default().0 += d.len() as u64;
    }
    let _ = send(&mut s, &resp).await;
    let _ = s.close().await;
}

impl std::fmt::Debug for Vod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vod").finish_non_exhaustive()
    }
}
