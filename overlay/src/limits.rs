//! Limits of one accept loop per peer: streams open at once and streams
//! opened per second (a token bucket). A stream over a limit is refused; a
//! peer that keeps going over (many refusals in a short window) is
//! reported as abusive, and the overlay disconnects it and lowers its
//! score. Pure logic: time is passed in.

use crate::PeerId;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// Streams one peer may open per second, sustained.
pub const RATE: f64 = 1000.0;
/// Streams one peer may open in a burst.
pub const BURST: f64 = 2000.0;
/// Refusals within [`STRIKE_WINDOW`] that make a peer abusive.
pub const STRIKES: usize = 200;
/// Peers tracked before idle ones are forgotten.
const PRUNE_AT: usize = 1024;
/// How long an idle peer is remembered.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// The window refusals are counted in.
pub const STRIKE_WINDOW: Duration = Duration::from_secs(10);

/// What to do with a new stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Serve,
    /// Refuse it: the peer has too many open, or opens them too fast.
    Refuse,
    /// Refuse it, and the peer has been refused so often it is abusive.
    Abusive,
}

#[derive(Debug)]
struct Usage {
    open: usize,
    tokens: f64,
    last: Instant,
    strikes: VecDeque<Instant>,
}

/// Per-peer accounting of one accept loop (or of gossip senders).
#[derive(Debug)]
pub struct PeerLimits {
    per_peer: usize,
    rate: f64,
    burst: f64,
    strikes: usize,
    peers: HashMap<PeerId, Usage>,
}

impl PeerLimits {
    /// At most `per_peer` streams of one peer at once, opened at most
    /// [`RATE`] a second.
    pub fn new(per_peer: usize) -> Self {
        PeerLimits::with_rate(per_peer, RATE, BURST)
    }

    /// At most `per_peer` at once, `rate` a second, `burst` at a time.
    pub fn with_rate(per_peer: usize, rate: f64, burst: f64) -> Self {
        PeerLimits { per_peer, rate, burst, strikes: STRIKES, peers: HashMap::new() }
    }

    /// A stream of `peer` arrives at `now`.
    pub fn arrive(&mut self, peer: PeerId, now: Instant) -> Verdict {
        if self.peers.len() >= PRUNE_AT && !self.peers.contains_key(&peer) {
            self.prune(now);
        }
        let (rate, burst) = (self.rate, self.burst);
        let u = self.peers.entry(peer).or_insert(Usage {
            open: 0,
            tokens: burst,
            last: now,
            strikes: VecDeque::new(),
        });
        u.tokens =
            (u.tokens + now.saturating_duration_since(u.last).as_secs_f64() * rate).min(burst);
        u.last = now;
        if u.open < self.per_peer && u.tokens >= 1.0 {
            u.tokens -= 1.0;
            u.open += 1;
            return Verdict::Serve;
        }
        while u.strikes.front().is_some_and(|t| now.saturating_duration_since(*t) > STRIKE_WINDOW) {
            u.strikes.pop_front();
        }
        u.strikes.push_back(now);
        if u.strikes.len() >= self.strikes {
            u.strikes.clear();
            return Verdict::Abusive;
        }
        Verdict::Refuse
    }

    /// A served stream of `peer` ended.
    pub fn leave(&mut self, peer: &PeerId) {
        if let Some(u) = self.peers.get_mut(peer) {
            u.open = u.open.saturating_sub(1);
        }
    }

    /// Forgets peers with nothing open, no recent refusal, and nothing
    /// asked for [`FORGET_AFTER`] (their bucket is full again by then).
    fn prune(&mut self, now: Instant) {
        self.peers.retain(|_, u| {
            u.open > 0
                || !u.strikes.is_empty()
                || now.saturating_duration_since(u.last) < FORGET_AFTER
        });
    }

    /// Peers tracked (for tests: entries do not pile up).
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }
}

/// Peers kept off for abuse, until when; shared by the event loop (which
/// adds them) and the transport (which refuses their connections before
/// the swarm sees them).
#[derive(Clone, Debug, Default)]
pub struct Banned(std::sync::Arc<std::sync::Mutex<HashMap<PeerId, std::time::Instant>>>);

impl Banned {
    /// Keeps `peer` off for `how_long`.
    pub fn ban(&self, peer: PeerId, how_long: Duration) {
        let now = std::time::Instant::now();
        let mut m = self.0.lock().expect("banned lock");
        m.retain(|_, until| now < *until);
        m.insert(peer, now + how_long);
    }

    /// Whether `peer` is kept off now.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        let m = self.0.lock().expect("banned lock");
        m.get(peer).is_some_and(|until| std::time::Instant::now() < *until)
    }
}

/// A peer kept asking over its request rate (it was reported abusive), or
/// kept more bytes in flight than it may for too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OverRate {
    /// Requests.
    #[error("{0} kept asking faster than this node serves one peer; cut off")]
    Requests(PeerId),
    /// Bytes in flight: the peer, and its budget.
    #[error("{0} kept more than {1} bytes in flight here for {BYTES_WAIT:?}; session closed")]
    Bytes(PeerId, usize),
}

/// Bytes of frames one peer may have in flight (being received) by
/// default, all its sessions of one accept loop together.
pub const BYTES_IN_FLIGHT: usize = 64 << 20;
/// How long a frame waits for room in its peer's budget.
pub const BYTES_WAIT: Duration = Duration::from_secs(10);

/// Requests per second of each peer inside its sessions (every session of
/// one accept loop together), for protocols whose sessions carry many
/// requests. A request over the rate waits for the next token (the peer is
/// throttled); a peer that keeps at it (throttled for half of a
/// [`STRIKE_WINDOW`]) is reported abusive, and its session ends.
#[derive(Clone, Debug)]
pub struct Pace {
    peers: std::sync::Arc<std::sync::Mutex<PeerLimits>>,
    rate: f64,
    report: Option<crate::Handle>,
    /// Bytes in flight per peer, in KiB permits.
    bytes: usize,
    inflight:
        std::sync::Arc<std::sync::Mutex<HashMap<PeerId, std::sync::Arc<tokio::sync::Semaphore>>>>,
}

impl Pace {
    /// `rate` requests a second per peer, in bursts of `burst`. A peer
    /// throttled for half of a [`STRIKE_WINDOW`] is abusive: the rates are
    /// set well above any honest use.
    pub fn new(rate: f64, burst: f64) -> Self {
        let mut peers = PeerLimits::with_rate(usize::MAX, rate, burst);
        // Throttled half of a window: waits of 1/rate each.
        let half = rate * STRIKE_WINDOW.as_secs_f64() / 2.0;
        peers.strikes = if half.is_finite() { (half as usize).max(1) } else { usize::MAX };
        Pace {
            peers: std::sync::Arc::new(std::sync::Mutex::new(peers)),
            rate,
            report: None,
            bytes: BYTES_IN_FLIGHT,
            inflight: Default::default(),
        }
    }

    /// At most `bytes` in flight per peer.
    pub fn with_bytes(mut self, bytes: usize) -> Self {
        self.bytes = bytes;
        self
    }

    /// Room for a frame of `len` bytes from `peer` (a frame larger than the
    /// whole budget takes all of it), held until the permit is dropped;
    /// waits up to [`BYTES_WAIT`] for the peer's other frames to finish.
    pub async fn receive(
        &self,
        peer: PeerId,
        len: usize,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, OverRate> {
        let kib = |b: usize| b.div_ceil(1024).clamp(1, u32::MAX as usize) as u32;
        let budget = kib(self.bytes);
        let sem = {
            let mut m = self.inflight.lock().expect("pace lock");
            if m.len() >= PRUNE_AT {
                m.retain(|_, s| s.available_permits() < budget as usize);
            }
            m.entry(peer)
                .or_insert_with(|| {
                    std::sync::Arc::new(tokio::sync::Semaphore::new(budget as usize))
                })
                .clone()
        };
        let want = kib(len).min(budget);
        match tokio::time::timeout(BYTES_WAIT, sem.acquire_many_owned(want)).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(OverRate::Bytes(peer, self.bytes)),
        }
    }

    /// No limit (tests, and clients' own sessions).
    pub fn unlimited() -> Self {
        Pace::new(f64::INFINITY, f64::INFINITY).with_bytes(usize::MAX)
    }

    /// Reports abusive peers to `overlay`.
    pub fn reporting(mut self, overlay: crate::Handle) -> Self {
        self.report = Some(overlay);
        self
    }

    /// Waits until `peer` may make one more request.
    pub async fn request(&self, peer: PeerId) -> Result<(), OverRate> {
        loop {
            let verdict = {
                let mut peers = self.peers.lock().expect("pace lock");
                let v = peers.arrive(peer, Instant::now());
                if v == Verdict::Serve {
                    peers.leave(&peer);
                }
                v
            };
            match verdict {
                Verdict::Serve => return Ok(()),
                Verdict::Refuse => {
                    tokio::time::sleep(Duration::from_secs_f64(1.0 / self.rate)).await;
                }
                Verdict::Abusive => {
                    tracing::warn!(target: "cloudy::_events::limits", %peer, "keeps asking over its request rate; disconnecting it");
                    if let Some(h) = &self.report {
                        h.report_abuse(peer);
                    }
                    return Err(OverRate::Requests(peer));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_held_to_its_share_then_called_abusive_and_others_are_served() {
        let now = Instant::now();
        let mut l = PeerLimits::new(3);
        let (a, b) = (PeerId::random(), PeerId::random());
        for _ in 0..3 {
            assert_eq!(l.arrive(a, now), Verdict::Serve);
        }
        assert_eq!(l.arrive(a, now), Verdict::Refuse, "a fourth at once");
        assert_eq!(l.arrive(b, now), Verdict::Serve, "another peer is not held up");
        l.leave(&a);
        assert_eq!(l.arrive(a, now), Verdict::Serve, "room again once one ended");
        // Refused over and over: abusive, once per window's worth.
        let verdicts: Vec<Verdict> = (0..STRIKES).map(|_| l.arrive(a, now)).collect();
        // (One refusal was counted above already.)
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Abusive).count(), 1);
        assert_eq!(verdicts[STRIKES - 2], Verdict::Abusive);
        assert!(verdicts.iter().all(|v| *v != Verdict::Serve));
    }

    #[test]
    fn the_rate_limits_bursts_and_refills_and_idle_peers_are_forgotten() {
        let start = Instant::now();
        let mut l = PeerLimits::new(usize::MAX);
        let a = PeerId::random();
        let served =
            (0..BURST as usize + 10).filter(|_| l.arrive(a, start) == Verdict::Serve).count();
        assert_eq!(served, BURST as usize);
        let later = start + Duration::from_millis(100);
        assert_eq!(l.arrive(a, later), Verdict::Serve, "tokens come back with time");
        // Served one at a time, the bucket still empties: a peer is not
        // forgotten while it keeps asking.
        let mut l = PeerLimits::with_rate(usize::MAX, 1.0, 10.0);
        let b = PeerId::random();
        let served = (0..20)
            .filter(|_| {
                let v = l.arrive(b, start);
                l.leave(&b);
                v == Verdict::Serve
            })
            .count();
        assert_eq!(served, 10);
        // Many peers, then a minute of quiet: the idle ones are forgotten.
        let mut l = PeerLimits::new(8);
        for _ in 0..PRUNE_AT {
            let p = PeerId::random();
            l.arrive(p, start);
            l.leave(&p);
        }
        l.arrive(PeerId::random(), start + FORGET_AFTER + Duration::from_secs(1));
        assert_eq!(l.tracked(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_over_the_rate_wait_then_the_peer_is_cut_off() {
        let pace = Pace::new(10.0, 5.0);
        let (a, b) = (PeerId::random(), PeerId::random());
        let start = Instant::now();
        for _ in 0..5 {
            pace.request(a).await.unwrap();
        }
        assert_eq!(Instant::now(), start, "a burst is served at once");
        pace.request(a).await.unwrap();
        assert!(Instant::now() >= start + Duration::from_millis(100), "then one per 1/rate");
        pace.request(b).await.unwrap();
        // Asking on and on: throttled for a window, then abusive.
        let mut cut = None;
        for i in 0..10_000 {
            if pace.request(a).await.is_err() {
                cut = Some(i);
                break;
            }
        }
        assert!(cut.is_some(), "never cut off");
        assert!(Instant::now() < start + STRIKE_WINDOW * 3);
        assert!(Pace::unlimited().request(a).await.is_ok());
    }
}
