//! The node's parts, started in phases and stopped in the reverse order.
//!
//! ```text
//! start:  API listener bound → overlay → services (storage, upkeep, sync,
//!         streaming, video) → API served
//! stop:   services → overlay (says goodbye to the community) → API
//! ```
//!
//! Each phase owns a [`Tasks`]: every task of the phase is spawned through
//! it, so stopping a phase cancels its token and waits, with a deadline,
//! until each of its tasks has ended. Services stop first while the
//! overlay still carries their last messages; the API stops last so that
//! `status` answers until the end.

use cloudy_overlay::tasks::{Lingering, Tasks};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long each phase gets to stop.
pub const PHASE_DEADLINE: Duration = Duration::from_secs(5);

/// The phases of a running node.
#[derive(Debug)]
pub struct Supervisor {
    /// Storage, upkeep, sync, streaming and video.
    pub services: Tasks,
    /// The overlay's event loop and its helpers.
    pub overlay: Tasks,
    /// The control API and the downloads it serves.
    pub api: Tasks,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor {
            services: Tasks::new("services", CancellationToken::new()),
            overlay: Tasks::new("overlay", CancellationToken::new()),
            api: Tasks::new("control API", CancellationToken::new()),
        }
    }
}

impl Supervisor {
    /// Stops the phases in order, each within [`PHASE_DEADLINE`]; returns
    /// the phases that had tasks left when their deadline passed.
    pub async fn stop(&self) -> Vec<Lingering> {
        let mut left = Vec::new();
        for phase in [&self.services, &self.overlay, &self.api] {
            if let Err(e) = phase.stop(PHASE_DEADLINE).await {
                tracing::warn!("{e}");
                left.push(e);
            }
        }
        left
    }

    /// Tasks running in each phase.
    pub fn running(&self) -> [(&'static str, usize); 3] {
        [
            ("services", self.services.running()),
            ("overlay", self.overlay.running()),
            ("control API", self.api.running()),
        ]
    }
}
