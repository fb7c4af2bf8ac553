//! Joining a private community with an invite, before the node runs: dial
//! the admin named in the invite over QUIC, run the handshake with the
//! invite instead of a chain, and take the certificate it issues.

use super::cert::{self, Chain};
use super::gate::{ask, now_secs, Answer, Hello};
use super::invites::{InviteId, Secret};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{DialOpts, PortUse, Transport};
use libp2p::core::Endpoint;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use std::time::Duration;

/// How long one admin is given to answer.
const PER_ADDRESS: Duration = Duration::from_secs(10);

/// What an invite carries besides the addresses.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    /// The community.
    pub community: PeerId,
    /// The invite's id.
    pub invite: InviteId,
    /// Its secret.
    pub secret: Secret,
}

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// An admin refused the invite (used, expired, forged…).
    #[error("{peer} refused the invite: {reason}")]
    Refused {
        /// The admin.
        peer: PeerId,
        /// Its reason.
        reason: String,
    },
    /// No address in the invite could be reached.
    #[error("no admin in the invite could be reached: {0}")]
    Unreachable(String),
    /// The certificate it issued is not valid (or it is not a member).
    #[error("{peer} answered with a certificate that is not valid: {source}")]
    BadCertificate {
        /// The admin.
        peer: PeerId,
        /// What is wrong.
        #[source]
        source: cert::CertError,
    },
}

/// Obtains this node's chain from the first admin at `addrs` that answers.
pub async fn join(key: &Keypair, addrs: &[Multiaddr], ticket: Ticket) -> Result<Chain, JoinError> {
    let mut transport = libp2p::quic::tokio::Transport::new(libp2p::quic::Config::new(key));
    let me = key.public().to_peer_id();
    let mut failures = Vec::new();
    // Joining speaks QUIC only; members listen on it first.
    let quic = |a: &&Multiaddr| a.iter().any(|p| matches!(p, libp2p::multiaddr::Protocol::QuicV1));
    for addr in addrs.iter().filter(quic) {
        let opts = DialOpts { role: Endpoint::Dialer, port_use: PortUse::New };
        let dial = match transport.dial(addr.clone(), opts) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{addr}: {e}"));
                continue;
            }
        };
        let attempt = async {
            let (peer, conn) = dial.await.map_err(|e| format!("{addr}: {e}"))?;
            let mut muxer = StreamMuxerBox::new(conn);
            let hello = Hello::Join {
                community: ticket.community,
                invite: ticket.invite,
                secret: ticket.secret,
            };
            let answer = ask(peer, &mut muxer, &hello).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((peer, answer))
        };
        let (peer, answer) = match tokio::time::timeout(PER_ADDRESS, attempt).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                failures.push(e);
                continue;
            }
            Err(_) => {
                failures.push(format!("{addr}: no answer within {PER_ADDRESS:?}"));
                continue;
            }
        };
        match answer {
            Answer::Refused { reason, .. } => return Err(JoinError::Refused { peer, reason }),
            Answer::Welcome { chain, issued, .. } => {
                let now = now_secs();
                let bad = |source| JoinError::BadCertificate { peer, source };
                cert::verify(&chain, ticket.community, peer, now, |_| cert::Standing::Good)
                    .map_err(bad)?;
                let mine = issued.unwrap_or_default();
                cert::verify(&mine, ticket.community, me, now, |_| cert::Standing::Good)
                    .map_err(bad)?;
                return Ok(mine);
            }
        }
    }
    Err(JoinError::Unreachable(failures.join("; ")))
}
