//! Following the nodes' `cloudy::_events` log lines, stamped as they are
//! read from each process's stderr: who sees whom alive, failed or left,
//! and since when.

use cloudy_node::process::LogLine;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The service the membership benchmark announces.
pub(crate) const SVC: &str = "bench-svc";

#[derive(Default)]
pub(crate) struct Tracker {
    /// Per observer: peers it currently believes alive.
    pub(crate) alive: HashMap<usize, HashSet<String>>,
    /// (observer, peer) → when it logged the peer failed.
    pub(crate) failed: HashMap<(usize, String), Instant>,
    /// (observer, peer) → when it logged the peer left (an eviction).
    pub(crate) left: HashMap<(usize, String), Instant>,
    /// observer → when it saw the benchmark service.
    pub(crate) announced: HashMap<usize, Instant>,
    /// (observer, peer) → when it last logged the peer alive (or back
    /// from a restart it had not noticed).
    pub(crate) alive_at: HashMap<(usize, String), Instant>,
    /// Every suspect or failed transition: (when, observer, peer, state).
    pub(crate) suspicions: Vec<(Instant, usize, String, String)>,
    /// (observer, peer) → what it logged of the peer, in order.
    pub(crate) timeline: HashMap<(usize, String), Vec<(Instant, String)>>,
}

pub(crate) fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_whitespace().find_map(|w| w.strip_prefix(key)).map(|v| v.trim_matches('"'))
}

impl Tracker {
    pub(crate) fn on_line(&mut self, l: &LogLine) {
        let (Some(peer), t) = (field(&l.text, "peer="), &l.text) else { return };
        if t.contains("member state changed") || t.contains("member restarted") {
            let what = field(t, "state=").unwrap_or("restarted").to_string();
            self.timeline.entry((l.index, peer.to_string())).or_default().push((l.at, what));
        }
        if t.contains("member state changed") {
            let state = field(t, "state=").unwrap_or_default();
            let set = self.alive.entry(l.index).or_default();
            if state == "alive" {
                set.insert(peer.to_string());
                self.alive_at.insert((l.index, peer.to_string()), l.at);
            } else {
                set.remove(peer);
                self.suspicions.push((l.at, l.index, peer.to_string(), state.to_string()));
            }
            if state == "failed" {
                self.failed.entry((l.index, peer.to_string())).or_insert(l.at);
            }
            if state == "left" {
                self.left.entry((l.index, peer.to_string())).or_insert(l.at);
            }
        } else if t.contains("member restarted") {
            // Back under a new incarnation before this observer missed it.
            self.alive_at.insert((l.index, peer.to_string()), l.at);
        } else if t.contains("service announced") && field(t, "name=") == Some(SVC) {
            self.announced.entry(l.index).or_insert(l.at);
        }
    }
}

pub(crate) struct Bench {
    pub(crate) tracker: Arc<Mutex<Tracker>>,
    pub(crate) changed: watch::Receiver<u64>,
}

impl Bench {
    /// Waits until `pred` holds; returns when it first did (or None on timeout).
    pub(crate) async fn wait<T>(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Tracker) -> Option<T>,
    ) -> Option<T> {
        let fut = async {
            loop {
                if let Some(v) = pred(&self.tracker.lock().unwrap()) {
                    return v;
                }
                if self.changed.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, fut).await.ok()
    }
}

/// A sender to give the node processes for their log lines, and the
/// tracker that follows them.
pub(crate) fn follow() -> (mpsc::Sender<LogLine>, Bench) {
    let (tx, mut rx) = mpsc::channel::<LogLine>(100_000);
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let (changed_tx, changed) = watch::channel(0u64);
    let t2 = tracker.clone();
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            t2.lock().unwrap().on_line(&line);
            changed_tx.send_modify(|v| *v += 1);
        }
    });
    (tx, Bench { tracker, changed })
}
