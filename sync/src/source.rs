//! Blocks and block-list pieces from members.
//!
//! - [`Session`]: one pipelined block session with a peer. Requests go out
//!   as soon as they are made; a reader task hands the answers, which come
//!   in order, back to whoever asked. Many requests are in flight at once,
//!   so a transfer is not paced by round trips.
//! - [`PeerBlocks`]: a few sessions with one peer, opened on first use and
//!   reopened after a failure.
//! - [`MemberBlocks`]: the members of a folder. A file's blocks are spread
//!   over the near members that announced its exact version
//!   ([`MemberBlocks::for_file`]), then asked of the others by overlay
//!   score (near and reliable first). A member whose answer does not match
//!   its hash is reported to the overlay (its score drops) and the next
//!   one is asked.

use crate::apply::{BlockSource, Verified};
use crate::blocklist::{self, Entry};
use crate::chunk::Hash;
use crate::fetch_error::{AskError, FetchError};
use crate::protocol::{recv, send, Request, Response, PROTOCOL};
use cloudy_overlay::tasks::Tasks;
use cloudy_overlay::{Handle, PeerId, StreamProtocol};
use futures::future::BoxFuture;
use futures::AsyncReadExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Longest wait for a session to open or an answer to arrive.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// Sessions per peer.
pub(crate) const SESSIONS: usize = 2;

/// Requests in flight on one session.
const IN_FLIGHT: usize = 32;

type Reply = oneshot::Sender<Result<Response, AskError>>;

/// One pipelined session; dead once its tasks stop.
struct Session {
    requests: mpsc::Sender<(Request, Reply)>,
}

impl Session {
    async fn open(overlay: &Handle, tasks: &Tasks, peer: PeerId) -> Result<Session, AskError> {
        let open = overlay.open_stream(peer, StreamProtocol::new(PROTOCOL));
        let stream = tokio::time::timeout(TIMEOUT, open)
            .await
            .map_err(|_| AskError::NoSession(peer))?
            .map_err(|source| AskError::Open { peer, source })?;
        let (mut rd, mut wr) = stream.split();
        let (requests, mut incoming) = mpsc::channel::<(Request, Reply)>(IN_FLIGHT);
        let (waiting, mut replies) = mpsc::channel::<Reply>(IN_FLIGHT);
        // Writer: each request is queued for an answer, then sent.
        tasks.spawn("sync block requests", async move {
            while let Some((req, reply)) = incoming.recv().await {
                if waiting.send(reply).await.is_err() || send(&mut wr, &req).await.is_err() {
                    break;
                }
            }
        });
        // Reader: answers in order; the first failure ends the session.
        tasks.spawn("sync block answers", async move {
            while let Some(reply) = replies.recv().await {
                let answer = match tokio::time::timeout(TIMEOUT, recv::<_, Response>(&mut rd)).await
                {
                    Ok(Ok(Some(r @ (Response::Data(_) | Response::Missing)))) => Ok(r),
                    Ok(Ok(Some(other))) => {
                        Err(AskError::Unexpected { peer, what: format!("{other:?}") })
                    }
                    Ok(Ok(None)) => Err(AskError::Closed(peer)),
                    Ok(Err(source)) => Err(AskError::Protocol { peer, source }),
                    Err(_) => Err(AskError::Timeout(peer)),
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
pub(crate) struct PeerBlocks {
    overlay: Handle,
    tasks: Tasks,
    peer: PeerId,
    folder: String,
    sessions: Vec<Mutex<Option<Session>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl PeerBlocks {
    /// A source for `folder`'s blocks on `peer`.
    pub(crate) fn new(overlay: Handle, tasks: Tasks, peer: PeerId, folder: String) -> Self {
        let sessions = (0..SESSIONS).map(|_| Mutex::new(None)).collect();
        PeerBlocks { overlay, tasks, peer, folder, sessions, next: Default::default() }
    }

    /// A live session's request queue, opening one if needed.
    async fn session(&self) -> Result<mpsc::Sender<(Request, Reply)>, AskError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % SESSIONS;
        let mut slot = self.sessions[i].lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !s.requests.is_closed()) {
            return Ok(s.requests.clone());
        }
        let s = Session::open(&self.overlay, &self.tasks, self.peer).await?;
        let tx = s.requests.clone();
        *slot = Some(s);
        Ok(tx)
    }

    async fn ask(&self, req: Request) -> Result<Vec<u8>, AskError> {
        let tx = self.session().await?;
        let (reply, answer) = oneshot::channel();
        let closed = || AskError::Closed(self.peer);
        tx.send((req, reply)).await.map_err(|_| closed())?;
        match answer.await.map_err(|_| closed())?? {
            Response::Data(b) => Ok(b),
            _ => Err(AskError::Missing(self.peer)),
        }
    }
}

/// Blocks of a folder from its members.
pub(crate) struct MemberBlocks {
    overlay: Handle,
    members: Vec<PeerBlocks>,
    /// Each member's overlay score and round trip (measured, else
    /// estimated from network coordinates) when the source was made.
    scores: Vec<f64>,
    rtts: Vec<Option<Duration>>,
    downloaded: Arc<AtomicU64>,
}

impl MemberBlocks {
    /// Blocks of `folder` from `first` (the member whose index is being
    /// followed) and `others`; the bytes of good blocks are added to
    /// `downloaded`.
    pub(crate) fn new(
        overlay: Handle,
        tasks: &Tasks,
        folder: &str,
        first: PeerId,
        others: impl IntoIterator<Item = PeerId>,
        downloaded: Arc<AtomicU64>,
    ) -> Self {
        let snapshot = overlay.snapshot();
        let peers: Vec<PeerId> =
            std::iter::once(first).chain(others.into_iter().filter(|p| *p != first)).collect();
        let scores =
            peers.iter().map(|p| snapshot.peers.get(p).map_or(f64::MIN, |v| v.score)).collect();
        let rtts = peers
            .iter()
            .map(|p| snapshot.peers.get(p).and_then(|v| v.rtt_measured.or(v.rtt_estimated)))
            .collect();
        let members = peers
            .into_iter()
            .map(|p| PeerBlocks::new(overlay.clone(), tasks.clone(), p, folder.to_string()))
            .collect();
        MemberBlocks { overlay, members, scores, rtts, downloaded }
    }

    /// A source for one file. `holders` says, when asked, which members
    /// announced its exact version (the followed member always counts as
    /// one); it is asked again for every block, so members that announce
    /// the version during a long transfer start serving at once. Blocks are
    /// spread over the near holders, round robin, so they come from several
    /// members at once; a block one of them lacks is asked of the other
    /// holders, then of everyone else, by score (see [`ask_order`]).
    pub(crate) fn for_file<'a>(
        &'a self,
        holders: impl Fn() -> Vec<PeerId> + Send + Sync + 'a,
    ) -> FileBlocks<'a> {
        FileBlocks { all: self, holders: Box::new(holders), next: Default::default() }
    }

    /// The first answer to `req` (built per member), asking members in
    /// `order`, that `accept` takes.
    async fn any<T>(
        &self,
        what: &'static str,
        order: impl Iterator<Item = usize>,
        req: impl Fn(&PeerBlocks) -> Request,
        accept: impl Fn(Vec<u8>) -> Option<T>,
    ) -> Result<T, FetchError> {
        let mut why = Vec::new();
        for m in order.map(|i| &self.members[i]) {
            match m.ask(req(m)).await {
                Ok(b) => match accept(b) {
                    Some(v) => return Ok(v),
                    None => {
                        tracing::warn!(target: "cloudy::_events::sync", peer = %m.peer, "a member served a corrupt {what}");
                        self.overlay.report_failure(m.peer);
                        why.push(AskError::Corrupt { peer: m.peer, what });
                    }
                },
                Err(e) => why.push(e),
            }
        }
        Err(FetchError(why))
    }

    /// A block-list piece, checked against its hash: from the followed
    /// member, then the others by score.
    pub(crate) async fn list(&self, hash: Hash) -> Result<Vec<Entry>, FetchError> {
        let req = |m: &PeerBlocks| Request::List { folder: m.folder.clone(), hash };
        let order =
            std::iter::once(0).chain(by_score(&self.scores, (1..self.members.len()).collect()));
        self.any("block-list piece", order, req, |b| {
            (*blake3::hash(&b).as_bytes() == hash).then(|| blocklist::decode(&b)).flatten()
        })
        .await
    }
}

/// The blocks of one file, see [`MemberBlocks::for_file`].
pub(crate) struct FileBlocks<'a> {
    all: &'a MemberBlocks,
    holders: Box<dyn Fn() -> Vec<PeerId> + Send + Sync + 'a>,
    next: std::sync::atomic::AtomicUsize,
}

impl FileBlocks<'_> {
    /// Whom to ask for the next block, in turn.
    fn order(&self) -> Vec<usize> {
        let holders = (self.holders)();
        let members = &self.all.members;
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        ask_order(
            &self.all.scores,
            &self.all.rtts,
            |i| i == 0 || holders.contains(&members[i].peer),
            turn,
        )
    }
}

/// The order in which to ask members (by index, with their `scores` and
/// round trips) for a block on `turn`: one of the near holders, in turn;
/// then the other holders, then the other members, best score first.
/// Near: a round trip within twice the nearest holder's (or 20 ms more);
/// with no round trip known, every holder is near. Member 0 must hold it.
fn ask_order(
    scores: &[f64],
    rtts: &[Option<Duration>],
    holds: impl Fn(usize) -> bool,
    turn: usize,
) -> Vec<usize> {
    let held = by_score(scores, (0..scores.len()).filter(|i| holds(*i)).collect());
    let nearest = held.iter().filter_map(|i| rtts[*i]).min();
    let is_near = |i: &usize| cloudy_overlay::scoring::is_near(nearest, rtts[*i]);
    let near: Vec<usize> = held.iter().copied().filter(is_near).collect();
    let first = near.get(turn % near.len().max(1)).copied().unwrap_or(held[0]);
    let rest = by_score(scores, (0..scores.len()).filter(|i| !holds(*i)).collect());
    std::iter::once(first).chain(held.into_iter().filter(|i| *i != first)).chain(rest).collect()
}

/// Member indexes `v`, best score first (ties by index, so the order is
/// stable).
fn by_score(scores: &[f64], mut v: Vec<usize>) -> Vec<usize> {
    v.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
    v
}

impl BlockSource for FileBlocks<'_> {
    fn fetch(&self, hash: Hash, _size: u32) -> BoxFuture<'_, Result<Verified, FetchError>> {
        let req = move |m: &PeerBlocks| Request::Block { folder: m.folder.clone(), hash };
        let order = self.order();
        let downloaded = &self.all.downloaded;
        let accept = move |b: Vec<u8>| {
            let n = b.len() as u64;
            let v = Verified::check(&hash, b).ok()?;
            downloaded.fetch_add(n, Ordering::Relaxed);
            Some(v)
        };
        Box::pin(self.all.any("block", order.into_iter(), req, accept))
    }
}

#[cfg(test)]
mod tests {
    use super::ask_order;
    use std::time::Duration;

    #[test]
    fn a_files_blocks_are_spread_over_its_near_holders_then_everyone() {
        let ms = |m: u64| Some(Duration::from_millis(m));
        // Members 0, 1 and 3 hold the file; 3 is far; 2 does not hold it.
        let scores = [0.8, 0.9, 0.95, 0.3];
        let rtts = [ms(5), ms(12), ms(1), ms(300)];
        let holds = |i: usize| i != 2;
        let orders: Vec<Vec<usize>> = (0..4).map(|t| ask_order(&scores, &rtts, holds, t)).collect();
        assert_eq!(orders[0], vec![1, 0, 3, 2]);
        assert_eq!(orders[1], vec![0, 1, 3, 2], "near holders take turns");
        assert_eq!(orders[2], orders[0]);
        assert!(orders.iter().all(|o| o[0] != 3), "a far holder is asked only after the near ones");
        assert!(orders.iter().all(|o| o[3] == 2), "a member without the version comes last");
        // Only the followed member holds it.
        assert!((0..3).all(|t| ask_order(&scores, &rtts, |i| i == 0, t) == vec![0, 2, 1, 3]));
        // No round trip known yet: every holder takes its turn.
        let firsts: std::collections::BTreeSet<usize> =
            (0..6).map(|t| ask_order(&scores, &[None; 4], holds, t)[0]).collect();
        assert_eq!(firsts, [0, 1, 3].into());
    }
}
