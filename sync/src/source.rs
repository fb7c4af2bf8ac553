//! Blocks from a peer: a [`BlockSource`] over one `Block` session with
//! it, opened on first use and reopened after a failure.

use crate::apply::BlockSource;
use crate::chunk::Hash;
use crate::protocol::{recv, send, Request, Response, PROTOCOL};
use cloudy_overlay::{Handle, PeerId, StreamProtocol};
use futures::future::BoxFuture;
use std::time::Duration;
use tokio::sync::Mutex;

/// Longest wait for a session to open or a block to arrive.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Sessions per peer, so that several blocks are in flight at once.
pub const SESSIONS: usize = 4;

/// Blocks of `folder` fetched from `peer`.
pub struct PeerBlocks {
    overlay: Handle,
    peer: PeerId,
    folder: String,
    sessions: Vec<Mutex<Option<cloudy_overlay::Stream>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl PeerBlocks {
    /// A source for `folder`'s blocks on `peer`.
    pub fn new(overlay: Handle, peer: PeerId, folder: String) -> Self {
        let sessions = (0..SESSIONS).map(|_| Mutex::new(None)).collect();
        PeerBlocks { overlay, peer, folder, sessions, next: Default::default() }
    }

    async fn ask(&self, hash: Hash) -> Result<Vec<u8>, String> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SESSIONS;
        let mut session = self.sessions[i].lock().await;
        if session.is_none() {
            let mut control = self.overlay.stream_control();
            let open = control.open_stream(self.peer, StreamProtocol::new(PROTOCOL));
            let s = tokio::time::timeout(TIMEOUT, open).await.map_err(|_| "no session in time".to_string())?;
            *session = Some(s.map_err(|e| e.to_string())?);
        }
        let s = session.as_mut().expect("opened above");
        let exchange = async {
            send(s, &Request::Block { folder: self.folder.clone(), hash }).await?;
            recv::<_, Response>(s).await
        };
        let answer = tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| "no answer in time".to_string());
        match answer {
            Ok(Ok(Some(Response::Data(b)))) => Ok(b),
            Ok(Ok(Some(Response::Missing))) => Err(format!("{} does not have it", self.peer)),
            other => {
                *session = None;
                Err(format!("{}: {other:?}", self.peer))
            }
        }
    }
}

impl BlockSource for PeerBlocks {
    fn fetch(&self, hash: Hash, _size: u32) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(self.ask(hash))
    }
}

/// Blocks of a folder from its members: the member that announced the
/// change first, then every other member. A member that serves a block
/// whose hash does not match is reported to the overlay (its score drops)
/// and the block is asked of the next one.
pub struct MemberBlocks {
    overlay: Handle,
    members: Vec<PeerBlocks>,
}

impl MemberBlocks {
    /// Blocks of `folder`, from `first` and then `others`.
    pub fn new(overlay: Handle, folder: &str, first: PeerId, others: impl IntoIterator<Item = PeerId>) -> Self {
        let members = std::iter::once(first)
            .chain(others.into_iter().filter(|p| *p != first))
            .map(|p| PeerBlocks::new(overlay.clone(), p, folder.to_string()))
            .collect();
        MemberBlocks { overlay, members }
    }

    async fn any(&self, hash: Hash) -> Result<Vec<u8>, String> {
        let mut why = Vec::new();
        for m in &self.members {
            match m.ask(hash).await {
                Ok(b) if *blake3::hash(&b).as_bytes() == hash => return Ok(b),
                Ok(_) => {
                    tracing::warn!(target: "cloudy::_events::sync", peer = %m.peer, "a member served a corrupt block");
                    self.overlay.report_failure(m.peer);
                    why.push(format!("{}: hash mismatch", m.peer));
                }
                Err(e) => why.push(e),
            }
        }
        Err(why.join("; "))
    }
}

impl BlockSource for MemberBlocks {
    fn fetch(&self, hash: Hash, _size: u32) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(self.any(hash))
    }
}
