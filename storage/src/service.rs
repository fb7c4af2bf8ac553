//! The storage server of a node: accepts `/cloudy/storage/1.0.0` streams
//! from the overlay, serves each session in its own task, and announces the
//! `storage` service with its free space.

use crate::client::{META_FREE, SERVICE};
use crate::protocol::PROTOCOL;
use crate::server::{collect_garbage, serve, SharedStore};
use crate::store::now_secs;
use cloudy_overlay::limits::Pace;
use cloudy_overlay::tasks::{serve_streams, Limits, Tasks};
use cloudy_overlay::{Handle, StreamProtocol};
use std::time::Duration;
use tracing::{debug, info, warn};

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

/// How often expired leases are collected, when expiry is on.
const GC_EVERY: Duration = Duration::from_secs(3600);

/// Storage sessions served at once; more wait for the peer to retry.
pub const MAX_SESSIONS: usize = 128;
/// Requests a second one peer may make in its sessions here, all together
/// (a 256 MiB get asks a server a few hundred a second); beyond it the
/// peer is throttled, and cut off if it keeps at it.
pub const REQUEST_RATE: f64 = 4000.0;

/// How a storage server treats its members.
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy {
    /// Delete shares whose leases all ended (every hour).
    pub expire_leases: bool,
    /// Most bytes kept under one member's leases; `None`: no limit.
    pub member_quota: Option<u64>,
}

/// Starts serving `store` and announces it with its free space. With
/// `expire_leases`, shares whose leases all ended are deleted every hour
/// (off by default in the node, as in Tahoe). Everything runs as `tasks`.
pub async fn start(
    overlay: Handle,
    store: SharedStore,
    policy: Policy,
    tasks: &Tasks,
) -> Result<(), ServiceError> {
    let Policy { expire_leases, member_quota } = policy;
    let incoming = overlay
        .stream_control()
        .accept(StreamProtocol::new(PROTOCOL))
        .map_err(|_| ServiceError::AlreadyServing)?;
    let free = |s: &SharedStore| s.free();
    let mut announced = free(&store);
    overlay.announce(SERVICE, [(META_FREE.to_string(), announced.to_string())].into()).await?;
    let served = store.clone();
    // Half the sessions may be one peer's: a member putting or checking
    // many files at once is not taken for a flood.
    let mut limits = Limits::new(MAX_SESSIONS).reporting(overlay.clone());
    limits.per_peer = MAX_SESSIONS / 2;
    let pace = Pace::new(REQUEST_RATE, REQUEST_RATE * 2.0).reporting(overlay.clone());
    serve_streams(tasks, "storage session", incoming, limits, move |peer, mut stream| {
        let (store, pace) = (served.clone(), pace.clone());
        async move {
            let paced = Some((&pace, peer));
            match serve(store, &peer.to_string(), &mut stream, member_quota, paced).await {
                Ok(()) => debug!(%peer, "storage session ended"),
                Err(e) => warn!(%peer, "storage session aborted: {e}"),
            }
        }
    });
    let cancel = tasks.cancel().clone();
    tasks.spawn_loop("storage announcements", async move {
        let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
        let mut gc = tokio::time::interval(GC_EVERY);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = gc.tick(), if expire_leases => {
                    let s = store.clone();
                    match crate::server::blocking(move || collect_garbage(s.as_ref(), now_secs())).await {
                        Ok(Ok(removed)) if !removed.is_empty() => {
                            info!(target: "cloudy::_events::storage", shares = removed.len(), "expired shares deleted");
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => warn!("lease expiry: {e}"),
                        Err(e) => warn!("lease expiry: {e}"),
                    }
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
    });
    Ok(())
}
