//! The cloneable handle services use to reach the overlay's event loop.

use crate::membership::wire::ServiceMeta;
use crate::scoring::PeerScores;
use crate::Error;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Capacity of the command channel.
pub(crate) const COMMAND_CAPACITY: usize = 256;

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// How long [`Handle::ping`] waits for the echo.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the event loop can be asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    Announce {
        name: String,
        meta: ServiceMeta,
        reply: Reply<()>,
    },
    Withdraw {
        name: String,
        reply: Reply<bool>,
    },
    /// Dial a member at the addresses it announced, unless connected.
    DialMember {
        peer: PeerId,
    },
    Dial {
        addr: Multiaddr,
        reply: Reply<()>,
    },
    Connect {
        addr: Multiaddr,
        reply: Reply<PeerId>,
    },
    PutRecord {
        key: Vec<u8>,
        value: Vec<u8>,
        reply: Reply<()>,
    },
    GetRecord {
        key: Vec<u8>,
        reply: Reply<Vec<u8>>,
    },
    StartProviding {
        key: Vec<u8>,
        reply: Reply<()>,
    },
    GetProviders {
        key: Vec<u8>,
        reply: Reply<HashSet<PeerId>>,
    },
    ReportRtt {
        peer: PeerId,
        rtt: Duration,
    },
    ReportFailure {
        peer: PeerId,
    },
    Gossip {
        revocation: Vec<u8>,
    },
    Abusive {
        peer: PeerId,
    },
    Handshake {
        peer: PeerId,
    },
    #[cfg(feature = "test-utils")]
    InjectRttDelay {
        peer: PeerId,
        delay: Duration,
    },
    #[cfg(feature = "test-utils")]
    Accuse {
        peer: PeerId,
    },
    #[cfg(feature = "test-utils")]
    FloodGossip {
        messages: usize,
    },
}

/// A cheap, cloneable handle to the overlay.
#[derive(Clone)]
pub struct Handle {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) local: PeerId,
    pub(crate) scores: watch::Receiver<Arc<PeerScores>>,
    pub(crate) stream: libp2p_stream::Control,
    pub(crate) registry: Arc<prometheus_client::registry::Registry>,
}

impl Handle {
    /// Our peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    /// The overlay's Prometheus metrics: libp2p's (connections, identify,
    /// ping, Kademlia, gossipsub, bytes per transport) and ours (round
    /// trips, members by state).
    pub fn metrics(&self) -> &prometheus_client::registry::Registry {
        &self.registry
    }

    /// The latest snapshot of members, scores and services (no round trip).
    pub fn snapshot(&self) -> Arc<PeerScores> {
        self.scores.borrow().clone()
    }

    /// A receiver that sees every new snapshot.
    pub fn watch(&self) -> watch::Receiver<Arc<PeerScores>> {
        self.scores.clone()
    }

    /// Control for opening and accepting bulk-data streams.
    pub fn stream_control(&self) -> libp2p_stream::Control {
        self.stream.clone()
    }

    /// Opens a stream of `protocol` to member `peer`, dialling it first at
    /// the addresses it announced if we are not connected. Services open
    /// their streams with this rather than with [`Handle::stream_control`]:
    /// libp2p-stream dials by itself, but it holds one dial request at a
    /// time and drops the others (a `try_send` on a channel of capacity 0),
    /// so of 99 sessions a download opened at once to members it was not
    /// connected to, 60 waited out their 10 s timeout, and the rest of the
    /// dials came one per timeout.
    pub async fn open_stream(
        &self,
        peer: PeerId,
        protocol: libp2p::StreamProtocol,
    ) -> Result<libp2p::Stream, libp2p_stream::OpenStreamError> {
        if peer != self.local_peer_id() {
            let _ = self.tx.send(Command::DialMember { peer }).await;
        }
        self.stream.clone().open_stream(peer, protocol).await
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Announces (or updates) a service offered by this node.
    pub async fn announce(&self, name: &str, meta: ServiceMeta) -> Result<(), Error> {
        self.call(|reply| Command::Announce { name: name.to_string(), meta, reply }).await
    }

    /// Withdraws a service; `false` if it was not announced.
    pub async fn withdraw(&self, name: &str) -> Result<bool, Error> {
        self.call(|reply| Command::Withdraw { name: name.to_string(), reply }).await
    }

    /// Dials an address (the dial itself completes in the background).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), Error> {
        self.call(|reply| Command::Dial { addr, reply }).await
    }

    /// Dials `addr` and waits until connected (or failed); returns the
    /// remote peer id.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, Error> {
        self.call(|reply| Command::Connect { addr, reply }).await
    }

    /// Stores `value` under `key` in the DHT: here and on the closest peers
    /// (at least one must accept it).
    pub async fn put_record(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), Error> {
        self.call(|reply| Command::PutRecord { key, value, reply }).await
    }

    /// The first value found under `key` in the DHT.
    pub async fn get_record(&self, key: Vec<u8>) -> Result<Vec<u8>, Error> {
        self.call(|reply| Command::GetRecord { key, reply }).await
    }

    /// Pings `peer` with the standard libp2p ping protocol (32 random bytes,
    /// echoed) on a stream of its own, dialling it if need be; returns the
    /// round trip.
    pub async fn ping(&self, peer: PeerId) -> Result<Duration, Error> {
        use futures::{AsyncReadExt, AsyncWriteExt};
        let fail = |reason: String| Error::Request { peer, reason };
        let mut control = self.stream.clone();
        let exchange = async {
            let mut s = control
                .open_stream(peer, libp2p::ping::PROTOCOL_NAME)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let payload: [u8; 32] = rand::random();
            let start = tokio::time::Instant::now();
            s.write_all(&payload).await.map_err(|e| fail(e.to_string()))?;
            s.flush().await.map_err(|e| fail(e.to_string()))?;
            let mut back = [0u8; 32];
            s.read_exact(&mut back).await.map_err(|e| fail(e.to_string()))?;
            let rtt = start.elapsed();
            let _ = s.close().await;
            if back != payload {
                return Err(fail("the ping was echoed with other bytes".into()));
            }
            Ok(rtt)
        };
        tokio::time::timeout(PING_TIMEOUT, exchange)
            .await
            .map_err(|_| fail(format!("no ping answer within {PING_TIMEOUT:?}")))?
    }

    /// Announces in the DHT that we provide `key`.
    pub async fn start_providing(&self, key: Vec<u8>) -> Result<(), Error> {
        self.call(|reply| Command::StartProviding { key, reply }).await
    }

    /// Finds providers of `key` in the DHT.
    pub async fn get_providers(&self, key: Vec<u8>) -> Result<HashSet<PeerId>, Error> {
        self.call(|reply| Command::GetProviders { key, reply }).await
    }

    /// Reports a measured request round trip (feeds the RTT EWMA). Best effort.
    pub fn report_rtt(&self, peer: PeerId, rtt: Duration) {
        let _ = self.tx.try_send(Command::ReportRtt { peer, rtt });
    }

    /// Reports a failed interaction with `peer` (feeds its failure rate). Best effort.
    pub fn report_failure(&self, peer: PeerId) {
        let _ = self.tx.try_send(Command::ReportFailure { peer });
    }

    /// Says `peer` keeps going over a service's limits: the overlay
    /// disconnects it and lowers its score.
    pub fn report_abuse(&self, peer: PeerId) {
        let _ = self.tx.try_send(Command::Abusive { peer });
    }

    /// Opens a new connection to member `peer` (so that the admission
    /// handshake runs again: a promotion reaches it).
    pub async fn handshake_again(&self, peer: PeerId) {
        let _ = self.tx.send(Command::Handshake { peer }).await;
    }

    /// Gossips an eviction the gate has taken to every member (private
    /// communities).
    pub async fn gossip_revocation(&self, r: &crate::community::revoke::Revocation) {
        let _ = self.tx.send(Command::Gossip { revocation: r.encode() }).await;
    }

    /// Test hook: adds `delay` to every RTT sample measured to `peer`, as if
    /// the link were slower.
    #[cfg(feature = "test-utils")]
    pub async fn inject_rtt_delay(&self, peer: PeerId, delay: Duration) -> Result<(), Error> {
        self.tx.send(Command::InjectRttDelay { peer, delay }).await.map_err(|_| Error::Closed)
    }

    /// Test hook: acts as if a probe to `peer` had just failed.
    #[cfg(feature = "test-utils")]
    pub async fn accuse(&self, peer: PeerId) -> Result<(), Error> {
        self.tx.send(Command::Accuse { peer }).await.map_err(|_| Error::Closed)
    }

    /// Test hook: gossips `messages` heartbeats at once, as a member in a
    /// gossip storm would.
    #[cfg(feature = "test-utils")]
    pub async fn flood_gossip(&self, messages: usize) -> Result<(), Error> {
        self.tx.send(Command::FloodGossip { messages }).await.map_err(|_| Error::Closed)
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}
