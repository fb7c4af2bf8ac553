//! The tasks of one part of a node, and the accept loop every protocol
//! uses.
//!
//! Every service (storage, upkeep, sync, streaming, video) starts the same
//! way: it is given a [`Tasks`] and spawns everything it runs through it.
//! The node's supervisor (`node/src/supervisor.rs`) gives each phase its
//! own `Tasks` and stops them in order (services, then the overlay, then
//! the API), waiting until every task of a phase has ended. A task that
//! panics is logged with its name; one meant to run until the node stops
//! ([`Tasks::spawn_loop`]) is logged if it ends early.

use crate::limits::Verdict;
use crate::stream::IncomingStreams;
use crate::{PeerId, Stream};
use futures::{FutureExt, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The tasks of one part of a node: a cancellation token they watch and a
/// tracker that knows when all of them have ended.
#[derive(Clone, Debug)]
pub struct Tasks {
    name: &'static str,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// Tasks still running when a phase's deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("{left} tasks of {name} were still running after {deadline:?}")]
pub struct Lingering {
    /// The phase.
    pub name: &'static str,
    /// How many.
    pub left: usize,
    /// How long they were given.
    pub deadline: Duration,
}

impl Tasks {
    /// The tasks of part `name`, cancelled by `cancel`.
    pub fn new(name: &'static str, cancel: CancellationToken) -> Self {
        Tasks { name, cancel, tracker: TaskTracker::new() }
    }

    /// The same tasks, watching `cancel` instead (a part of the part that
    /// stops earlier; [`Tasks::stop`] still waits for them).
    pub fn with_cancel(&self, cancel: CancellationToken) -> Tasks {
        Tasks { name: self.name, cancel, tracker: self.tracker.clone() }
    }

    /// The token the tasks watch: cancelled when the part is to stop.
    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Resolves when the part is to stop.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Runs `fut` as a task of this part; a panic is logged as `what`'s.
    pub fn spawn<F>(&self, what: &'static str, fut: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let name = self.name;
        self.tracker.spawn(async move {
            if std::panic::AssertUnwindSafe(fut).catch_unwind().await.is_err() {
                tracing::error!(part = name, task = what, "task panicked");
            }
        })
    }

    /// Runs `fut`, which is meant to last until the part stops: ending
    /// before that is logged as an error.
    pub fn spawn_loop<F>(&self, what: &'static str, fut: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (name, cancel) = (self.name, self.cancel.clone());
        self.spawn(what, async move {
            fut.await;
            if !cancel.is_cancelled() {
                tracing::error!(part = name, task = what, "task ended before the node stopped");
            }
        })
    }

    /// How many tasks are running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Cancels the part and waits, at most `deadline`, until every task
    /// has ended. Tasks spawned after this are still awaited.
    pub async fn stop(&self, deadline: Duration) -> Result<(), Lingering> {
        self.cancel.cancel();
        self.tracker.close();
        match tokio::time::timeout(deadline, self.tracker.wait()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(Lingering { name: self.name, left: self.tracker.len(), deadline }),
        }
    }
}

/// The limits of one accept loop.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Sessions at once, all peers together.
    pub total: usize,
    /// Sessions at once of one peer.
    pub per_peer: usize,
    /// Where a peer that keeps going over its limits is reported (the
    /// overlay disconnects it and lowers its score).
    pub report: Option<crate::Handle>,
}

impl Limits {
    /// `total` sessions at once, a quarter of them (at least 2) per peer.
    pub fn new(total: usize) -> Self {
        Limits { total, per_peer: (total / 4).max(2), report: None }
    }

    /// Reports abusive peers to `overlay`.
    pub fn reporting(mut self, overlay: crate::Handle) -> Self {
        self.report = Some(overlay);
        self
    }
}

impl From<usize> for Limits {
    fn from(total: usize) -> Self {
        Limits::new(total)
    }
}

/// Serves the streams of one protocol until the part stops: each stream
/// gets its own task running `handler`, within `limits`: at most `total`
/// at once, at most `per_peer` of one peer, and a peer's streams opened at
/// most [`crate::limits::RATE`] a second. A stream over a limit is dropped
/// (the peer sees it closed and may retry), so no peer can make a node run
/// unbounded work or crowd others out; a peer that keeps at it is reported
/// as abusive.
pub fn serve_streams<H, F>(
    tasks: &Tasks,
    what: &'static str,
    mut incoming: IncomingStreams,
    limits: impl Into<Limits>,
    handler: H,
) where
    H: Fn(PeerId, Stream) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let limits = limits.into();
    let sessions = Arc::new(tokio::sync::Semaphore::new(limits.total));
    let per_peer = Arc::new(std::sync::Mutex::new(crate::limits::PeerLimits::new(limits.per_peer)));
    let inner = tasks.clone();
    tasks.spawn_loop(what, async move {
        loop {
            let next = tokio::select! {
                _ = inner.cancelled() => return,
                next = incoming.next() => next,
            };
            let Some((peer, stream)) = next else { return };
            let verdict = per_peer.lock().expect("limits lock").arrive(peer, Instant::now());
            match verdict {
                Verdict::Serve => {}
                Verdict::Refuse => {
                    tracing::debug!(%peer, protocol = what, "over its limits; stream refused");
                    continue;
                }
                Verdict::Abusive => {
                    tracing::warn!(target: "cloudy::_events::limits", %peer, protocol = what, "keeps going over its limits; disconnecting it");
                    if let Some(h) = &limits.report {
                        h.report_abuse(peer);
                    }
                    continue;
                }
            }
            let Ok(permit) = sessions.clone().try_acquire_owned() else {
                per_peer.lock().expect("limits lock").leave(&peer);
                tracing::warn!(%peer, protocol = what, limit = limits.total, "too many sessions; stream refused");
                continue;
            };
            let session = handler(peer, stream);
            let cancel = inner.cancel().clone();
            let per_peer = per_peer.clone();
            inner.spawn(what, async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = session => {}
                }
                per_peer.lock().expect("limits lock").leave(&peer);
                drop(permit);
            });
        }
    });
}

/// Keeps one task per wanted peer until the part stops: `wanted` picks the
/// peers from the latest value of `targets`; a peer no longer wanted has
/// its task stopped, and a wanted peer whose task ended gets a new one
/// from `start`.
pub(crate) fn per_peer<T, W, S, F>(
    tasks: &Tasks,
    what: &'static str,
    mut targets: tokio::sync::watch::Receiver<T>,
    wanted: W,
    mut start: S,
) where
    T: Send + Sync + 'static,
    W: Fn(&T) -> Vec<PeerId> + Send + 'static,
    S: FnMut(PeerId) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let spawner = tasks.clone();
    tasks.spawn_loop(what, async move {
        let mut held: std::collections::HashMap<PeerId, tokio::task::JoinHandle<()>> =
            std::collections::HashMap::new();
        loop {
            let peers = wanted(&targets.borrow_and_update());
            held.retain(|peer, task| {
                let keep = peers.contains(peer) && !task.is_finished();
                if !keep {
                    task.abort();
                }
                keep
            });
            for peer in peers {
                held.entry(peer).or_insert_with(|| spawner.spawn(what, start(peer)));
            }
            tokio::select! {
                _ = spawner.cancelled() => break,
                r = targets.changed() => if r.is_err() { break },
            }
        }
        for task in held.into_values() {
            task.abort();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_waits_for_every_task_and_counts_what_lingers() {
        let tasks = Tasks::new("test", CancellationToken::new());
        for _ in 0..3 {
            let t = tasks.clone();
            tasks.spawn_loop("waits for cancel", async move { t.cancelled().await });
        }
        assert_eq!(tasks.running(), 3);
        tasks.stop(Duration::from_secs(5)).await.unwrap();
        assert_eq!(tasks.running(), 0);

        let stubborn = Tasks::new("stubborn", CancellationToken::new());
        stubborn.spawn("ignores cancel", tokio::time::sleep(Duration::from_secs(60)));
        let err = stubborn.stop(Duration::from_millis(50)).await.unwrap_err();
        assert_eq!(err.left, 1);
    }

    #[tokio::test]
    async fn a_panicking_task_is_contained() {
        let tasks = Tasks::new("test", CancellationToken::new());
        tasks.spawn("panics", async { panic!("on purpose") }).await.unwrap();
        tasks.stop(Duration::from_secs(1)).await.unwrap();
    }
}
