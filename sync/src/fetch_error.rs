//! Why a block or block-list piece could not be had from the members.

use cloudy_overlay::stream::OpenStreamError;
use cloudy_overlay::PeerId;
use std::fmt;

/// What went wrong asking one member.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// No session could be opened in time.
    #[error("{0}: no session in time")]
    NoSession(PeerId),
    /// The session could not be opened.
    #[error("{peer}: cannot open a session: {source}")]
    Open {
        /// The member.
        peer: PeerId,
        /// Why.
        #[source]
        source: OpenStreamError,
    },
    /// The session failed or carried garbage.
    #[error("{peer}: {source}")]
    Protocol {
        /// The member.
        peer: PeerId,
        /// Why.
        #[source]
        source: crate::protocol::ProtocolError,
    },
    /// The member answered something the protocol does not allow here.
    #[error("{peer}: unexpected {what}")]
    Unexpected {
        /// The member.
        peer: PeerId,
        /// What it sent.
        what: String,
    },
    /// The member closed the session.
    #[error("{0} closed the session")]
    Closed(PeerId),
    /// The member did not answer in time.
    #[error("{0}: no answer in time")]
    Timeout(PeerId),
    /// The member does not have it.
    #[error("{0} does not have it")]
    Missing(PeerId),
    /// What the member sent does not match its hash.
    #[error("{peer}: {what} does not match its hash")]
    Corrupt {
        /// The member.
        peer: PeerId,
        /// A block or a block-list piece.
        what: &'static str,
    },
}

/// No member gave it; why, member by member (empty: there was nobody to
/// ask).
#[derive(Debug, Default, thiserror::Error)]
pub struct FetchError(pub Vec<AskError>);

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no member to ask");
        }
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
