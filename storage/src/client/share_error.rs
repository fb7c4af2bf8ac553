//! Why one share could not be written to, read from or checked on one
//! server. Callers collect these per server into the failures a user sees.

use crate::protocol::{ProtocolError, Response};
use crate::store::StoreError;
use crate::CodingError;
use cloudy_overlay::PeerId;
use std::time::Duration;

/// What went wrong with one share on one server.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShareError {
    /// The session failed or carried garbage.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// This node's own store failed (the server is this node).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server refused, saying why.
    #[error("{0}")]
    Refused(String),
    /// The server answered something else than the protocol allows here.
    #[error("unexpected answer {0}")]
    Unexpected(String),
    /// The server did not answer in time.
    #[error("no answer in {0:?}")]
    Timeout(Duration),
    /// The server took no block for this long.
    #[error("a block was not accepted within {0:?}")]
    Stalled(Duration),
    /// A block or hash list failed verification.
    #[error(transparent)]
    Coding(#[from] CodingError),
    /// The share's root record is not the capability's.
    #[error("root record differs from the capability's")]
    RootDiffers,
    /// The overlay says the holder failed or left.
    #[error("the overlay says the holder {0} failed or left")]
    HolderGone(PeerId),
    /// The holder went quiet.
    #[error("the holder {peer} sent nothing for {silence:?}")]
    Silent {
        /// The holder.
        peer: PeerId,
        /// How long it was given.
        silence: Duration,
    },
    /// The reader task ended without a block or a reason.
    #[error("reader stopped")]
    Stopped,
}

impl ShareError {
    /// A refusal or an unexpected answer, from what the server said.
    pub(crate) fn answer(r: Response) -> Self {
        match r {
            Response::Error { message, .. } => ShareError::Refused(message),
            other => ShareError::Unexpected(format!("{other:?}")),
        }
    }
}
