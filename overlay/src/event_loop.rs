//! The one task that owns the libp2p Swarm.
//!
//! Data flow:
//! - commands from [`crate::Handle`] arrive on a bounded channel and start
//!   work; the loop never awaits a remote round trip;
//! - swarm events complete pending replies (keyed by query or request id),
//!   feed the member table, RTT averages and Vivaldi coordinate;
//! - timers publish our heartbeat, advance the failure detector, account
//!   availability, keep enough connections and save history;
//! - after every change a fresh [`PeerScores`] snapshot goes out on a
//!   `watch` channel, which services read without asking the loop.

use crate::behaviour::Behaviour;
use crate::config::Config;
use crate::handle::Command;
use crate::local::LocalState;
use crate::membership::wire::Message;
use crate::membership::{Change, MemberState, MemberTable};
use crate::scoring::history::{Availability, HistoryStore};
use crate::scoring::rtt::RttEwma;
use crate::scoring::{score, LocalView, PeerScores, PeerView, ScoreInputs};
use crate::Error;
use futures::StreamExt;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{gossipsub, kad, PeerId, Swarm};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Period of the housekeeping check (availability, snapshot); suspicions
/// get an exact timer of their own.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// The snapshot is republished at once after a membership, service,
/// connection or address change, and at least this often for round trips
/// and availability (each republication wakes every service watching it).
const SNAPSHOT_REFRESH: Duration = Duration::from_secs(5);
/// Period of link upkeep.
const MAINTAIN_INTERVAL: Duration = Duration::from_secs(2);
/// Period of reconnection attempts to failed members (Serf's
/// `reconnect_interval`): one failed member, chosen at random, is dialled
/// each time, so two halves of a healed partition find each other again.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(5);
/// How long a peer that kept going over a service's limits is kept off:
/// its connections are closed as soon as they open.
pub(crate) const ABUSE_BAN: Duration = Duration::from_secs(60);
/// Membership messages one author may have taken per second, sustained (a
/// member gossips on changes: a few a minute; a failure storm, tens).
pub const GOSSIP_RATE: f64 = 20.0;
/// ... and in a burst.
pub const GOSSIP_BURST: f64 = 200.0;
/// How long the loop keeps running after publishing its goodbye.
const LEAVE_DRAIN: Duration = Duration::from_millis(500);
/// Our coordinate is gossiped again when its distance to the one last
/// gossiped exceeds this many milliseconds…
const COORD_MOVE_MS: f64 = 20.0;
/// … and this share of its distance to the origin…
const COORD_MOVE_SHARE: f64 = 0.5;
/// … and our state was last gossiped this long ago. On a busy machine
/// measured round trips swing by tens of milliseconds, and every member
/// gossiping its coordinate every `heartbeat_interval` made the
/// community's idle traffic grow with N again.
const COORD_MIN_SPACING: Duration = Duration::from_secs(600);

type Reply<T> = oneshot::Sender<Result<T, Error>>;

pub(crate) enum KadPending {
    Provide(Reply<()>),
    Put(Reply<()>),
    Get(Reply<Vec<u8>>),
    Providers(HashSet<PeerId>, Reply<HashSet<PeerId>>),
}

/// The event loop's state.
pub(crate) struct EventLoop {
    pub swarm: Swarm<Behaviour>,
    pub commands: mpsc::Receiver<Command>,
    pub cancel: CancellationToken,
    pub cfg: Config,
    pub topic: gossipsub::IdentTopic,
    pub local: LocalState,
    pub table: MemberTable,
    pub rtt: HashMap<PeerId, RttEwma>,
    /// Added to measured RTTs (test hook; empty in production).
    pub rtt_delay: HashMap<PeerId, Duration>,
    pub history: HashMap<PeerId, Availability>,
    /// Where availability history is saved; saves run on the blocking
    /// pool, never on this task (a SQLite write can take milliseconds).
    pub store: Arc<std::sync::Mutex<Box<dyn HistoryStore>>>,
    pub last_account: Instant,
    pub scores_tx: watch::Sender<Arc<PeerScores>>,
    pub pending_kad: HashMap<kad::QueryId, KadPending>,
    /// Dials asked for by [`Command::Connect`], by connection.
    pub pending_connects: HashMap<libp2p::swarm::ConnectionId, (String, Reply<PeerId>)>,
    /// Peers kept off for abuse, until when.
    pub banned: crate::limits::Banned,
    /// Membership messages per author: a member gossiping far over
    /// [`GOSSIP_RATE`] is ignored, then cut off.
    pub gossip_limits: crate::limits::PeerLimits,
    pub(crate) metrics: crate::metrics::Metrics,
    /// The coordinate in our last gossiped heartbeat, and when.
    pub gossiped_coord: Option<(crate::scoring::vivaldi::Coordinate, Instant)>,
    /// Whether our first heartbeat reached a subscriber (our join announcement).
    pub announced: bool,
    /// Peers that speak gossipsub but not our anti-entropy (not cloudy
    /// nodes, such as a js-libp2p peer): they learn our state by gossip.
    pub foreign: HashSet<PeerId>,
    /// Foreign peers we already sent our heartbeat to.
    pub greeted: HashSet<PeerId>,
    /// Our open connections: to whom, and when they opened (unix ms).
    pub opened: HashMap<libp2p::swarm::ConnectionId, (PeerId, u64)>,
    /// Members that came back under a new process lately, and when we
    /// heard (probes sent before then went to the old process).
    pub(crate) back: crate::probe::Returns,
    /// Our dials still under way, by connection: to whom (the Swarm
    /// reports the start of the dials its behaviours ask for, not of ours).
    pub dialing: HashMap<libp2p::swarm::ConnectionId, PeerId>,
    /// Random members we stay linked to.
    pub links: Vec<PeerId>,
    /// How many members were up when each link was chosen.
    pub links_among: HashMap<PeerId, usize>,
    /// Our monitor targets and links, watched by the prober.
    pub probe_targets: watch::Sender<crate::prober::Targets>,
    /// Lifeguard's local health multiplier, shared with the prober.
    pub health: crate::prober::Health,
    /// Probe results from the prober.
    pub probe_results: mpsc::Receiver<crate::prober::ProbeResult>,
    /// The failure detector's decisions: whom we accused.
    pub detector: crate::membership::detector::Detector,
    pub dirty: bool,
    pub last_publish: Instant,
    /// The node's beat, which every periodic timer keeps to
    /// ([`crate::prober::on_beat`]).
    pub beat: Instant,
    /// When the last anti-entropy exchange with each peer started.
    pub last_sync: HashMap<PeerId, Instant>,
    /// Our key, which signs our membership messages.
    pub signer: libp2p::identity::Keypair,
    /// The broadcast tree over our links.
    pub tree: crate::broadcast::Tree<PeerId>,
    /// The open streams of each link (usually one), by stream number.
    pub tree_streams: HashMap<PeerId, Vec<(u64, crate::tree_links::Lanes)>>,
    /// What happens on the links' streams.
    pub link_events: mpsc::Receiver<crate::tree_links::LinkEvent>,
    /// Link events taken off `link_events`, not yet acted on.
    pub inbox: crate::tree_inbox::Inbox<crate::tree_links::LinkEvent>,
    /// Cancels the prober and responder, and the broadcast links, when the
    /// loop is dropped.
    pub _helpers: (tokio_util::sync::DropGuard, tokio_util::sync::DropGuard),
}

impl EventLoop {
    pub(crate) async fn run(mut self) {
        // Every timer keeps to the node's beat, as the probers do.
        let beat = |every| crate::prober::on_beat(self.beat, every);
        let mut heartbeat = beat(self.cfg.heartbeat_interval);
        let mut sync = beat(self.cfg.sync_interval);
        let mut probe = beat(self.cfg.probe_interval);
        let mut check = beat(CHECK_INTERVAL);
        let mut maintain = beat(MAINTAIN_INTERVAL);
        let mut save = beat(self.cfg.history_save_interval);
        let mut reconnect = beat(RECONNECT_INTERVAL);
        let mut evictions = self.cfg.community.as_ref().map(|g| g.evictions());
        loop {
            // A node that is behind waits longer before it fails anyone.
            self.table.set_slack(self.health.behind());
            let deadline = self.table.next_deadline();
            let suspicion_due = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now));
            let tree_deadline = self.tree.next_deadline();
            let tree_due = tokio::time::sleep_until(tree_deadline.unwrap_or_else(Instant::now));
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                _ = suspicion_due, if deadline.is_some() => self.on_check(),
                _ = tree_due, if tree_deadline.is_some() => self.on_tree_tick(),
                _ = std::future::ready(()), if !self.inbox.is_empty() => self.on_inbox(),
                Some(ev) = self.link_events.recv(), if self.inbox.is_empty() => {
                    self.on_link_channel(ev)
                }
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                _ = heartbeat.tick() => self.gossip_moved_coordinate(),
                _ = sync.tick() => self.sync_with_random_member(),
                due = probe.tick() => {
                    let late = Instant::now().saturating_duration_since(due);
                    self.health.late_by(late, self.cfg.probe_timeout / 4);
                    self.on_probe_tick();
                    self.on_tree_tick();
                }
                Some(r) = self.probe_results.recv() => self.on_probe_result(r),
                _ = check.tick() => self.on_check(),
                _ = maintain.tick() => self.maintain_links(),
                _ = save.tick() => self.save_history_in_background(),
                _ = reconnect.tick() => self.reconnect(),
                _ = evicted(&mut evictions) => self.drop_evicted(),
            }
        }
        self.leave().await;
    }

    /// Disconnects the members the gate says were evicted and lists them
    /// as gone for good (a leave no later message can override).
    pub(crate) fn drop_evicted(&mut self) {
        let Some(gate) = self.cfg.community.clone() else { return };
        let me = self.local.peer;
        for peer in gate.evicted_since().into_iter().filter(|p| *p != me) {
            let _ = self.swarm.disconnect_peer_id(peer);
            let gone = Message::Leave { peer, incarnation: u64::MAX, seq: u64::MAX };
            let changes = self.table.apply(gone, Instant::now());
            self.apply_changes(changes);
        }
    }

    /// Says goodbye, lets the message out, saves history.
    async fn leave(&mut self) {
        let msg = self.local.leave();
        self.publish_with(msg, crate::tree_events::Publish::Goodbye);
        let swarm = &mut self.swarm;
        let _ = tokio::time::timeout(LEAVE_DRAIN, async {
            loop {
                swarm.select_next_some().await;
            }
        })
        .await;
        self.account(Instant::now());
        self.save_history();
        info!(peer = %self.local.peer, "overlay stopped");
    }

    pub(crate) fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Announce { name, meta, reply } => {
                self.local.services.insert(name, meta);
                self.publish_alive();
                self.publish_snapshot();
                let _ = reply.send(Ok(()));
            }
            Command::Withdraw { name, reply } => {
                let existed = self.local.services.remove(&name).is_some();
                if existed {
                    self.publish_alive();
                    self.publish_snapshot();
                }
                let _ = reply.send(Ok(existed));
            }
            Command::DialMember { peer } => {
                self.dial_member(peer);
            }
            Command::Dial { addr, reply } => {
                let res = self.swarm.dial(addr.clone());
                let _ = reply.send(res.map_err(|e| Error::Dial {
                    target: addr.to_string(),
                    reason: crate::dial_error::reason(&e),
                }));
            }
            Command::Connect { addr, reply } => {
                let opts = DialOpts::from(addr.clone());
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => drop(self.pending_connects.insert(id, (addr.to_string(), reply))),
                    Err(e) => drop(reply.send(Err(Error::Dial {
                        target: addr.to_string(),
                        reason: crate::dial_error::reason(&e),
                    }))),
                }
            }
            Command::PutRecord { key, value, reply } => {
                let record = kad::Record::new(key, value);
                match self.swarm.behaviour_mut().kad.put_record(record, kad::Quorum::One) {
                    Ok(id) => drop(self.pending_kad.insert(id, KadPending::Put(reply))),
                    Err(e) => drop(reply.send(Err(Error::Dht(e.to_string())))),
                }
            }
            Command::GetRecord { key, reply } => {
                let id = self.swarm.behaviour_mut().kad.get_record(kad::RecordKey::new(&key));
                self.pending_kad.insert(id, KadPending::Get(reply));
            }
            Command::StartProviding { key, reply } => {
                match self.swarm.behaviour_mut().kad.start_providing(kad::RecordKey::new(&key)) {
                    Ok(id) => drop(self.pending_kad.insert(id, KadPending::Provide(reply))),
                    Err(e) => drop(reply.send(Err(Error::Dht(e.to_string())))),
                }
            }
            Command::GetProviders { key, reply } => {
                let id = self.swarm.behaviour_mut().kad.get_providers(kad::RecordKey::new(&key));
                self.pending_kad.insert(id, KadPending::Providers(HashSet::new(), reply));
            }
            Command::ReportRtt { peer, rtt } => self.on_rtt(peer, rtt),
            Command::ReportFailure { peer } => {
                self.history.entry(peer).or_default().record_failure(crate::unix_ms());
                self.dirty = true;
            }
            #[cfg(feature = "test-utils")]
            Command::InjectRttDelay { peer, delay } => {
                self.rtt_delay.insert(peer, delay);
                self.rtt.remove(&peer);
            }
            Command::Abusive { peer } => {
                self.on_command(Command::ReportFailure { peer });
                self.metrics.abusive();
                self.banned.ban(peer, ABUSE_BAN);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Handshake { peer } => {
                self.dial_member_if(peer, PeerCondition::Always);
            }
            Command::Gossip { revocation } => {
                let topic = gossipsub::IdentTopic::new(crate::protocols::COMMUNITY_TOPIC);
                match self.swarm.behaviour_mut().gossipsub.publish(topic, revocation) {
                    Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
                    Err(e) => warn!("eviction gossip failed: {e}"),
                }
                self.drop_evicted();
            }
            #[cfg(feature = "test-utils")]
            Command::Accuse { peer } => self.probe_failed(peer, "accused by test"),
            #[cfg(feature = "test-utils")]
            Command::FloodGossip { messages } => self.flood(messages),
        }
    }

    /// One RTT sample, from ping or a request round trip.
    pub(crate) fn on_rtt(&mut self, peer: PeerId, rtt: Duration) {
        let rtt = rtt + self.rtt_delay.get(&peer).copied().unwrap_or_default();
        self.metrics.rtt(rtt);
        self.rtt.entry(peer).or_default().add(rtt);
        if let Some(coord) = self.table.get(&peer).and_then(|m| m.info.coord.clone()) {
            self.local.vivaldi.update(&coord, rtt);
        }
    }

    /// Gossips our state (a change, a refutation, our join announcement).
    pub(crate) fn publish_alive(&mut self) {
        self.publish_alive_with(crate::tree_events::Publish::Gossip);
    }

    /// Refutes a suspicion of this node: our state, ahead of what is
    /// already queued on every link.
    fn publish_refutation(&mut self) {
        self.publish_alive_with(crate::tree_events::Publish::Refutation);
    }

    fn publish_alive_with(&mut self, how: crate::tree_events::Publish) {
        let msg = self.local.alive(&self.cfg.external_addrs);
        if let Message::Alive(a) = &msg {
            self.gossiped_coord = a.coord.clone().map(|c| (c, Instant::now()));
        }
        self.publish_with(msg, how);
    }

    /// Gossips our state again if our coordinate moved far from the one
    /// last gossiped: others estimate round trips to us from it.
    fn gossip_moved_coordinate(&mut self) {
        let now = self.local.vivaldi.coordinate();
        let moved = match &self.gossiped_coord {
            None => true,
            Some((old, at)) => {
                let d = now.distance_to(old).as_secs_f64() * 1000.0;
                let scale = now.distance_to(&Default::default()).as_secs_f64() * 1000.0;
                d > COORD_MOVE_MS.max(COORD_MOVE_SHARE * scale) && at.elapsed() >= COORD_MIN_SPACING
            }
        };
        if moved && self.announced {
            debug!("our network coordinate moved; gossiping it");
            self.publish_alive();
        }
    }

    fn on_check(&mut self) {
        // A refutation already received is taken before its suspicion
        // may run out.
        self.settle_waiting();
        let now = Instant::now();
        let changes = self.table.tick(now);
        for c in &changes {
            if let Change::State { peer, to: MemberState::Failed, .. } = c {
                let m = self.table.get(peer);
                debug!(%peer, accusers = m.map_or(0, |m| m.accusers.len()),
                    confirmed = m.is_some_and(|m| m.confirmed), behind = self.health.behind(),
                    "suspicion ran out unrefuted");
            }
        }
        self.apply_changes(changes);
        self.account(now);
        if self.dirty || now.duration_since(self.last_publish) >= SNAPSHOT_REFRESH {
            self.publish_snapshot();
        }
    }

    /// Adds the time since the last call to every member's availability.
    fn account(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last_account).as_millis() as u64;
        self.last_account = now;
        for m in self.table.iter() {
            self.history.entry(m.info.peer).or_default().observe(dt, m.state.is_up());
        }
    }

    /// Logs and acts on membership changes, then publishes a fresh snapshot
    /// at once (readers must never see a change later than the log says),
    /// in which the members that changed are looked at again.
    pub(crate) fn apply_changes(&mut self, changes: Vec<Change>) {
        self.apply_changes_with(changes, true);
    }

    /// [`EventLoop::apply_changes`]; a failure learned from another
    /// member's table (`disconnect` false) leaves our connections to the
    /// member alone: it may be alive and merely not know yet that it must
    /// refute, which it does over them.
    pub(crate) fn apply_changes_with(&mut self, changes: Vec<Change>, disconnect: bool) {
        if changes.is_empty() {
            return;
        }
        // Whether a member came or went (a place for a missing link).
        let members_moved =
            changes.iter().any(|c| matches!(c, Change::State { .. } | Change::Restarted { .. }));
        let touched: BTreeSet<PeerId> = changes
            .iter()
            .filter_map(|c| match c {
                Change::State { peer, .. }
                | Change::Restarted { peer }
                | Change::Services { peer, .. } => Some(*peer),
                Change::Refute => None,
            })
            .collect();
        for change in changes {
            match change {
                Change::State { peer, from, to } => {
                    info!(target: "cloudy::_events::member", peer = %peer, state = %to,
                        from = from.map_or("new", |s| s.as_str()), "member state changed");
                    if to == MemberState::Failed {
                        self.history.entry(peer).or_default().record_failure(crate::unix_ms());
                    }
                    // An accusation of ours ends with any state but suspect.
                    let me = self.local.peer;
                    let we_accused = self.detector.accused(&peer);
                    if let Some(confirm) = self.detector.on_state(&self.table, me, peer, to) {
                        debug!(%peer, "confirming failure");
                        self.publish(confirm);
                    }
                    // A member that left, or that failed our own probes,
                    // loses its connections: a dead QUIC connection lingers
                    // until its idle timeout, and a member restarted in the
                    // meantime would be probed over it and wrongly found
                    // dead. A failure heard from others leaves them alone:
                    // the member may be alive (its accusers were slow), and
                    // closing every connection it had made it accuse its
                    // own probe targets in turn ("connection lost"), which
                    // kept a storm of false failures going on 200 members
                    // (DESIGN/failure-detection.md). Its restart, if it
                    // restarted, closes them (`close_stale`).
                    let ours = to == MemberState::Failed && we_accused;
                    if disconnect && (to == MemberState::Left || ours) {
                        let _ = self.swarm.disconnect_peer_id(peer);
                    }
                    // A new member, or one back with (perhaps) new addresses
                    // (and connections to its previous process to close).
                    if from.is_none_or(|f| matches!(f, MemberState::Left | MemberState::Failed)) {
                        self.learn_addresses(peer);
                        if from.is_some() && to == MemberState::Alive {
                            self.member_back(peer);
                        }
                    }
                }
                Change::Restarted { peer } => {
                    info!(target: "cloudy::_events::member", peer = %peer, "member restarted");
                    self.learn_addresses(peer);
                    self.member_back(peer);
                }
                Change::Refute => {
                    info!("a member suspects this node; refuting with a fresh heartbeat");
                    self.health.worse();
                    self.publish_refutation();
                }
                Change::Services { peer, announced, withdrawn } => {
                    for name in announced {
                        info!(target: "cloudy::_events::service", peer = %peer, name = %name, action = "announced", "service announced");
                    }
                    for name in withdrawn {
                        info!(target: "cloudy::_events::service", peer = %peer, name = %name, action = "withdrawn", "service withdrawn");
                    }
                }
            }
        }
        // A newcomer, which learns the whole table in its first exchange,
        // links to random members at once rather than at the next upkeep
        // (up to 2 s): until then it is connected to its bootstrap member
        // alone, a leaf of the broadcast tree, and hears of the next
        // newcomer only through it (measured with gossipsub's mesh, N = 20
        // started 50 ms apart: the last member was seen by all 0.45 s after its start,
        // by most within 50 ms). Links are not probed, so a link made in a
        // hurry accuses nobody; monitor targets still change on the probe
        // tick (retargeting at every change made a just-started member,
        // its links not yet formed, be accused and failed before
        // its refutation got out).
        if members_moved && self.links.len() < self.cfg.target_peers {
            self.maintain_links();
        }
        self.publish_members(&touched);
    }

    /// Closes our connections to `peer` that opened before its current
    /// incarnation started: they lead to the process that died (a QUIC
    /// connection to it lingers until its idle timeout). Probes over them
    /// failed, and the restarted member was suspected and had to refute
    /// again and again until they timed out (the churn benchmark saw it
    /// flap for 8 s). Its incarnation is its start time in unix ms, so a
    /// clock far off may close a fresh connection too, which is dialled
    /// again when needed.
    fn close_stale(&mut self, peer: PeerId) {
        let Some(started) = self.table.get(&peer).map(|m| m.info.incarnation) else { return };
        let stale: Vec<_> = self
            .opened
            .iter()
            .filter(|(_, (p, at))| *p == peer && *at < started)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            debug!(%peer, "closing a connection to the member's previous process");
            self.swarm.close_connection(id);
        }
    }

    /// `peer` is back under a new process: its old connections are closed,
    /// a dial to its old addresses does not hold up one to its new ones,
    /// and probes sent to the old process accuse nobody.
    fn member_back(&mut self, peer: PeerId) {
        self.close_stale(peer);
        self.redial_moved(peer);
        self.back.note(peer, Instant::now());
    }

    /// Dials `peer` at its new addresses when it came back at other ones
    /// than before while a dial of ours to it is still under way: that
    /// dial tries the addresses it had (the book is updated after the
    /// changes are applied), and while it lasts (a QUIC handshake to a
    /// closed port waits out its 5 s timeout, once per address) every
    /// other dial to the member is refused as "already dialling", and
    /// every stream opened to it waits for that dial. The churn benchmark
    /// saw a member that restarted on new ports suspected by one of its
    /// monitors every 2 s for 8 s, refuting each time.
    fn redial_moved(&mut self, peer: PeerId) {
        let Some(m) = self.table.get(&peer) else { return };
        let moved = self.swarm.behaviour().addresses.get(&peer)
            != crate::addresses::quic_first(&m.info.addrs).as_slice();
        if moved && self.dialing.values().any(|p| *p == peer) {
            debug!(%peer, "the member came back at new addresses while we were dialling its old ones; dialling the new ones");
            self.dial_member_if(peer, PeerCondition::Always);
        }
    }

    fn learn_addresses(&mut self, peer: PeerId) {
        let Some(m) = self.table.get(&peer) else { return };
        for addr in crate::addresses::quic_first(&m.info.addrs) {
            self.swarm.behaviour_mut().kad.add_address(&peer, addr);
        }
    }

    /// Keeps `target_peers` random up members as links: a link whose
    /// member is no longer up is replaced by another chosen at random.
    /// Random links make the broadcast tree's graph an expander (O(log N) hops)
    /// rather than a ring, at a fixed number of connections whatever N is.
    ///
    /// A link chosen when fewer than half as many members were up as now
    /// is chosen again, one per upkeep: a newcomer picks its links from
    /// the members it knows, and the first members are in every
    /// newcomer's table, so without this member j of a community started
    /// one by one kept about `target_peers` × ln(N / j) links, and the
    /// bootstrap member of 200 held 19–26 connections where the others
    /// held 10 on average.
    pub(crate) fn maintain_links(&mut self) {
        use rand::seq::IteratorRandom;
        let up = |p: &PeerId| self.table.get(p).is_some_and(|m| m.state == MemberState::Alive);
        let mut links: Vec<PeerId> = self.links.iter().copied().filter(up).collect();
        let now_up = self.table.up_count();
        if let Some(stale) = stale_link(&links, &self.links_among, now_up) {
            links.retain(|p| *p != stale);
        }
        let want = self.cfg.target_peers.saturating_sub(links.len());
        if want > 0 {
            let fresh = self
                .table
                .iter()
                .filter(|m| m.state == MemberState::Alive && !links.contains(&m.info.peer))
                .filter(|m| !self.foreign.contains(&m.info.peer))
                .map(|m| m.info.peer)
                .choose_multiple(&mut rand::thread_rng(), want);
            for p in &fresh {
                self.links_among.insert(*p, now_up);
            }
            links.extend(fresh);
        }
        self.links_among.retain(|p, _| links.contains(p));
        if links != self.links {
            for peer in links.clone() {
                self.dial_member(peer);
            }
            self.links = links;
            self.update_targets(None);
        }
    }

    /// Dials member `peer` at the addresses it announced, unless connected
    /// or being dialled; `false` if it is not in the member table.
    pub(crate) fn dial_member(&mut self, peer: PeerId) -> bool {
        self.dial_member_if(peer, PeerCondition::DisconnectedAndNotDialing)
    }

    /// Dials member `peer` at the addresses it announced when `condition`
    /// holds (`Always`: a new connection, so a new admission handshake);
    /// `false` if it is not in the member table.
    fn dial_member_if(&mut self, peer: PeerId, condition: PeerCondition) -> bool {
        let Some(m) = self.table.get(&peer) else { return false };
        let opts = DialOpts::peer_id(peer)
            .addresses(crate::addresses::quic_first(&m.info.addrs))
            .condition(condition)
            .build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => drop(self.dialing.insert(id, peer)),
            Err(e) => debug!(%peer, "dial failed: {e}"),
        }
        true
    }

    /// Dials one failed member at random, and the bootstrap peers when
    /// nobody is connected: a failed member may only have been cut off (a
    /// partition, a link down) and is back as soon as a connection carries
    /// its heartbeats again. Failed members are reaped after a while, which
    /// bounds the attempts.
    fn reconnect(&mut self) {
        use rand::seq::IteratorRandom;
        let failed = self
            .table
            .iter()
            .filter(|m| m.state == MemberState::Failed && !self.swarm.is_connected(&m.info.peer))
            .map(|m| m.info.peer)
            .choose(&mut rand::thread_rng());
        if let Some(peer) = failed {
            debug!(%peer, "trying to reconnect to a failed member");
            self.dial_member(peer);
        }
        if self.swarm.connected_peers().next().is_none() && !self.cfg.bootstrap.is_empty() {
            crate::dial_bootstrap(&mut self.swarm, &self.cfg.bootstrap);
        }
        self.renew_certificate();
    }

    /// A member whose certificate is past half its life dials an admin on a
    /// new connection: the admin's handshake answer renews it.
    fn renew_certificate(&mut self) {
        let Some(admins) = self.cfg.community.as_ref().and_then(|g| g.renewal_due()) else {
            return;
        };
        if let Some(admin) = admins.into_iter().find(|a| self.table.get(a).is_some()) {
            info!(%admin, "asking an admin to renew this node's certificate");
            self.dial_member_if(admin, PeerCondition::Always);
        }
    }

    fn history_rows(&self) -> Vec<(PeerId, crate::scoring::history::Availability)> {
        self.history.iter().map(|(p, a)| (*p, a.clone())).collect()
    }

    /// Saves the history on the blocking pool (the periodic save).
    fn save_history_in_background(&mut self) {
        let (rows, store) = (self.history_rows(), self.store.clone());
        tokio::task::spawn_blocking(move || save(&store, &rows));
    }

    /// Saves the history before the loop ends.
    fn save_history(&mut self) {
        save(&self.store, &self.history_rows());
    }

    pub(crate) fn publish_snapshot(&mut self) {
        let snapshot = self.build_snapshot();
        self.metrics.members(&snapshot);
        let book = self.table.iter().map(|m| (m.info.peer, m.info.addrs.as_slice()));
        self.swarm.behaviour_mut().addresses.set(book);
        self.scores_tx.send_replace(Arc::new(snapshot));
        self.dirty = false;
        self.last_publish = Instant::now();
    }

    /// Publishes a snapshot in which only `peers` (and this node) are
    /// looked at again; every other member's view is the last snapshot's.
    /// A change to one member costs one view, not the whole table: during
    /// a storm of suspicions on 200 members, rebuilding every view for
    /// every message was a large share of the work that kept the machine
    /// saturated (DESIGN/failure-detection.md). The whole snapshot is
    /// still rebuilt every [`SNAPSHOT_REFRESH`] and after connection
    /// changes (round trips, availability, connections).
    pub(crate) fn publish_members(&mut self, peers: &BTreeSet<PeerId>) {
        let mut peers_now = self.scores_tx.borrow().peers.clone();
        let at = Clock::now(&self.local);
        for peer in peers {
            let member = self.table.get(peer);
            match member {
                Some(m) => {
                    peers_now.insert(*peer, Arc::new(self.view_of(m, &at)));
                }
                None => {
                    peers_now.remove(peer);
                }
            }
            let addrs = member.map(|m| m.info.addrs.as_slice());
            self.swarm.behaviour_mut().addresses.update(*peer, addrs);
        }
        let snapshot = PeerScores { local: self.local_view(&at), peers: peers_now };
        self.metrics.members(&snapshot);
        self.scores_tx.send_replace(Arc::new(snapshot));
    }

    fn build_snapshot(&self) -> PeerScores {
        let at = Clock::now(&self.local);
        let peers =
            self.table.iter().map(|m| (m.info.peer, Arc::new(self.view_of(m, &at)))).collect();
        PeerScores { local: self.local_view(&at), peers }
    }

    /// What this node knows of member `m`, at `at`.
    fn view_of(&self, m: &crate::membership::Member, at: &Clock) -> PeerView {
        let peer = m.info.peer;
        let me = &at.coordinate;
        let measured = self.rtt.get(&peer).and_then(|e| e.get());
        let estimated = m.info.coord.as_ref().map(|c| me.distance_to(c));
        // An estimate from unsettled coordinates is noise: do not score on it.
        let settled = m.info.coord.as_ref().is_some_and(|c| (c.error + me.error) / 2.0 < 1.0);
        let hist = self.history.get(&peer).cloned().unwrap_or_default();
        let same_zone = !self.cfg.zone.is_empty() && self.cfg.zone == m.info.zone;
        let inputs = ScoreInputs {
            state: m.state,
            rtt: measured.or(if settled { estimated } else { None }),
            availability: hist.ratio(),
            failures: hist.failures_at(at.unix_ms),
            same_zone,
        };
        PeerView {
            peer,
            addrs: m.info.addrs.clone(),
            state: m.state,
            rtt_measured: measured,
            rtt_estimated: estimated,
            availability: hist.ratio(),
            observed: Duration::from_millis(hist.observed_ms),
            seen_up: Duration::from_millis(hist.up_ms),
            failures: inputs.failures,
            zone: m.info.zone.clone(),
            score: score(&inputs),
            connected: self.swarm.is_connected(&peer),
            last_heard_ago: at.now.saturating_duration_since(m.last_heard),
            services: m.info.services.clone(),
            coordinate: m.info.coord.clone(),
        }
    }

    fn local_view(&self, at: &Clock) -> LocalView {
        LocalView {
            peer: Some(self.local.peer),
            listen_addrs: self.local.listen_addrs.clone(),
            zone: self.cfg.zone.clone(),
            services: self.local.services.clone(),
            coordinate: Some(at.coordinate.clone()),
        }
    }
}

fn save(
    store: &std::sync::Mutex<Box<dyn HistoryStore>>,
    rows: &[(PeerId, crate::scoring::history::Availability)],
) {
    let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = store.save(rows) {
        warn!("could not save availability history: {e}");
    }
}

/// Resolves when the gate of a private community evicted a member; never
/// in an open community (or once the gate is gone).
async fn evicted(rx: &mut Option<watch::Receiver<u64>>) {
    if let Some(rx) = rx {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// The moment a snapshot is taken at.
struct Clock {
    now: Instant,
    unix_ms: u64,
    coordinate: crate::scoring::vivaldi::Coordinate,
}

impl Clock {
    fn now(local: &LocalState) -> Clock {
        Clock {
            now: Instant::now(),
            unix_ms: crate::unix_ms(),
            coordinate: local.vivaldi.coordinate().clone(),
        }
    }
}

/// The first of `links` chosen when fewer than half of the `now_up`
/// members were up (`among`: how many were up at each link's choice).
fn stale_link(links: &[PeerId], among: &HashMap<PeerId, usize>, now_up: usize) -> Option<PeerId> {
    links.iter().copied().find(|p| among.get(p).is_some_and(|a| a.saturating_mul(2) < now_up))
}

#[cfg(test)]
mod link_tests {
    use super::*;

    #[test]
    fn a_link_chosen_among_fewer_than_half_the_members_is_stale() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let among = HashMap::from([(a, 10), (b, 3)]);
        assert_eq!(stale_link(&[a, b], &among, 7), Some(b), "3 of 7");
        assert_eq!(stale_link(&[a, b], &among, 6), None, "3 of 6 is half");
        assert_eq!(stale_link(&[a, b], &among, 25), Some(a), "the first stale one");
        assert_eq!(stale_link(&[a], &HashMap::new(), 25), None, "unknown: kept");
    }
}
