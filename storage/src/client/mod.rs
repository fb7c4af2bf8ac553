//! The grid client: uploads ([`Client::put`]) and downloads
//! ([`Client::get`]) over overlay streams.
//!
//! - Storage servers are the live providers of the `storage` service in
//!   the overlay's snapshot, with their scores, zones and announced free
//!   space (no round trip through the event loop).
//! - Each server is reached through one [`Conn`]: a protocol session on an
//!   overlay stream, or the node's own store when the server is this node
//!   (libp2p does not dial itself).

mod check;
mod get;
mod mutable;
mod pipeline;
mod progress;
mod put;
mod reader;
mod share_error;
mod slots;

pub use check::{RepairError, RepairReport, Report};
pub use get::GetError;
pub use mutable::{slot_happy, MutableError, SLOT_SPAN};
pub use pipeline::Source;
pub use put::{PutError, PutOptions};
pub use slots::{SlotWrite, SlotWriteError, SlotsRead};

use crate::placement::Server;
use crate::protocol::{read_frame, write_frame, ProtocolError, Request, Response, PROTOCOL};
use crate::server::{answer, SharedStore};
use cloudy_overlay::{Handle, PeerId, PeerScores, StreamProtocol};
use progress::{Meter, Metered};
use std::sync::{Arc, Mutex};

/// Name of the storage service in the overlay's directory.
pub const SERVICE: &str = "storage";
/// Metadata key of a server's free bytes.
pub const META_FREE: &str = "free";
/// Longest wait for a session to open or a request to be answered; a
/// server that does not answer in time is treated as unreachable.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Tries of a session the server dropped before answering.
pub(crate) const OPEN_ATTEMPTS: u32 = 4;

/// Whether a failed session is worth opening again: one the server dropped
/// (it fails at once), not one that went unanswered for [`CALL_TIMEOUT`]
/// (an unreachable server; four tries of it made a `check` wait 40 s for
/// one server that had just restarted).
pub(crate) fn worth_retrying(e: &ProtocolError) -> bool {
    matches!(e, ProtocolError::Io(io) if io.kind() != std::io::ErrorKind::TimedOut)
}

/// Whether a session ended under a request: the server dropped it, or
/// closed it without answering (it restarted, or does not know the request).
pub(crate) fn session_ended(e: &ProtocolError) -> bool {
    worth_retrying(e) || matches!(e, ProtocolError::Closed)
}

/// The pause before try `attempt` (1, 2, …): 25, 50, 100 ms, with up to
/// half again at random so that a burst does not come back as one.
pub(crate) fn retry_pause(attempt: u32) -> std::time::Duration {
    use rand::Rng;
    let base = 25u64 << (attempt - 1).min(4);
    std::time::Duration::from_millis(base + rand::thread_rng().gen_range(0..=base / 2))
}

/// The storage servers of one snapshot, best scored first.
fn derive_servers(snap: &PeerScores) -> Vec<Server> {
    snap.providers(Some(SERVICE))
        .into_iter()
        .map(|(_, p)| {
            let view = snap.peers.get(&p.peer);
            Server {
                peer: p.peer,
                score: p.score,
                // This node (no view of its own) is up as it runs.
                tier: view.map_or(0, |v| v.tier()),
                zone: view.map_or_else(|| snap.local.zone.clone(), |v| v.zone.clone()),
                free: p.meta.get(META_FREE).and_then(|f| f.parse().ok()).unwrap_or(0),
            }
        })
        .collect()
}

fn timed_out(what: &str) -> ProtocolError {
    ProtocolError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what}: no answer within {CALL_TIMEOUT:?}"),
    ))
}

/// Uploads and downloads files on the grid.
#[derive(Clone)]
pub struct Client {
    overlay: Handle,
    local: Option<SharedStore>,
    convergence: [u8; 32],
    servers: Arc<Mutex<Option<Servers>>>,
}

/// The servers derived from one snapshot of the overlay, kept until the
/// overlay publishes another: deriving them walks and sorts every member
/// (about 0.1 ms a file at 100 members, on each put and get).
struct Servers {
    from: Arc<PeerScores>,
    servers: Arc<[Server]>,
}

impl Client {
    /// A client for a node with overlay `overlay`, its own store if it is a
    /// storage server, and its convergence secret.
    pub fn new(overlay: Handle, local: Option<SharedStore>, convergence: [u8; 32]) -> Self {
        Client { overlay, local, convergence, servers: Arc::default() }
    }

    /// The overlay this client uses.
    pub fn overlay(&self) -> &Handle {
        &self.overlay
    }

    /// This node's own share store, if it is a storage server.
    pub fn local_store(&self) -> Option<&SharedStore> {
        self.local.as_ref()
    }

    /// Storage servers known now, this node included if it serves.
    pub fn servers(&self) -> Arc<[Server]> {
        let snap = self.overlay.snapshot();
        let mut cached = self.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = cached.as_ref().filter(|c| Arc::ptr_eq(&c.from, &snap)) {
            return c.servers.clone();
        }
        let servers: Arc<[Server]> = derive_servers(&snap).into();
        *cached = Some(Servers { from: snap, servers: servers.clone() });
        servers
    }

    /// What storage server `peer` keeps for this node (bytes under its
    /// leases) and its quota per member (`u64::MAX`: none).
    pub async fn usage_on(&self, peer: PeerId) -> Result<(u64, u64), ProtocolError> {
        let mut conn = self.connect(peer).await?;
        match conn.call(Request::Usage).await? {
            Response::Usage { bytes, quota } => Ok((bytes, quota)),
            other => Err(ProtocolError::Malformed(format!("unexpected answer {other:?}"))),
        }
    }

    /// Opens a session with `peer` and makes a first request on it. A
    /// session dropped before its first answer is opened again (up to
    /// [`OPEN_ATTEMPTS`] times, pausing longer each time):
    /// libp2p-stream drops an inbound stream that arrives while the
    /// server's accept queue (one slot) is full, which a burst of sessions
    /// makes likely (rust-libp2p#5651). The request must be idempotent.
    pub(crate) async fn open_and_call(
        &self,
        peer: PeerId,
        req: Request,
    ) -> Result<(Conn, Response), ProtocolError> {
        let mut last = None;
        for attempt in 0..OPEN_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(retry_pause(attempt)).await;
            }
            let result = match self.connect(peer).await {
                Ok(mut conn) => conn.call(req.clone()).await.map(|r| (conn, r)),
                Err(e) => Err(e),
            };
            match result {
                Ok(done) => return Ok(done),
                Err(e) if worth_retrying(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| timed_out("opening a storage session")))
    }

    /// Opens a session with `peer`.
    async fn connect(&self, peer: PeerId) -> Result<Conn, ProtocolError> {
        if peer == self.overlay.local_peer_id() {
            if let Some(store) = &self.local {
                return Ok(Conn::Local(store.clone(), peer.to_string()));
            }
        }
        let open = self.overlay.open_stream(peer, StreamProtocol::new(PROTOCOL));
        let stream = tokio::time::timeout(CALL_TIMEOUT, open)
            .await
            .map_err(|_| timed_out("opening a storage session"))?
            .map_err(|e| ProtocolError::Io(std::io::Error::other(e.to_string())))?;
        Ok(Conn::Remote(Metered::new(stream)))
    }
}

/// Reads the server's next answer on a session stream.
pub(crate) async fn read_response<S: futures::io::AsyncRead + Unpin>(
    s: &mut S,
) -> Result<Response, ProtocolError> {
    let frame = read_frame(s).await?.ok_or(ProtocolError::Closed)?;
    Response::decode(&frame)
}

/// A session with one storage server.
pub(crate) enum Conn {
    /// Over an overlay stream, noting when bytes last arrived.
    Remote(Metered<cloudy_overlay::Stream>),
    /// This node's own store, and this node's peer id (the lease owner).
    Local(SharedStore, String),
}

impl Conn {
    /// When bytes last arrived from the server (remote sessions only).
    pub(crate) fn meter(&self) -> Option<Meter> {
        match self {
            Conn::Remote(s) => Some(s.meter().clone()),
            Conn::Local(..) => None,
        }
    }

    /// Sends a read request without waiting (remote sessions pipeline
    /// requests; answers come back in order). The local store answers at
    /// once, so there the request is answered by [`Conn::recv`] instead.
    pub(crate) async fn send(
        &mut self,
        req: Request,
        queued: &mut std::collections::VecDeque<Request>,
    ) -> Result<(), ProtocolError> {
        match self {
            Conn::Local(..) => {
                queued.push_back(req);
                Ok(())
            }
            Conn::Remote(s) => tokio::time::timeout(CALL_TIMEOUT, write_frame(s, &req.encode()))
                .await
                .map_err(|_| timed_out("storage request"))?,
        }
    }

    /// The answer to the oldest request sent with [`Conn::send`].
    pub(crate) async fn recv(
        &mut self,
        queued: &mut std::collections::VecDeque<Request>,
    ) -> Result<Response, ProtocolError> {
        match self {
            Conn::Local(store, me) => {
                let req = queued
                    .pop_front()
                    .ok_or_else(|| ProtocolError::Malformed("no request outstanding".into()))?;
                answer(store.clone(), me, req).await
            }
            Conn::Remote(s) => tokio::time::timeout(CALL_TIMEOUT, read_response(s))
                .await
                .map_err(|_| timed_out("storage request"))?,
        }
    }

    /// Sends a read request and waits for its answer.
    pub(crate) async fn call(&mut self, req: Request) -> Result<Response, ProtocolError> {
        match self {
            Conn::Local(store, me) => answer(store.clone(), me, req).await,
            Conn::Remote(s) => {
                let exchange = async {
                    write_frame(s, &req.encode()).await?;
                    read_response(s).await
                };
                tokio::time::timeout(CALL_TIMEOUT, exchange)
                    .await
                    .map_err(|_| timed_out("storage request"))?
            }
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn a_dropped_session_is_retried_and_an_unanswered_one_is_not() {
        let dropped = ProtocolError::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert!(worth_retrying(&dropped));
        assert!(!worth_retrying(&timed_out("opening a storage session")));
        assert!(!worth_retrying(&ProtocolError::Malformed("bad frame".into())));
    }
}
