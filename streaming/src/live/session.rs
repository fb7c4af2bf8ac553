//! One neighbour session's I/O: opening it, and a reader and a writer task
//! per open stream. The reader checks every chunk's signature before the
//! channel task sees it; the writer drains a bounded queue, so a neighbour
//! that cannot keep up fills its queue and is dropped.

use super::state::Sid;
use crate::chunk::{ChannelId, Chunk};
use crate::protocol::{recv, send, send_chunk, Msg, PROTOCOL};
use cloudy_overlay::tasks::Tasks;
use cloudy_overlay::{PeerId, Stream, StreamProtocol};
use futures::{AsyncReadExt, AsyncWriteExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages queued to one neighbour.
pub const QUEUE: usize = 96;
/// Time to open a session and hear the answer.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// What goes out on a session.
#[derive(Debug)]
pub enum Wire {
    /// A control message.
    Msg(Msg),
    /// A chunk, shared with the store.
    Chunk(Arc<Chunk>),
}

/// What session I/O tells the channel task.
#[derive(Debug)]
pub enum Event {
    /// A session is open: our dial was welcomed (`outbound`), or a peer's
    /// hello reached us and waits for our answer.
    Opened {
        /// The peer.
        peer: PeerId,
        /// The stream.
        stream: Stream,
        /// We opened it.
        outbound: bool,
    },
    /// Our dial failed or was refused.
    DialFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        why: String,
    },
    /// A message (chunks are verified).
    Msg {
        /// The session.
        sid: Sid,
        /// The message.
        msg: Msg,
    },
    /// The session ended.
    Closed {
        /// The session.
        sid: Sid,
        /// Why.
        why: String,
        /// It sent a forged or malformed chunk.
        rejected: bool,
    },
}

/// Opens a session to `peer` for `channel`; the outcome arrives as
/// [`Event::Opened`] or [`Event::DialFailed`].
pub async fn dial(
    overlay: cloudy_overlay::Handle,
    peer: PeerId,
    channel: String,
    events: mpsc::Sender<Event>,
) {
    let attempt = async {
        let mut s = overlay
            .open_stream(peer, StreamProtocol::new(PROTOCOL))
            .await
            .map_err(|e| e.to_string())?;
        send(&mut s, &Msg::Hello { channel }).await.map_err(|e| e.to_string())?;
        match recv(&mut s).await.map_err(|e| e.to_string())? {
            Some(Msg::Welcome) => Ok(s),
            Some(Msg::Refuse { reason }) => Err(format!("refused: {reason}")),
            Some(other) => Err(format!("protocol violation: {other:?} instead of a welcome")),
            None => Err("closed before answering".into()),
        }
    };
    let ev = match tokio::time::timeout(OPEN_TIMEOUT, attempt).await {
        Ok(Ok(stream)) => Event::Opened { peer, stream, outbound: true },
        Ok(Err(why)) => Event::DialFailed { peer, why },
        Err(_) => Event::DialFailed { peer, why: format!("no answer in {OPEN_TIMEOUT:?}") },
    };
    let _ = events.send(ev).await;
}

/// Refuses an incoming session, politely.
pub async fn refuse(mut stream: Stream, reason: String) {
    let _ = tokio::time::timeout(OPEN_TIMEOUT, async {
        let _ = send(&mut stream, &Msg::Refuse { reason }).await;
        let _ = stream.close().await;
    })
    .await;
}

/// Runs an open session: returns the queue to its writer. The session
/// ends when `cancel` fires, the queue is dropped, or the stream fails.
pub fn run(
    stream: Stream,
    sid: Sid,
    channel: ChannelId,
    events: mpsc::Sender<Event>,
    tasks: &Tasks,
    cancel: CancellationToken,
) -> mpsc::Sender<Wire> {
    let (tx, mut rx) = mpsc::channel::<Wire>(QUEUE);
    let (mut r, mut w) = stream.split();
    let stop = cancel.clone();
    tasks.spawn("stream session writer", async move {
        loop {
            let item = tokio::select! {
                _ = stop.cancelled() => break,
                item = rx.recv() => item,
            };
            let res = match item {
                Some(Wire::Msg(m)) => send(&mut w, &m).await,
                Some(Wire::Chunk(c)) => send_chunk(&mut w, &c).await,
                None => break,
            };
            if res.is_err() {
                stop.cancel();
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), w.close()).await;
    });
    tasks.spawn("stream session reader", async move {
        let (why, rejected) = loop {
            let msg = tokio::select! {
                _ = cancel.cancelled() => break ("closed".to_string(), false),
                m = recv(&mut r) => m,
            };
            match msg {
                Ok(Some(Msg::Chunk(c))) => {
                    if let Err(e) = c.verify(&channel) {
                        break (e.to_string(), true);
                    }
                    if events.send(Event::Msg { sid, msg: Msg::Chunk(c) }).await.is_err() {
                        return;
                    }
                }
                Ok(Some(msg)) => {
                    if events.send(Event::Msg { sid, msg }).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break ("closed by the peer".to_string(), false),
                Err(crate::protocol::WireError::Garbage(g)) => break (g, true),
                Err(e) => break (e.to_string(), false),
            }
        };
        cancel.cancel();
        let _ = events.send(Event::Closed { sid, why, rejected }).await;
    });
    tx
}
