//! Blocks and block-list pieces from members.
//!
//! - [`Session`]: one pipelined block session with a peer. Requests go out
//!   as soon as they are made; a reader task hands the answers, which come
//!   in order, back to whoever asked. Many requests are in flight at once,
//!   so a transfer is not paced by round trips.
//! - [`PeerBlocks`]: a few sessions with one peer, opened on first use and
//!   reopened after a failure.
//! - [`MemberBlocks`]: the members of a folder, the one that announced the
//!   change first, the others in order of their overlay score (near and
//!   reliable first). A member whose answer does not match its hash is
//!   reported to the overlay (its score drops) and the next one is asked.

use crate::apply::{BlockSource, Verified};
use crate::blocklist::{self, Entry};
use crate::chunk::Hash;
use crate::protocol::{recv, send, Request, Response, PROTOCOL};
use cloudy_overlay::{Handle, PeerId, StreamProtocol};
use futures::future::BoxFuture;
use futures::AsyncReadExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Longest wait for a session to open or an answer to arrive.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Sessions per peer.
pub const SESSIONS: usize = 2;

/// Requests in flight on one session.
const IN_FLIGHT: usize = 32;

type Reply = oneshot::Sender<Result<Response, String>>;

/// One pipelined session; dead once its tasks stop.
struct Session {
    requests: mpsc::Sender<(Request, Reply)>,
}

impl Session {
    async fn open(overlay: &Handle, peer: PeerId) -> Result<Session, String> {
        let mut control = overlay.stream_control();
        let open = control.open_stream(peer, StreamProtocol::new(PROTOCOL));
        let stream = tokio::time::timeout(TIMEOUT, open).await.map_err(|_| "no session in time".to_string())?.map_err(|e| e.to_string())?;
        let (mut rd, mut wr) = stream.split();
        let (requests, mut incoming) = mpsc::channel::<(Request, Reply)>(IN_FLIGHT);
        let (waiting, mut replies) = mpsc::channel::<Reply>(IN_FLIGHT);
        // Writer: each request is queued for an answer, then sent.
        tokio::spawn(async move {
            while let Some((req, reply)) = incoming.recv().await {
                if waiting.send(reply).await.is_err() || send(&mut wr, &req).await.is_err() {
                    break;
                }
            }
        });
        // Reader: answers in order; the first failure ends the session.
        tokio::spawn(async move {
            while let Some(reply) = replies.recv().await {
                let answer = match tokio::time::timeout(TIMEOUT, recv::<_, Response>(&mut rd)).await {
                    Ok(Ok(Some(r @ (Response::Data(_) | Response::Missing)))) => Ok(r),
                    Ok(Ok(Some(other))) => Err(format!("{peer}: unexpected {other:?}")),
                    Ok(Ok(None)) => Err(format!("{peer} closed the session")),
                    Ok(Err(e)) => Err(format!("{peer}: {e}")),
                    Err(_) => Err(format!("{peer}: no answer in time")),
                };
                let failed = answer.is_err();
                let _ = reply.send(answer);
                if failed {
                    break;
                }
            }
        });
        Ok(Session { requests })
    }
}

/// Blocks of `folder` fetched from `peer`.
pub struct PeerBlocks {
    overlay: Handle,
    peer: PeerId,
    folder: String,
    sessions: Vec<Mutex<Option<Session>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl PeerBlocks {
    /// A source for `folder`'s blocks on `peer`.
    pub fn new(overlay: Handle, peer: PeerId, folder: String) -> Self {
        let sessions = (0..SESSIONS).map(|_| Mutex::new(None)).collect();
        PeerBlocks { overlay, peer, folder, sessions, next: Default::default() }
    }

    /// A live session's request queue, opening one if needed.
    async fn session(&self) -> Result<mpsc::Sender<(Request, Reply)>, String> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SESSIONS;
        let mut slot = self.sessions[i].lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !s.requests.is_closed()) {
            return Ok(s.requests.clone());
        }
        let s = Session::open(&self.overlay, self.peer).await?;
        let tx = s.requests.clone();
        *slot = Some(s);
        Ok(tx)
    }

    async fn ask(&self, req: Request) -> Result<Vec<u8>, String> {
        let tx = self.session().await?;
        let (reply, answer) = oneshot::channel();
        tx.send((req, reply)).await.map_err(|_| format!("{}: session closed", self.peer))?;
        match answer.await.map_err(|_| format!("{}: session closed", self.peer))?? {
            Response::Data(b) => Ok(b),
            _ => Err(format!("{} does not have it", self.peer)),
        }
    }
}

/// Blocks of a folder from its members.
pub struct MemberBlocks {
    overlay: Handle,
    members: Vec<PeerBlocks>,
    downloaded: Arc<AtomicU64>,
}

impl MemberBlocks {
    /// Blocks of `folder`, from `first` and then `others` by overlay score;
    /// the bytes of good blocks are added to `downloaded`.
    pub fn new(overlay: Handle, folder: &str, first: PeerId, others: impl IntoIterator<Item = PeerId>, downloaded: Arc<AtomicU64>) -> Self {
        let snapshot = overlay.snapshot();
        let score = |p: &PeerId| snapshot.peers.get(p).map_or(f64::MIN, |v| v.score);
        let mut rest: Vec<PeerId> = others.into_iter().filter(|p| *p != first).collect();
        rest.sort_by(|a, b| score(b).total_cmp(&score(a)));
        let members = std::iter::once(first).chain(rest).map(|p| PeerBlocks::new(overlay.clone(), p, folder.to_string())).collect();
        MemberBlocks { overlay, members, downloaded }
    }

    /// The first answer to `req` (built per member) that `accept` takes.
    async fn any<T>(&self, what: &str, req: impl Fn(&PeerBlocks) -> Request, accept: impl Fn(Vec<u8>) -> Option<T>) -> Result<T, String> {
        let mut why = Vec::new();
        for m in &self.members {
            match m.ask(req(m)).await {
                Ok(b) => match (b.len(), accept(b)) {
                    (n, Some(v)) => {
                        self.downloaded.fetch_add(n as u64, Ordering::Relaxed);
                        return Ok(v);
                    }
                    (_, None) => {
                        tracing::warn!(target: "cloudy::_events::sync", peer = %m.peer, "a member served a corrupt {what}");
                        self.overlay.report_failure(m.peer);
                        why.push(format!("{}: {what} does not match its hash", m.peer));
                    }
                },
                Err(e) => why.push(e),
            }
        }
        Err(why.join("; "))
    }

    /// A block-list piece, checked against its hash.
    pub async fn list(&self, hash: Hash) -> Result<Vec<Entry>, String> {
        let req = |m: &PeerBlocks| Request::List { folder: m.folder.clone(), hash };
        self.any("block-list piece", req, |b| (*blake3::hash(&b).as_bytes() == hash).then(|| blocklist::decode(&b)).flatten()).await
    }
}

impl BlockSource for MemberBlocks {
    fn fetch(&self, hash: Hash, _size: u32) -> BoxFuture<'_, Result<Verified, String>> {
        let req = move |m: &PeerBlocks| Request::Block { folder: m.folder.clone(), hash };
        Box::pin(self.any("block", req, move |b| Verified::check(&hash, b).ok()))
    }
}
