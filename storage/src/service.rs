//! The storage server of a node: accepts `/cloudy/storage/1.0.0` streams
//! from the overlay, serves each session in its own task, and announces the
//! `storage` service with its free space.

use crate::client::{META_FREE, SERVICE};
use crate::protocol::PROTOCOL;
use crate::server::{serve, SharedStore};
use cloudy_overlay::{Handle, StreamProtocol};
use futures::StreamExt;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How often free space is re-announced (when it changed noticeably).
const ANNOUNCE_EVERY: Duration = Duration::from_secs(30);
/// Change in free bytes worth a new announcement.
const ANNOUNCE_DELTA: u64 = 16 << 20;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// Someone already accepts the storage protocol on this node.
    #[error("the storage protocol is already being served")]
    AlreadyServing,
    /// The overlay is gone.
    #[error(transparent)]
    Overlay(#[from] cloudy_overlay::Error),
}

/// Starts serving `store` and announces it with its free space.
pub async fn start(
    overlay: Handle,
    store: SharedStore,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, ServiceError> {
    let mut incoming = overlay
        .stream_control()
        .accept(StreamProtocol::new(PROTOCOL))
        .map_err(|_| ServiceError::AlreadyServing)?;
    let free = |s: &SharedStore| s.free();
    let mut announced = free(&store);
    overlay.announce(SERVICE, [(META_FREE.to_string(), announced.to_string())].into()).await?;
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                next = incoming.next() => {
                    let Some((peer, mut stream)) = next else { break };
                    let store = store.clone();
                    tokio::spawn(async move {
                        match serve(store, &mut stream).await {
                            Ok(()) => debug!(%peer, "storage session ended"),
                            Err(e) => warn!(%peer, "storage session aborted: {e}"),
                        }
                    });
                }
                _ = tick.tick() => {
                    let now = free(&store);
                    if now.abs_diff(announced) >= ANNOUNCE_DELTA {
                        announced = now;
                        let meta = [(META_FREE.to_string(), now.to_string())].into();
                        if overlay.announce(SERVICE, meta).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }))
}
