//! The task that runs one channel on one node: it owns the [`Live`] state,
//! the sessions' queues and the local players, and carries out the
//! state's actions. Chunk data flows between sessions and players through
//! here, never through the overlay's Swarm loop.

use super::session::{self, Event, Wire};
use super::state::{Action, Candidate, Live, Now, Params, Phase, Sid, SubId};
use super::stats::Stats;
use crate::chunk::{ChannelId, Chunk};
use crate::playout::Out;
use crate::protocol::Msg;
use cloudy_overlay::tasks::Tasks;
use cloudy_overlay::{Handle, PeerId, ServiceMeta, Stream};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often timers run.
pub const TICK: Duration = Duration::from_millis(100);
/// A publisher stays this long after the end, for stragglers.
pub const LINGER: Duration = Duration::from_secs(5);
/// A viewer with no player for this long stops watching.
pub const IDLE: Duration = Duration::from_secs(2);
/// Chunks queued to one local player before it counts as stuck.
pub const PLAYER_QUEUE: usize = 256;

/// The directory name of a channel's service.
pub fn service_name(id: &ChannelId) -> String {
    format!("stream/{id}")
}

pub use cloudy_overlay::unix_ms;

fn now() -> Now {
    Now { at: Instant::now(), unix_ms: unix_ms() }
}

/// Requests to a channel task.
#[derive(Debug)]
pub enum Command {
    /// The publisher's next chunk.
    Publish(Chunk),
    /// A local player joins.
    Subscribe {
        /// Where its bytes go.
        tx: mpsc::Sender<Out>,
        /// Its id.
        reply: oneshot::Sender<SubId>,
    },
    /// A local player leaves.
    Unsubscribe(SubId),
    /// A peer opened a session to us.
    Inbound {
        /// The peer.
        peer: PeerId,
        /// Its stream, after its hello.
        stream: Stream,
    },
}

/// A channel as this node takes part in it.
#[derive(Clone, Debug, Default)]
pub struct ChannelStatus {
    /// The channel id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `publisher` or `viewer`.
    pub role: String,
    /// Starting, live, ended (the publisher ended it) or lost (no chunk
    /// for a while: the publisher is gone).
    pub state: Phase,
    /// Current neighbours.
    pub neighbours: Vec<String>,
    /// Local players.
    pub players: usize,
    /// Latency from the publisher's cut to arrival here, ms: p50, p95, max.
    pub latency_ms: Option<(u64, u64, u64)>,
    /// Share of chunks since playback started that arrived within 3 s.
    pub continuity: Option<f64>,
    /// When this node stopped taking part (Unix ms).
    pub stopped_ms: Option<u64>,
    /// Counters.
    pub stats: Stats,
}

/// What the service keeps of a running channel task.
#[derive(Debug)]
pub struct Running {
    /// Its commands.
    pub tx: mpsc::Sender<Command>,
    /// Its status, refreshed every tick.
    pub status: Arc<Mutex<ChannelStatus>>,
    /// Stops it.
    pub cancel: CancellationToken,
}

struct Task {
    id: ChannelId,
    name: String,
    publisher: bool,
    overlay: Handle,
    live: Live,
    sessions: HashMap<Sid, (PeerId, mpsc::Sender<Wire>, CancellationToken)>,
    players: BTreeMap<SubId, mpsc::Sender<Out>>,
    next_sid: Sid,
    next_sub: SubId,
    events_tx: mpsc::Sender<Event>,
    status: Arc<Mutex<ChannelStatus>>,
    cancel: CancellationToken,
    tasks: Tasks,
}

/// Starts the task of channel `id`, as one of `tasks`; it stops when
/// `tasks` do or when [`Running::cancel`] fires.
pub fn start(
    overlay: Handle,
    id: ChannelId,
    name: String,
    publisher: bool,
    params: Params,
    tasks: &Tasks,
) -> Running {
    let cancel = tasks.cancel().child_token();
    let (tx, commands) = mpsc::channel(64);
    let (events_tx, events) = mpsc::channel(1024);
    let status = Arc::new(Mutex::new(ChannelStatus {
        id: id.to_string(),
        name: name.clone(),
        role: if publisher { "publisher" } else { "viewer" }.into(),
        state: Phase::Starting,
        ..Default::default()
    }));
    let task = Task {
        id,
        name,
        publisher,
        overlay,
        live: Live::new(params, publisher, Instant::now()),
        sessions: HashMap::new(),
        players: BTreeMap::new(),
        next_sid: 1,
        next_sub: 1,
        events_tx,
        status: status.clone(),
        cancel: cancel.clone(),
        tasks: tasks.clone(),
    };
    tasks.spawn("channel", task.run(commands, events));
    Running { tx, status, cancel }
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: mpsc::Receiver<Event>,
    ) {
        let service = service_name(&self.id);
        let mut meta = ServiceMeta::new();
        meta.insert("name".into(), self.name.clone());
        meta.insert("role".into(), if self.publisher { "publisher" } else { "viewer" }.into());
        if let Err(e) = self.overlay.announce(&service, meta).await {
            warn!(channel = %self.id, "cannot announce the channel: {e}");
        }
        info!(channel = %self.id, name = %self.name, publisher = self.publisher, "channel started");
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut done_since: Option<Instant> = None;
        let mut idle_since: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                Some(cmd) = commands.recv() => self.on_command(cmd),
                Some(ev) = events.recv() => self.on_event(ev),
                _ = tick.tick() => {
                    let cands = self.candidates();
                    let acts = self.live.tick(now(), &cands);
                    self.apply(acts);
                    self.refresh_status();
                    let t = Instant::now();
                    let over = matches!(self.live.phase(), Phase::Ended | Phase::Lost) && (self.publisher || self.live.finished());
                    if over {
                        let since = *done_since.get_or_insert(t);
                        if t.duration_since(since) >= LINGER || self.live.phase() == Phase::Lost {
                            break;
                        }
                    }
                    if !self.publisher && self.players.is_empty() {
                        let since = *idle_since.get_or_insert(t);
                        if t.duration_since(since) >= IDLE {
                            info!(channel = %self.id, "no player left; stopping watching");
                            break;
                        }
                    } else {
                        idle_since = None;
                    }
                }
            }
        }
        for (_, (_, _, c)) in self.sessions.drain() {
            c.cancel();
        }
        let _ = self.overlay.withdraw(&service).await;
        self.refresh_status();
        self.status.lock().expect("status").stopped_ms = Some(unix_ms());
        self.cancel.cancel();
        info!(channel = %self.id, state = %self.status.lock().expect("status").state, "channel stopped");
    }

    fn candidates(&self) -> Vec<Candidate> {
        let me = self.overlay.local_peer_id();
        self.overlay
            .snapshot()
            .providers(Some(&service_name(&self.id)))
            .into_iter()
            .filter(|(_, p)| p.peer != me)
            .map(|(_, p)| Candidate {
                peer: p.peer,
                score: p.score,
                publisher: p.meta.get("role").is_some_and(|r| r == "publisher"),
            })
            .collect()
    }

    fn peer_info(&self, peer: &PeerId) -> (bool, f64) {
        self.candidates()
            .into_iter()
            .find(|c| c.peer == *peer)
            .map_or((false, 0.5), |c| (c.publisher, c.score))
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish(c) => {
                let acts = self.live.publish(c, now());
                self.apply(acts);
            }
            Command::Subscribe { tx, reply } => {
                let id = self.next_sub;
                self.next_sub += 1;
                self.players.insert(id, tx);
                let _ = reply.send(id);
                let acts = self.live.subscribe(id, now());
                self.apply(acts);
            }
            Command::Unsubscribe(id) => {
                self.players.remove(&id);
                self.live.unsubscribe(id);
            }
            Command::Inbound { peer, stream } => {
                if let Err(reason) = self.live.accepts(&peer) {
                    debug!(channel = %self.id, %peer, "refusing a session: {reason}");
                    let reason = reason.to_string();
                    self.tasks.spawn("stream session refusal", session::refuse(stream, reason));
                    return;
                }
                self.open(peer, stream, false);
            }
        }
    }

    fn open(&mut self, peer: PeerId, stream: Stream, outbound: bool) {
        let sid = self.next_sid;
        self.next_sid += 1;
        let cancel = self.cancel.child_token();
        let tx = session::run(
            stream,
            sid,
            self.id.clone(),
            self.events_tx.clone(),
            &self.tasks,
            cancel.clone(),
        );
        if !outbound {
            let _ = tx.try_send(Wire::Msg(Msg::Welcome));
        }
        debug!(channel = %self.id, %peer, outbound, "neighbour session open");
        self.sessions.insert(sid, (peer, tx, cancel));
        let (publisher, score) = self.peer_info(&peer);
        let acts = self.live.on_open(sid, peer, publisher, score, now());
        self.apply(acts);
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Opened { peer, stream, .. } => match self.live.accepts(&peer) {
                Ok(()) => self.open(peer, stream, true),
                Err(reason) => {
                    self.live.on_dial_failed(peer, now());
                    debug!(channel = %self.id, %peer, "dropping a session just opened: {reason}");
                }
            },
            Event::DialFailed { peer, why } => {
                debug!(channel = %self.id, %peer, "cannot open a session: {why}");
                self.live.on_dial_failed(peer, now());
            }
            Event::Msg { sid, msg } => {
                let acts = self.live.on_msg(sid, msg, now());
                self.apply(acts);
            }
            Event::Closed { sid, why, rejected } => {
                if let Some((peer, _, cancel)) = self.sessions.remove(&sid) {
                    cancel.cancel();
                    if rejected {
                        self.live.stats.rejected += 1;
                        warn!(channel = %self.id, %peer, "dropped a neighbour that sent bad data: {why}");
                        self.overlay.report_failure(peer);
                    } else {
                        debug!(channel = %self.id, %peer, "neighbour session closed: {why}");
                    }
                }
                self.live.on_close(sid, now());
            }
        }
    }

    fn apply(&mut self, acts: Vec<Action>) {
        if acts.iter().any(|a| matches!(a, Action::Play(_, Out::End))) {
            // A player that sees the end may ask at once how it ended.
            self.refresh_status();
        }
        for a in acts {
            match a {
                Action::Send(sid, m) => self.queue(sid, Wire::Msg(m)),
                Action::Chunk(sid, c) => self.queue(sid, Wire::Chunk(c)),
                Action::Close(sid, why) => {
                    if let Some((peer, _, cancel)) = self.sessions.remove(&sid) {
                        debug!(channel = %self.id, %peer, "closing a neighbour session: {why}");
                        cancel.cancel();
                    }
                }
                Action::Dial(peer) => {
                    tokio::spawn(session::dial(
                        self.overlay.clone(),
                        peer,
                        self.id.to_string(),
                        self.events_tx.clone(),
                    ));
                }
                Action::Play(id, out) => {
                    let Some(tx) = self.players.get(&id) else { continue };
                    if tx.try_send(out).is_err() {
                        warn!(channel = %self.id, "a local player fell {PLAYER_QUEUE} chunks behind or left; dropping it");
                        self.players.remove(&id);
                        self.live.unsubscribe(id);
                    }
                }
            }
        }
    }

    fn queue(&mut self, sid: Sid, w: Wire) {
        let Some((peer, tx, cancel)) = self.sessions.get(&sid) else { return };
        if tx.try_send(w).is_err() {
            debug!(channel = %self.id, %peer, "neighbour cannot keep up; dropping it");
            cancel.cancel();
            self.sessions.remove(&sid);
            self.live.on_close(sid, now());
        }
    }

    fn refresh_status(&self) {
        let mut s = self.status.lock().expect("status");
        s.state = self.live.phase();
        s.neighbours = self.live.neighbours().into_iter().map(|(p, _)| p.to_string()).collect();
        s.players = self.players.len();
        s.latency_ms = self.live.stats.latency();
        s.continuity = self.live.stats.continuity(3000);
        s.stats = self.live.stats.clone();
    }
}
