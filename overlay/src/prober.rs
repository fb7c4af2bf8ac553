//! The probe transport of the failure detector, outside the event loop.
//!
//! - The event loop publishes [`Targets`] on a `watch` channel: the
//!   members we must probe (our monitor targets) and the members we only
//!   stay linked to (random links that make the broadcast tree's graph an expander).
//! - [`spawn`] runs one task per monitor target that keeps a single stream
//!   open to it on [`crate::protocols::PROBE`], writes an 8-byte nonce
//!   every probe interval and waits for its echo; results go back to the
//!   event loop on a bounded channel. The links are held open by the
//!   broadcast tree's streams (`tree_links.rs`), which go to the same
//!   targets.
//! - Inbound probe streams are answered by echoing every 8 bytes.
//!
//! The probe timeout is multiplied by `1 + local health` ([`Health`],
//! Lifeguard's local health multiplier): a node whose own probes fail, or
//! that has to refute suspicions of itself, is probably the slow one, and
//! waits longer before it accuses anyone.
//!
//! One long-lived stream costs one small packet each way per probe, far
//! less than a request-response exchange (new substream, protocol
//! negotiation, close) — this matters for the idle CPU budget.

use crate::protocols::PROBE;
use crate::tasks::{per_peer, serve_streams, Tasks};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::PeerId;
use libp2p_stream::{Control, OpenStreamError};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Instant, MissedTickBehavior};

/// What one probe found.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Echoed after this long.
    Answered(Duration),
    /// No echo: the reason.
    Failed(String),
    /// The peer does not speak our probe protocol (not a cloudy node).
    Unsupported,
}

/// One probe's result.
#[derive(Debug)]
pub(crate) struct ProbeResult {
    pub peer: PeerId,
    pub outcome: Outcome,
    /// When the probe was sent (or its stream began to open).
    pub started: Instant,
}

/// Whom to probe and whom to stay linked to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Targets {
    pub probe: Vec<PeerId>,
    pub link: Vec<PeerId>,
}

/// Lifeguard's local health multiplier: 0 is healthy, up to [`Health::MAX`].
///
/// Two signs that this node, not its peers, is the slow one add up: its
/// own probes failing or having to refute (Lifeguard's), and its timers
/// firing late ([`Health::late_by`]): a node starved of CPU hears
/// answers and refutations late, so it must wait longer before it accuses
/// or fails anyone. Without the second, a whole machine starved for a
/// while (200 members on two cores held to a fifth of a core for 15 s)
/// stayed in a storm of false suspicions for minutes after the pressure
/// ended: most probes were still answered, which kept the first at 0
/// (DESIGN/failure-detection.md).
#[derive(Clone, Debug, Default)]
pub(crate) struct Health {
    probes: Arc<AtomicU32>,
    late: Arc<AtomicU32>,
}

impl Health {
    /// The highest multiplier (memberlist's default awareness limit).
    pub(crate) const MAX: u32 = 8;

    /// The current multiplier.
    pub(crate) fn get(&self) -> u32 {
        let probes = self.probes.load(Ordering::Relaxed);
        (probes + self.late.load(Ordering::Relaxed)).min(Self::MAX)
    }

    /// How far behind the node's own timers are, in points (the second
    /// sign alone). Only this lengthens its suspicions
    /// ([`crate::membership::MemberTable::set_slack`]): failed probes are
    /// no sign of a slow node when the member probed is dead, and a node
    /// left with one other member, which then dies, would lengthen the
    /// very suspicion that should fail it, probe after failed probe.
    pub(crate) fn behind(&self) -> u32 {
        self.late.load(Ordering::Relaxed).min(Self::MAX)
    }

    /// Worse by one (a probe of ours failed, or we had to refute).
    pub(crate) fn worse(&self) {
        let _ = self
            .probes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some((v + 1).min(Self::MAX)));
    }

    /// Better by one (a probe of ours was answered).
    pub(crate) fn better(&self) {
        let _ = self
            .probes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(1)));
    }

    /// A timer of the node's beat fired `lateness` after it was due: one
    /// point per `unit` of lateness, or one less than before (so it
    /// wears off a point a beat once the node keeps time again).
    pub(crate) fn late_by(&self, lateness: Duration, unit: Duration) {
        let level = (lateness.as_nanos() / unit.as_nanos().max(1)).min(u128::from(Self::MAX));
        let level = level as u32;
        let _ = self.late.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(level.max(v.saturating_sub(1)))
        });
    }
}

/// Probe period and base timeout, scaled by the local health.
#[derive(Clone, Debug)]
pub(crate) struct Pace {
    pub every: Duration,
    pub limit: Duration,
    pub health: Health,
    /// The node's beat: probes go out at `origin + k × every`, when the
    /// event loop's own per-second work runs too ([`on_beat`]).
    pub origin: Instant,
}

/// An interval on the node's beat, `origin + k × every`: it ticks at once
/// (a new prober probes its target at once), then on the beat, and a tick
/// missed under load is skipped rather than shifting the beat. Every prober
/// and the event loop's timers keep to it, so an idle node wakes once a
/// probe interval for all of them rather than once for each (each wake-up
/// of an idle node costs more than the work it does;
/// DESIGN/failure-detection.md).
pub(crate) fn on_beat(origin: Instant, every: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(origin, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tick
}

/// Starts the responder and the per-target probers.
pub(crate) fn spawn(
    mut control: Control,
    targets: watch::Receiver<Targets>,
    results: mpsc::Sender<ProbeResult>,
    pace: Pace,
    tasks: &Tasks,
) -> Result<(), crate::Error> {
    let incoming = control
        .accept(PROBE)
        .map_err(|_| crate::Error::Transport("probe protocol registered twice".into()))?;
    let echoes = crate::limits::Pace::new(ECHO_RATE, ECHO_RATE * 2.0);
    serve_streams(tasks, "probe echo", incoming, MAX_INBOUND, move |peer, stream| {
        echo(stream, echoes.clone(), peer)
    });
    per_peer(
        tasks,
        "probe",
        targets,
        |t: &Targets| t.probe.clone(),
        move |peer| probe_peer(control.clone(), peer, results.clone(), pace.clone()),
    );
    Ok(())
}

async fn probe_peer(
    mut control: Control,
    peer: PeerId,
    results: mpsc::Sender<ProbeResult>,
    pace: Pace,
) {
    let mut tick = on_beat(pace.origin, pace.every);
    let mut stream = None;
    let mut nonce: u64 = rand::random();
    loop {
        tick.tick().await;
        nonce = nonce.wrapping_add(1);
        let start = Instant::now();
        // A probe that must first open its stream (perhaps dial) gets twice
        // the time: a newly chosen target is not accused for a handshake
        // that a busy machine makes slow.
        let opening = if stream.is_none() { 2 } else { 1 };
        let limit = pace.limit * (1 + pace.health.get()) * opening;
        let attempt = async {
            if stream.is_none() {
                stream = Some(control.open_stream(peer, PROBE).await?);
            }
            let s = stream.as_mut().expect("just opened");
            s.write_all(&nonce.to_be_bytes()).await?;
            s.flush().await?;
            let mut echo = [0u8; 8];
            s.read_exact(&mut echo).await?;
            if echo != nonce.to_be_bytes() {
                return Err(ProbeError::Io(std::io::Error::other("wrong echo")));
            }
            Ok(start.elapsed())
        };
        let outcome = match timeout(limit, attempt).await {
            Ok(Ok(rtt)) => Outcome::Answered(rtt),
            Ok(Err(ProbeError::Open(OpenStreamError::UnsupportedProtocol(_)))) => {
                Outcome::Unsupported
            }
            Ok(Err(e)) => Outcome::Failed(e.to_string()),
            Err(_) => Outcome::Failed(format!("no answer within {limit:?}")),
        };
        if !matches!(outcome, Outcome::Answered(_)) {
            stream = None;
        }
        if results.send(ProbeResult { peer, outcome, started: start }).await.is_err() {
            return;
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("cannot open a probe stream: {0}")]
    Open(#[from] OpenStreamError),
    #[error("probe stream: {0}")]
    Io(#[from] std::io::Error),
}

/// Most inbound probe and link streams answered at once. A member has
/// about `2 × (monitors + links)` of them; more are dropped.
const MAX_INBOUND: usize = 256;
/// Probes one peer may have echoed per second, all its streams together (a
/// member probes a peer a few times a second at most); beyond it the peer
/// waits, and its stream is closed if it keeps at it.
const ECHO_RATE: f64 = 100.0;

/// Echoes every 8-byte probe on one inbound probe stream.
async fn echo(mut stream: libp2p::Stream, pace: crate::limits::Pace, peer: PeerId) {
    let mut buf = [0u8; 8];
    while stream.read_exact(&mut buf).await.is_ok() {
        if pace.request(peer).await.is_err() {
            break;
        }
        if stream.write_all(&buf).await.is_err() || stream.flush().await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn timers_started_at_any_time_keep_to_one_beat() {
        let origin = Instant::now();
        let every = Duration::from_secs(1);
        let mut first = on_beat(origin, every);
        first.tick().await;
        tokio::time::advance(Duration::from_millis(300)).await;
        // A prober started later ticks at once, then on the node's beat.
        let mut late = on_beat(origin, every);
        late.tick().await;
        assert_eq!(Instant::now(), origin + Duration::from_millis(300), "at once");
        let (a, b) = tokio::join!(first.tick(), late.tick());
        assert_eq!((a, b), (origin + every, origin + every));
        assert_eq!(Instant::now(), origin + every, "both woke at the same beat");
        // A tick missed under load is skipped; the beat stays.
        tokio::time::advance(Duration::from_millis(2_500)).await;
        late.tick().await;
        assert_eq!(late.tick().await, origin + every * 4);
    }

    #[test]
    fn late_timers_make_the_node_less_sure_and_wear_off_a_point_a_beat() {
        let h = Health::default();
        let unit = Duration::from_millis(250);
        h.late_by(Duration::from_millis(100), unit);
        assert_eq!(h.get(), 0, "on time");
        h.late_by(Duration::from_millis(800), unit);
        assert_eq!(h.get(), 3);
        // Answered probes do not hide that the node keeps time badly.
        h.better();
        h.better();
        assert_eq!(h.get(), 3);
        h.worse();
        assert_eq!(h.get(), 4, "both signs add up");
        for expected in [3, 2, 1, 1] {
            h.late_by(Duration::ZERO, unit);
            assert_eq!(h.get(), expected);
        }
        h.late_by(Duration::from_secs(60), unit);
        assert_eq!(h.get(), Health::MAX, "bounded");
        assert_eq!(h.behind(), Health::MAX, "bounded");
    }

    #[test]
    fn failed_probes_slow_the_probes_but_only_late_timers_count_as_behind() {
        let h = Health::default();
        for _ in 0..5 {
            h.worse();
        }
        assert_eq!((h.get(), h.behind()), (5, 0), "a dead target is not a slow node");
        h.late_by(Duration::from_millis(500), Duration::from_millis(250));
        assert_eq!((h.get(), h.behind()), (7, 2));
    }
}
