//! The probe transport of the failure detector, outside the event loop.
//!
//! - The event loop publishes the members we must probe (our monitor
//!   targets) on a `watch` channel.
//! - [`spawn`] runs one task per target that keeps a single stream open to
//!   it on [`crate::protocols::PROBE`] and, every probe interval, writes an
//!   8-byte nonce and waits up to the probe timeout for its echo. Results
//!   go back to the event loop on a bounded channel.
//! - Inbound probe streams are answered by echoing every 8 bytes.
//!
//! One long-lived stream costs one small packet each way per probe, far
//! less than a request-response exchange (new substream, protocol
//! negotiation, close) — this matters for the idle CPU budget.

use crate::protocols::PROBE;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use libp2p_stream::{Control, OpenStreamError};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{interval, timeout, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

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
}

/// Starts the responder and the per-target probers.
pub(crate) fn spawn(
    mut control: Control,
    mut targets: watch::Receiver<Vec<PeerId>>,
    results: mpsc::Sender<ProbeResult>,
    every: Duration,
    limit: Duration,
    cancel: CancellationToken,
) -> Result<(), crate::Error> {
    let incoming = control
        .accept(PROBE)
        .map_err(|_| crate::Error::Transport("probe protocol registered twice".into()))?;
    tokio::spawn(respond(incoming, cancel.clone()));
    tokio::spawn(async move {
        let mut tasks: HashMap<PeerId, JoinHandle<()>> = HashMap::new();
        loop {
            let wanted = targets.borrow_and_update().clone();
            tasks.retain(|peer, task| {
                let keep = wanted.contains(peer) && !task.is_finished();
                if !keep {
                    task.abort();
                }
                keep
            });
            for peer in wanted {
                tasks.entry(peer).or_insert_with(|| {
                    tokio::spawn(probe_peer(control.clone(), peer, results.clone(), every, limit))
                });
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                r = targets.changed() => if r.is_err() { break },
            }
        }
        for task in tasks.into_values() {
            task.abort();
        }
    });
    Ok(())
}

async fn probe_peer(mut control: Control, peer: PeerId, results: mpsc::Sender<ProbeResult>, every: Duration, limit: Duration) {
    let mut tick = interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stream = None;
    let mut nonce: u64 = rand::random();
    loop {
        tick.tick().await;
        nonce = nonce.wrapping_add(1);
        let start = Instant::now();
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
            Ok(Err(ProbeError::Open(OpenStreamError::UnsupportedProtocol(_)))) => Outcome::Unsupported,
            Ok(Err(e)) => Outcome::Failed(e.to_string()),
            Err(_) => Outcome::Failed(format!("no answer within {limit:?}")),
        };
        if !matches!(outcome, Outcome::Answered(_)) {
            stream = None;
        }
        if results.send(ProbeResult { peer, outcome }).await.is_err() {
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

/// Echoes every 8-byte probe on every inbound probe stream.
async fn respond(mut incoming: libp2p_stream::IncomingStreams, cancel: CancellationToken) {
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            next = incoming.next() => next,
        };
        let Some((_peer, mut stream)) = next else { return };
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let echo = async {
                let mut buf = [0u8; 8];
                while stream.read_exact(&mut buf).await.is_ok() {
                    if stream.write_all(&buf).await.is_err() || stream.flush().await.is_err() {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = echo => {}
            }
        });
    }
}
