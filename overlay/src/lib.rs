//! The overlay of cloudy-p2p: the one libp2p Swarm of a node and what lives
//! on it — transports (QUIC v1, TCP+noise+yamux), identify, ping, Kademlia
//! under `/cloudy/kad/1.0.0`, gossipsub, mDNS, request-response and streams —
//! plus community membership with failure detection, the service directory
//! and locality-aware peer scores.
//!
//! # Layout
//! - [`spawn`] builds the Swarm and starts the event loop task
//!   ([`event_loop`]), returning a [`Handle`].
//! - [`Handle`] is cheap to clone; its methods send commands over a bounded
//!   channel. Scores and members are read from a snapshot
//!   ([`Handle::snapshot`]) without a round trip.
//! - Pure logic with no I/O: [`membership`] (member table and failure
//!   detector), [`scoring`] (Vivaldi, RTT EWMA, availability, the score).
//!
//! The overlay depends on no other workspace crate; the services
//! (storage, sync, streaming) depend on it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cloudy_overlay::Error> {
//! use cloudy_overlay::Config;
//! let key = cloudy_overlay::Keypair::generate_ed25519();
//! let cancel = tokio_util::sync::CancellationToken::new();
//! let tasks = cloudy_overlay::tasks::Tasks::new("overlay", cancel);
//! let (handle, _task) = cloudy_overlay::spawn(Config::default(), key, &tasks)?;
//! handle.announce("storage", Default::default()).await?;
//! for (name, p) in handle.snapshot().providers(None) {
//!     println!("{name} at {} score {:.2}", p.peer, p.score);
//! }
//! # Ok(()) }
//! ```

mod addresses;
mod anti_entropy;
pub mod behaviour;
pub mod broadcast;
pub mod community;
pub mod config;
mod dial_error;
mod error;
pub mod event_loop;
mod forward;
pub mod frame;
pub mod fsutil;
mod handle;
mod idle_check;
pub mod limits;
mod local;
pub mod membership;
mod metrics;
mod probe;
mod prober;
pub mod protocols;
mod quiet_gossip;
mod quiet_kad;
pub mod scoring;
mod swarm_events;
pub mod sync_msg;
pub mod tasks;
#[cfg(feature = "test-utils")]
pub mod testing;
#[cfg(feature = "test-utils")]
pub mod tmpfs;
pub mod traffic;
mod tree_events;
mod tree_inbox;
mod tree_links;

pub use config::Config;
pub use error::Error;
pub use handle::Handle;
pub use libp2p::identity::{ed25519, Keypair, PublicKey};
pub use libp2p::{multiaddr, Multiaddr, PeerId, Stream, StreamProtocol};
pub use libp2p_stream as stream;
pub use membership::{wire::ServiceMeta, MemberState};
pub use scoring::{PeerScores, PeerView, Provider};
use tasks::Tasks;

use behaviour::Behaviour;
use event_loop::EventLoop;
use libp2p::{gossipsub, noise, tcp, yamux};
use scoring::history::{HistoryStore, MemHistory, SqliteHistory};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Builds the Swarm, starts listening and dialing the bootstrap peers, and
/// spawns the event loop. Listening errors (address in use, unsupported
/// address) are returned here rather than logged later. Must be called
/// inside a tokio runtime.
pub fn spawn(cfg: Config, key: Keypair, tasks: &Tasks) -> Result<(Handle, JoinHandle<()>), Error> {
    let history: Box<dyn HistoryStore> = match &cfg.history_path {
        Some(path) => Box::new(SqliteHistory::open(path)?),
        None => Box::new(MemHistory::default()),
    };
    spawn_with_history(cfg, key, history, tasks)
}

/// [`spawn`] with an explicit availability-history backend.
pub fn spawn_with_history(
    cfg: Config,
    key: Keypair,
    mut store: Box<dyn HistoryStore>,
    tasks: &Tasks,
) -> Result<(Handle, JoinHandle<()>), Error> {
    let cancel = tasks.cancel().clone();
    cfg.validate()?;
    let local = key.public().to_peer_id();
    let history = store.load()?;
    let mut registry = prometheus_client::registry::Registry::default();
    let banned = limits::Banned::default();
    let signer = key.clone();
    let mut swarm = build_swarm(&cfg, key, &mut registry, banned.clone())?;
    let metrics = metrics::Metrics::new(&mut registry);
    for addr in &cfg.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| Error::Listen { addr: addr.clone(), reason: listen_reason(e) })?;
    }
    let topic = gossipsub::IdentTopic::new(protocols::MEMBERSHIP_TOPIC);
    // A private community's evictions have a topic of their own.
    let evictions = cfg.community.is_some().then_some(protocols::COMMUNITY_TOPIC);
    for t in std::iter::once(protocols::MEMBERSHIP_TOPIC).chain(evictions) {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&gossipsub::IdentTopic::new(t))
            .map_err(|e| Error::Transport(format!("gossipsub subscribe: {e}")))?;
    }
    dial_bootstrap(&mut swarm, &cfg.bootstrap);
    let stream = swarm.behaviour().stream.new_control();
    let (probe_targets, targets_rx) = watch::channel(prober::Targets::default());
    let (results_tx, probe_results) = mpsc::channel(256);
    // The loop's helpers stop when the loop ends, however it ends: a node
    // whose loop died must not keep answering probes.
    let helpers = cancel.child_token();
    let health = prober::Health::default();
    let beat = Instant::now();
    let pace = prober::Pace {
        every: cfg.probe_interval,
        limit: cfg.probe_timeout,
        health: health.clone(),
        origin: beat,
    };
    // The links outlive the node's cancellation until the loop ends: its
    // goodbye goes out over them.
    let links = tokio_util::sync::CancellationToken::new();
    let (link_tx, link_events) = mpsc::channel(LINK_EVENTS);
    tree_links::spawn(
        stream.clone(),
        targets_rx.clone(),
        link_tx,
        cfg.probe_interval,
        &tasks.with_cancel(links.clone()),
    )?;
    prober::spawn(
        stream.clone(),
        targets_rx,
        results_tx,
        pace,
        &tasks.with_cancel(helpers.clone()),
    )?;
    let mut timing = cfg.timing;
    timing.expected_accusers = cfg.monitors;
    let (tx, commands) = mpsc::channel(handle::COMMAND_CAPACITY);
    let (scores_tx, scores) = watch::channel(Arc::new(PeerScores::default()));
    let now = Instant::now();
    let mut event_loop = EventLoop {
        swarm,
        commands,
        cancel,
        topic,
        local: local::LocalState::new(local, cfg.zone.clone()),
        table: membership::MemberTable::new(local, timing),
        cfg,
        rtt: Default::default(),
        rtt_delay: Default::default(),
        history,
        store: Arc::new(std::sync::Mutex::new(store)),
        last_account: now,
        scores_tx,
        pending_kad: Default::default(),
        pending_connects: Default::default(),
        banned,
        gossip_limits: limits::PeerLimits::with_rate(
            usize::MAX,
            event_loop::GOSSIP_RATE,
            event_loop::GOSSIP_BURST,
        ),
        metrics,
        gossiped_coord: None,
        announced: false,
        foreign: Default::default(),
        greeted: Default::default(),
        opened: Default::default(),
        dialing: Default::default(),
        back: Default::default(),
        links: Vec::new(),
        links_among: Default::default(),
        probe_targets,
        health,
        probe_results,
        detector: Default::default(),
        dirty: true,
        last_publish: now,
        beat,
        last_sync: Default::default(),
        signer,
        tree: broadcast::Tree::new(broadcast::Settings::default()),
        tree_streams: Default::default(),
        inbox: Default::default(),
        link_events,
        _helpers: (helpers.drop_guard(), links.drop_guard()),
    };
    event_loop.publish_snapshot();
    let task = tasks.spawn("overlay event loop", event_loop.run());
    let registry = Arc::new(registry);
    Ok((Handle { tx, local, scores, stream, registry }, task))
}

/// Dials each bootstrap peer once, with all its addresses (QUIC first), so
/// that a peer listed with a QUIC and a TCP address gets one connection.
fn dial_bootstrap(swarm: &mut libp2p::Swarm<Behaviour>, bootstrap: &[Multiaddr]) {
    use libp2p::multiaddr::Protocol;
    use libp2p::swarm::dial_opts::DialOpts;
    let mut by_peer: std::collections::BTreeMap<PeerId, Vec<Multiaddr>> = Default::default();
    for addr in bootstrap {
        match addr.iter().last() {
            Some(Protocol::P2p(peer)) => by_peer.entry(peer).or_default().push(addr.clone()),
            _ => {
                if let Err(e) = swarm.dial(addr.clone()) {
                    tracing::warn!(%addr, "cannot dial bootstrap peer: {e}");
                }
            }
        }
    }
    for (peer, mut addrs) in by_peer {
        addresses::sort_quic_first(&mut addrs);
        for a in &addrs {
            swarm.behaviour_mut().kad.add_address(&peer, a.clone());
        }
        match swarm.dial(DialOpts::peer_id(peer).addresses(addrs).build()) {
            // Already connected or being dialled: nothing to do.
            Ok(()) | Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {}
            Err(e) => tracing::warn!(%peer, "cannot dial bootstrap peer: {e}"),
        }
    }
}

/// QUIC flow-control window per stream, in bytes.
const QUIC_STREAM_WINDOW: u32 = 2_000_000;
/// Link events waiting for the event loop on their channel; as many more
/// wait in its inbox ([`tree_inbox::INBOX_MAX`]).
const LINK_EVENTS: usize = tree_inbox::INBOX_MAX;
/// Period of QUIC keep-alives on an idle connection.
const QUIC_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

fn build_swarm(
    cfg: &Config,
    key: Keypair,
    registry: &mut prometheus_client::registry::Registry,
    banned: limits::Banned,
) -> Result<libp2p::Swarm<Behaviour>, Error> {
    let transport = |e: &dyn std::fmt::Display| Error::Transport(e.to_string());
    let traffic = traffic::Traffic::new(registry);
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| transports(key, &traffic, cfg.community.clone(), banned))
        .map_err(|e| transport(&e))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key| {
            Behaviour::new(key, cfg).map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        })
        .map_err(|e| transport(&e))?
        .with_swarm_config(|c| {
            // Try a peer's addresses one at a time, in the order given (QUIC
            // first), rather than racing them into duplicate connections.
            c.with_idle_connection_timeout(cfg.idle_timeout)
                .with_dial_concurrency_factor(std::num::NonZeroU8::MIN)
        })
        .build();
    Ok(swarm)
}

/// QUIC v1, and TCP with noise and yamux (as the Swarm builder's own
/// `with_tcp` and `with_quic` make them), each connection's streams
/// counted by protocol ([`traffic`]).
fn transports(
    key: &Keypair,
    traffic: &traffic::Traffic,
    gate: Option<Arc<community::Gate>>,
    banned: limits::Banned,
) -> Result<
    libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    use libp2p::core::{muxing::StreamMuxerBox, upgrade::Version, Transport};
    let mut quic_cfg = libp2p::quic::Config::new(key);
    // Flow-control windows bound what a peer may have in flight to us,
    // and so what sits in its send buffers: quinn's defaults (10 MB per
    // stream, 15 MB per connection) made an uploader to five servers hold
    // ~50 MB. 2 MB still covers a 100 Mbit/s link at 150 ms round trip.
    quic_cfg.max_stream_data = QUIC_STREAM_WINDOW;
    quic_cfg.max_connection_data = 2 * QUIC_STREAM_WINDOW;
    // An idle connection (a random link, a mesh peer) sends a QUIC PING
    // every 15 s rather than every 5 s, and is dropped after 45 s without
    // an answer: members' deaths are found by probes in seconds anyway,
    // and each keep-alive is two packets on every idle connection.
    quic_cfg.keep_alive_interval = QUIC_KEEP_ALIVE;
    quic_cfg.max_idle_timeout = 3 * QUIC_KEEP_ALIVE.as_millis() as u32;
    let quic = libp2p::quic::tokio::Transport::new(quic_cfg)
        .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)));
    let tcp = tcp::tokio::Transport::new(tcp::Config::default())
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    let traffic = traffic.clone();
    Ok(quic
        .or_transport(tcp)
        .map(move |either, _| {
            let (peer, muxer) = either.into_inner();
            (peer, traffic.wrap(muxer))
        })
        // In a private community, a connection reaches the swarm only once
        // it passed the admission handshake.
        .and_then(move |(peer, muxer), endpoint| {
            let gate = gate.clone();
            let banned = banned.is_banned(&peer);
            async move {
                if banned {
                    // Kept off for abuse: refused before the swarm sees it.
                    return Err(std::io::Error::other(format!("{peer} is kept off for abuse")));
                }
                match gate {
                    None => Ok((peer, muxer)),
                    Some(g) => g.admit(peer, muxer, &endpoint).await.map_err(std::io::Error::other),
                }
            }
        })
        .boxed())
}

fn listen_reason(e: libp2p::TransportError<std::io::Error>) -> String {
    match e {
        libp2p::TransportError::MultiaddrNotSupported(_) => {
            "no transport supports this address".to_string()
        }
        libp2p::TransportError::Other(io) if addr_in_use(&io) => {
            "address already in use".to_string()
        }
        libp2p::TransportError::Other(io) => io.to_string(),
    }
}

/// Whether the listen error is EADDRINUSE. The OS error reaches us boxed
/// inside the transport stack's generic `TransportError<Either<…>>`, which
/// cannot be downcast by name, so its debug rendering is inspected.
fn addr_in_use(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::AddrInUse || format!("{io:?}").contains("AddrInUse")
}
