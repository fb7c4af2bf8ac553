//! The broadcast tree's transport ([`crate::broadcast`] is its logic): one
//! long-lived stream per link on [`BROADCAST`], frames both ways.
//!
//! - The links are the prober's [`Targets`] (monitor targets and random
//!   links) and whoever opened a stream to us: for each target a task keeps
//!   one stream open, reopening it (at most once per `every`) when it
//!   closes. The open stream also keeps the connection open.
//! - Each stream reports [`LinkEvent::Up`] with a bounded queue of frames
//!   to write, every frame read, and [`LinkEvent::Down`] when it ends. The
//!   event loop keeps the tree and decides what to send.

use crate::broadcast::Frame;
use crate::frame::{read_frame, write_frame};
use crate::prober::Targets;
use crate::protocols::BROADCAST;
use crate::tasks::{per_peer, serve_streams, Tasks};
use futures::AsyncReadExt;
use libp2p::PeerId;
use libp2p_stream::{Control, OpenStreamError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The queues of frames to write on one stream: `urgent` ones (a
/// refutation, and what passes one on) are written before the others.
#[derive(Clone, Debug)]
pub(crate) struct Lanes {
    pub normal: mpsc::Sender<Frame>,
    pub urgent: mpsc::Sender<Frame>,
}

impl Lanes {
    /// Whether the stream's writer has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.normal.is_closed()
    }
}

/// What happened on a link's stream.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// A stream is open: frames for `peer` go on `out`.
    Up { peer: PeerId, stream: u64, out: Lanes },
    /// A frame from `peer`.
    Frame { peer: PeerId, frame: Frame },
    /// The stream `stream` to `peer` ended.
    Down { peer: PeerId, stream: u64 },
}

/// Largest frame: a membership message in its envelope, with its id.
const MAX_FRAME: usize = crate::membership::wire::MAX_MESSAGE_BYTES + 256;
/// Frames waiting to be written on one stream; beyond, new ones are
/// dropped (the tree's announcements and anti-entropy repair a loss).
pub(crate) const OUT_QUEUE: usize = 256;
/// Urgent frames waiting to be written on one stream.
const URGENT_QUEUE: usize = 32;
/// Most inbound link streams at once (a member has about `2 × (monitors +
/// links)`).
const MAX_INBOUND: usize = 256;
/// Frames one peer may send per second, all its streams together; beyond
/// it the peer waits, and its stream is closed if it keeps at it.
const FRAME_RATE: f64 = 200.0;

/// Starts the inbound accept loop and a stream to every target.
pub(crate) fn spawn(
    mut control: Control,
    targets: watch::Receiver<Targets>,
    events: mpsc::Sender<LinkEvent>,
    every: Duration,
    tasks: &Tasks,
) -> Result<(), crate::Error> {
    let incoming = control
        .accept(BROADCAST)
        .map_err(|_| crate::Error::Transport("broadcast protocol registered twice".into()))?;
    let pace = crate::limits::Pace::new(FRAME_RATE, FRAME_RATE * 2.0);
    let inbound = events.clone();
    let inbound_pace = pace.clone();
    serve_streams(tasks, "broadcast link", incoming, MAX_INBOUND, move |peer, stream| {
        run(peer, stream, inbound.clone(), inbound_pace.clone())
    });
    let wanted = |t: &Targets| t.probe.iter().chain(&t.link).copied().collect();
    per_peer(tasks, "broadcast link", targets, wanted, move |peer| {
        hold(control.clone(), peer, events.clone(), pace.clone(), every)
    });
    Ok(())
}

/// Keeps a stream open to `peer`. Ends if the peer does not speak the
/// protocol (not a cloudy node).
async fn hold(
    mut control: Control,
    peer: PeerId,
    events: mpsc::Sender<LinkEvent>,
    pace: crate::limits::Pace,
    every: Duration,
) {
    loop {
        let opened = Instant::now();
        match control.open_stream(peer, BROADCAST).await {
            Ok(stream) => run(peer, stream, events.clone(), pace.clone()).await,
            Err(OpenStreamError::UnsupportedProtocol(_)) => return,
            Err(e) => tracing::debug!(%peer, "cannot open a broadcast link: {e}"),
        }
        if events.is_closed() {
            return;
        }
        tokio::time::sleep_until(opened + every.max(Duration::from_secs(1))).await;
    }
}

/// Runs one stream until it or the event loop ends.
async fn run(
    peer: PeerId,
    stream: libp2p::Stream,
    events: mpsc::Sender<LinkEvent>,
    pace: crate::limits::Pace,
) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let (normal, mut queue) = mpsc::channel::<Frame>(OUT_QUEUE);
    let (urgent, mut urgent_queue) = mpsc::channel::<Frame>(URGENT_QUEUE);
    let out = Lanes { normal, urgent };
    if events.send(LinkEvent::Up { peer, stream: id, out }).await.is_err() {
        return;
    }
    // Reports Down however the task ends, aborted included (the member
    // stopped being a target): a link the event loop still counted as up
    // would swallow the frames sent to it.
    let _down = DownOnDrop { peer, stream: id, events: events.clone() };
    let (mut r, mut w) = stream.split();
    let reading = async {
        while let Ok(Some(bytes)) = read_frame(&mut r, MAX_FRAME).await {
            if pace.request(peer).await.is_err() {
                tracing::debug!(%peer, "broadcast frames far over their rate; closing the link");
                return;
            }
            let frame = match Frame::decode(&bytes) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(%peer, "{e}; closing the link");
                    return;
                }
            };
            if events.send(LinkEvent::Frame { peer, frame }).await.is_err() {
                return;
            }
        }
    };
    let writing = async {
        while let Some(frame) = next_frame(&mut urgent_queue, &mut queue).await {
            if write_frame(&mut w, &frame.encode(), MAX_FRAME).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = reading => {}
        _ = writing => {}
    }
}

/// The next frame to write on a stream, urgent ones first; `None` once
/// the event loop let go of both queues.
async fn next_frame(
    urgent: &mut mpsc::Receiver<Frame>,
    normal: &mut mpsc::Receiver<Frame>,
) -> Option<Frame> {
    tokio::select! {
        biased;
        Some(frame) = urgent.recv() => Some(frame),
        Some(frame) = normal.recv() => Some(frame),
        else => None,
    }
}

/// Sends [`LinkEvent::Down`] for a stream when dropped.
struct DownOnDrop {
    peer: PeerId,
    stream: u64,
    events: mpsc::Sender<LinkEvent>,
}

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let down = LinkEvent::Down { peer: self.peer, stream: self.stream };
        if let Err(mpsc::error::TrySendError::Full(down)) = self.events.try_send(down) {
            // The event loop is busy: wait for room on a task of its own.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let events = self.events.clone();
                rt.spawn(async move {
                    let _ = events.send(down).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urgent_frames_are_written_before_those_queued_earlier() {
        let (normal, mut normal_rx) = mpsc::channel(OUT_QUEUE);
        let (urgent, mut urgent_rx) = mpsc::channel(URGENT_QUEUE);
        let lanes = Lanes { normal, urgent };
        for _ in 0..10 {
            lanes.normal.try_send(Frame::Prune).unwrap();
        }
        lanes.urgent.try_send(Frame::Graft(Vec::new())).unwrap();
        let first = next_frame(&mut urgent_rx, &mut normal_rx).await;
        assert!(matches!(first, Some(Frame::Graft(_))), "{first:?}");
        drop(lanes);
        let mut rest = 0;
        while let Some(frame) = next_frame(&mut urgent_rx, &mut normal_rx).await {
            assert!(matches!(frame, Frame::Prune));
            rest += 1;
        }
        assert_eq!(rest, 10, "the queued frames, then the end");
    }
}
