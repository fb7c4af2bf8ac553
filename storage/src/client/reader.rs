//! A share reader: one task per share being downloaded, with its own
//! session. It keeps up to [`WINDOW`] block requests outstanding (the
//! server answers in order), checks every block against the share's hash
//! list, and queues the good ones for the decoder in segment order. So the
//! network never waits for the decoder, nor the decoder for a round trip,
//! and memory stays at a few blocks per share.
//!
//! A holder is not waited on once the overlay says it failed or left, nor
//! once it has sent nothing for a silence derived from its measured round
//! trip (see [`super::progress`]): the download switches to another share
//! at once instead of after the call timeout.

use super::progress::{silence_for, Meter};
use super::share_error::ShareError;
use super::{Conn, CALL_TIMEOUT};
use crate::protocol::{Request, Response};
use crate::root::{block_hash, Hash};
use crate::store::StorageIndex;
use crate::CodingError;
use cloudy_overlay::{MemberState, PeerId, PeerScores};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::sync::watch;

/// Requests in flight per share.
pub(super) const WINDOW: u64 = 6;
/// Checked blocks waiting for the decoder, per share.
const QUEUE: usize = 4;

/// The receiving end of a share reader. Dropping it stops the task.
pub(super) struct ShareReader {
    pub share: u8,
    pub peer: PeerId,
    rx: mpsc::Receiver<Result<Vec<u8>, ShareError>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for ShareReader {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl ShareReader {
    /// Starts reading `segments` of `share` from `peer` over `conn`.
    pub(super) fn spawn(
        conn: Conn,
        scores: watch::Receiver<Arc<PeerScores>>,
        si: StorageIndex,
        share: u8,
        peer: PeerId,
        hashes: Vec<Hash>,
        segments: Range<u64>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(async move {
            let holder = Holder { peer, scores };
            if let Err(e) = run(conn, holder, si, share, &hashes, segments, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        ShareReader { share, peer, rx, task: Some(task) }
    }

    /// A reader of a one-segment share whose block already came with the
    /// server's answer to `Find`: checked against the hash list here, no
    /// session needed.
    pub(super) fn ready(share: u8, peer: PeerId, hashes: &[Hash], block: Vec<u8>) -> Self {
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(checked(hashes, share, 0, block));
        ShareReader { share, peer, rx, task: None }
    }

    /// The next checked block, or why there is none.
    pub(super) async fn next(&mut self) -> Result<Vec<u8>, ShareError> {
        self.rx.recv().await.unwrap_or(Err(ShareError::Stopped))
    }
}

/// The holder a reader reads from, as the overlay sees it.
struct Holder {
    peer: PeerId,
    scores: watch::Receiver<Arc<PeerScores>>,
}

impl Holder {
    /// How long it may stay silent, from its round trip: measured, else
    /// estimated from network coordinates, else the median of those
    /// measured to other members (the same network), else the call timeout.
    fn silence(&self) -> Duration {
        let scores = self.scores.borrow();
        let rtt = scores.peers.get(&self.peer).and_then(|v| v.rtt_measured.or(v.rtt_estimated));
        let rtt = rtt.or_else(|| {
            let mut all: Vec<Duration> =
                scores.peers.values().filter_map(|v| v.rtt_measured).collect();
            all.sort();
            all.get(all.len() / 2).copied()
        });
        silence_for(rtt, CALL_TIMEOUT)
    }

    /// Resolves, saying why, once the overlay says the holder failed or
    /// left, or once it sent nothing for `silence` (remote sessions).
    async fn abandon(&mut self, meter: Option<&Meter>, silence: Duration) -> ShareError {
        let peer = self.peer;
        let gone = async {
            let down = |s: &Arc<PeerScores>| {
                s.peers
                    .get(&peer)
                    .is_some_and(|v| matches!(v.state, MemberState::Failed | MemberState::Left))
            };
            let seen = self.scores.wait_for(down).await.is_ok();
            if !seen {
                // The overlay stopped: only the silence can end the wait.
                std::future::pending::<()>().await;
            }
        };
        let silent = async {
            let Some(m) = meter else { return std::future::pending().await };
            loop {
                let idle = m.idle();
                if idle >= silence {
                    return;
                }
                tokio::time::sleep(silence - idle).await;
            }
        };
        tokio::select! {
            _ = gone => ShareError::HolderGone(peer),
            _ = silent => ShareError::Silent { peer, silence },
        }
    }
}

async fn run(
    mut conn: Conn,
    mut holder: Holder,
    si: StorageIndex,
    share: u8,
    hashes: &[Hash],
    segments: Range<u64>,
    tx: &mpsc::Sender<Result<Vec<u8>, ShareError>>,
) -> Result<(), ShareError> {
    let mut queued = VecDeque::new();
    let mut asked = segments.start;
    let meter = conn.meter();
    let silence = holder.silence();
    // One watch for the whole share (not one per block: a timer and a
    // subscription per block cost measurable CPU at 100 MB/s).
    let mut abandon = std::pin::pin!(holder.abandon(meter.as_ref(), silence));
    for segment in segments.clone() {
        while asked < segments.end && asked < segment + WINDOW {
            conn.send(Request::Get { si, share, segment: asked }, &mut queued).await?;
            asked += 1;
        }
        // The silence counts from here: time spent waiting for the
        // decoder (a slow player downstream) is not the holder's.
        if let Some(m) = &meter {
            m.touch();
        }
        let answer = tokio::select! {
            r = conn.recv(&mut queued) => r?,
            why = &mut abandon => return Err(why),
        };
        let block = match answer {
            Response::Block(b) => b,
            other => return Err(ShareError::answer(other)),
        };
        let block = checked(hashes, share, segment, block)?;
        if tx.send(Ok(block)).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// `block` if it is segment `segment` of `share` by the hash list.
fn checked(
    hashes: &[Hash],
    share: u8,
    segment: u64,
    block: Vec<u8>,
) -> Result<Vec<u8>, ShareError> {
    match hashes.get(segment as usize) == Some(&block_hash(&block)) {
        true => Ok(block),
        false => Err(CodingError::CorruptBlock { share: share as usize, segment }.into()),
    }
}
